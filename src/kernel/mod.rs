//! The L2Norm kernel: checks, work splitting, instruction-set dispatch.
//!
//! * [`self::reference`]: the f64 oracle.
//! * `blocked`: the register-blocked one-pass algorithm, over a vector
//!   trait that each code path implements:
//!   * `x86`: AVX-512F, AVX2+FMA+F16C and SSE2 intrinsics;
//!   * `neon`: aarch64's NEON intrinsics, with the hardware's fp16
//!     conversions;
//!   * `portable`: four lanes of plain Rust the compiler vectorises (any
//!     target).
//! * `tiled`: the same one-pass algorithm as simple slice loops, for
//!   elempacks that do not divide 16 (none of ncnn's).
//! * [`cpu`]: the CPU's vendor, model and cache sizes, which the tile size
//!   and a path choice derive from.
//! * `norm`: sums of squares to factors, with an exact path for sums that
//!   overflow or underflow f32.
//! * [`element`]: fp32 / fp16 / bf16 storage.
//!
//! [`Forward`] is what both the safe slice API and the C++ layer go through:
//! it checks a `Mat` description against the layer's parameters and weights
//! once, then runs any position range of it.

mod blocked;
pub mod cpu;
pub mod element;
#[cfg(target_arch = "aarch64")]
mod neon;
mod norm;
mod portable;
pub mod reference;
mod tiled;
#[cfg(target_arch = "x86_64")]
mod x86;

use std::ops::Range;
use std::sync::OnceLock;

use crate::error::L2NormError;
use crate::layout::{ChannelLayout, MatView, TensorMut};
use crate::params::L2NormParams;
use element::Element;
use norm::Norm;

/// The per-channel multiplier after normalisation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scale<'w> {
    Shared(f32),
    PerChannel(&'w [f32]),
}

impl Scale<'_> {
    #[inline(always)]
    pub(crate) fn weight(&self, channel: usize) -> f32 {
        match *self {
            Scale::Shared(w) => w,
            Scale::PerChannel(ws) => ws[channel],
        }
    }
}

/// The code paths the kernel can take. `Portable` is the one every target
/// has: plain Rust the compiler vectorises (NEON on aarch64, SSE2 on x86-64).
///
/// Ordered by vector width within each architecture's paths, the NEON ones
/// (128-bit registers, like `Sse2`) below the x86 ones, so that a cap names
/// a width: see [`selected`](Isa::selected).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    Portable,
    /// aarch64's Advanced SIMD, with fp16 storage converted by the hardware.
    Neon,
    /// `Neon` on a CPU with FEAT_FHM: pass 1 squares fp16 storage with
    /// `fmlal`, bit for bit the same results in fewer instructions.
    NeonFhm,
    Sse2,
    Avx2,
    Avx512,
    /// `Avx512` on a CPU with AVX512_BF16: bf16 storage is narrowed with
    /// `vcvtneps2bf16`, bit for bit the same results in fewer instructions.
    /// Other storage types run `Avx512`.
    Avx512Bf16,
}

impl Isa {
    /// Every path this CPU can run, slowest first.
    pub fn available() -> Vec<Isa> {
        let mut v = vec![Isa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if x86::Sse2::new().is_some() {
                v.push(Isa::Sse2);
            }
            if x86::Avx2::new().is_some() {
                v.push(Isa::Avx2);
            }
            if x86::Avx512::new().is_some() {
                v.push(Isa::Avx512);
            }
            if x86::Avx512Bf16::new().is_some() {
                v.push(Isa::Avx512Bf16);
            }
        }
        #[cfg(target_arch = "aarch64")]
        {
            if neon::Neon::new().is_some() {
                v.push(Isa::Neon);
            }
            if neon::NeonFhm::new().is_some() {
                v.push(Isa::NeonFhm);
            }
        }
        v
    }

