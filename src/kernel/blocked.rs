//! The register-blocked one-pass algorithm, written once over a [`Vector`]
//! type: the x86 instruction sets (`x86`), aarch64's NEON (`neon`) and the
//! portable vector (`portable`, what every other target runs) each
//! implement the trait and instantiate [`normalize_blocked`] in an entry
//! point that inlines all of it.
//!
//! Code under an entry point is plain loops, macros and `#[inline(always)]`
//! functions, no closures: a closure is compiled without the entry point's
//! `#[target_feature]`s, and each intrinsic inside it becomes a call.

use super::element::Element;
use super::norm::Norm;
use super::Scale;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// One f32 vector of some width, with loads and stores of each element type.
///
/// # Safety
/// Every `unsafe fn` here needs a CPU with the implementing type's
/// instructions; those taking a pointer need it valid for `W` elements (or
/// `lanes` floats for `load_pattern`) of its type.
pub(crate) trait Vector: Copy {
    const W: usize;
    /// Whether this type takes the walks that run a tile's pass 1 ahead
    /// ([`tiles_ahead`]) for packed blobs of one position per vector
    /// where `cpu::walk` says they pay: measured on AVX-512 only.
    const PIPELINES: bool = false;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load_acc(p: *const f32) -> Self;
    unsafe fn store_acc(self, p: *mut f32);
    /// `self * self + acc`
    unsafe fn square_add(self, acc: Self) -> Self;
    unsafe fn mul(self, other: Self) -> Self;
    unsafe fn add(self, other: Self) -> Self;
    unsafe fn div(self, other: Self) -> Self;
    unsafe fn sqrt(self) -> Self;
    /// Lane-wise `if self is NaN or self >= other { self } else { other }`.
    unsafe fn max_keep_nan(self, other: Self) -> Self;
    /// Whether any lane is outside `[low, high]` (NaN included): with
    /// `high = Norm::high()`, the vector form of `Norm::untrusted`.
    unsafe fn any_outside(self, low: Self, high: Self) -> bool;
    /// Lane-wise `if mask { a } else { self }`; `mask` lanes are all ones or all zeros.
    unsafe fn select(self, a: Self, mask: Self) -> Self;
    /// `self + self` with lanes `i` and `i ^ d` exchanged (`d` a power of two below W).
    unsafe fn swap_add(self, d: usize) -> Self;
    /// Sum of the W lanes (one position's lanes when lanes == W), by halves.
    unsafe fn hsum(self) -> f32;
    /// `out[i] = v[i].hsum()` for 16 vectors, bit for bit; AVX-512 does it as
    /// one transpose-and-add tree instead of 16 separate reductions.
    #[inline(always)]
    unsafe fn hsum16(v: &[Self; 16], out: &mut [f32; 16]) {
        for (o, v) in out.iter_mut().zip(v) {
            // SAFETY: the caller keeps the trait's contract.
            *o = unsafe { v.hsum() };
        }
    }
    /// The same for 8 vectors; AVX2 does it as one tree (its tiles are 8
    /// vectors wide, so at elempack 8 each tile's 8 positions reduce at once).
    #[inline(always)]
    unsafe fn hsum8(v: &[Self; 8], out: &mut [f32; 8]) {
        for (o, v) in out.iter_mut().zip(v) {
            // SAFETY: the caller keeps the trait's contract.
            *o = unsafe { v.hsum() };
        }
    }
    /// For 16 vectors of two 8-lane positions each (elempack 8 on a 16-lane
    /// vector): the 32 positions' totals in position order, 16 to a
    /// vector, each added in `butterfly`'s order. `None` where W is not 16.
    #[inline(always)]
    unsafe fn totals_of_eights(_v: &[Self; 16]) -> Option<[Self; 2]> {
        None
    }
    /// The inverse of the gathering above: `k[i]` holds position 2i's
    /// factor in its first 8 lanes and 2i + 1's in the others, from the 32
    /// factors `f` in position order. Only where `totals_of_eights` is `Some`.
    #[inline(always)]
    unsafe fn spread_eights(_f: &[Self; 2], _k: &mut [Self]) {
        unreachable!("only 16-lane vectors gather elempack-8 totals")
    }
    /// Lane `i` (< W) in every lane.
    #[inline(always)]
    unsafe fn lane(self, i: usize) -> Self {
        let mut buf = [0.0f32; 16];
        // SAFETY: the caller keeps the trait's contract; buf holds 16 >= W floats.
        unsafe {
            self.store_acc(buf.as_mut_ptr());
            Self::splat(buf[i])
        }
    }
    /// `lanes` floats at `p` (`lanes` < W, dividing W) repeated across the vector.
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self;
    /// Asks for the cache line holding `p` ahead of use. A hint: it never
    /// faults and `p` may be any address. No-op unless a type has one.
    #[inline(always)]
    unsafe fn prefetch(_p: *const u8) {}
}

