//! x86-64 kernels: AVX-512F, AVX2 + FMA (+ F16C), SSE2.
//!
//! Each instruction set is a zero-sized token whose only constructor checks
//! the CPU, so holding one proves its instructions are available. The entry
//! points (`normalize_*`) carry `#[target_feature]` and inline the whole
//! register-blocked walk, reductions included, so all of it is compiled for
//! that instruction set.

use std::arch::x86_64::*;

use super::element::{Element, BF16, F16};
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
    /// `lanes` floats at `p` (`lanes` < W, dividing W) repeated across the vector.
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self;
}

/// Widening load and narrowing store of element type `E`.
///
/// # Safety
/// As for [`Vector`]: the CPU has the instructions; `p` is valid for `W`
/// elements of `E`.
pub(crate) trait Io<E: Element>: Vector {
    unsafe fn load(p: *const E) -> Self;
    unsafe fn store(self, p: *mut E);
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

/// Bytes of one tile across all channel groups: small enough that pass 2
/// finds it in L2 (and in L1 for packed blobs of a few hundred channels).
const TILE_BYTES: usize = 256 * 1024;

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
/// TILE_BYTES, narrower otherwise and for what is left at the end. The last
/// elements (fewer than W) run as one vector that overlaps positions already
/// done and leaves them as they are, or, for a walk shorter than one vector,
/// as a partial one ([`last_vector`]); either does a tile's arithmetic, so
/// results never depend on where tiles end.
///
/// # Safety
/// The CPU supports `V`'s instructions and `16 % lanes == 0`.
#[inline(always)]
unsafe fn normalize_blocked<const U: usize, E: Element, V: Io<E>>(
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    norm: Norm,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let range = t.positions();
    // Tile width: the most vectors per row (up to U) whose tile, across all
    // groups, stays within TILE_BYTES; at least one position's worth.
    let column_bytes = layout.groups * V::W * std::mem::size_of::<E>();
    let min_nv = (lanes / V::W).max(1);
    let max_nv = (TILE_BYTES / column_bytes.max(1)).clamp(1, U).max(min_nv);
    let mut p0 = range.start;
    // Widest tiles first, then narrower ones for what is left.
    macro_rules! tiles_of {
        ($nv:literal) => {
            if $nv <= max_nv && $nv >= min_nv {
                let step = $nv * V::W / lanes;
                while p0 + step <= range.end {
                    // SAFETY: the CPU has V's instructions; the tile's
                    // positions lie in `range`; $nv·W is a multiple of lanes.
                    unsafe { tile::<$nv, E, V>(t, p0, scale, norm) };
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
    for g in 0..layout.groups {
        let x = t.row(g, p0..p1).as_ptr();
        let d = if aligned_rows { V::row_shift(x) } else { 0 };
        if d != 0 {
            // SAFETY: the row holds NV·W elements and d = row_shift(x) != 0.
            unsafe { V::accumulate_shifted(x, d, &mut a) };
            continue;
        }
        for (u, a) in a.iter_mut().enumerate() {
            // SAFETY: the row holds NV·W elements.
            *a = unsafe { V::load(x.add(u * V::W)).square_add(*a) };
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
        norm.invert_at(t, p0, &mut inv[..NV]);
        for (k, &inv) in k.iter_mut().zip(inv.iter()) {
            // SAFETY: the CPU has V's instructions.
            *k = unsafe { V::splat(inv) };
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
    for g in (0..layout.groups).rev() {
        // SAFETY: same CPU features; lanes divides 16.
        let w = unsafe { weight_vectors::<V>(scale, g, lanes) };
        let x = t.row(g, p0..p1).as_mut_ptr();
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
unsafe fn butterfly<V: Vector>(s: V, n: usize) -> V {
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

/// Defines an instruction set's token, its checked constructor and its
/// `#[target_feature]` entry point.
macro_rules! isa {
    ($token:ident, $vector:ty, $u:literal, $entry:ident, $features:literal, $detect:expr) => {
        /// Proof that the CPU has this instruction set.
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $token(());

        impl $token {
            /// `Some` only on a CPU with these instructions.
            pub(crate) fn new() -> Option<Self> {
                $detect.then_some($token(()))
            }
        }

        /// Normalises `t` with this instruction set.
        ///
        /// # Safety
        /// The CPU supports the enabled features (hold a token).
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $entry<E: Element>(
            _token: $token,
            t: &mut TensorMut<'_, E>,
            scale: Scale<'_>,
            norm: Norm,
        ) where
            $vector: Io<E>,
        {
            // SAFETY: the token proves the features this function enables.
            unsafe { normalize_blocked::<$u, E, $vector>(t, scale, norm) }
        }
    };
}

isa!(
    Avx512,
    V512,
    16,
    normalize_avx512,
    "avx512f,fma,f16c",
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
);
isa!(
    Avx2,
    V256,
    8,
    normalize_avx2,
    "avx2,fma,f16c",
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
);
isa!(
    Sse2,
    V128,
    8,
    normalize_sse2,
    "sse2",
    is_x86_feature_detected!("sse2")
);

// ---------------------------------------------------------------- AVX-512F

#[derive(Clone, Copy)]
pub(crate) struct V512(__m512);

impl Vector for V512 {
    const W: usize = 16;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        V512(_mm512_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        V512(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V512(_mm512_fmadd_ps(self.0, self.0, acc.0))
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self {
        // SAFETY (all): exactly `lanes` floats at p are read.
        match lanes {
            2 => {
                // SAFETY: the caller keeps the trait's contract: the CPU has these
                // instructions and `p` is valid for the W elements accessed.
                let two = _mm_castpd_ps(unsafe { _mm_load_sd(p.cast()) });
                let idx = _mm512_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1);
                V512(_mm512_permutexvar_ps(idx, _mm512_castps128_ps512(two)))
            }
            // SAFETY: the caller keeps the trait's contract: the CPU has these
            // instructions and `p` is valid for the W elements accessed.
            4 => V512(_mm512_broadcast_f32x4(unsafe { _mm_loadu_ps(p) })),
            _ => {
                let idx = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7);
                // SAFETY: the caller keeps the trait's contract: the CPU has these
                // instructions and `p` is valid for the W elements accessed.
                V512(_mm512_permutexvar_ps(
                    idx,
                    _mm512_castps256_ps512(unsafe { _mm256_loadu_ps(p) }),
                ))
            }
        }
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V512(_mm512_mul_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        V512(_mm512_add_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        V512(_mm512_div_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V512(_mm512_sqrt_ps(self.0))
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        // maxps returns its second operand when the comparison fails (NaN).
        V512(_mm512_max_ps(other.0, self.0))
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        let below = _mm512_cmp_ps_mask::<_CMP_NGE_UQ>(self.0, low.0);
        let above = _mm512_cmp_ps_mask::<_CMP_NLE_UQ>(self.0, high.0);
        (below | above) != 0
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        let m = _mm512_castps_si512(mask.0);
        V512(_mm512_mask_mov_ps(
            self.0,
            _mm512_test_epi32_mask(m, m),
            a.0,
        ))
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        let v = self.0;
        let swapped = match d {
            8 => _mm512_shuffle_f32x4::<0b01_00_11_10>(v, v),
            4 => _mm512_shuffle_f32x4::<0b10_11_00_01>(v, v),
            2 => _mm512_shuffle_ps::<0b01_00_11_10>(v, v),
            _ => _mm512_shuffle_ps::<0b10_11_00_01>(v, v),
        };
        V512(_mm512_add_ps(v, swapped))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(self.0)));
        // SAFETY: AVX-512F implies AVX (the caller's contract).
        unsafe { V256(_mm256_add_ps(_mm512_castps512_ps256(self.0), hi)).hsum() }
    }
    #[inline(always)]
    unsafe fn hsum16(v: &[Self; 16], out: &mut [f32; 16]) {
        // The same tree as `hsum` (lanes i + i+8, then + i+4, + i+2, + i+1),
        // on all 16 vectors at once: each stage adds two halves of pairs of
        // vectors packed side by side, halving the number of vectors.
        // Stage 1: 256-bit halves; w[i] holds v[2i]'s 8 sums then v[2i+1]'s.
        let w: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i].0, v[2 * i + 1].0);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b01_00_01_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_10_11_10>(a, b),
            )
        });
        // Stage 2: 128-bit quarters; x[j]'s quarter q holds v[4j+q]'s 4 sums.
        let x: [__m512; 4] = std::array::from_fn(|j| {
            let (a, b) = (w[2 * j], w[2 * j + 1]);
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        });
        // Stage 3: pairs within quarters; quarter q of y[k] holds 2 sums each
        // of v[8k+q] and v[8k+4+q].
        let y: [__m512; 2] = std::array::from_fn(|k| {
            let (a, b) = (x[2 * k], x[2 * k + 1]);
            _mm512_add_ps(
                _mm512_shuffle_ps::<0b01_00_01_00>(a, b),
                _mm512_shuffle_ps::<0b11_10_11_10>(a, b),
            )
        });
        // Stage 4: element 4q + m of z is the total of v[4m + q].
        let z = _mm512_add_ps(
            _mm512_shuffle_ps::<0b10_00_10_00>(y[0], y[1]),
            _mm512_shuffle_ps::<0b11_01_11_01>(y[0], y[1]),
        );
        let order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
        // SAFETY: out holds 16 floats.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), _mm512_permutexvar_ps(order, z)) };
    }
    #[inline(always)]
    unsafe fn totals_of_eights(v: &[Self; 16]) -> Option<[Self; 2]> {
        // `butterfly`'s order for 8 lanes (l + l^4, then + l^2, then + l^1),
        // on all 16 vectors at once; each stage halves the vectors. Macros,
        // not closures: a closure can be compiled apart from the AVX-512
        // caller, and its intrinsics then become calls.
        // Stage 1 (l + l^4: a position's two 128-bit blocks): block q of
        // c[j] holds position 4j + q's 4 partial sums.
        macro_rules! blocks {
            ($j:literal) => {
                _mm512_add_ps(
                    _mm512_shuffle_f32x4::<0b10_00_10_00>(v[2 * $j].0, v[2 * $j + 1].0),
                    _mm512_shuffle_f32x4::<0b11_01_11_01>(v[2 * $j].0, v[2 * $j + 1].0),
                )
            };
        }
        let c = [
            blocks!(0),
            blocks!(1),
            blocks!(2),
            blocks!(3),
            blocks!(4),
            blocks!(5),
            blocks!(6),
            blocks!(7),
        ];
        // Stage 2 (l + l^2): block q of y[m] holds position 8m + q's two
        // partial sums, then 8m + 4 + q's.
        macro_rules! halves {
            ($a:expr, $b:expr) => {
                _mm512_add_ps(
                    _mm512_shuffle_ps::<0b01_00_01_00>($a, $b),
                    _mm512_shuffle_ps::<0b11_10_11_10>($a, $b),
                )
            };
        }
        let y = [
            halves!(c[0], c[1]),
            halves!(c[2], c[3]),
            halves!(c[4], c[5]),
            halves!(c[6], c[7]),
        ];
        // Stage 3 (l + l^1): element 4q + e of z[r] is position 16r + 4e + q's
        // total; the permutation puts them in position order.
        macro_rules! totals {
            ($a:expr, $b:expr) => {
                _mm512_permutexvar_ps(
                    _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15),
                    _mm512_add_ps(
                        _mm512_shuffle_ps::<0b10_00_10_00>($a, $b),
                        _mm512_shuffle_ps::<0b11_01_11_01>($a, $b),
                    ),
                )
            };
        }
        Some([V512(totals!(y[0], y[1])), V512(totals!(y[2], y[3]))])
    }
    #[inline(always)]
    unsafe fn spread_eights(f: &[Self; 2], k: &mut [Self]) {
        // k[i] = [f(2i) x 8 | f(2i + 1) x 8]: indices 2i and 2i + 1 of f[i / 8].
        let mut idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
        let two = _mm512_set1_epi32(2);
        for (i, k) in k.iter_mut().enumerate() {
            if i == 8 {
                idx = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1);
            }
            *k = V512(_mm512_permutexvar_ps(idx, f[i / 8].0));
            idx = _mm512_add_epi32(idx, two);
        }
    }
}

impl Io<f32> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { self.store_acc(p) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller keeps the trait's contract; masked-off lanes
        // are not read.
        V512(unsafe { _mm512_maskz_loadu_ps(((1u32 << n) - 1) as __mmask16, p) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        // SAFETY: the caller keeps the trait's contract; masked-off lanes
        // are not written.
        unsafe { _mm512_mask_storeu_ps(p, ((1u32 << n) - 1) as __mmask16, self.0) }
    }
    #[inline(always)]
    fn row_shift(p: *const f32) -> usize {
        (p as usize % 64) / 4
    }
    #[inline(always)]
    unsafe fn accumulate_shifted<const NV: usize>(x: *const f32, d: usize, a: &mut [Self; NV]) {
        // Aligned vector j covers elements d·(-1) + 16j ..: element e of the
        // row is lane (e + d) % 16 of vector (e + d) / 16. The first and
        // the last (NV-th) vectors are partly outside the row; their
        // masked-off lanes are not read.
        let (head, tail) = (
            !((1u32 << d) - 1) as __mmask16,
            ((1u32 << d) - 1) as __mmask16,
        );
        let idx = _mm512_add_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(d as i32),
        );
        // SAFETY: the caller keeps the trait's contract: `x` is valid for
        // NV·16 floats and d = row_shift(x), so base + 16j is aligned and
        // every lane read lies in x..x + 16·NV.
        unsafe {
            let base = x.sub(d);
            let mut prev = _mm512_maskz_loadu_ps(head, base);
            for (u, a) in a.iter_mut().enumerate() {
                let next = if u + 1 == NV {
                    _mm512_maskz_loadu_ps(tail, base.add(16 * (u + 1)))
                } else {
                    _mm512_loadu_ps(base.add(16 * (u + 1)))
                };
                let v = _mm512_permutex2var_ps(prev, idx, next);
                *a = V512(_mm512_fmadd_ps(v, v, a.0));
                prev = next;
            }
        }
    }
    #[inline(always)]
    unsafe fn scale_shifted<const NV: usize>(x: *mut f32, d: usize, k: &[Self; NV], w: Self) {
        // Aligned vector j holds the row's elements 16j - d ..: their
        // factors are the last d lanes of k[j - 1] and the first 16 - d of
        // k[j].
        let (head, tail) = (
            !((1u32 << d) - 1) as __mmask16,
            ((1u32 << d) - 1) as __mmask16,
        );
        let idx = _mm512_add_epi32(
            _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
            _mm512_set1_epi32(16 - d as i32),
        );
        // SAFETY: as in accumulate_shifted; the first and last vectors are
        // loaded and stored under the same masks.
        unsafe {
            let base = x.sub(d);
            let mut kprev = _mm512_setzero_ps();
            for j in 0..=NV {
                let knext = match k.get(j) {
                    Some(k) => k.0,
                    None => _mm512_setzero_ps(),
                };
                let f = _mm512_mul_ps(_mm512_permutex2var_ps(kprev, idx, knext), w.0);
                let p = base.add(16 * j);
                if j == 0 || j == NV {
                    let m = if j == 0 { head } else { tail };
                    _mm512_mask_storeu_ps(p, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, p), f));
                } else {
                    _mm512_storeu_ps(p, _mm512_mul_ps(_mm512_loadu_ps(p), f));
                }
                kprev = knext;
            }
        }
    }
}

impl Io<F16> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        V512(_mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) }))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0);
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm256_storeu_si256(p.cast(), h) }
    }
}