    /// The path the layer uses: the best this CPU has, or the one named by
    /// `NCNN_L2NORM_ISA` (`portable`, `neon`, `neon+fhm`, `sse2`, `avx2`,
    /// `avx512`, `avx512+bf16`), capped at what the CPU has: the best
    /// available path that does not come after it. So `avx512` on an aarch64 CPU runs the best
    /// NEON path, and `neon` on x86-64 runs `portable` (the 128-bit path it
    /// has). Decided once per process.
    pub fn selected() -> Isa {
        static SELECTED: OnceLock<Isa> = OnceLock::new();
        *SELECTED.get_or_init(|| {
            let wanted = std::env::var("NCNN_L2NORM_ISA")
                .ok()
                .and_then(|v| Isa::from_name(&v));
            Isa::capped(&Isa::available(), wanted)
        })
    }

    /// The last of `available` (slowest first, `Portable` first) that does
    /// not come after `wanted`.
    fn capped(available: &[Isa], wanted: Option<Isa>) -> Isa {
        available
            .iter()
            .copied()
            .rev()
            .find(|&isa| wanted.is_none_or(|w| isa <= w))
            .unwrap_or(Isa::Portable)
    }

    pub fn from_name(name: &str) -> Option<Isa> {
        match name.trim().to_ascii_lowercase().as_str() {
            // `scalar`: this path's name before it was vectorised.
            "portable" | "scalar" => Some(Isa::Portable),
            "neon" => Some(Isa::Neon),
            "neon+fhm" | "neon-fhm" => Some(Isa::NeonFhm),
            "sse2" => Some(Isa::Sse2),
            "avx2" => Some(Isa::Avx2),
            "avx512" | "avx512f" => Some(Isa::Avx512),
            "avx512+bf16" | "avx512f+bf16" | "avx512-bf16" => Some(Isa::Avx512Bf16),
            _ => None,
        }
    }

    /// The path this one runs for tensors stored as `storage`:
    /// `Avx512Bf16` differs from `Avx512` only in narrowing to bf16, so
    /// fp32 and fp16 tensors run `Avx512` under it; every other path runs
    /// itself.
    pub fn for_storage(self, storage: element::Storage) -> Isa {
        match self {
            Isa::Avx512Bf16 if storage != element::Storage::BF16 => Isa::Avx512,
            isa => isa,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Isa::Portable => "portable",
            Isa::Neon => "neon",
            Isa::NeonFhm => "neon+fhm",
            Isa::Sse2 => "sse2",
            Isa::Avx2 => "avx2+fma+f16c",
            Isa::Avx512 => "avx512f",
            Isa::Avx512Bf16 => "avx512f+bf16",
        }
    }
}

/// Bytes of tensor below which a further thread costs more (waking it,
/// sharing the work) than it saves.
const MIN_BYTES_PER_CHUNK: usize = 256 * 1024;

/// Bytes of one tile across all channels: kept within L2 so pass 2 finds it.
const TILE_BYTES: usize = 128 * 1024;

/// A checked forward call: input shape, parameters and weights agree.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'w> {
    layout: ChannelLayout,
    norm: Norm,
    scale: Scale<'w>,
    elem_bytes: usize,
}

impl<'w> Forward<'w> {
    /// Checks a `Mat` of element type `E` (f32, [`element::F16`], [`element::BF16`]).
    pub fn new<E: Element>(
        view: &MatView,
        params: &L2NormParams,
        weights: &'w [f32],
    ) -> Result<Self, L2NormError> {
        params.check_weights(weights)?;
        let layout = view.layout(E::STORAGE)?;
        if layout.channels() != params.channels {
            return Err(L2NormError::ChannelMismatch {
                expected: params.channels,
                got: layout.channels(),
            });
        }
        let scale = if params.channel_shared {
            Scale::Shared(weights[0])
        } else {
            Scale::PerChannel(weights)
        };
        Ok(Forward {
            layout,
            norm: Norm::new(params.eps, params.eps_mode, params.channels),
            scale,
            elem_bytes: E::STORAGE.bytes(),
        })
    }

