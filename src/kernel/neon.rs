//! aarch64 kernel: NEON (Advanced SIMD), a [`Vector`] type of eight f32
//! lanes in two registers for the register-blocked walk in `blocked`, the
//! same walk and tests as the x86 paths.
//!
//! Every ARMv8-A CPU has NEON; the token's checked constructor asks anyway,
//! as x86's do, so that holding one proves the instructions are there.
//!
//! * Eight lanes, two `float32x4_t`: a 16-bit element type fills one
//!   128-bit register with eight values, so fp16 and bf16 load and store
//!   eight at a time and convert with the instruction pairs that read or
//!   write both halves of a register (`fcvtl`/`fcvtl2`, `fcvtn`/`fcvtn2`,
//!   `shll`/`shll2`); fp32 loads and stores pairs of registers (`ldp`/`stp`).
//! * fp32: squares added with a fused multiply-add (`fmla`), as AVX2 and
//!   AVX-512 do: one rounding per element instead of two, within the tests'
//!   sum-of-squares bound either way. Pass 2's `x · (k · w)` stays two
//!   multiplications, as on every path.
//! * fp16 storage: widened and narrowed by the hardware (`fcvtl`, `fcvtn`:
//!   ARMv8.0 conversions, no fp16 arithmetic needed), through `asm!` because
//!   the `float16x4_t` intrinsics are stable only from Rust 1.94 and this
//!   crate's MSRV is 1.89. Rounding is the FPCR's, which Rust code assumes
//!   is the default: to nearest, ties to even, no flushing; that is
//!   bit for bit what `element::f32_to_f16` computes (tests below).
//! * FEAT_FHM (`VNeon<true>`, Isa `neon+fhm`): pass 1 squares fp16 storage
//!   with `fmlal`/`fmlal2`, which multiply halves exactly and add into f32
//!   lanes with one rounding: bit for bit `fcvtl` then `fmla`, one
//!   instruction per four halves instead of two. Optional in ARMv8.2,
//!   required from ARMv8.4: Cortex-A510/A710/X2 and later, Neoverse V1/N2;
//!   not Cortex-A55/A76/A78 (RK3588, Raspberry Pi 5), which run `neon`.
//! * bf16 storage: a 16-bit shift widens; narrowing rounds to nearest even
//!   and quiets NaN exactly as `element::f32_to_bf16` does, in integer
//!   arithmetic (`bfcvtn` needs ARMv8.6's BF16, which a Cortex-A53 to A76
//!   lacks).
//! * Reductions: a vector's two registers are added lane by lane first
//!   (lane `i` meets lane `i + 4`, as `butterfly` adds), then each register
//!   as `hsum` adds, (0 + 2) + (1 + 3); 8 or 16 vectors (a tile of
//!   elempack-8 positions) reduce four at a time in one transpose-and-add
//!   tree, bit for bit the same sums.
//!
//! Tiles are [`U`] = 8 vectors of 8 lanes, 64 elements per row: 16
//! accumulator registers of aarch64's 32, as AVX-512 takes 16 of its 32.
//! Each row's bookkeeping (address, bounds check, weights) is then paid
//! once per 64 elements rather than per 32, which cut the instructions
//! fp32 and fp16 execute by a quarter to a third (below); how much of
//! that a CPU turns into time is unmeasured (no ARM hardware at hand). A
//! tile of 512 unpacked fp32 channels is 128 KiB, in L2 for pass 2.
//!
//! Emulated only: instruction counts under qemu 7.2 `-cpu cortex-a53`
//! (2026-12-07), not time (see docs/performance.md, "On ARM"). 512x38x38,
//! elempacks 1-16, per call: fp32 1.40-1.55 M, fp16 1.81-1.96 M, bf16
//! 3.95-4.14 M; four-lane vectors in 32-element rows executed 1.84-2.24 M,
//! 2.39-2.79 M and 4.06-4.45 M. fp16 costs 1.26-1.29x fp32's instructions
//! (1.26-1.30x on 1024x19x19 and 512x64x64): three conversions per four
//! elements (a widening in each pass, a narrowing in pass 2) that a CPU
//! without FEAT_FHM cannot do without, short of fp16 arithmetic, which
//! would round pass 2 differently. With FEAT_FHM (`-cpu max`) fp16 executes
//! 1.63-1.77 M, 1.14-1.16x fp32. qemu's wall time says little here: it emulates each float
//! instruction (`fmla`, `fcvtl`) through a software floating-point call per
//! lane and the portable path's integer conversions with host SIMD, so
//! hardware conversions that are one instruction on a CPU look slow under
//! emulation.

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