/// Widening load and narrowing store of element type `E`.
///
/// # Safety
/// As for [`Vector`]: the CPU has the instructions; `p` is valid for `W`
/// elements of `E`.
pub(crate) trait Io<E: Element>: Vector {
    unsafe fn load(p: *const E) -> Self;
    unsafe fn store(self, p: *mut E);
    /// Pass 1's step, `acc + x·x` for the W elements at `p`: a load, then
    /// [`square_add`](Vector::square_add). A type may fuse the two where
    /// the result is bit for bit the same (NEON with FEAT_FHM, fp16).
    #[inline(always)]
    unsafe fn square_add_at(p: *const E, acc: Self) -> Self {
        // SAFETY: the caller keeps the trait's contract.
        unsafe { Self::load(p).square_add(acc) }
    }
    /// The first `n` (< W) elements at `p`, zero in the other lanes; `p`
    /// need only be valid for `n` elements. Through a stack copy unless
    /// the instruction set has masked loads for `E`.
    #[inline(always)]
    unsafe fn load_partial(p: *const E, n: usize) -> Self {
        let mut buf = [E::from_f32(0.0); 16];
        // SAFETY: the caller keeps the trait's contract; n < W <= 16.
        unsafe {
            std::ptr::copy_nonoverlapping(p, buf.as_mut_ptr(), n);
            Self::load(buf.as_ptr())
        }
    }
    /// How many elements `p` lies past the last vector-aligned address, for
    /// the unpacked rows this type walks with aligned loads and stores
    /// ([`accumulate_shifted`](Io::accumulate_shifted)); 0 everywhere else.
    #[inline(always)]
    fn row_shift(_p: *const E) -> usize {
        0
    }
    /// Pass 1 over an unpacked row of NV vectors at `x`, which lies
    /// `d = row_shift(x)` (nonzero) elements past an aligned address:
    /// `a[u] += x[u]²` computed from
    /// aligned loads (masked at both ends, so nothing outside the row's NV
    /// vectors is read) and a two-source permute per vector, the same
    /// values in the same order as unaligned loads give. Only where
    /// `row_shift` can be nonzero.
    #[inline(always)]
    unsafe fn accumulate_shifted<const NV: usize>(_x: *const E, _d: usize, _a: &mut [Self; NV]) {
        unreachable!("only types with a nonzero row_shift")
    }
    /// Pass 2 over the same row: `x *= k * w` with aligned loads and stores
    /// (masked at both ends), the factors permuted to match.
    #[inline(always)]
    unsafe fn scale_shifted<const NV: usize>(_x: *mut E, _d: usize, _k: &[Self; NV], _w: Self) {
        unreachable!("only types with a nonzero row_shift")
    }
    /// Stores the first `n` (< W) lanes at `p`, valid for `n` elements.
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut E, n: usize) {
        let mut buf = [E::from_f32(0.0); 16];
        // SAFETY: the caller keeps the trait's contract; n < W <= 16.
        unsafe {
            self.store(buf.as_mut_ptr());
            std::ptr::copy_nonoverlapping(buf.as_ptr(), p, n);
        }
    }
}