    pub fn layout(&self) -> &ChannelLayout {
        &self.layout
    }

    /// Bytes of channel values (padding excluded).
    fn tensor_bytes(&self) -> usize {
        self.layout.channels() * self.layout.positions * self.elem_bytes
    }

    /// How many chunks to split the positions into for `num_threads` threads.
    pub fn chunks(&self, num_threads: i32) -> usize {
        let bytes = self.tensor_bytes();
        let by_size = (bytes / MIN_BYTES_PER_CHUNK).min(self.layout.positions / 16);
        (num_threads.max(1) as usize).min(by_size).max(1)
    }

    /// Positions of chunk `i` of `n`: contiguous, nearly equal, and starting on
    /// a multiple of 16 positions so threads do not share cache lines.
    pub fn chunk_positions(&self, i: usize, n: usize) -> Range<usize> {
        let total = self.layout.positions;
        let boundary = |k: usize| {
            if k >= n {
                total
            } else {
                ((total * k / n) & !15).min(total)
            }
        };
        boundary(i)..boundary(i + 1)
    }

    /// Where AVX-512 is asked for, whether AVX2 runs this tensor instead.
    /// Unpacked rows start wherever `cstep` puts them, so most 64-byte loads
    /// straddle two cache lines; 32-byte ones do half as often. That won
    /// while the tensor fits in L2 (measured on an Intel Xeon with the
    /// threshold at 2 MiB; it is now `cpu::cache_resident_bytes`); larger
    /// ones stream from L3 or memory and gain more from AVX-512's longer
    /// runs per row (512x64x64: 40% faster; 1024x19x19, 1.5 MB: 0.91-0.97x
    /// Normalize against 1.00-1.03x with AVX2, 0.82-0.97x against
    /// 0.91-1.18x on 2 threads). Not for bf16: AVX2 lacks AVX-512's
    /// one-instruction narrowing to 16 bits, and rounding to bf16 without it
    /// costs more than the straddling (1024x19x19 bf16: 0.10-0.16 ms on
    /// AVX-512 against 0.22-0.30 on AVX2; fp16 has F16C and stays 30% faster
    /// on AVX2).
    #[cfg(target_arch = "x86_64")]
    fn avx2_rather_than_avx512<E: Element>(&self) -> bool {
        self.layout.lanes == 1
            && E::STORAGE != element::Storage::BF16
            && self.tensor_bytes() < cpu::cache_resident_bytes()
            && x86::Avx2::new().is_some()
    }

    /// The path [`run_on`](Self::run_on)`(isa, ..)` takes for this tensor:
    /// `isa`, or AVX2 where AVX-512 is asked for an L2-resident unpacked
    /// one, or `Portable` where the CPU lacks `isa` or the elempack does
    /// not divide 16 (then simple tiled loops). The benchmarks record it
    /// beside every row.
    pub fn path_on<E: Element>(&self, isa: Isa) -> Isa {
        if 16 % self.layout.lanes != 0 || !Isa::available().contains(&isa) {
            return Isa::Portable;
        }
        let isa = isa.for_storage(E::STORAGE);
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && self.avx2_rather_than_avx512::<E>() {
            return Isa::Avx2;
        }
        isa
    }

    /// Normalises the positions `t` covers, on the selected instruction set.
    pub fn run<E: Element>(&self, t: &mut TensorMut<'_, E>) {
        self.run_on(Isa::selected(), t)
    }