impl Io<BF16> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        let h = unsafe { _mm256_loadu_si256(p.cast()) };
        V512(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(
            _mm512_cvtepu16_epi32(h),
        )))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        // Round to nearest even: add 0x7fff plus the lowest kept bit; NaNs
        // keep their top bits with the quiet bit set.
        let bits = _mm512_castps_si512(self.0);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(
            bits,
            _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)),
        ));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0);
        let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(0x40));
        let h = _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm256_storeu_si256(p.cast(), h) }
    }
}

// ---------------------------------------------------------- AVX2 + FMA + F16C

#[derive(Clone, Copy)]
pub(crate) struct V256(__m256);

impl Vector for V256 {
    const W: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        V256(_mm256_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        V256(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V256(_mm256_fmadd_ps(self.0, self.0, acc.0))
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self {
        // SAFETY (both): exactly `lanes` (2 or 4) floats at p are read.
        if lanes == 2 {
            // SAFETY: the caller keeps the trait's contract: the CPU has these
            // instructions and `p` is valid for the W elements accessed.
            V256(_mm256_castpd_ps(_mm256_broadcast_sd(unsafe {
                &*p.cast::<f64>()
            })))
        } else {
            // SAFETY: the caller keeps the trait's contract: the CPU has these
            // instructions and `p` is valid for the W elements accessed.
            V256(_mm256_broadcast_ps(unsafe { &*p.cast::<__m128>() }))
        }
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V256(_mm256_mul_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        V256(_mm256_add_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        V256(_mm256_div_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V256(_mm256_sqrt_ps(self.0))
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        // maxps returns its second operand when the comparison fails (NaN).
        V256(_mm256_max_ps(other.0, self.0))
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        let below = _mm256_cmp_ps::<_CMP_NGE_UQ>(self.0, low.0);
        let above = _mm256_cmp_ps::<_CMP_NLE_UQ>(self.0, high.0);
        _mm256_movemask_ps(_mm256_or_ps(below, above)) != 0
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        V256(_mm256_blendv_ps(self.0, a.0, mask.0))
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        let v = self.0;
        let swapped = match d {
            4 => _mm256_permute2f128_ps::<0x01>(v, v),
            2 => _mm256_shuffle_ps::<0b01_00_11_10>(v, v),
            _ => _mm256_shuffle_ps::<0b10_11_00_01>(v, v),
        };
        V256(_mm256_add_ps(v, swapped))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        let halves = _mm_add_ps(
            _mm256_castps256_ps128(self.0),
            _mm256_extractf128_ps::<1>(self.0),
        );
        // SAFETY: AVX implies SSE2.
        unsafe { V128(halves).hsum() }
    }
    #[inline(always)]
    unsafe fn hsum8(v: &[Self; 8], out: &mut [f32; 8]) {
        // The same tree as `hsum` (128-bit halves, then lanes 0+2 and 1+3,
        // then the two pairs) on all 8 vectors at once. Macros, not
        // closures: a closure can be compiled apart from the AVX caller, and
        // its intrinsics then become calls.
        // Stage 1: s[i] = [v[i]'s halves added | v[i+4]'s halves added].
        macro_rules! halves {
            ($i:literal) => {
                _mm256_add_ps(
                    _mm256_permute2f128_ps::<0x20>(v[$i].0, v[$i + 4].0),
                    _mm256_permute2f128_ps::<0x31>(v[$i].0, v[$i + 4].0),
                )
            };
        }
        let s = [halves!(0), halves!(1), halves!(2), halves!(3)];
        // Stage 2: y[j] = [pairs of v[2j], v[2j+1] | of v[2j+4], v[2j+5]],
        // each pair (lanes 0+2, 1+3).
        macro_rules! pairs {
            ($a:expr, $b:expr) => {
                _mm256_add_ps(
                    _mm256_shuffle_ps::<0b01_00_01_00>($a, $b),
                    _mm256_shuffle_ps::<0b11_10_11_10>($a, $b),
                )
            };
        }
        let y = [pairs!(s[0], s[1]), pairs!(s[2], s[3])];
        // Stage 3: the two pairs of each vector: v[0..4]'s totals in the
        // low half, v[4..8]'s in the high half, in order.
        let z = _mm256_add_ps(
            _mm256_shuffle_ps::<0b10_00_10_00>(y[0], y[1]),
            _mm256_shuffle_ps::<0b11_01_11_01>(y[0], y[1]),
        );
        // SAFETY: out holds 8 floats.
        unsafe { _mm256_storeu_ps(out.as_mut_ptr(), z) };
    }
}

impl Io<f32> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { self.store_acc(p) }
    }
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        // SAFETY: the caller keeps the trait's contract; masked-off lanes
        // are not read.
        V256(unsafe { _mm256_maskload_ps(p, first_lanes_256(n)) })
    }
    #[inline(always)]
    unsafe fn store_partial(self, p: *mut f32, n: usize) {
        // SAFETY: the caller keeps the trait's contract; masked-off lanes
        // are not written.
        unsafe { _mm256_maskstore_ps(p, first_lanes_256(n), self.0) }
    }
}

/// A 32-bit lane mask of the first `n` of 8 lanes.
///
/// # Safety
/// The CPU has AVX2.
#[inline(always)]
unsafe fn first_lanes_256(n: usize) -> __m256i {
    _mm256_cmpgt_epi32(
        _mm256_set1_epi32(n as i32),
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
    )
}

impl Io<F16> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        V256(_mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) }))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0);
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm_storeu_si128(p.cast(), h) }
    }
}