/// Normalises every position of `t`, register-blocked.
///
/// A tile is `U` (8 or 16) vectors of every channel group's row (U·W elements, a whole
/// number of positions since lanes divides 16). Pass 1 walks the groups with
/// the tile's accumulators in registers, so each element is loaded once;
/// pass 2 walks them again with the tile's factors in registers: one load and
/// one store per element, the second read hitting cache (a tile is
/// `groups · U·W` elements: 32 KiB for 512 fp32 channels at elempack 16 on
/// AVX-512).
/// Tiles are as wide as U vectors when the tile across all groups fits in
/// `tile_bytes`, narrower otherwise and for what is left at the end. The last
/// elements (fewer than W) run as one vector that overlaps positions already
/// done and leaves them as they are, or, for a walk shorter than one vector,
/// as a partial one ([`last_vector`]); either does a tile's arithmetic, so
/// results never depend on where tiles end.
///
/// # Safety
/// The CPU supports `V`'s instructions and `16 % lanes == 0`.
#[inline(always)]
pub(crate) unsafe fn normalize_blocked<const U: usize, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    norm: Norm,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let range = t.positions();
    // Tile width: the most vectors per row (up to U) whose tile, across all
    // groups, stays within `tile_bytes` (a quarter of L2: pass 2 finds the
    // tile there, and in L1 for packed blobs of a few hundred channels); at
    // least one position's worth.
    let column_bytes = layout.groups * V::W * std::mem::size_of::<E>();
    let min_nv = (lanes / V::W).max(1);
    let max_nv = (super::cpu::tile_bytes() / column_bytes.max(1))
        .clamp(1, U)
        .max(min_nv);
    let prefetch = layout.channels() * layout.positions * std::mem::size_of::<E>()
        >= super::cpu::prefetch_from_bytes();
    let mut p0 = range.start;
    if V::PIPELINES && lanes == V::W {
        // SAFETY (both arms): the CPU has V's instructions; lanes == W; the
        // tiles lie in `range`.
        match super::cpu::walk(&layout, std::mem::size_of::<E>()) {
            super::cpu::Walk::Pipelined => {
                p0 = unsafe { tiles_ahead::<4, true, E, V>(t, p0, range.end, scale, norm) };
            }
            super::cpu::Walk::LookAhead => {
                p0 = unsafe { tiles_ahead::<16, false, E, V>(t, p0, range.end, scale, norm) };
            }
            super::cpu::Walk::Separate => {}
        }
    }
    // Widest tiles first, then narrower ones for what is left.
    macro_rules! tiles_of {
        ($nv:literal) => {
            if $nv <= max_nv && $nv >= min_nv {
                let step = $nv * V::W / lanes;
                while p0 + step <= range.end {
                    // SAFETY: the CPU has V's instructions; the tile's
                    // positions lie in `range`; $nv·W is a multiple of lanes.
                    unsafe { tile::<$nv, E, V>(t, p0, scale, norm, prefetch) };
                    p0 += step;
                }
            }
        };
    }
    tiles_of!(16);
    tiles_of!(8);
    tiles_of!(4);
    tiles_of!(2);
    tiles_of!(1);
    if p0 < range.end {
        // Fewer than one vector's worth of positions is left (so lanes < W).
        let step = V::W / lanes;
        let q0 = range.end.saturating_sub(step).max(range.start);
        // SAFETY: the CPU has V's instructions; q0..end lies in `range`,
        // whole (W / lanes positions) unless it is all of `range`, and its
        // positions before p0 are already normalised.
        unsafe { last_vector::<E, V>(t, q0, range.end, p0 - q0, scale, norm) };
    }
}