    /// Normalises the positions `t` covers on `isa` (the portable path when
    /// this CPU lacks it). Tests use it to check every path.
    pub fn run_on<E: Element>(&self, isa: Isa, t: &mut TensorMut<'_, E>) {
        debug_assert_eq!(*t.layout(), self.layout);
        let (scale, norm) = (self.scale, self.norm);
        let lanes = self.layout.lanes;
        #[cfg(target_arch = "x86_64")]
        match isa.for_storage(E::STORAGE) {
            // The x86 paths handle elempacks that divide 16 (all of ncnn's).
            _ if 16 % lanes != 0 => {}
            Isa::Avx512Bf16 => {
                if let Some(token) = x86::Avx512Bf16::new() {
                    // SAFETY: E is BF16 (`for_storage` leaves Avx512Bf16
                    // only for bf16, and Element is sealed), and the token
                    // exists only on a CPU with AVX-512F and AVX512_BF16.
                    return unsafe {
                        x86::normalize_avx512_bf16(
                            token,
                            cast_tensor::<E, element::BF16>(t),
                            scale,
                            norm,
                        )
                    };
                }
            }
            Isa::Avx512 if self.avx2_rather_than_avx512::<E>() => {
                return self.run_on(Isa::Avx2, t);
            }
            Isa::Avx512 => {
                if let Some(token) = x86::Avx512::new() {
                    // SAFETY: the token exists only on a CPU with AVX-512F.
                    return unsafe { x86_avx512(token, t, scale, norm) };
                }
            }
            Isa::Avx2 => {
                if let Some(token) = x86::Avx2::new() {
                    // SAFETY: the token exists only on a CPU with AVX2, FMA and F16C.
                    return unsafe { x86_avx2(token, t, scale, norm) };
                }
            }
            Isa::Sse2 => {
                if let Some(token) = x86::Sse2::new() {
                    // SAFETY: the token exists only on a CPU with SSE2.
                    return unsafe { x86_sse2(token, t, scale, norm) };
                }
            }
            Isa::Portable | Isa::Neon | Isa::NeonFhm => {}
        }
        #[cfg(target_arch = "aarch64")]
        match isa {
            // NEON handles elempacks that divide 16 (all of ncnn's), as
            // x86's paths do.
            _ if 16 % lanes != 0 => {}
            Isa::Neon => {
                if let Some(token) = neon::Neon::new() {
                    // SAFETY: the token exists only on a CPU with NEON.
                    return unsafe { neon_entry(token, t, scale, norm) };
                }
            }
            Isa::NeonFhm => {
                if let Some(token) = neon::NeonFhm::new() {
                    // SAFETY: the token exists only on a CPU with NEON and FHM.
                    return unsafe { neon_fhm_entry(token, t, scale, norm) };
                }
            }
            _ => {}
        }
        let _ = isa;
        if 16 % lanes == 0 {
            return portable::normalize(t, scale, norm);
        }
        let tile =
            tiled::tile_positions(self.layout.channels(), lanes, self.elem_bytes, TILE_BYTES);
        tiled::normalize(t, scale, norm, tile)
    }
}

