//! aarch64 kernel: NEON (Advanced SIMD), a [`Vector`] type of four f32
//! lanes for the register-blocked walk in `blocked`, the same walk and
//! tests as the x86 paths.
//!
//! Every ARMv8-A CPU has NEON; the token's checked constructor asks anyway,
//! as x86's do, so that holding one proves the instructions are there.
//!
//! * fp32: one `float32x4_t` per vector; squares added with a fused
//!   multiply-add (`fmla`), as AVX2 and AVX-512 do: one rounding per
//!   element instead of two, within the tests' sum-of-squares bound either
//!   way. Pass 2's `x · (k · w)` stays two multiplications, as on every path.
//! * fp16 storage: widened and narrowed by the hardware (`fcvtl`, `fcvtn`:
//!   ARMv8.0 conversions, no fp16 arithmetic needed), through `asm!` because
//!   the `float16x4_t` intrinsics are stable only from Rust 1.94 and this
//!   crate's MSRV is 1.89. Rounding is the FPCR's, which Rust code assumes
//!   is the default: to nearest, ties to even, no flushing; that is
//!   bit for bit what `element::f32_to_f16` computes (tests below).
//! * bf16 storage: a 16-bit shift widens; narrowing rounds to nearest even
//!   and quiets NaN exactly as `element::f32_to_bf16` does, four lanes of
//!   integer arithmetic (`bfcvtn` needs ARMv8.6's BF16, which a Cortex-A53
//!   to A76 lacks).
//! * Reductions: `hsum` adds lanes as `butterfly` does, (0 + 2) + (1 + 3),
//!   and 8 or 16 vectors (a tile of elempack-4 positions) reduce four at a
//!   time in one transpose-and-add tree, bit for bit the same sums.
//!
//! Tiles are [`U`] = 8 vectors wide, as on the portable path: 8 independent
//! accumulators cover a 4-cycle `fmla` on two pipes, and a tile of 512
//! unpacked fp32 channels (64 KiB) stays in L2. aarch64's 32 registers
//! could hold 16; not measured on hardware (none is at hand), so not taken.
//!
//! Emulated only (qemu `-cpu cortex-a53`, 512x38x38, elempacks 1-16): a call
//! executes 0.79-0.81x the portable path's instructions in fp32, 0.17-0.19x
//! in fp16 and 0.90-0.91x in bf16. qemu's wall time mostly says the
//! opposite (portable/neon 0.73-0.80 in fp16 and bf16, 0.77-1.16 in fp32,
//! one run): it emulates each float instruction (`fmla`,
//! `fcvtl`) through a software floating-point call per lane, and the
//! portable path's integer conversions with host SIMD, so under emulation
//! time hardware conversions look slow that are one instruction on a CPU.

use std::arch::aarch64::*;
use std::arch::asm;

use super::blocked::{normalize_blocked, Io, Vector};
use super::element::{Element, BF16, F16};
use super::norm::Norm;
use super::Scale;
use crate::layout::TensorMut;

/// Vectors per row of a tile.
pub(crate) const U: usize = 8;

/// Proof that the CPU has NEON.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Neon(());

impl Neon {
    /// `Some` only on a CPU with NEON (every ARMv8-A one).
    pub(crate) fn new() -> Option<Self> {
        std::arch::is_aarch64_feature_detected!("neon").then_some(Neon(()))
    }
}

/// Normalises `t` with NEON.
///
/// # Safety
/// The CPU has NEON (hold a token).
#[target_feature(enable = "neon")]
pub(crate) unsafe fn normalize_neon<E: Element>(
    _token: Neon,
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    norm: Norm,
) where
    VNeon: Io<E>,
{
    // SAFETY: the token proves the feature this function enables; the
    // caller sends only elempacks that divide 16.
    unsafe { normalize_blocked::<U, E, VNeon>(t, scale, norm) }
}

/// Four f32 lanes in one NEON register.
#[derive(Clone, Copy)]
pub(crate) struct VNeon(float32x4_t);