impl Io<BF16> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        let h = unsafe { _mm_loadu_si128(p.cast()) };
        V256(_mm256_castsi256_ps(_mm256_slli_epi32::<16>(
            _mm256_cvtepu16_epi32(h),
        )))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        let bits = _mm256_castps_si256(self.0);
        let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(
            bits,
            _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff)),
        ));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
        let v = _mm256_blendv_epi8(rounded, quiet, nan);
        // Every lane is <= 0xffff, so unsigned saturation keeps it; packus
        // works per 128-bit half, so gather the two halves' results.
        let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(v, v));
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(packed)) }
    }
}

// -------------------------------------------------------------------- SSE2

#[derive(Clone, Copy)]
pub(crate) struct V128(__m128);

impl Vector for V128 {
    const W: usize = 4;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        V128(_mm_set1_ps(x))
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        V128(unsafe { _mm_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V128(_mm_add_ps(_mm_mul_ps(self.0, self.0), acc.0))
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, _lanes: usize) -> Self {
        // lanes is 2, the only divisor of 16 between 1 and W = 4.
        // SAFETY: 2 floats at p are read.
        V128(_mm_castpd_ps(unsafe { _mm_load1_pd(p.cast()) }))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V128(_mm_mul_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        V128(_mm_add_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        V128(_mm_div_ps(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        V128(_mm_sqrt_ps(self.0))
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        // maxps returns its second operand when the comparison fails (NaN).
        V128(_mm_max_ps(other.0, self.0))
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        let below = _mm_cmpnge_ps(self.0, low.0);
        let above = _mm_cmpnle_ps(self.0, high.0);
        _mm_movemask_ps(_mm_or_ps(below, above)) != 0
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        V128(_mm_or_ps(
            _mm_and_ps(mask.0, a.0),
            _mm_andnot_ps(mask.0, self.0),
        ))
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        let v = self.0;
        let swapped = match d {
            2 => _mm_shuffle_ps::<0b01_00_11_10>(v, v),
            _ => _mm_shuffle_ps::<0b10_11_00_01>(v, v),
        };
        V128(_mm_add_ps(v, swapped))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        let pairs = _mm_add_ps(self.0, _mm_movehl_ps(self.0, self.0)); // [0]+[2], [1]+[3]
        _mm_cvtss_f32(_mm_add_ss(pairs, _mm_shuffle_ps::<1>(pairs, pairs)))
    }
}

impl Io<f32> for V128 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { self.store_acc(p) }
    }
}

impl Io<F16> for V128 {
    // SSE2 has no half conversions: convert the four values in software.
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        let h = unsafe { std::slice::from_raw_parts(p, 4) };
        V128(_mm_setr_ps(
            h[0].to_f32(),
            h[1].to_f32(),
            h[2].to_f32(),
            h[3].to_f32(),
        ))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let mut f = [0.0f32; 4];
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm_storeu_ps(f.as_mut_ptr(), self.0) };
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        let out = unsafe { std::slice::from_raw_parts_mut(p, 4) };
        for (o, v) in out.iter_mut().zip(f) {
            *o = F16::from_f32(v);
        }
    }
}

impl Io<BF16> for V128 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        let h = unsafe { _mm_loadl_epi64(p.cast()) };
        V128(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        let bits = _mm_castps_si128(self.0);
        let odd = _mm_and_si128(_mm_srli_epi32::<16>(bits), _mm_set1_epi32(1));
        let rounded = _mm_srli_epi32::<16>(_mm_add_epi32(
            bits,
            _mm_add_epi32(odd, _mm_set1_epi32(0x7fff)),
        ));
        let nan = _mm_castps_si128(_mm_cmpunord_ps(self.0, self.0));
        let quiet = _mm_or_si128(_mm_srli_epi32::<16>(bits), _mm_set1_epi32(0x40));
        let v = _mm_or_si128(_mm_and_si128(nan, quiet), _mm_andnot_si128(nan, rounded));
        // Sign-extend the low 16 bits so signed saturation in packs is exact.
        let v = _mm_srai_epi32::<16>(_mm_slli_epi32::<16>(v));
        // SAFETY: the caller keeps the trait's contract: the CPU has these
        // instructions and `p` is valid for the W elements accessed.
        unsafe { _mm_storel_epi64(p.cast(), _mm_packs_epi32(v, v)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Awkward floats: mixed signs and magnitudes, so any change in the
    /// order of the additions changes some result's last bits.
    fn values(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let x = ((i * 7919 + 13) % 1009) as f32 / 1009.0 - 0.5;
                x * (1u32 << (i % 23)) as f32
            })
            .collect()
    }

    #[test]
    fn the_reduction_trees_add_in_hsums_order() {
        let x = values(16 * 16);
        if Avx2::new().is_some() {
            let mut out = [0.0f32; 8];
            // SAFETY: the CPU has AVX2 (checked above); each load reads 8
            // of the 256 floats of `x`.
            let each = unsafe {
                let v: [V256; 8] = std::array::from_fn(|i| V256::load_acc(x.as_ptr().add(8 * i)));
                V256::hsum8(&v, &mut out);
                v.map(|v| v.hsum())
            };
            assert_eq!(out.map(f32::to_bits), each.map(f32::to_bits), "AVX2 hsum8");
        }
        if Avx512::new().is_some() {
            let mut out = [0.0f32; 16];
            // SAFETY: the CPU has AVX-512F (checked above); each load reads
            // 16 of the 256 floats of `x`.
            let each = unsafe {
                let v: [V512; 16] = std::array::from_fn(|i| V512::load_acc(x.as_ptr().add(16 * i)));
                V512::hsum16(&v, &mut out);
                v.map(|v| v.hsum())
            };
            assert_eq!(
                out.map(f32::to_bits),
                each.map(f32::to_bits),
                "AVX-512 hsum16"
            );
        }
    }

    #[test]
    fn elempack_8_totals_gather_and_spread_like_the_butterfly() {
        let Some(_) = Avx512::new() else { return };
        let x = values(16 * 16);
        // SAFETY: the CPU has AVX-512F (checked above); each load reads 16
        // of the 256 floats of `x`, each store writes 16 of 32 or 256.
        unsafe {
            let v: [V512; 16] = std::array::from_fn(|i| V512::load_acc(x.as_ptr().add(16 * i)));
            let totals = V512::totals_of_eights(&v).expect("16-lane vectors gather");
            let mut got = [0.0f32; 32];
            totals[0].store_acc(got.as_mut_ptr());
            totals[1].store_acc(got.as_mut_ptr().add(16));
            // Each vector's butterfly over runs of 8: position 2i's total in
            // lanes 0-7, 2i + 1's in lanes 8-15.
            for (i, v) in v.iter().enumerate() {
                let mut b = [0.0f32; 16];
                butterfly(*v, 8).store_acc(b.as_mut_ptr());
                assert_eq!(got[2 * i].to_bits(), b[0].to_bits(), "position {}", 2 * i);
                assert_eq!(
                    got[2 * i + 1].to_bits(),
                    b[8].to_bits(),
                    "position {}",
                    2 * i + 1
                );
            }
            let f = [
                V512::load_acc(x.as_ptr()),
                V512::load_acc(x.as_ptr().add(16)),
            ];
            let mut k = [V512::splat(0.0); 16];
            V512::spread_eights(&f, &mut k);
            for (i, k) in k.iter().enumerate() {
                let mut lanes = [0.0f32; 16];
                k.store_acc(lanes.as_mut_ptr());
                for (l, &got) in lanes.iter().enumerate() {
                    assert_eq!(got, x[2 * i + l / 8], "factor vector {i}, lane {l}");
                }
            }
        }
    }
}