/// Normalises the positions of one tile of `NV` vectors per row, starting
/// at position `p0`.
///
/// # Safety
/// The CPU supports `V`'s instructions; `16 % lanes == 0`; `NV·W` is a
/// multiple of `lanes`; the tile's positions lie within `t`'s.
#[inline(always)]
unsafe fn tile<const NV: usize, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    p0: usize,
    scale: Scale<'_>,
    norm: Norm,
    prefetch: bool,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let len = NV * V::W;
    let p1 = p0 + len / lanes;
    // Pass 1: sum of squares per lane, accumulators in registers.
    // SAFETY: the CPU has V's instructions (this function's contract).
    // Unpacked rows start wherever `cstep` puts them; where this type can,
    // rows off a vector boundary of tiles 16 vectors wide take aligned
    // loads and stores (a 64-byte access across two cache lines costs about
    // two; 256x150x150 elempack 1: 1.48 and 1.54x the floor -> 1.36 and
    // 1.27x). Narrower tiles pay more for the extra vector and the permutes
    // than they save (1024x19x19, 4 vectors: 0.92-0.94x Normalize -> 1.16-1.27x).
    let aligned_rows = lanes == 1 && NV == 16;
    let mut a = [unsafe { V::splat(0.0) }; NV];
    // Every group's row at once: one bounds check per tile, not per row.
    let (base, stride) = t.rows(p0..p1);
    for g in 0..layout.groups {
        // SAFETY: g < groups (`rows`' contract).
        let x = unsafe { base.add(g * stride) }.cast_const();
        let d = if aligned_rows { V::row_shift(x) } else { 0 };
        if d != 0 {
            // SAFETY: the row holds NV·W elements and d = row_shift(x) != 0.
            unsafe { V::accumulate_shifted(x, d, &mut a) };
            continue;
        }
        for (u, a) in a.iter_mut().enumerate() {
            // SAFETY: the row holds NV·W elements.
            *a = unsafe { V::square_add_at(x.add(u * V::W), *a) };
        }
    }
    // Lanes of a position -> its sum of squares -> 1/denominator, spread
    // back over its lanes.
    // SAFETY: the CPU has V's instructions.
    let mut k = [unsafe { V::splat(0.0) }; NV];
    // Elempack 8 on 16-lane vectors (plain code, no closures: see
    // `totals_of_eights`).
    let eights = match <&[V; 16]>::try_from(&a[..]) {
        // SAFETY: the CPU has V's instructions.
        Ok(a16) if lanes == 8 => unsafe { V::totals_of_eights(a16) },
        _ => None,
    };
    if lanes == V::W && (NV == 16 || NV == 8) {
        // 16 or 8 vectors, one position each: one transpose tree sums them
        // all, and the factors are inverted NV at a time.
        let mut inv = [0.0f32; 16];
        if let Ok(a16) = <&[V; 16]>::try_from(&a[..]) {
            // SAFETY: the CPU has V's instructions.
            unsafe { V::hsum16(a16, &mut inv) };
        } else if let (Ok(a8), Some(inv8)) =
            (<&[V; 8]>::try_from(&a[..]), inv.first_chunk_mut::<8>())
        {
            // SAFETY: the CPU has V's instructions.
            unsafe { V::hsum8(a8, inv8) };
        }
        if NV == V::W {
            // SAFETY: the CPU has V's instructions; the tile's positions lie in `t`.
            k = unsafe { factors_from_sums::<NV, E, V>(t, p0, &mut inv, norm) };
        } else {
            norm.invert_at(t, p0, &mut inv[..NV]);
            for (k, &inv) in k.iter_mut().zip(inv.iter()) {
                // SAFETY: the CPU has V's instructions.
                *k = unsafe { V::splat(inv) };
            }
        }
    } else if let Some(totals) = eights {
        // Elempack 8 on 16-lane vectors: the tile's 32 positions reduce in
        // one tree and invert two vectors at a time, rather than each
        // vector's butterfly and inversion serving two positions.
        // SAFETY (both blocks): the CPU has V's instructions.
        let (low, high) = unsafe { (V::splat(norm.low()), V::splat(norm.high())) };
        let untrusted =
            unsafe { totals[0].any_outside(low, high) || totals[1].any_outside(low, high) };
        let factors = if untrusted {
            let mut inv = [0.0f32; 32];
            // SAFETY: inv holds 32 floats; the CPU has V's instructions.
            unsafe {
                totals[0].store_acc(inv.as_mut_ptr());
                totals[1].store_acc(inv.as_mut_ptr().add(16));
            }
            norm.invert_at(t, p0, &mut inv);
            // SAFETY: as above.
            unsafe { [V::load_acc(inv.as_ptr()), V::load_acc(inv.as_ptr().add(16))] }
        } else {
            // SAFETY: as above.
            unsafe { [invert(totals[0], norm), invert(totals[1], norm)] }
        };
        // SAFETY: as above; 16-lane vectors, where `totals_of_eights` is Some.
        unsafe { V::spread_eights(&factors, &mut k) };
    } else {
        // A position is one lane (lanes 1), a run of lanes within a vector
        // (1 < lanes < W), one vector (lanes W, in a narrower tile) or spans
        // `per_position` vectors (lanes > W): add its vectors by halves, then
        // butterfly within the vector so each of its lanes holds the total,
        // summed in `hsum`'s order, then invert whole vectors (each lane of a
        // position computes the same factor; cheaper than gathering them).
        let per_position = (lanes / V::W).max(1);
        // SAFETY: the CPU has V's instructions.
        let (low, high) = unsafe { (V::splat(norm.low()), V::splat(norm.high())) };
        for (i, (ks, as_)) in k
            .chunks_exact_mut(per_position)
            .zip(a.chunks_exact(per_position))
            .enumerate()
        {
            // By halves (lanes <= 16 and W >= 4, so 1, 2 or 4 vectors),
            // written out: a runtime-length copy into a scratch array cost a
            // memset and a memcpy call per position.
            // SAFETY: the CPU has V's instructions.
            let mut s = unsafe {
                match *as_ {
                    [a] => a,
                    [a, b] => a.add(b),
                    [a, b, c, d] => a.add(c).add(b.add(d)),
                    _ => unreachable!("a position spans 1, 2 or 4 vectors"),
                }
            };
            // SAFETY: the CPU has V's instructions.
            s = unsafe { butterfly(s, lanes.min(V::W)) };
            // SAFETY: the CPU has V's instructions.
            if unsafe { s.any_outside(low, high) } {
                // The vector holds `positions` positions, their totals
                // `step` lanes apart: position p0 + i·positions + j's total
                // is lane j·step.
                let positions = (V::W / lanes).max(1);
                let step = lanes.min(V::W);
                let (mut totals, mut factors) = ([0.0f32; 16], [0.0f32; 16]);
                // SAFETY: the CPU has V's instructions; both hold 16 >= W floats.
                let inv = unsafe {
                    s.store_acc(totals.as_mut_ptr());
                    for (j, f) in factors[..positions].iter_mut().enumerate() {
                        *f = totals[j * step];
                    }
                    norm.invert_at(t, p0 + i * positions, &mut factors[..positions]);
                    for (l, k) in totals[..V::W].iter_mut().enumerate() {
                        *k = factors[l / step];
                    }
                    V::load_acc(totals.as_ptr())
                };
                ks.fill(inv);
            } else {
                // SAFETY: the CPU has V's instructions.
                let inv = unsafe { invert(s, norm) };
                ks.fill(inv);
            }
        }
    }
    // Pass 2: x *= k * w, factors in registers. Walking the groups
    // backwards meets the rows pass 1 read last, most likely still in
    // cache when the tile outgrows it (channel strides of 2^n bytes).
    let per = (16 / V::W).max(1);
    let row_bytes = len * std::mem::size_of::<E>();
    let (base, stride) = t.rows(p0..p1);
    for g in (0..layout.groups).rev() {
        // SAFETY: same CPU features; lanes divides 16.
        let w = unsafe { weight_vectors::<V>(scale, g, lanes) };
        // SAFETY: g < groups (`rows`' contract).
        let x = unsafe { base.add(g * stride) };
        if prefetch {
            // The next tile's row of this group follows this one: ask for it
            // while this pass works from cache, so the next pass 1 finds it
            // in L2 (`cpu::prefetch_from_bytes` says when this pays).
            let next = x.cast::<u8>().wrapping_add(row_bytes);
            for off in (0..row_bytes).step_by(64) {
                // SAFETY: a prefetch hint reads nothing and never faults.
                unsafe { V::prefetch(next.wrapping_add(off)) };
            }
        }
        let d = if aligned_rows { V::row_shift(x) } else { 0 };
        if d != 0 {
            // SAFETY: as in pass 1; lanes is 1, so w[0] is the row's weight.
            unsafe { V::scale_shifted(x, d, &k, w[0]) };
            continue;
        }
        for (u, k) in k.iter().enumerate() {
            // SAFETY: the row holds NV·W elements.
            unsafe {
                let f = k.mul(w[u % per]);
                V::load(x.add(u * V::W)).mul(f).store(x.add(u * V::W));
            }
        }
    }
}

