//! x86-64 kernels: AVX-512F, AVX2 + FMA (+ F16C), SSE2: each a [`Vector`]
//! type for the register-blocked walk in `blocked`.
//!
//! Each instruction set is a zero-sized token whose only constructor checks
//! the CPU, so holding one proves its instructions are available. The entry
//! points (`normalize_*`) carry `#[target_feature]` and inline the whole
//! register-blocked walk, reductions included, so all of it is compiled for
//! that instruction set.

use std::arch::x86_64::*;

use super::blocked::{normalize_blocked, Io, Vector};
use super::element::{Element, BF16, F16};
use super::norm::Norm;
use super::Scale;
use crate::layout::TensorMut;

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
    Avx512Bf16,
    V512<true>,
    16,
    normalize_avx512_bf16,
    "avx512f,avx512bf16,fma,f16c",
    is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bf16")
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
/// `BF16`: the CPU has AVX512_BF16, whose `vcvtneps2bf16` narrows to bf16
/// (see `Io<BF16>`); everything else is the same.
pub(crate) struct V512<const BF16: bool = false>(__m512);

impl<const B: bool> Vector for V512<B> {
    const W: usize = 16;
    const PIPELINES: bool = true;
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: PREFETCHT1 (SSE, which every x86-64 CPU has) reads nothing
        // and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
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
    unsafe fn lane(self, i: usize) -> Self {
        V512(_mm512_permutexvar_ps(_mm512_set1_epi32(i as i32), self.0))
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

impl<const B: bool> Io<f32> for V512<B> {
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

impl<const B: bool> Io<F16> for V512<B> {
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

impl<const B: bool> Io<BF16> for V512<B> {
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
        let bits = _mm512_castps_si512(self.0);
        if B {
            // AVX512_BF16's `vcvtneps2bf16` rounds exactly as below (to
            // nearest even, NaNs truncated with the quiet bit set) except
            // that it flushes subnormals to zero: those lanes (exponent 0,
            // mantissa not) take the integer path, which rounds them.
            let exponent_0 = _mm512_testn_epi32_mask(bits, _mm512_set1_epi32(0x7f80_0000));
            let mantissa = _mm512_test_epi32_mask(bits, _mm512_set1_epi32(0x007f_ffff));
            if exponent_0 & mantissa == 0 {
                // SAFETY: `V512<true>` runs only under the entry point
                // enabling AVX512_BF16 (`Avx512Bf16`'s token); the caller
                // keeps the trait's contract: `p` is valid for the W
                // elements accessed.
                unsafe { _mm256_storeu_si256(p.cast(), narrow_bf16(self.0)) };
                return;
            }
        }
        // Round to nearest even: add 0x7fff plus the lowest kept bit; NaNs
        // keep their top bits with the quiet bit set.
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

/// `vcvtneps2bf16`: `x` narrowed to bf16, rounded to nearest even, NaNs
/// truncated with the quiet bit set, subnormals flushed to zero. Written
/// as `asm!` so as not to depend on the Rust release that made the
/// intrinsic stable.
///
/// # Safety
/// The CPU has AVX-512F and AVX512_BF16.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn narrow_bf16(x: __m512) -> __m256i {
    let h: __m256i;
    // SAFETY: the CPU has the instruction (this function's contract); it
    // reads and writes only these registers.
    unsafe {
        std::arch::asm!(
            "vcvtneps2bf16 {h}, {x}",
            h = lateout(ymm_reg) h,
            x = in(zmm_reg) x,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    h
}

// ---------------------------------------------------------- AVX2 + FMA + F16C

#[derive(Clone, Copy)]
pub(crate) struct V256(__m256);

impl Vector for V256 {
    const W: usize = 8;
    #[inline(always)]
    unsafe fn lane(self, i: usize) -> Self {
        V256(_mm256_permutevar8x32_ps(
            self.0,
            _mm256_set1_epi32(i as i32),
        ))
    }
    #[inline(always)]
    unsafe fn prefetch(p: *const u8) {
        // SAFETY: PREFETCHT1 (SSE, which every x86-64 CPU has) reads nothing
        // and never faults, whatever the address.
        unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
    }
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
    use super::super::blocked::butterfly;
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
            let f: [V512; 2] = [
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