/// `[a.hsum(), b.hsum(), c.hsum(), d.hsum()]`, bit for bit: the halves of
/// each vector added lane-wise, two vectors side by side, then the pairs.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn hsum4(a: float32x4_t, b: float32x4_t, c: float32x4_t, d: float32x4_t) -> float32x4_t {
    // [a0 + a2, a1 + a3, b0 + b2, b1 + b3]
    let ab = vaddq_f32(
        vcombine_f32(vget_low_f32(a), vget_low_f32(b)),
        vcombine_f32(vget_high_f32(a), vget_high_f32(b)),
    );
    let cd = vaddq_f32(
        vcombine_f32(vget_low_f32(c), vget_low_f32(d)),
        vcombine_f32(vget_high_f32(c), vget_high_f32(d)),
    );
    // Adjacent pairs: [(a0 + a2) + (a1 + a3), (b..), (c..), (d..)].
    vpaddq_f32(ab, cd)
}

/// Half to f32 (exact), four lanes: `fcvtl`.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn widen_f16(h: uint16x4_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` (ARMv8.0 Advanced SIMD, which the caller's CPU has)
    // reads the one register given and writes the other; it touches no
    // memory, stack or flags. The result does not depend on the FPCR's
    // rounding (the conversion is exact); a signalling NaN comes back
    // quiet, as on x86's F16C.
    unsafe {
        asm!(
            "fcvtl {out:v}.4s, {h:v}.4h",
            out = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// f32 to half, four lanes: `fcvtn`, rounding as the FPCR says.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn narrow_f16(x: float32x4_t) -> uint16x4_t {
    let out: uint16x4_t;
    // SAFETY: `fcvtn` (ARMv8.0 Advanced SIMD, which the caller's CPU has)
    // reads the one register given and writes the low half of the other;
    // it touches no memory, stack or flags (it may set the FPSR's
    // cumulative exception bits, which Rust code does not read). It rounds
    // as the FPCR says, which Rust assumes holds its default (to nearest,
    // ties to even, no flush to zero, NaNs propagated), so `pure` holds.
    unsafe {
        asm!(
            "fcvtn {out:v}.4h, {x:v}.4s",
            out = lateout(vreg) out,
            x = in(vreg) x,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

// The trait's functions are `unsafe` because they need NEON (and, where
// they take a pointer, a pointer valid for W = 4 elements). Intrinsics
// without a pointer need only the target feature, which every function
// here is inlined into the `#[target_feature(enable = "neon")]` entry
// point to get (and which the aarch64 targets enable by default).
impl Vector for VNeon {
    const W: usize = 4;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        VNeon(vdupq_n_f32(x))
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 4 floats (`ld1` needs no more alignment).
        VNeon(unsafe { vld1q_f32(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: as for `load_acc`.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        // acc + self · self, rounded once.
        VNeon(vfmaq_f32(acc.0, self.0, self.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        VNeon(vmulq_f32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        VNeon(vaddq_f32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        VNeon(vdivq_f32(self.0, other.0))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        VNeon(vsqrtq_f32(self.0))
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        // `fmax` would return NaN for either side; this keeps `self`
        // unless it compares below `other` (false for NaN).
        let below = vcltq_f32(self.0, other.0);
        VNeon(vbslq_f32(below, other.0, self.0))
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        // Ordered comparisons are false for NaN, so NaN is outside.
        let inside = vandq_u32(vcgeq_f32(self.0, low.0), vcleq_f32(self.0, high.0));
        vminvq_u32(inside) == 0
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        VNeon(vbslq_f32(vreinterpretq_u32_f32(mask.0), a.0, self.0))
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        let v = self.0;
        let swapped = match d {
            // [v2, v3, v0, v1]: lane i meets lane i ^ 2.
            2 => vextq_f32::<2>(v, v),
            // [v1, v0, v3, v2]: lane i meets lane i ^ 1.
            _ => vrev64q_f32(v),
        };
        VNeon(vaddq_f32(v, swapped))
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // By halves, as `butterfly` adds: (0 + 2) + (1 + 3).
        let halves = vaddq_f32(self.0, vextq_f32::<2>(self.0, self.0));
        vgetq_lane_f32::<0>(halves) + vgetq_lane_f32::<1>(halves)
    }
    #[inline(always)]
    unsafe fn hsum8(v: &[Self; 8], out: &mut [f32; 8]) {
        // SAFETY: the caller keeps the trait's contract (NEON); `out` holds
        // 8 floats, written 4 at a time.
        unsafe {
            vst1q_f32(out.as_mut_ptr(), hsum4(v[0].0, v[1].0, v[2].0, v[3].0));
            vst1q_f32(
                out.as_mut_ptr().add(4),
                hsum4(v[4].0, v[5].0, v[6].0, v[7].0),
            );
        }
    }
    #[inline(always)]
    unsafe fn hsum16(v: &[Self; 16], out: &mut [f32; 16]) {
        // Written out, not looped over a closure: see `blocked`'s note.
        // SAFETY: the caller keeps the trait's contract (NEON); `out` holds
        // 16 floats, written 4 at a time.
        unsafe {
            let o = out.as_mut_ptr();
            vst1q_f32(o, hsum4(v[0].0, v[1].0, v[2].0, v[3].0));
            vst1q_f32(o.add(4), hsum4(v[4].0, v[5].0, v[6].0, v[7].0));
            vst1q_f32(o.add(8), hsum4(v[8].0, v[9].0, v[10].0, v[11].0));
            vst1q_f32(o.add(12), hsum4(v[12].0, v[13].0, v[14].0, v[15].0));
        }
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self {
        // lanes is 2, the only divisor of 16 between 1 and W = 4.
        debug_assert_eq!(lanes, 2);
        // SAFETY: the caller keeps the trait's contract: 2 floats at `p`.
        let pair = unsafe { vld1_f32(p) };
        VNeon(vcombine_f32(pair, pair))
    }
}

impl Io<f32> for VNeon {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract (NEON; `p` valid
        // for 4 floats).
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: as for `load`.
        unsafe { self.store_acc(p) }
    }
}

impl Io<F16> for VNeon {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 4 `F16`s, which are `repr(transparent)`
        // `u16`s, so 4 `u16`s at u16 alignment.
        VNeon(unsafe { widen_f16(vld1_u16(p.cast())) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        // SAFETY: as for `load`.
        unsafe { vst1_u16(p.cast(), narrow_f16(self.0)) }
    }
}

impl Io<BF16> for VNeon {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        // A bf16 is the top half of an f32: shift each up by 16 (`shll`).
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 4 `BF16`s, `repr(transparent)` `u16`s.
        let h = unsafe { vld1_u16(p.cast()) };
        VNeon(vreinterpretq_f32_u32(vshll_n_u16::<16>(h)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        // As `element::f32_to_bf16`: round to nearest even by adding 0x7fff
        // plus the lowest kept bit, then keep the top half; NaNs keep their
        // top bits with the quiet bit set.
        let bits = vreinterpretq_u32_f32(self.0);
        let odd = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(1));
        let rounded = vshrn_n_u32::<16>(vaddq_u32(bits, vaddq_u32(odd, vdupq_n_u32(0x7fff))));
        let quiet = vorr_u16(vshrn_n_u32::<16>(bits), vdup_n_u16(0x40));
        // All ones where the lane is not NaN.
        let ordered = vmovn_u32(vceqq_f32(self.0, self.0));
        // SAFETY: as for `load`.
        unsafe { vst1_u16(p.cast(), vbsl_u16(ordered, rounded, quiet)) }
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocked::butterfly;
    use super::super::element::{f16_to_f32, f32_to_bf16, f32_to_f16};
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

    fn lanes(v: VNeon) -> [f32; 4] {
        let mut out = [0.0f32; 4];
        // SAFETY: every aarch64 CPU these tests run on has NEON (asserted
        // by `the_token_exists`); `out` holds 4 floats.
        unsafe { v.store_acc(out.as_mut_ptr()) };
        out
    }

    fn vector(x: [f32; 4]) -> VNeon {
        // SAFETY: NEON, as in `lanes`; `x` holds 4 floats.
        unsafe { VNeon::load_acc(x.as_ptr()) }
    }

    /// f32s of every kind: a prime stride through all 2^32 bit patterns
    /// (every sign and exponent, varied mantissas, NaNs with payloads),
    /// plus the values around each half and each midpoint between halves.
    fn every_kind_of_f32() -> Vec<f32> {
        let mut xs: Vec<f32> = (0..=u32::MAX / 4099)
            .map(|i| f32::from_bits(i * 4099))
            .collect();
        for h in 0..0x7c00u16 {
            let v = f16_to_f32(h);
            let mid = ((f64::from(v) + f64::from(f16_to_f32(h + 1))) / 2.0) as f32;
            for base in [v, mid] {
                for d in -2i32..=2 {
                    let b = base.to_bits() as i32 + d;
                    if b >= 0 {
                        xs.push(f32::from_bits(b as u32));
                        xs.push(-f32::from_bits(b as u32));
                    }
                }
            }
        }
        // bf16 ties and near-ties, both parities.
        for top in [0x3f80u32, 0x3f81, 0x0000, 0x0001, 0x7f7f, 0x807f] {
            for low in [0x7fffu32, 0x8000, 0x8001] {
                xs.push(f32::from_bits((top << 16) | low));
            }
        }
        xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN]);
        xs
    }

    #[test]
    fn the_token_exists() {
        assert!(Neon::new().is_some(), "every aarch64 CPU has NEON");
    }

    #[test]
    fn the_reduction_trees_add_in_hsums_order() {
        let x = values(16 * 4);
        let v: [VNeon; 16] = std::array::from_fn(|i| {
            let mut l = [0.0f32; 4];
            l.copy_from_slice(&x[4 * i..4 * i + 4]);
            vector(l)
        });
        // SAFETY: NEON, as in `lanes`.
        let each = v.map(|v| unsafe { v.hsum() });
        for (i, (&h, v)) in each.iter().zip(&v).enumerate() {
            let l = lanes(*v);
            assert_eq!(
                h.to_bits(),
                ((l[0] + l[2]) + (l[1] + l[3])).to_bits(),
                "hsum {i}"
            );
            // SAFETY: NEON, as in `lanes`.
            let b = lanes(unsafe { butterfly(*v, 4) });
            assert!(
                b.iter().all(|s| s.to_bits() == h.to_bits()),
                "butterfly {i}"
            );
            // SAFETY: NEON, as in `lanes`.
            let pairs = lanes(unsafe { butterfly(*v, 2) });
            assert_eq!(pairs, [l[0] + l[1], l[0] + l[1], l[2] + l[3], l[2] + l[3]]);
        }
        let (mut out16, mut out8) = ([0.0f32; 16], [0.0f32; 8]);
        // SAFETY: NEON, as in `lanes`.
        unsafe {
            VNeon::hsum16(&v, &mut out16);
            VNeon::hsum8(v.first_chunk::<8>().unwrap(), &mut out8);
        }
        assert_eq!(out16.map(f32::to_bits), each.map(f32::to_bits), "hsum16");
        assert_eq!(
            out8.map(f32::to_bits),
            each.first_chunk::<8>().unwrap().map(f32::to_bits),
            "hsum8"
        );
    }

    #[test]
    fn lane_operations_keep_the_traits_semantics() {
        let nan = f32::NAN;
        let (a, b) = ([nan, 1.0, 2.0, -0.0], [1.0, nan, 3.0, 0.0]);
        // SAFETY: NEON, as in `lanes`.
        let m = lanes(unsafe { vector(a).max_keep_nan(vector(b)) });
        assert!(
            m[0].is_nan() && m[1] == 1.0 && m[2] == 3.0 && m[3].to_bits() == (-0.0f32).to_bits()
        );
        let (low, high) = (vector([1.0; 4]), vector([2.0; 4]));
        for (x, outside) in [
            ([1.0, 1.5, 2.0, 1.0], false),
            ([1.0, 1.5, 2.5, 1.0], true),
            ([0.5, 1.5, 2.0, 1.0], true),
            ([1.0, 1.5, 2.0, nan], true),
        ] {
            // SAFETY: NEON, as in `lanes`.
            assert_eq!(
                unsafe { vector(x).any_outside(low, high) },
                outside,
                "{x:?}"
            );
        }
        let ones = f32::from_bits(u32::MAX);
        // SAFETY: NEON, as in `lanes`.
        let s = lanes(unsafe {
            vector([1.0, 2.0, 3.0, 4.0])
                .select(vector([5.0, 6.0, 7.0, 8.0]), vector([ones, 0.0, 0.0, ones]))
        });
        assert_eq!(s, [5.0, 2.0, 3.0, 8.0]);
        let mut pattern = [0.0f32; 4];
        // SAFETY: NEON, as in `lanes`; 2 floats are read, 4 written.
        unsafe { VNeon::load_pattern([7.0f32, 9.0].as_ptr(), 2).store_acc(pattern.as_mut_ptr()) };
        assert_eq!(pattern, [7.0, 9.0, 7.0, 9.0]);
    }

    /// Widens the four 16-bit values through `V`'s load of `E`.
    fn widen<E: Element>(h: [E; 4]) -> [f32; 4]
    where
        VNeon: Io<E>,
    {
        // SAFETY: NEON, as in `lanes`; `h` holds 4 elements.
        lanes(unsafe { <VNeon as Io<E>>::load(h.as_ptr()) })
    }

    /// Narrows four floats through `V`'s store of `E`.
    fn narrow<E: Element>(x: [f32; 4]) -> [E; 4]
    where
        VNeon: Io<E>,
    {
        let mut out = [E::from_f32(0.0); 4];
        // SAFETY: NEON, as in `lanes`; `out` holds 4 elements.
        unsafe { <VNeon as Io<E>>::store(vector(x), out.as_mut_ptr()) };
        out
    }

    #[test]
    fn fp16_widens_every_half_like_the_software_conversion() {
        for h in (0..=u16::MAX).step_by(4) {
            let hs = [h, h + 1, h + 2, h + 3];
            let got = widen(hs.map(F16));
            for (h, got) in hs.into_iter().zip(got) {
                let want = f16_to_f32(h).to_bits();
                // The hardware quiets a signalling NaN (as F16C does); the
                // software conversion keeps its bits.
                let quieted = want | 0x0040_0000;
                let nan = f16_to_f32(h).is_nan();
                assert!(
                    got.to_bits() == want || (nan && got.to_bits() == quieted),
                    "{h:#06x}: {:#010x}, want {want:#010x}",
                    got.to_bits()
                );
            }
        }
    }

    #[test]
    fn fp16_narrows_every_kind_of_f32_like_the_software_conversion() {
        for x in every_kind_of_f32().chunks(4) {
            let mut four = [0.0f32; 4];
            four[..x.len()].copy_from_slice(x);
            let got = narrow::<F16>(four);
            for (x, got) in four.into_iter().zip(got) {
                assert_eq!(got.0, f32_to_f16(x), "{x:e} ({:#010x})", x.to_bits());
            }
        }
    }

    #[test]
    fn bf16_widens_and_narrows_like_the_software_conversion() {
        for h in (0..=u16::MAX).step_by(4) {
            let hs = [h, h + 1, h + 2, h + 3];
            let got = widen(hs.map(BF16));
            for (h, got) in hs.into_iter().zip(got) {
                assert_eq!(got.to_bits(), u32::from(h) << 16, "{h:#06x}");
            }
        }
        for x in every_kind_of_f32().chunks(4) {
            let mut four = [0.0f32; 4];
            four[..x.len()].copy_from_slice(x);
            let got = narrow::<BF16>(four);
            for (x, got) in four.into_iter().zip(got) {
                assert_eq!(got.0, f32_to_bf16(x), "{x:e} ({:#010x})", x.to_bits());
            }
        }
    }
}
