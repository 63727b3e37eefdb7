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

// The conversions below are branch-free: every case is computed, then one
// is picked by mask (`if` chains here compile to branches, and four lanes
// of branches do not vectorise). So four of them side by side become
// vector code: the portable path widens and narrows four values at a time
// with them, on aarch64 as on x86.

/// `if c { a } else { b }` as bit masks.
#[inline(always)]
fn pick(c: bool, a: u32, b: u32) -> u32 {
    let m = u32::from(c).wrapping_neg();
    (a & m) | (b & !m)
}

/// f32 to bf16, round to nearest, ties to even; NaN stays a (quiet) NaN.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let rounded = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16;
    let quiet = (bits >> 16) | 0x40;
    pick(x.is_nan(), quiet, rounded) as u16
}

/// Half to f32, exact (subnormals, infinities and NaN included).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let h = u32::from(h);
    let sign = (h & 0x8000) << 16;
    let em = h & 0x7fff; // exponent and mantissa
                         // Normal: the fields move up 13 bits and the exponent bias goes from
                         // 15 to 127. Infinity and NaN take the all-ones exponent.
    let normal = (em << 13) + ((127 - 15) << 23);
    let special = (em << 13) | 0x7f80_0000;
    // Subnormal (and zero): mantissa * 2^-24, exact; an integer conversion
    // and a power-of-two product, no subnormal f32 involved (so flushing
    // modes cannot touch it).
    let subnormal = (em as f32 * f32::from_bits(0x3380_0000)).to_bits(); // 2^-24
    let bits = pick(em < 0x0400, subnormal, pick(em >= 0x7c00, special, normal));
    f32::from_bits(sign | bits)
}

/// f32 to half, round to nearest, ties to even (overflow to infinity,
/// underflow through subnormals to zero; NaN stays NaN).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = (bits >> 16) & 0x8000;
    let abs = bits & 0x7fff_ffff;
    // Normal: rebias the exponent, round the 13 dropped mantissa bits (a
    // carry out of the mantissa moves the exponent up, to infinity past
    // 65504).
    let rebased = abs.wrapping_sub((127 - 15) << 23);
    let normal = rebased.wrapping_add(0x0fff + ((rebased >> 13) & 1)) >> 13;
    // Below 2^-14, the smallest normal half: adding 0.5 (whose ulp is
    // 2^-24, a half subnormal's unit) rounds |x| to a multiple of 2^-24,
    // ties to even, in the f32 addition itself; the sum's low bits count
    // the units (1024 when it rounds up to the smallest normal, which is
    // that normal's encoding).
    let half = 0x3f00_0000;
    let subnormal = (f32::from_bits(abs) + f32::from_bits(half))
        .to_bits()
        .wrapping_sub(half);
    let nan = 0x7e00 | ((abs >> 13) & 0x3ff);
    // From 65536 up (infinity too): beyond the largest half after rounding.
    let finite = pick(
        abs < 0x3880_0000,
        subnormal,
        pick(abs >= 0x4780_0000, 0x7c00, normal),
    );
    (sign | pick(abs > 0x7f80_0000, nan, finite)) as u16
}

/// f32s of every kind, for the conversion tests here and in the vector
/// paths: a prime stride through all 2^32 bit patterns (every sign and
/// exponent, varied mantissas, NaNs with payloads), every value within a
/// few ulps of each half and of each midpoint between halves, bf16 ties
/// and near-ties of both parities, and the infinities and extremes.
#[cfg(test)]
pub(crate) fn every_kind_of_f32() -> Vec<f32> {
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
    for top in [0x3f80u32, 0x3f81, 0x0000, 0x0001, 0x7f7f, 0x807f] {
        for low in [0x7fffu32, 0x8000, 0x8001] {
            xs.push(f32::from_bits((top << 16) | low));
        }
    }
    xs.extend([f32::INFINITY, f32::NEG_INFINITY, f32::MAX, f32::MIN]);
    xs
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

    /// The half nearest `x` (ties to the even encoding), found by search
    /// over the decoded values: an oracle that shares no code with
    /// `f32_to_f16` beyond the exhaustively tested `f16_to_f32`.
    fn nearest_half(x: f32) -> u16 {
        let sign = if x.is_sign_negative() { 0x8000 } else { 0 };
        let a = f64::from(x.abs());
        // The largest finite half is 65504; halfway to the next step
        // (65520) and beyond rounds to infinity.
        if a >= 65520.0 {
            return sign | 0x7c00;
        }
        // Positive halves 0..=0x7bff increase with their encoding.
        let (mut lo, mut hi) = (0u16, 0x7bff);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            if f64::from(f16_to_f32(mid)) <= a {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        let below = lo;
        let above = below + 1;
        let (db, da) = (
            a - f64::from(f16_to_f32(below)),
            f64::from(f16_to_f32(above)) - a,
        );
        let h = if db < da || (db == da && below & 1 == 0) {
            below
        } else {
            above
        };
        sign | h
    }

    #[test]
    fn half_rounds_every_kind_of_f32_to_nearest_even() {
        let xs = every_kind_of_f32();
        for x in xs {
            if x.is_nan() {
                assert!(f16_to_f32(f32_to_f16(x)).is_nan(), "{:#010x}", x.to_bits());
            } else {
                assert_eq!(
                    f32_to_f16(x),
                    nearest_half(x),
                    "{x:e} ({:#010x})",
                    x.to_bits()
                );
            }
        }
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