/// Tiles of `NV` vectors per row of a packed blob of one position per
/// vector (`lanes == W`) from position `p0` for as long as whole tiles fit
/// before `end`, each tile's pass 1 run ahead of the previous tile's pass
/// 2, so that what one tile waits for overlaps work that does not wait.
/// Returns where the whole tiles end. The same arithmetic as [`tile`],
/// position by position. `cpu::walk` says which form pays where:
///
/// * `INTERLEAVED` (`cpu::Walk::Pipelined`, tensors larger than L2): one
///   walk over the groups does pass 2 of a tile and pass 1 of the next, so
///   the next tile's loads from L3 or memory are in flight while the
///   current tile is scaled from L1, where separate passes wait for them
///   with nothing else to do. Tiles of 4 vectors, so that two stay in L1
///   (4 vectors × 512 channels of fp32: 8 KiB each).
/// * not (`cpu::Walk::LookAhead`, tensors in L2): pass 1 of the next tile
///   whole between a tile's factors and its pass 2. The reduction and
///   inversion, a chain of dependent steps, then run beside loads and sums
///   that do not wait for them; in [`tile`] pass 2 waits for the chain,
///   its stores filling the out-of-order window before the next tile's
///   loads can start. Tiles of 16 vectors.
///
/// # Safety
/// The CPU supports `V`'s instructions; `lanes == W`; `p0..end` lies
/// within `t`'s positions.
#[inline(always)]
unsafe fn tiles_ahead<const NV: usize, const INTERLEAVED: bool, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    p0: usize,
    end: usize,
    scale: Scale<'_>,
    norm: Norm,
) -> usize {
    let layout = *t.layout();
    let count = (end - p0) / NV;
    if count == 0 {
        return p0;
    }
    let (base, stride) = t.rows(p0..p0 + count * NV);
    // Macros, not closures (see the module's note). SAFETY (all blocks in
    // this function): the CPU has V's instructions (this function's
    // contract); tile $i < count and group $g < groups lie within the rows
    // `rows` returned, each NV·W elements long.
    // Pass 1 of tile $i over group $g's row, into `a`.
    macro_rules! sum_row {
        ($a:ident, $i:expr, $g:expr) => {
            let x = base.wrapping_add($g * stride + $i * NV * V::W).cast_const();
            for (u, a) in $a.iter_mut().enumerate() {
                *a = unsafe { V::square_add_at(x.add(u * V::W), *a) };
            }
        };
    }
    // Pass 2 of tile $i over group $g's row, with factors `k`.
    macro_rules! scale_row {
        ($k:ident, $i:expr, $g:expr) => {
            // lanes == W: every vector of the row meets the same weights.
            let w = unsafe { weight_vectors::<V>(scale, $g, layout.lanes) }[0];
            let x = base.wrapping_add($g * stride + $i * NV * V::W);
            for (u, k) in $k.iter().enumerate() {
                unsafe {
                    let f = k.mul(w);
                    V::load(x.add(u * V::W)).mul(f).store(x.add(u * V::W));
                }
            }
        };
    }
    let zero = unsafe { V::splat(0.0) };
    let mut a = [zero; NV];
    for g in 0..layout.groups {
        sum_row!(a, 0, g);
    }
    for i in 0..count {
        let k = unsafe { factors_of_positions::<NV, E, V>(t, p0 + i * NV, &a, norm) };
        a = [zero; NV];
        let next = i + 1 < count;
        if INTERLEAVED {
            for g in 0..layout.groups {
                if next {
                    sum_row!(a, i + 1, g);
                }
                scale_row!(k, i, g);
            }
        } else {
            if next {
                for g in 0..layout.groups {
                    sum_row!(a, i + 1, g);
                }
            }
            for g in (0..layout.groups).rev() {
                scale_row!(k, i, g);
            }
        }
    }
    p0 + count * NV
}

