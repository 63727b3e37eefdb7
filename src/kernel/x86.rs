//! x86-64 kernels: AVX-512F, AVX2 + FMA (+ F16C), SSE2.
//!
//! Each instruction set is a zero-sized token whose only constructor checks
//! the CPU, so holding one proves its instructions are available; that is what
//! makes the safe `RowKernel` methods below sound. The entry points
//! (`normalize_*`) carry `#[target_feature]` and inline the whole shared
//! algorithm (`tiled::normalize`), so its reductions are compiled for that
//! instruction set too.

use std::arch::x86_64::*;

use super::element::{Element, BF16, F16};
use super::tiled::{self, RowKernel, Weights16};
use super::Scale;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// One f32 vector of some width, with loads and stores of each element type.
pub(crate) trait Vector: Copy {
    const W: usize;
    unsafe fn splat(x: f32) -> Self;
    unsafe fn load_acc(p: *const f32) -> Self;
    unsafe fn store_acc(self, p: *mut f32);
    /// `self * self + acc`
    unsafe fn square_add(self, acc: Self) -> Self;
    unsafe fn mul(self, other: Self) -> Self;
}

/// Widening load and narrowing store of element type `E`.
pub(crate) trait Io<E>: Vector {
    unsafe fn load(p: *const E) -> Self;
    unsafe fn store(self, p: *mut E);
}

/// `acc[j] += row[j]^2`, vector body then scalar tail.
///
/// # Safety
/// The CPU supports `V`'s instructions; `acc.len() == row.len()`.
#[inline(always)]
unsafe fn accumulate<E: Element, V: Io<E>>(acc: &mut [f32], row: &[E]) {
    debug_assert_eq!(acc.len(), row.len());
    let n = row.len().min(acc.len());
    let (a, x) = (acc.as_mut_ptr(), row.as_ptr());
    let mut j = 0;
    while j + V::W <= n {
        // SAFETY: j + W <= n, so both W-element accesses are in bounds.
        unsafe {
            let v = V::load(x.add(j));
            v.square_add(V::load_acc(a.add(j))).store_acc(a.add(j));
        }
        j += V::W;
    }
    for (a, x) in acc[j..n].iter_mut().zip(&row[j..n]) {
        let x = x.to_f32();
        *a += x * x;
    }
}

/// `row[j] *= k[j] * w16[j % 16]`, vector body then scalar tail.
///
/// # Safety
/// The CPU supports `V`'s instructions; `k.len() == row.len()`; `V::W` divides 16.
#[inline(always)]
unsafe fn scale<E: Element, V: Io<E>>(row: &mut [E], k: &[f32], w16: &Weights16) {
    debug_assert_eq!(k.len(), row.len());
    let n = row.len().min(k.len());
    // The weight pattern as 16 / W vectors, used in turn.
    let mut wv = [unsafe { V::splat(0.0) }; 16];
    let per = 16 / V::W;
    for (i, w) in wv.iter_mut().take(per).enumerate() {
        // SAFETY: i * W + W <= 16 floats of w16.
        *w = unsafe { V::load_acc(w16.as_ptr().add(i * V::W)) };
    }
    let (x, kp) = (row.as_mut_ptr(), k.as_ptr());
    let mut j = 0;
    let mut v = 0;
    while j + V::W <= n {
        // SAFETY: j + W <= n for both slices; v < per <= 16.
        unsafe {
            let f = V::load_acc(kp.add(j)).mul(wv[v]);
            V::load(x.add(j)).mul(f).store(x.add(j));
        }
        j += V::W;
        v = if v + 1 == per { 0 } else { v + 1 };
    }
    for (i, (x, &k)) in row[j..n].iter_mut().zip(&k[j..n]).enumerate() {
        *x = E::from_f32(x.to_f32() * (k * w16[(j + i) % 16]));
    }
}

/// Defines an instruction set's token, its checked constructor, its
/// `RowKernel` for every element type, and its `#[target_feature]` entry point.
macro_rules! isa {
    ($token:ident, $vector:ty, $entry:ident, $features:literal, $detect:expr) => {
        /// Proof that the CPU has this instruction set.
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $token(());

        impl $token {
            /// `Some` only on a CPU with these instructions.
            pub(crate) fn new() -> Option<Self> {
                $detect.then_some($token(()))
            }
        }

        impl<E: Element> RowKernel<E> for $token
        where
            $vector: Io<E>,
        {
            #[inline(always)]
            fn accumulate(self, acc: &mut [f32], row: &[E]) {
                // SAFETY: the token exists, so the CPU has the instructions.
                unsafe { accumulate::<E, $vector>(acc, row) }
            }

            #[inline(always)]
            fn scale(self, row: &mut [E], k: &[f32], w16: &Weights16) {
                // SAFETY: as above; W divides 16 for every vector here.
                unsafe { scale::<E, $vector>(row, k, w16) }
            }
        }

        /// Normalises `t` with this instruction set.
        ///
        /// # Safety
        /// The CPU supports the enabled features (hold a token).
        #[target_feature(enable = $features)]
        pub(crate) unsafe fn $entry<E: Element>(
            token: $token,
            t: &mut TensorMut<'_, E>,
            scale: Scale<'_>,
            eps: f32,
            eps_mode: EpsMode,
            tile: usize,
        ) where
            $vector: Io<E>,
        {
            tiled::normalize(token, t, scale, eps, eps_mode, tile)
        }
    };
}