/// Monomorphises an instruction set's entry point for whichever element
/// type `E` is.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
macro_rules! isa_entry {
    ($name:ident, $token:ty, $entry:path) => {
        /// # Safety
        /// `token` proves the CPU features; see the entry point.
        unsafe fn $name<E: Element>(
            token: $token,
            t: &mut TensorMut<'_, E>,
            scale: Scale<'_>,
            norm: Norm,
        ) {
            use element::Storage;
            // The element type is one of three; reinterpret the tensor as it.
            // SAFETY (each arm): E::STORAGE names E exactly (Element is
            // sealed), so each cast changes the type to itself, and `token`
            // proves the entry point's CPU features.
            match E::STORAGE {
                Storage::F32 => unsafe { $entry(token, cast_tensor::<E, f32>(t), scale, norm) },
                Storage::F16 => unsafe {
                    $entry(token, cast_tensor::<E, element::F16>(t), scale, norm)
                },
                Storage::BF16 => unsafe {
                    $entry(token, cast_tensor::<E, element::BF16>(t), scale, norm)
                },
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
isa_entry!(x86_avx512, x86::Avx512, x86::normalize_avx512);
#[cfg(target_arch = "x86_64")]
isa_entry!(x86_avx2, x86::Avx2, x86::normalize_avx2);
#[cfg(target_arch = "x86_64")]
isa_entry!(x86_sse2, x86::Sse2, x86::normalize_sse2);
#[cfg(target_arch = "aarch64")]
isa_entry!(neon_entry, neon::Neon, neon::normalize_neon);
#[cfg(target_arch = "aarch64")]
isa_entry!(neon_fhm_entry, neon::NeonFhm, neon::normalize_neon_fhm);

/// Views a tensor of `A` as one of `B`.
///
/// # Safety
/// `A` and `B` must be the same type.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
unsafe fn cast_tensor<'t, 'a, A: Element, B: Element>(
    t: &'t mut TensorMut<'a, A>,
) -> &'t mut TensorMut<'a, B> {
    debug_assert_eq!(std::any::TypeId::of::<A>(), std::any::TypeId::of::<B>());
    // SAFETY: A and B are the same type by the caller's promise.
    unsafe { &mut *(t as *mut TensorMut<'a, A>).cast::<TensorMut<'a, B>>() }
}

/// Normalises, in place, the tensor `view` describes inside `data`.
///
/// `data` holds the `Mat`'s buffer as elements of `E` (f32, or
/// [`element::F16`] / [`element::BF16`] for 16-bit storage; padding between
/// channel groups included and left untouched). Runs on the calling thread.
///
/// ```
/// use ncnn_l2norm::{l2norm_inplace, L2NormParams, MatView};
/// // 2 channels, 3 positions (a 1 x 3 image), no channel padding.
/// let view = MatView::dims3(3, 1, 2, 1).with_cstep(3);
/// let mut x = [3.0f32, 0.0, 1.0, 4.0, 0.0, 0.0];
/// l2norm_inplace(&mut x, &view, &L2NormParams::new(2).unwrap(), &[20.0, 20.0]).unwrap();
/// assert!((x[0] - 12.0).abs() < 1e-5 && (x[3] - 16.0).abs() < 1e-5);
/// assert_eq!(x[1], 0.0);
/// ```
pub fn l2norm_inplace<E: Element>(
    data: &mut [E],
    view: &MatView,
    params: &L2NormParams,
    weights: &[f32],
) -> Result<(), L2NormError> {
    let forward = Forward::new::<E>(view, params, weights)?;
    let mut t = TensorMut::from_slice(data, forward.layout)?;
    forward.run(&mut t);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Isa;

    #[test]
    fn a_cap_runs_the_best_path_up_to_it() {
        use Isa::*;
        let x86 = [Portable, Sse2, Avx2, Avx512];
        let arm = [Portable, Neon];
        assert_eq!(Isa::capped(&x86, None), Avx512);
        assert_eq!(Isa::capped(&x86, Some(Avx2)), Avx2);
        assert_eq!(Isa::capped(&x86[..2], Some(Avx512)), Sse2);
        // NEON is four lanes: on x86 the four-lane path it has is portable.
        assert_eq!(Isa::capped(&x86, Some(Neon)), Portable);
        assert_eq!(Isa::capped(&arm, None), Neon);
        assert_eq!(Isa::capped(&arm, Some(Portable)), Portable);
        assert_eq!(Isa::capped(&arm, Some(Avx512)), Neon);
        assert_eq!(Neon.name(), "neon");
        assert_eq!(Isa::from_name(" NEON "), Some(Neon));
        // FEAT_FHM's path caps to plain NEON when asked for `neon`.
        let fhm = [Portable, Neon, NeonFhm];
        assert_eq!(Isa::capped(&fhm, None), NeonFhm);
        assert_eq!(Isa::capped(&fhm, Some(Neon)), Neon);
        assert_eq!(Isa::capped(&fhm, Some(Avx512)), NeonFhm);
        assert_eq!(Isa::from_name("neon+fhm").map(Isa::name), Some("neon+fhm"));
    }
}