/// The factors of `NV` (< 16) positions of one vector each, from their
/// sums of squares `a`, each spread over its vector: as [`tile`] computes
/// them for 16 (the same reduction tree, padded with zero vectors, and
/// [`factors_from_sums`]).
///
/// # Safety
/// The CPU supports `V`'s instructions; `lanes == W`; positions `p0..p0 +
/// NV` lie within `t`'s.
#[inline(always)]
unsafe fn factors_of_positions<const NV: usize, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    p0: usize,
    a: &[V; NV],
    norm: Norm,
) -> [V; NV] {
    // SAFETY (both blocks): the CPU has V's instructions (this function's
    // contract).
    let mut v16 = [unsafe { V::splat(0.0) }; 16];
    v16[..NV].copy_from_slice(a);
    let mut inv = [0.0f32; 16];
    unsafe { V::hsum16(&v16, &mut inv) };
    inv[NV..].fill(1.0);
    unsafe { factors_from_sums::<NV, E, V>(t, p0, &mut inv, norm) }
}

/// The factors of `NV` positions, from their sums of squares `inv[..NV]`
/// (the other entries 1, a sum every usable eps trusts), one position per
/// vector: as one vector inverted and spread from registers when `NV <=
/// W` and every sum is trusted, else through [`Norm::invert_at`], which
/// takes the exact path for the untrusted ones. The same factors either
/// way.
///
/// # Safety
/// The CPU supports `V`'s instructions; positions `p0..p0 + NV` lie within
/// `t`'s.
#[inline(always)]
unsafe fn factors_from_sums<const NV: usize, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    p0: usize,
    inv: &mut [f32; 16],
    norm: Norm,
) -> [V; NV] {
    // SAFETY (all blocks): the CPU has V's instructions (this function's
    // contract); inv holds 16 >= W floats.
    let mut k = [unsafe { V::splat(0.0) }; NV];
    if NV <= V::W {
        let (low, high) = unsafe { (V::splat(norm.low()), V::splat(norm.high())) };
        let sums = unsafe { V::load_acc(inv.as_ptr()) };
        if !unsafe { sums.any_outside(low, high) } {
            let f = unsafe { invert(sums, norm) };
            for (i, k) in k.iter_mut().enumerate() {
                *k = unsafe { f.lane(i) };
            }
            return k;
        }
    }
    norm.invert_at(t, p0, &mut inv[..NV]);
    for (k, &inv) in k.iter_mut().zip(inv.iter()) {
        *k = unsafe { V::splat(inv) };
    }
    k
}