isa!(Avx512, V512, normalize_avx512, "avx512f", is_x86_feature_detected!("avx512f"));
isa!(
    Avx2,
    V256,
    normalize_avx2,
    "avx2,fma,f16c",
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
);
isa!(Sse2, V128, normalize_sse2, "sse2", is_x86_feature_detected!("sse2"));

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
        V512(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        unsafe { _mm512_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V512(_mm512_fmadd_ps(self.0, self.0, acc.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V512(_mm512_mul_ps(self.0, other.0))
    }
}

impl Io<f32> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { self.store_acc(p) }
    }
}

impl Io<F16> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        V512(_mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) }))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0);
        unsafe { _mm256_storeu_si256(p.cast(), h) }
    }
}

impl Io<BF16> for V512 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        let h = unsafe { _mm256_loadu_si256(p.cast()) };
        V512(_mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h))))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        // Round to nearest even: add 0x7fff plus the lowest kept bit; NaNs
        // keep their top bits with the quiet bit set.
        let bits = _mm512_castps_si512(self.0);
        let odd = _mm512_and_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(1));
        let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(bits, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff))));
        let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(self.0, self.0);
        let quiet = _mm512_or_si512(_mm512_srli_epi32::<16>(bits), _mm512_set1_epi32(0x40));
        let h = _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(rounded, nan, quiet));
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
        V256(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        unsafe { _mm256_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V256(_mm256_fmadd_ps(self.0, self.0, acc.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V256(_mm256_mul_ps(self.0, other.0))
    }
}

impl Io<f32> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { self.store_acc(p) }
    }
}

impl Io<F16> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        V256(_mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) }))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(self.0);
        unsafe { _mm_storeu_si128(p.cast(), h) }
    }
}

impl Io<BF16> for V256 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        let h = unsafe { _mm_loadu_si128(p.cast()) };
        V256(_mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h))))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        let bits = _mm256_castps_si256(self.0);
        let odd = _mm256_and_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(1));
        let rounded = _mm256_srli_epi32::<16>(_mm256_add_epi32(bits, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))));
        let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0));
        let quiet = _mm256_or_si256(_mm256_srli_epi32::<16>(bits), _mm256_set1_epi32(0x40));
        let v = _mm256_blendv_epi8(rounded, quiet, nan);
        // Every lane is <= 0xffff, so unsigned saturation keeps it; packus
        // works per 128-bit half, so gather the two halves' results.
        let packed = _mm256_permute4x64_epi64::<0b1000>(_mm256_packus_epi32(v, v));
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
        V128(unsafe { _mm_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn store_acc(self, p: *mut f32) {
        unsafe { _mm_storeu_ps(p, self.0) }
    }
    #[inline(always)]
    unsafe fn square_add(self, acc: Self) -> Self {
        V128(_mm_add_ps(_mm_mul_ps(self.0, self.0), acc.0))
    }
    #[inline(always)]
    unsafe fn mul(self, other: Self) -> Self {
        V128(_mm_mul_ps(self.0, other.0))
    }
}

impl Io<f32> for V128 {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        unsafe { Self::load_acc(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        unsafe { self.store_acc(p) }
    }
}

impl Io<F16> for V128 {
    // SSE2 has no half conversions: convert the four values in software.
    #[inline(always)]
    unsafe fn load(p: *const F16) -> Self {
        let h = unsafe { std::slice::from_raw_parts(p, 4) };
        V128(_mm_setr_ps(h[0].to_f32(), h[1].to_f32(), h[2].to_f32(), h[3].to_f32()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F16) {
        let mut f = [0.0f32; 4];
        unsafe { _mm_storeu_ps(f.as_mut_ptr(), self.0) };
        let out = unsafe { std::slice::from_raw_parts_mut(p, 4) };
        for (o, v) in out.iter_mut().zip(f) {
            *o = F16::from_f32(v);
        }
    }
}

impl Io<BF16> for V128 {
    #[inline(always)]
    unsafe fn load(p: *const BF16) -> Self {
        let h = unsafe { _mm_loadl_epi64(p.cast()) };
        V128(_mm_castsi128_ps(_mm_unpacklo_epi16(_mm_setzero_si128(), h)))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut BF16) {
        let bits = _mm_castps_si128(self.0);
        let odd = _mm_and_si128(_mm_srli_epi32::<16>(bits), _mm_set1_epi32(1));
        let rounded = _mm_srli_epi32::<16>(_mm_add_epi32(bits, _mm_add_epi32(odd, _mm_set1_epi32(0x7fff))));
        let nan = _mm_castps_si128(_mm_cmpunord_ps(self.0, self.0));
        let quiet = _mm_or_si128(_mm_srli_epi32::<16>(bits), _mm_set1_epi32(0x40));
        let v = _mm_or_si128(_mm_and_si128(nan, quiet), _mm_andnot_si128(nan, rounded));
        // Sign-extend the low 16 bits so signed saturation in packs is exact.
        let v = _mm_srai_epi32::<16>(_mm_slli_epi32::<16>(v));
        unsafe { _mm_storel_epi64(p.cast(), _mm_packs_epi32(v, v)) }
    }
}
