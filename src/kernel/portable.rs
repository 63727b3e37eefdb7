//! The portable path: `blocked`'s register-blocked walk over [`F32x4`], four
//! lanes of plain `f32` arithmetic that compilers turn into one 128-bit SIMD
//! instruction per operation (NEON on aarch64, SSE2 on x86-64). This is what
//! targets without an intrinsics path run, and what `NCNN_L2NORM_ISA=portable`
//! runs on x86-64 and aarch64 (which otherwise take `x86` or `neon`), where
//! the tests check it beside them.
//!
//! Four lanes match NEON's registers and ncnn's elempack 4 on ARM, where a
//! position is one vector. Tiles are [`U`] = 8 vectors wide, as on SSE2 and
//! NEON, on every target. (aarch64's 32 vector registers could hold 16
//! accumulators; unmeasured. On x86-64's 16 registers, 16 spilled: 512x38x38
//! ran 1.3x slower packed by 4 and 3.1x unpacked, in one run.)

use super::blocked::{normalize_blocked, Io, Vector};
use super::element::Element;
use super::norm::Norm;
use super::Scale;
use crate::layout::TensorMut;

/// Vectors per row of a tile.
pub(crate) const U: usize = 8;

/// Four f32 lanes. Every operation is lane by lane over the array (or a
/// fixed shuffle), so it compiles to the target's 128-bit instructions.
#[derive(Clone, Copy)]
pub(crate) struct F32x4([f32; 4]);

impl F32x4 {
    /// Lane-wise `f`. (Closures are fine on this path: unlike the x86
    /// entry points, nothing here is compiled with extra target features,
    /// so they inline like any other code.)
    #[inline(always)]
    fn zip(self, other: Self, f: impl Fn(f32, f32) -> f32) -> Self {
        let (a, b) = (self.0, other.0);
        F32x4([f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])])
    }
}

// The trait's functions are `unsafe` for the instruction sets that need a
// CPU check; these need none. Those taking a pointer need it valid for 4
// elements (or `lanes` floats for `load_pattern`).
impl Vector for F32x4 {
    const W: usize = 4;
    #[inline(always)]
    unsafe fn splat(x: f32) -> Self {
        F32x4([x; 4])
    }
    #[inline(always)]
    unsafe fn load_acc(p: *const f32) -> Self {
        // SAFETY: the caller keeps the trait's contract: `p` is valid for
        // 4 floats (no alignment needed).
        F32x4(unsafe { p.cast::<[f32; 4]>().read_unaligned() })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        // SAFETY: as for `load_acc`.
        unsafe { p.cast::<[f32; 4]>().write_unaligned(self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        // Multiply, then add: no fused multiply-add, so every target rounds
        // the same way and what the tests check on one is what another runs.
        self.zip(acc, |x, a| x * x + a)
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        self.zip(other, |a, b| a * b)
    }
    #[inline(always)]
    unsafe fn add(self, other: Self) -> Self {
        self.zip(other, |a, b| a + b)
    }
    #[inline(always)]
    unsafe fn div(self, other: Self) -> Self {
        self.zip(other, |a, b| a / b)
    }
    #[inline(always)]
    unsafe fn sqrt(self) -> Self {
        self.zip(self, |a, _| a.sqrt())
    }
    #[inline(always)]
    unsafe fn max_keep_nan(self, other: Self) -> Self {
        self.zip(other, |a, b| if a.is_nan() || a >= b { a } else { b })
    }
    #[inline(always)]
    unsafe fn any_outside(self, low: Self, high: Self) -> bool {
        let (x, l, h) = (self.0, low.0, high.0);
        // `|`, not `||`: four compares and one branch.
        !(x[0] >= l[0] && x[0] <= h[0])
            | !(x[1] >= l[1] && x[1] <= h[1])
            | !(x[2] >= l[2] && x[2] <= h[2])
            | !(x[3] >= l[3] && x[3] <= h[3])
    }
    #[inline(always)]
    unsafe fn select(self, a: Self, mask: Self) -> Self {
        let pick = |s: f32, a: f32, m: f32| {
            let m = m.to_bits();
            f32::from_bits((a.to_bits() & m) | (s.to_bits() & !m))
        };
        let (s, a, m) = (self.0, a.0, mask.0);
        F32x4([
            pick(s[0], a[0], m[0]),
            pick(s[1], a[1], m[1]),
            pick(s[2], a[2], m[2]),
            pick(s[3], a[3], m[3]),
        ])
    }
    #[inline(always)]
    unsafe fn swap_add(self, d: usize) -> Self {
        let s = self.0;
        F32x4([
            s[0] + s[d],
            s[1] + s[1 ^ d],
            s[2] + s[2 ^ d],
            s[3] + s[3 ^ d],
        ])
    }
    #[inline(always)]
    unsafe fn hsum(self) -> f32 {
        // By halves, as `butterfly` adds: (0 + 2) + (1 + 3).
        let s = self.0;
        (s[0] + s[2]) + (s[1] + s[3])
    }
    #[inline(always)]
    unsafe fn load_pattern(p: *const f32, lanes: usize) -> Self {
        // lanes is 2, the only divisor of 16 between 1 and W = 4.
        debug_assert_eq!(lanes, 2);
        // SAFETY: the caller keeps the trait's contract: 2 floats at `p`.
        let [a, b] = unsafe { p.cast::<[f32; 2]>().read_unaligned() };
        F32x4([a, b, a, b])
    }
}

impl<E: Element> Io<E> for F32x4 {
    #[inline(always)]
    unsafe fn load(p: *const E) -> Self {
        // Four element reads, not one of `[E; 4]`: LLVM turns the array
        // read of 16-bit elements into one 64-bit integer and widens it
        // with scalar shifts; these become one vector load and unpack.
        // SAFETY: the caller keeps the trait's contract: `p` is valid for
        // 4 elements (no alignment beyond E's).
        let x = unsafe { [p.read(), p.add(1).read(), p.add(2).read(), p.add(3).read()] };
        F32x4([x[0].to_f32(), x[1].to_f32(), x[2].to_f32(), x[3].to_f32()])
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut E) {
        let v = self.0;
        let x = [
            E::from_f32(v[0]),
            E::from_f32(v[1]),
            E::from_f32(v[2]),
            E::from_f32(v[3]),
        ];
        // SAFETY: as for `load`; E's alignment suffices for `[E; 4]`.
        unsafe { p.cast::<[E; 4]>().write(x) }
    }
}

/// Normalises `t` on the portable path. Elempacks must divide 16 (all of
/// ncnn's); the caller sends others to `tiled`.
#[inline(never)]
pub(crate) fn normalize<E: Element>(t: &mut TensorMut<'_, E>, scale: Scale<'_>, norm: Norm) {
    debug_assert_eq!(16 % t.layout().lanes, 0);
    // SAFETY: F32x4 needs no CPU features; lanes divides 16 (checked by
    // the caller, asserted above).
    unsafe { normalize_blocked::<U, E, F32x4>(t, scale, norm) }
}
