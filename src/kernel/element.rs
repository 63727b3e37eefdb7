//! Storage types of a `Mat`'s elements: fp32, fp16 and bf16. The kernel
//! always computes in f32; 16-bit storage is widened on load and rounded to
//! nearest (ties to even) on store.

/// An element type the kernel reads and writes. Sealed: f32, [`F16`], [`BF16`].
pub trait Element: Copy + Send + Sync + 'static + private::Sealed {
    /// The storage type as the bridge names it.
    const STORAGE: Storage;
    fn to_f32(self) -> f32;
    fn from_f32(x: f32) -> Self;
}

/// Which element type a `Mat` holds (ncnn tells fp16 from bf16 by its options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    F32,
    F16,
    BF16,
}

impl Storage {
    /// Bytes per channel value.
    pub fn bytes(self) -> usize {
        match self {
            Storage::F32 => 4,
            Storage::F16 | Storage::BF16 => 2,
        }
    }
}

/// IEEE 754 half precision, as ncnn stores it with `use_fp16_storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct F16(pub u16);

/// bfloat16 (the top half of an f32), as ncnn stores it with `use_bf16_storage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct BF16(pub u16);

mod private {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for super::F16 {}
    impl Sealed for super::BF16 {}
}

impl Element for f32 {
    const STORAGE: Storage = Storage::F32;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        x
    }
}

impl Element for F16 {
    const STORAGE: Storage = Storage::F16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f16_to_f32(self.0)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        F16(f32_to_f16(x))
    }
}

impl Element for BF16 {
    const STORAGE: Storage = Storage::BF16;
    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits(u32::from(self.0) << 16)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> Self {
        BF16(f32_to_bf16(x))
    }
}

/// f32 to bf16, round to nearest, ties to even; NaN stays a (quiet) NaN.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let rounding = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(rounding) >> 16) as u16
}

/// Half to f32, exact (subnormals, infinities and NaN included).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from(h >> 10) & 0x1f;
    let man = u32::from(h) & 0x3ff;
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: man * 2^-24, exact in f32.
        (0, m) => {
            let v = m as f32 * f32::from_bits(0x3380_0000); // m * 2^-24
            return if sign != 0 { -v } else { v };
        }
        (0x1f, m) => sign | 0x7f80_0000 | (m << 13),
        (e, m) => sign | ((e + 127 - 15) << 23) | (m << 13),
    };
    f32::from_bits(bits)
}

/// f32 to half, round to nearest, ties to even (overflow to infinity,
/// underflow through subnormals to zero; NaN stays NaN).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let abs = bits & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        // Inf stays inf; NaN keeps a quiet payload bit.
        return sign
            | 0x7c00
            | if abs > 0x7f80_0000 {
                0x200 | ((abs >> 13) & 0x3ff) as u16
            } else {
                0
            };
    }
    if abs >= 0x4780_0000 {
        // >= 65536: beyond the largest half after rounding.
        return sign | 0x7c00;
    }
    if abs < 0x3880_0000 {
        // Below the smallest normal half (2^-14): a subnormal or zero.
        // Scale so the result's units are 2^-24 and round to nearest even.
        let v = f32::from_bits(abs) * f32::from_bits(0x4b80_0000); // * 2^24
        return sign | round_half_even(v) as u16;
    }
    // Normal: rebias the exponent, round the 13 dropped mantissa bits.
    let rebased = abs - ((127 - 15) << 23);
    let rounding = 0x0fff + ((rebased >> 13) & 1);
    sign | ((rebased + rounding) >> 13) as u16
}

#[inline(always)]
fn round_half_even(v: f32) -> u32 {
    let floor = v as u32; // v >= 0 and < 2^10 here
    let frac = v - floor as f32;
    if frac > 0.5 || (frac == 0.5 && floor & 1 == 1) {
        floor + 1
    } else {
        floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_round_trips_every_value() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "{h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn half_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8001), -(2f32.powi(-24)));
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds up to infinity
        assert_eq!(f32_to_f16(65519.0), 0x7bff);
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00); // tie to even
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02); // tie to even
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0); // tie to even zero
        assert_eq!(f32_to_f16(3.0 * 2f32.powi(-25)), 2);
        assert_eq!(f32_to_f16(1e-10), 0);
    }

    #[test]
    fn bf16_rounds_to_nearest_even() {
        assert_eq!(f32_to_bf16(1.0), 0x3f80);
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8000)), 0x3f80); // tie, even stays
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f81_8000)), 0x3f82); // tie, odd rounds up
        assert_eq!(f32_to_bf16(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert!(BF16(f32_to_bf16(f32::NAN)).to_f32().is_nan());
        assert_eq!(f32_to_bf16(f32::INFINITY), 0x7f80);
        for b in (0..=u16::MAX).step_by(7) {
            let f = BF16(b).to_f32();
            if !f.is_nan() {
                assert_eq!(f32_to_bf16(f), b);
            }
        }
    }
}