/// The last positions of a walk, `q0..q1`, fewer than one vector's worth
/// of new ones, as one vector per row. Either the vector is whole, `q1 - q0
/// = W / lanes`, and its first `old` positions are already normalised: it
/// reads them but stores them back as loaded, and does not invert their
/// sums. Or the whole walk is shorter than one vector (`old` 0): loads and
/// stores then cover only its elements. A row costs a few vector
/// instructions where scalar code paid a loop per row: one position of
/// 1024 unpacked channels took 17 µs that way, 5 µs for a whole vector.
///
/// The new positions take exactly a tile's arithmetic (the same squares,
/// butterfly and inversion), so results never depend on where a walk ends.
///
/// # Safety
/// The CPU supports `V`'s instructions; `lanes < W` and divides W;
/// `q0..q1` lies within `t`'s positions; `q1 - q0 <= W / lanes` and
/// `old < q1 - q0`, with `old` 0 unless `q1 - q0 = W / lanes`.
#[inline(always)]
unsafe fn last_vector<E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    q0: usize,
    q1: usize,
    old: usize,
    scale: Scale<'_>,
    norm: Norm,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let (len, new) = ((q1 - q0) * lanes, q1 - q0 - old);
    // SAFETY (all blocks): the CPU has V's instructions (this function's
    // contract); each row holds `len` elements, W when the vector is whole.
    // Pass 1, as a one-vector tile.
    let mut s = unsafe { V::splat(0.0) };
    for g in 0..layout.groups {
        s = unsafe { load_upto::<E, V>(t.row(g, q0..q1).as_ptr(), len).square_add(s) };
    }
    // Each position's total in each of its lanes, summed as a tile sums it.
    s = unsafe { butterfly(s, lanes) };
    let mut totals = [0.0f32; 16];
    unsafe { s.store_acc(totals.as_mut_ptr()) };
    // The new positions' factors only: the exact path may rescale a
    // position's values in place, which must not touch finished ones.
    let mut inv = [0.0f32; 16];
    for (j, f) in inv[..new].iter_mut().enumerate() {
        *f = totals[(old + j) * lanes];
    }
    norm.invert_at(t, q0 + old, &mut inv[..new]);
    let (mut factors, mut keep) = ([0.0f32; 16], [0.0f32; 16]);
    for l in 0..len {
        let p = l / lanes;
        if p < old {
            keep[l] = f32::from_bits(u32::MAX);
        } else {
            factors[l] = inv[p - old];
        }
    }
    let (k, keep) = unsafe { (V::load_acc(factors.as_ptr()), V::load_acc(keep.as_ptr())) };
    // Pass 2: x *= k * w on the new lanes; the old ones store what they load.
    // Rows closer together than a vector (a walk shorter than one, on a
    // small map) go in `phases` interleaved passes, so no load overlaps the
    // vector of the store just before it: masked stores do not forward, and
    // each load waited for the previous row's store to retire (1024 rows of
    // one position: 11 µs, 4.8 µs this way). Otherwise backwards, as tiles go.
    // (Plain loops and inlined functions, no closures: a closure is
    // compiled without this function's instruction set, and its intrinsics
    // become calls.)
    let phases = V::W.div_ceil(layout.group_stride.max(1));
    if phases == 1 {
        for g in (0..layout.groups).rev() {
            let w = unsafe { weight_vectors::<V>(scale, g, lanes) }[0];
            unsafe { scale_kept::<E, V>(t.row(g, q0..q1).as_mut_ptr(), len, k.mul(w), keep) };
        }
    } else {
        for phase in 0..phases {
            let mut g = phase;
            while g < layout.groups {
                let w = unsafe { weight_vectors::<V>(scale, g, lanes) }[0];
                unsafe { scale_kept::<E, V>(t.row(g, q0..q1).as_mut_ptr(), len, k.mul(w), keep) };
                g += phases;
            }
        }
    }
}