/// Proof that the CPU has NEON and FEAT_FHM (`fmlal`: fused multiply-add
/// of halves into f32 lanes).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NeonFhm(());

impl NeonFhm {
    /// `Some` only on a CPU with NEON and FEAT_FHM (Cortex-A510/A710/X2
    /// and later, Neoverse V1/N2, Apple's; not Cortex-A55/A76/A78).
    pub(crate) fn new() -> Option<Self> {
        (std::arch::is_aarch64_feature_detected!("neon")
            && std::arch::is_aarch64_feature_detected!("fhm"))
        .then_some(NeonFhm(()))
    }
}

/// Normalises `t` with NEON, pass 1 over fp16 storage with `fmlal`; the
/// results are bit for bit [`normalize_neon`]'s.
///
/// # Safety
/// The CPU has NEON and FEAT_FHM (hold a token).
#[target_feature(enable = "neon,fhm")]
pub(crate) unsafe fn normalize_neon_fhm<E: Element>(
    _token: NeonFhm,
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    norm: Norm,
) where
    VNeon<true>: Io<E>,
{
    // SAFETY: the token proves the features this function enables; the
    // caller sends only elempacks that divide 16.
    unsafe { normalize_blocked::<U, E, VNeon<true>>(t, scale, norm) }
}

/// Eight f32 lanes in two NEON registers: lanes 0-3 in `.0`, 4-7 in `.1`.
/// `FHM`: the CPU has FEAT_FHM, and pass 1 squares fp16 storage with
/// `fmlal` (see [`square_add_f16_fhm`]); everything else is the same code.
#[derive(Clone, Copy)]
pub(crate) struct VNeon<const FHM: bool = false>(float32x4_t, float32x4_t);

/// `[hsum(a), hsum(b), hsum(c), hsum(d)]` of four-lane registers, bit for
/// bit: the halves of each added lane-wise, two registers side by side,
/// then the pairs.
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

/// `v + v` with lanes `i` and `i ^ d` exchanged, within one register
/// (`d` 2 or 1).
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn swap_add4(v: float32x4_t, d: usize) -> float32x4_t {
    let swapped = match d {
        // [v2, v3, v0, v1]: lane i meets lane i ^ 2.
        2 => vextq_f32::<2>(v, v),
        // [v1, v0, v3, v2]: lane i meets lane i ^ 1.
        _ => vrev64q_f32(v),
    };
    vaddq_f32(v, swapped)
}

/// The low four halves of `h` to f32 (exact): `fcvtl`.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn widen_f16_low(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: `fcvtl` (ARMv8.0 Advanced SIMD, which the caller's CPU has)
    // reads the low half of the one register given and writes the other;
    // it touches no memory, stack or flags. The result does not depend on
    // the FPCR's rounding (the conversion is exact); a signalling NaN
    // comes back quiet, as on x86's F16C.
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