/// The first `len` (<= W) elements at `x`, zero in the other lanes.
///
/// # Safety
/// The CPU supports `V`'s instructions; `x` is valid for `len` elements.
#[inline(always)]
unsafe fn load_upto<E: Element, V: Io<E>>(x: *const E, len: usize) -> V {
    // SAFETY: the caller's contract.
    unsafe {
        if len < V::W {
            V::load_partial(x, len)
        } else {
            V::load(x)
        }
    }
}

/// `x *= f` on the first `len` (<= W) elements at `x`, except in the lanes
/// `keep` selects, which store back what they load.
///
/// # Safety
/// The CPU supports `V`'s instructions; `x` is valid for `len` elements.
#[inline(always)]
unsafe fn scale_kept<E: Element, V: Io<E>>(x: *mut E, len: usize, f: V, keep: V) {
    // SAFETY: the caller's contract.
    unsafe {
        let v = load_upto::<E, V>(x, len);
        let y = v.mul(f).select(v, keep);
        if len < V::W {
            y.store_partial(x, len)
        } else {
            y.store(x)
        }
    }
}

/// `s` with each run of `n` lanes (a power of two up to W) summed by
/// halves, the total in each of the run's lanes: `swap_add` by n/2, n/4, ...
/// 1, written out per `n` so each step is one shuffle with a constant
/// pattern (a loop over `d` compiled to a jump table per step).
///
/// # Safety
/// The CPU has V's instructions.
#[inline(always)]
pub(crate) unsafe fn butterfly<V: Vector>(s: V, n: usize) -> V {
    // SAFETY (all): the CPU has V's instructions; every d is below n <= W.
    unsafe {
        match n {
            16 => s.swap_add(8).swap_add(4).swap_add(2).swap_add(1),
            8 => s.swap_add(4).swap_add(2).swap_add(1),
            4 => s.swap_add(2).swap_add(1),
            2 => s.swap_add(1),
            _ => s,
        }
    }
}

/// `1 / denominator` in every lane, exactly as [`Norm::invert`] computes
/// it (sqrt, division and max are exact; NaN sums stay NaN), for sums the
/// caller has checked are trusted.
///
/// # Safety
/// The CPU has V's instructions.
#[inline(always)]
unsafe fn invert<V: Vector>(ss: V, norm: Norm) -> V {
    // SAFETY (all): the CPU has V's instructions (the caller's contract).
    unsafe {
        let (one, e) = (V::splat(1.0), V::splat(norm.eps()));
        let denom = match norm.mode() {
            EpsMode::Add => ss.sqrt().add(e),
            EpsMode::Caffe => ss.add(e).sqrt(),
            EpsMode::Max => ss.sqrt().max_keep_nan(e),
            EpsMode::TensorFlow => ss.max_keep_nan(e).sqrt(),
        };
        one.div(denom)
    }
}

/// The weights of channel group `g` as the vectors of a row meet them:
/// element `v·W + i` of a row is lane `(v·W + i) % lanes`, a pattern that
/// repeats every 16 elements, so vector `v` uses entry `v % (16 / W)`.
///
/// # Safety
/// The CPU supports `V`'s instructions; lanes divides 16.
#[inline(always)]
unsafe fn weight_vectors<V: Vector>(scale: Scale<'_>, g: usize, lanes: usize) -> [V; 4] {
    match scale {
        // SAFETY: the CPU has V's instructions (this function's contract).
        Scale::Shared(w) => [unsafe { V::splat(w) }; 4],
        // SAFETY: the CPU has V's instructions (this function's contract).
        Scale::PerChannel(ws) if lanes == 1 => [unsafe { V::splat(ws[g]) }; 4],
        Scale::PerChannel(ws) if lanes >= V::W => {
            let ws = &ws[g * lanes..(g + 1) * lanes];
            // SAFETY: the CPU has V's instructions (this function's contract).
            let mut out = [unsafe { V::splat(0.0) }; 4];
            for (v, o) in out.iter_mut().enumerate() {
                // SAFETY: ((v·W) % lanes) + W <= lanes floats of this group.
                *o = unsafe { V::load_acc(ws.as_ptr().add((v * V::W) % lanes)) };
            }
            out
        }
        Scale::PerChannel(ws) => {
            // 1 < lanes < W: the group's weights repeat within one vector.
            let ws = &ws[g * lanes..(g + 1) * lanes];
            // SAFETY: `lanes` floats of this group's weights.
            [unsafe { V::load_pattern(ws.as_ptr(), lanes) }; 4]
        }
    }
}