/// The high four halves of `h` to f32 (exact): `fcvtl2`.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn widen_f16_high(h: uint16x8_t) -> float32x4_t {
    let out: float32x4_t;
    // SAFETY: as for `widen_f16_low`: `fcvtl2` reads the high half of the
    // one register given and writes the other; no memory, stack or flags.
    unsafe {
        asm!(
            "fcvtl2 {out:v}.4s, {h:v}.8h",
            out = lateout(vreg) out,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// Eight f32 to halves, `lo` into the low four lanes and `hi` into the
/// high four: `fcvtn` then `fcvtn2`, rounding as the FPCR says.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn narrow_f16(lo: float32x4_t, hi: float32x4_t) -> uint16x8_t {
    let out: uint16x8_t;
    // SAFETY: both instructions (ARMv8.0 Advanced SIMD, which the caller's
    // CPU has) read registers and write `out`: `fcvtn` its low half,
    // zeroing the rest, `fcvtn2` its high half, keeping the low. They touch
    // no memory, stack or flags (they may set the FPSR's cumulative
    // exception bits, which Rust code does not read). They round as the
    // FPCR says, which Rust assumes holds its default (to nearest, ties to
    // even, no flush to zero, NaNs propagated), so `pure` holds. `out` is
    // an early output, so it shares no register with `hi`, which the
    // second instruction reads after the first has written `out`.
    unsafe {
        asm!(
            "fcvtn {out:v}.4h, {lo:v}.4s",
            "fcvtn2 {out:v}.8h, {hi:v}.4s",
            out = out(vreg) out,
            lo = in(vreg) lo,
            hi = in(vreg) hi,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    out
}

/// `lo + h[0..4]²` and `hi + h[4..8]²`, each square of a half added to
/// an f32 lane with one rounding: `fmlal` and `fmlal2` (FEAT_FHM, optional
/// from ARMv8.2, required from ARMv8.4). The product of two halves (11
/// significant bits each) is exact in f32 and the instruction does not
/// round it before the addition, so each lane is bit for bit what
/// `fcvtl` (exact) followed by `fmla` (one rounding) gives, in one
/// instruction per four halves instead of two: pass 1 over fp16 storage
/// then costs what it costs over fp32.
///
/// # Safety
/// The CPU has NEON and FEAT_FHM.
#[target_feature(enable = "neon,fhm")]
#[inline]
unsafe fn square_add_f16_fhm(
    h: uint16x8_t,
    lo: float32x4_t,
    hi: float32x4_t,
) -> (float32x4_t, float32x4_t) {
    let (mut lo, mut hi) = (lo, hi);
    // SAFETY: both instructions (FEAT_FHM, which the caller's CPU has)
    // read `h` and add into `lo` and `hi`, registers only; no memory,
    // stack or flags (the FPSR's cumulative exception bits aside, which
    // Rust code does not read). Half inputs are flushed only under FPCR.FZ16
    // and the f32 sum only under FPCR.FZ, both clear in the default FPCR
    // Rust assumes, as is its rounding (to nearest, ties to even), so
    // `pure` holds.
    unsafe {
        asm!(
            "fmlal {lo:v}.4s, {h:v}.4h, {h:v}.4h",
            "fmlal2 {hi:v}.4s, {h:v}.4h, {h:v}.4h",
            lo = inout(vreg) lo,
            hi = inout(vreg) hi,
            h = in(vreg) h,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    (lo, hi)
}

/// f32 to bf16, four lanes, as `element::f32_to_bf16`: round to nearest
/// even by adding 0x7fff plus the lowest kept bit, then keep the top half;
/// NaNs keep their top bits with the quiet bit set.
///
/// # Safety
/// The CPU has NEON.
#[inline(always)]
unsafe fn narrow_bf16(x: float32x4_t) -> uint16x4_t {
    let bits = vreinterpretq_u32_f32(x);
    let odd = vandq_u32(vshrq_n_u32::<16>(bits), vdupq_n_u32(1));
    let rounded = vshrn_n_u32::<16>(vaddq_u32(bits, vaddq_u32(odd, vdupq_n_u32(0x7fff))));
    let quiet = vorr_u16(vshrn_n_u32::<16>(bits), vdup_n_u16(0x40));
    // All ones where the lane is not NaN.
    let ordered = vmovn_u32(vceqq_f32(x, x));
    vbsl_u16(ordered, rounded, quiet)
}

/// `out[i] = v[i].hsum()`, bit for bit, for a multiple of 4 vectors: each
/// folded, then four at a time in `hsum4`'s tree. (A loop, not a closure:
/// see `blocked`'s note.)
///
/// # Safety
/// The CPU has NEON; `out` is as long as `v`, a multiple of 4.
#[inline(always)]
unsafe fn hsum_fours<const FHM: bool>(v: &[VNeon<FHM>], out: &mut [f32]) {
    debug_assert!(v.len() == out.len() && v.len().is_multiple_of(4));
    for (v, out) in v.chunks_exact(4).zip(out.chunks_exact_mut(4)) {
        // SAFETY: NEON (the caller's contract); `out` holds 4 floats.
        unsafe {
            let sums = hsum4(v[0].folded(), v[1].folded(), v[2].folded(), v[3].folded());
            vst1q_f32(out.as_mut_ptr(), sums);
        }
    }
}

impl<const FHM: bool> VNeon<FHM> {
    /// Lane `i` plus lane `i + 4`: the first step of every sum across lanes.
    ///
    /// # Safety
    /// The CPU has NEON.
    #[inline(always)]
    unsafe fn folded(self) -> float32x4_t {
        vaddq_f32(self.0, self.1)
    }
}

// The trait's functions are `unsafe` because they need NEON (and, where
// they take a pointer, a pointer valid for W = 8 elements). Intrinsics
// without a pointer need only the target feature, which every function
// here is inlined into the `#[target_feature(enable = "neon")]` entry
// point to get (and which the aarch64 targets enable by default). Each
// operation is written out on both registers: no closures (see
// `blocked`'s note).
impl<const FHM: bool> Vector for VNeon<FHM> {
    const W: usize = 8;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        let v = vdupq_n_f32(x);
        VNeon(v, v)
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 8 floats (`ld1` needs no more alignment).
        unsafe { VNeon(vld1q_f32(p), vld1q_f32(p.add(4))) }
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: as for `load_acc`.
        unsafe {
            vst1q_f32(p, self.0);
            vst1q_f32(p.add(4), self.1);
        }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        // acc + self · self, rounded once.
        VNeon(
            vfmaq_f32(acc.0, self.0, self.0),
            vfmaq_f32(acc.1, self.1, self.1),
        )
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        VNeon(vmulq_f32(self.0, other.0), vmulq_f32(self.1, other.1))
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        VNeon(vaddq_f32(self.0, other.0), vaddq_f32(self.1, other.1))
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        VNeon(vdivq_f32(self.0, other.0), vdivq_f32(self.1, other.1))
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        VNeon(vsqrtq_f32(self.0), vsqrtq_f32(self.1))
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        // `fmax` would return NaN for either side; this keeps `self`
        // unless it compares below `other` (false for NaN).
        VNeon(
            vbslq_f32(vcltq_f32(self.0, other.0), other.0, self.0),
            vbslq_f32(vcltq_f32(self.1, other.1), other.1, self.1),
        )
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        // Ordered comparisons are false for NaN, so NaN is outside.
        let inside0 = vandq_u32(vcgeq_f32(self.0, low.0), vcleq_f32(self.0, high.0));
        let inside1 = vandq_u32(vcgeq_f32(self.1, low.1), vcleq_f32(self.1, high.1));
        vminvq_u32(vandq_u32(inside0, inside1)) == 0
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        VNeon(
            vbslq_f32(vreinterpretq_u32_f32(mask.0), a.0, self.0),
            vbslq_f32(vreinterpretq_u32_f32(mask.1), a.1, self.1),
        )
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        // SAFETY (both): the caller keeps the trait's contract (NEON).
        match d {
            // Lane i meets lane i ^ 4: the registers exchanged, each lane
            // first, as `self + swapped` has it.
            4 => VNeon(vaddq_f32(self.0, self.1), vaddq_f32(self.1, self.0)),
            _ => unsafe { VNeon(swap_add4(self.0, d), swap_add4(self.1, d)) },
        }
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // By halves, as `butterfly` adds: lanes i and i + 4, then (0 + 2)
        // + (1 + 3) of those.
        let f = self.folded();
        let halves = vaddq_f32(f, vextq_f32::<2>(f, f));
        vgetq_lane_f32::<0>(halves) + vgetq_lane_f32::<1>(halves)
    }
    #[inline(always)]
    unsafe fn hsum8(v: &[Self; 8], out: &mut [f32; 8]) {
        // SAFETY: the caller keeps the trait's contract (NEON); `out`
        // holds 8 floats.
        unsafe { hsum_fours(v, out) }
    }
    #[inline(always)]
    unsafe fn hsum16(v: &[Self; 16], out: &mut [f32; 16]) {
        // SAFETY: the caller keeps the trait's contract (NEON); `out`
        // holds 16 floats.
        unsafe { hsum_fours(v, out) }
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self {
        // lanes is 2 or 4, the divisors of 16 between 1 and W = 8.
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `lanes` floats at `p`.
        let v = unsafe {
            if lanes == 4 {
                vld1q_f32(p)
            } else {
                debug_assert_eq!(lanes, 2);
                let pair = vld1_f32(p);
                vcombine_f32(pair, pair)
            }
        };
        VNeon(v, v)
    }
}

impl<const FHM: bool> Io<f32> for VNeon<FHM> {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract (NEON; `p` valid
        // for 8 floats).
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: as for `load`.
        unsafe { self.store_acc(p) }
    }
}

impl<const FHM: bool> Io<F16> for VNeon<FHM> {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 8 `F16`s, which are `repr(transparent)`
        // `u16`s, so 8 `u16`s at u16 alignment.
        unsafe {
            let h = vld1q_u16(p.cast());
            VNeon(widen_f16_low(h), widen_f16_high(h))
        }
    }
    #[inline(always)]
    unsafe fn square_add_at(p: *const F16, acc: Self) -> Self {
        // SAFETY: as for `load`; with FHM, the CPU has FEAT_FHM (`VNeon<true>`
        // is used only under a `NeonFhm` token).
        unsafe {
            if FHM {
                let (lo, hi) = square_add_f16_fhm(vld1q_u16(p.cast()), acc.0, acc.1);
                VNeon(lo, hi)
            } else {
                Self::load(p).square_add(acc)
            }
        }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        // SAFETY: as for `load`.
        unsafe { vst1q_u16(p.cast(), narrow_f16(self.0, self.1)) }
    }
}

impl<const FHM: bool> Io<BF16> for VNeon<FHM> {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        // A bf16 is the top half of an f32: shift each up by 16 (`shll`,
        // `shll2`).
        // SAFETY: the caller keeps the trait's contract: the CPU has NEON
        // and `p` is valid for 8 `BF16`s, `repr(transparent)` `u16`s.
        let h = unsafe { vld1q_u16(p.cast()) };
        VNeon(
            vreinterpretq_f32_u32(vshll_n_u16::<16>(vget_low_u16(h))),
            vreinterpretq_f32_u32(vshll_high_n_u16::<16>(h)),
        )
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        // SAFETY: as for `load`.
        unsafe {
            let h = vcombine_u16(narrow_bf16(self.0), narrow_bf16(self.1));
            vst1q_u16(p.cast(), h)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::blocked::butterfly;
    use super::super::element::{every_kind_of_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
    use super::*;

    /// The plain NEON vector (`fcvtl` in pass 1); `VNeon<true>` is tested
    /// through the kernel on CPUs with FEAT_FHM.
    type VNeon = super::VNeon<false>;

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

    fn lanes(v: VNeon) -> [f32; 8] {
        let mut out = [0.0f32; 8];
        // SAFETY: every aarch64 CPU these tests run on has NEON (asserted
        // by `the_token_exists`); `out` holds 8 floats.
        unsafe { v.store_acc(out.as_mut_ptr()) };
        out
    }

    fn vector(x: [f32; 8]) -> VNeon {
        // SAFETY: NEON, as in `lanes`; `x` holds 8 floats.
        unsafe { VNeon::load_acc(x.as_ptr()) }
    }

    #[test]
    fn the_token_exists() {
        assert!(Neon::new().is_some(), "every aarch64 CPU has NEON");
    }

    #[test]
    fn the_reduction_trees_add_in_hsums_order() {
        let x = values(16 * 8);
        let v: [VNeon; 16] = std::array::from_fn(|i| {
            let mut l = [0.0f32; 8];
            l.copy_from_slice(&x[8 * i..8 * i + 8]);
            vector(l)
        });
        // SAFETY: NEON, as in `lanes`.
        let each = v.map(|v| unsafe { v.hsum() });
        for (i, (&h, v)) in each.iter().zip(&v).enumerate() {
            let l = lanes(*v);
            // By halves: lanes i and i + 4, then (0 + 2) + (1 + 3).
            let f: [f32; 4] = std::array::from_fn(|j| l[j] + l[j + 4]);
            assert_eq!(
                h.to_bits(),
                ((f[0] + f[2]) + (f[1] + f[3])).to_bits(),
                "hsum {i}"
            );
            // SAFETY: NEON, as in `lanes`.
            let b = lanes(unsafe { butterfly(*v, 8) });
            assert!(
                b.iter().all(|s| s.to_bits() == h.to_bits()),
                "butterfly {i}"
            );
            // Runs of 4 and 2 lanes, each total in each of its lanes.
            // SAFETY: NEON, as in `lanes`.
            let fours = lanes(unsafe { butterfly(*v, 4) });
            for (r, run) in fours.chunks(4).enumerate() {
                let q = &l[4 * r..4 * r + 4];
                let want = (q[0] + q[2]) + (q[1] + q[3]);
                assert!(
                    run.iter().all(|s| s.to_bits() == want.to_bits()),
                    "fours {i}"
                );
            }
            // SAFETY: NEON, as in `lanes`.
            let pairs = lanes(unsafe { butterfly(*v, 2) });
            let want: [f32; 8] = std::array::from_fn(|j| l[j & !1] + l[j | 1]);
            assert_eq!(pairs, want, "pairs {i}");
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
        let (a, b) = (
            [nan, 1.0, 2.0, -0.0, 5.0, nan, -1.0, 0.0],
            [1.0, nan, 3.0, 0.0, 4.0, 2.0, nan, -0.0],
        );
        // SAFETY: NEON, as in `lanes`.
        let m = lanes(unsafe { vector(a).max_keep_nan(vector(b)) });
        assert!(
            m[0].is_nan() && m[1] == 1.0 && m[2] == 3.0 && m[3].to_bits() == (-0.0f32).to_bits()
        );
        assert!(m[4] == 5.0 && m[5].is_nan() && m[6] == -1.0 && m[7].to_bits() == 0);
        let (low, high) = (vector([1.0; 8]), vector([2.0; 8]));
        let inside = [1.0, 1.5, 2.0, 1.0, 1.25, 2.0, 1.0, 1.75];
        // SAFETY (all): NEON, as in `lanes`.
        assert!(!unsafe { vector(inside).any_outside(low, high) });
        for lane in 0..8 {
            for bad in [2.5, 0.5, nan] {
                let mut x = inside;
                x[lane] = bad;
                assert!(unsafe { vector(x).any_outside(low, high) }, "{x:?}");
            }
        }
        let ones = f32::from_bits(u32::MAX);
        // SAFETY: NEON, as in `lanes`.
        let s = lanes(unsafe {
            vector([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]).select(
                vector([9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]),
                vector([ones, 0.0, 0.0, ones, 0.0, ones, ones, 0.0]),
            )
        });
        assert_eq!(s, [9.0, 2.0, 3.0, 12.0, 5.0, 14.0, 15.0, 8.0]);
        let w = [7.0f32, 9.0, 11.0, 13.0];
        // SAFETY: NEON, as in `lanes`; 2 or 4 floats are read.
        let (two, four) = unsafe {
            (
                VNeon::load_pattern(w.as_ptr(), 2),
                VNeon::load_pattern(w.as_ptr(), 4),
            )
        };
        assert_eq!(lanes(two), [7.0, 9.0, 7.0, 9.0, 7.0, 9.0, 7.0, 9.0]);
        assert_eq!(lanes(four), [7.0, 9.0, 11.0, 13.0, 7.0, 9.0, 11.0, 13.0]);
        // Arithmetic lane by lane, in both registers.
        let (x, y) = (values(8), values(16));
        let (xv, yv) = (
            vector(x[..].try_into().unwrap()),
            vector(y[8..].try_into().unwrap()),
        );
        // SAFETY: NEON, as in `lanes`.
        let (sq, mu, ad, dv, rt) = unsafe {
            (
                lanes(xv.square_add(yv)),
                lanes(xv.mul(yv)),
                lanes(xv.add(yv)),
                lanes(xv.div(yv)),
                lanes(xv.mul(xv).sqrt()),
            )
        };
        for i in 0..8 {
            let (x, y) = (x[i], y[8 + i]);
            assert_eq!(sq[i].to_bits(), x.mul_add(x, y).to_bits(), "square_add {i}");
            assert_eq!(mu[i].to_bits(), (x * y).to_bits(), "mul {i}");
            assert_eq!(ad[i].to_bits(), (x + y).to_bits(), "add {i}");
            assert_eq!(dv[i].to_bits(), (x / y).to_bits(), "div {i}");
            assert_eq!(rt[i].to_bits(), (x * x).sqrt().to_bits(), "sqrt {i}");
        }
    }

    /// Widens the eight 16-bit values through `VNeon`'s load of `E`.
    fn widen<E: Element>(h: [E; 8]) -> [f32; 8]
    where
        VNeon: Io<E>,
    {
        // SAFETY: NEON, as in `lanes`; `h` holds 8 elements.
        lanes(unsafe { <VNeon as Io<E>>::load(h.as_ptr()) })
    }

    /// Narrows eight floats through `VNeon`'s store of `E`.
    fn narrow<E: Element>(x: [f32; 8]) -> [E; 8]
    where
        VNeon: Io<E>,
    {
        let mut out = [E::from_f32(0.0); 8];
        // SAFETY: NEON, as in `lanes`; `out` holds 8 elements.
        unsafe { <VNeon as Io<E>>::store(vector(x), out.as_mut_ptr()) };
        out
    }

    /// Every 16-bit pattern once, eight at a time, each group of eight
    /// rotated by one more lane than the last: in order, `h % 8` would
    /// always sit in lane `h % 8`, and a mix-up of lanes could go unseen
    /// where the values it swapped convert alike.
    fn every_u16_in_eights() -> impl Iterator<Item = [u16; 8]> {
        (0..=u16::MAX / 8).map(|i| std::array::from_fn(|l| i * 8 + ((l as u16 + i) % 8)))
    }

    #[test]
    fn fp16_widens_every_half_like_the_software_conversion() {
        for hs in every_u16_in_eights() {
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
        for x in every_kind_of_f32().chunks(8) {
            let mut eight = [0.0f32; 8];
            eight[..x.len()].copy_from_slice(x);
            let got = narrow::<F16>(eight);
            for (x, got) in eight.into_iter().zip(got) {
                assert_eq!(got.0, f32_to_f16(x), "{x:e} ({:#010x})", x.to_bits());
            }
        }
    }

    #[test]
    fn bf16_widens_and_narrows_like_the_software_conversion() {
        for hs in every_u16_in_eights() {
            let got = widen(hs.map(BF16));
            for (h, got) in hs.into_iter().zip(got) {
                assert_eq!(got.to_bits(), u32::from(h) << 16, "{h:#06x}");
            }
        }
        for x in every_kind_of_f32().chunks(8) {
            let mut eight = [0.0f32; 8];
            eight[..x.len()].copy_from_slice(x);
            let got = narrow::<BF16>(eight);
            for (x, got) in eight.into_iter().zip(got) {
                assert_eq!(got.0, f32_to_bf16(x), "{x:e} ({:#010x})", x.to_bits());
            }
        }
    }
}
