//! From a position's sum of squares to its factor `1 / denominator`, and the
//! exact path for the positions whose float32 sum cannot be trusted.
//!
//! Every fast path sums squares in f32. That sum is exact enough (relative
//! error about `channels · 2^-24`, see the tests' tolerance) while it is a
//! normal float comfortably above the underflow range. Outside it:
//!
//! * **Overflow**: a square overflows once `|x|` passes about 1.8e19, and the
//!   sum becomes `inf`, so a naive kernel turns finite inputs into zeros.
//! * **Underflow**: squares below `2^-149` vanish and those below `2^-126`
//!   lose bits, so the sum of a tiny vector is wrong or zero, which matters
//!   only when eps is small enough not to swamp the norm.
//!
//! Such positions (and NaN ones) are recomputed from their values in f64,
//! which holds every f32 square and sum, exactly as the reference does. The
//! factor can still fall outside f32 (a norm of 1e38 has a subnormal
//! inverse, a tiny norm with eps 0 an infinite one) or so close to its edge
//! that pass 2's `k · weight` overflows, so unless it lies in
//! `[2^-64, 2^64]` the position's values are first scaled in place by the
//! power of two nearest 1 that brings the remaining factor into that range:
//! `x · k = (x · 2^e) · (k · 2^-e)`, exact except for values whose result is
//! 0 in f32 anyway (see `invert_block`). Pass 2 then multiplies as usual.
//!
//! The check costs one comparison per position; ordinary inputs never take
//! the exact path.

use super::element::Element;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// How the sums of squares of one forward call become factors.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Norm {
    eps: f32,
    mode: EpsMode,
    /// The f32 sums the fast path trusts lie in `[low, high]`: below `low`
    /// a sum may have lost too much to underflow, or its factor may exceed
    /// 2^63; above `high` it may have overflowed, or its factor may be
    /// below 2^-63 (or, in the Caffe mode, `sum + eps` overflow). An eps
    /// that leaves no such sum (`low > high`) sends every position to the
    /// exact path.
    low: f32,
    high: f32,
}

impl Norm {
    pub(crate) fn new(eps: f32, mode: EpsMode, channels: usize) -> Norm {
        // Each square that underflows loses at most 2^-150, so a sum may be
        // short by `lost`. Below `low` that is more than 2^-25 of the sum.
        let lost = channels as f64 * 2f64.powi(-150);
        let underflow = (lost * 2f64.powi(25)).max(f64::from(f32::MIN_POSITIVE));
        // The denominator moves by at most sqrt(lost) (modes taking the
        // square root first) or lost (modes adding eps to the sum); when
        // that is under 2^-25 of eps, eps swamps the loss.
        let swamped = f64::from(eps) * 2f64.powi(-25) >= lost.sqrt().max(lost);
        let (tame_low, tame_high) = tame_sums(mode, f64::from(eps));
        let low = tame_low.max(if swamped { 0.0 } else { underflow });
        let high = tame_high.min(f64::from(f32::MAX));
        // Rounding the bounds inwards is not needed: they keep a factor of 2
        // from the range the fast path must stay in.
        Norm {
            eps,
            mode,
            low: low as f32,
            high: high as f32,
        }
    }

    pub(crate) fn eps(&self) -> f32 {
        self.eps
    }

    pub(crate) fn mode(&self) -> EpsMode {
        self.mode
    }

    /// Sums below this are untrusted (see [`untrusted`](Self::untrusted)).
    pub(crate) fn low(&self) -> f32 {
        self.low
    }

    /// Sums above this are untrusted (see [`untrusted`](Self::untrusted)).
    pub(crate) fn high(&self) -> f32 {
        self.high
    }

    /// A sum the f32 factor cannot be trusted for: outside `[low, high]`
    /// (overflowed, underflowed, or a factor outside `[2^-63, 2^63]`), or
    /// NaN.
    #[inline(always)]
    pub(crate) fn untrusted(&self, ss: f32) -> bool {
        !(ss >= self.low && ss <= self.high)
    }

    /// Whether any of `ss` is [`untrusted`](Self::untrusted); branch-free, so it vectorises.
    #[inline(always)]
    pub(crate) fn any_untrusted(&self, ss: &[f32]) -> bool {
        ss.iter().fold(false, |any, &s| any | self.untrusted(s))
    }

    /// Replaces each sum of squares by `1 / denominator`: one simple loop per
    /// mode, so each vectorises (sqrt and division are exact in every width).
    /// A NaN sum stays NaN in every mode, as in PyTorch.
    #[inline(always)]
    pub(crate) fn invert(&self, ss: &mut [f32]) {
        let eps = self.eps;
        match self.mode {
            EpsMode::Add => ss.iter_mut().for_each(|s| *s = 1.0 / (s.sqrt() + eps)),
            EpsMode::Caffe => ss.iter_mut().for_each(|s| *s = 1.0 / (*s + eps).sqrt()),
            EpsMode::Max => ss
                .iter_mut()
                .for_each(|s| *s = 1.0 / max_keep_nan(s.sqrt(), eps)),
            EpsMode::TensorFlow => ss
                .iter_mut()
                .for_each(|s| *s = 1.0 / max_keep_nan(*s, eps).sqrt()),
        }
    }

    /// `invert` for the sums of positions `p0, p0 + 1, ...` of `t`, taking
    /// the exact path for the untrusted ones.
    #[inline(always)]
    pub(crate) fn invert_at<E: Element>(
        &self,
        t: &mut TensorMut<'_, E>,
        p0: usize,
        ss: &mut [f32],
    ) {
        if self.any_untrusted(ss) {
            // A view of just these positions: `t` itself never reaches the
            // out-of-line code, so the hot loops can keep its fields in
            // registers across this call.
            self.invert_each(t.sub_positions(p0..p0 + ss.len()), ss);
        } else {
            self.invert(ss);
        }
    }

    #[cold]
    #[inline(never)]
    fn invert_each<E: Element>(&self, mut t: TensorMut<'_, E>, ss: &mut [f32]) {
        let p0 = t.positions().start;
        for (b, ss) in ss.chunks_mut(EXACT_BLOCK).enumerate() {
            let start = p0 + b * EXACT_BLOCK;
            self.invert_block(t.sub_positions(start..start + ss.len()), ss);
        }
    }

    /// The exact path for the positions of `t` (at most [`EXACT_BLOCK`])
    /// whose f32 sums `ss` are untrusted; the others invert as usual.
    ///
    /// Untrusted positions are summed again in f64, which holds every square
    /// of an f32 exactly (the order of the additions changes the f64 sum by
    /// about `channels · 2^-53` relative, far below the f32 result's
    /// rounding), walking each group's row, which is contiguous, rather than
    /// one position's values, which are a row apart. Where a factor lies
    /// outside `[2^-64, 2^64]` the position's values are then scaled in
    /// place by the power of two nearest 1 that brings it inside.
    fn invert_block<E: Element>(&self, mut t: TensorMut<'_, E>, ss: &mut [f32]) {
        let (p, n) = (t.positions(), ss.len());
        debug_assert!(n <= EXACT_BLOCK && p.len() == n);
        let (groups, lanes) = (t.layout().groups, t.layout().lanes);
        // The untrusted positions, by index into the block.
        let mut todo = [0u16; EXACT_BLOCK];
        let mut m = 0;
        for (i, &s) in ss.iter().enumerate() {
            if self.untrusted(s) {
                todo[m] = i as u16;
                m += 1;
            }
        }
        let todo = &todo[..m];
        // Their f64 sums, a group's row at a time: per group, its lanes
        // first. Only these positions are read, so a lone huge position
        // costs about what its own values do. When most positions of an
        // unpacked block take this path (a tensor of huge values), all of
        // them are summed instead, branch-free so the loop vectorises: the
        // same additions in the same order, and the trusted positions' sums
        // go unused.
        let dense = lanes == 1 && 2 * m >= n;
        let mut sums = [0.0f64; EXACT_BLOCK];
        for g in 0..groups {
            let row = t.row(g, p.clone());
            if dense {
                for (s, x) in sums.iter_mut().zip(row.iter()) {
                    *s += f64::from(x.to_f32()).powi(2);
                }
                continue;
            }
            for &i in todo {
                let i = usize::from(i);
                sums[i] += row[i * lanes..(i + 1) * lanes]
                    .iter()
                    .map(|x| f64::from(x.to_f32()).powi(2))
                    .sum::<f64>();
            }
        }
        // Each position's power-of-two scaling; exactly 1 for the positions
        // not scaled (a scaled one has a factor outside [2^-64, 2^64], so
        // its 2^e is at least 2 away from 1).
        let mut scales = [1.0f64; EXACT_BLOCK];
        let mut untrusted = todo.iter().map(|&i| usize::from(i)).peekable();
        for i in 0..n {
            if untrusted.next_if_eq(&i).is_none() {
                self.invert(&mut ss[i..i + 1]);
                continue;
            }
            let k = self.mode.inv_norm_f64(sums[i], f64::from(self.eps));
            if !(k.is_finite() && k > 0.0) || (2f64.powi(-64)..=2f64.powi(64)).contains(&k) {
                // NaN, an infinite norm (k = 0: x · 0, as the reference
                // does), or a factor as tame as the fast path's, so that
                // pass 2's `k · weight` cannot overflow where the result
                // would not.
                ss[i] = k as f32;
                continue;
            }
            // The power of two nearest 1 that brings the factor into
            // [2^-64, 2^64]. Huge values (k < 2^-64) are scaled down so the
            // factor lands in [2^-64, 2^-63): a scaled value that goes
            // subnormal, and loses bits, belongs to a result below
            // 2^-189 · |weight|, which is 0 in f32 for any weight within
            // 2^±20. Scaling only as far as that, not to a factor near 1,
            // keeps the small channels of a huge position normal, so that a
            // large weight still finds all their bits (bf16 storage rounds
            // a subnormal to 2^-133). Tiny values (k > 2^64) are scaled up,
            // which is exact, so the factor lands in (2^63, 2^64].
            let e = if k < 1.0 {
                k.log2().floor() as i32 + 64
            } else {
                k.log2().ceil() as i32 - 64
            };
            let scale = 2f64.powi(e);
            scales[i] = scale;
            ss[i] = (k / scale) as f32;
        }
        // The scaled positions, by index into the block.
        let mut scaled = [0u16; EXACT_BLOCK];
        let mut m = 0;
        for &i in todo {
            if scales[usize::from(i)] != 1.0 {
                scaled[m] = i;
                m += 1;
            }
        }
        if m == 0 {
            return;
        }
        for g in 0..groups {
            let row = t.row(g, p.clone());
            if dense {
                // Scaling by exactly 1 leaves a value as it was (a NaN may
                // come back quieted, in a position whose factor is NaN
                // anyway).
                for (x, &scale) in row.iter_mut().zip(&scales) {
                    *x = E::from_f32((f64::from(x.to_f32()) * scale) as f32);
                }
                continue;
            }
            for &i in &scaled[..m] {
                let (i, scale) = (usize::from(i), scales[usize::from(i)]);
                for x in &mut row[i * lanes..(i + 1) * lanes] {
                    *x = E::from_f32((f64::from(x.to_f32()) * scale) as f32);
                }
            }
        }
    }
}

/// Positions the exact path handles at once (its f64 sums live on the stack).
const EXACT_BLOCK: usize = 256;

/// The sums of squares whose denominator lies in `[2^-63, 2^63]` for this
/// mode and eps, as `(low, high)` (empty when `low > high`): their f32
/// factor is accurate and, times any weight within 2^±20, stays a normal
/// f32, with a factor of 2 to spare for the rounding of the sum, the bounds
/// and the denominator. Everything else takes the exact path, which scales
/// factors outside `[2^-64, 2^64]`.
fn tame_sums(mode: EpsMode, eps: f64) -> (f64, f64) {
    let (lo, hi) = (2f64.powi(-63), 2f64.powi(63));
    let never = (f64::INFINITY, f64::NEG_INFINITY);
    match mode {
        // sqrt(ss) + eps
        EpsMode::Add => {
            if eps > hi {
                return never;
            }
            let low = if eps >= lo { 0.0 } else { (lo - eps).powi(2) };
            (low, (hi - eps).powi(2))
        }
        // sqrt(ss + eps)
        EpsMode::Caffe => {
            if eps > hi * hi {
                return never;
            }
            ((lo * lo - eps).max(0.0), hi * hi - eps)
        }
        // max(sqrt(ss), eps)
        EpsMode::Max => {
            if eps > hi {
                return never;
            }
            (if eps >= lo { 0.0 } else { lo * lo }, hi * hi)
        }
        // sqrt(max(ss, eps))
        EpsMode::TensorFlow => {
            if eps > hi * hi {
                return never;
            }
            (if eps >= lo * lo { 0.0 } else { lo * lo }, hi * hi)
        }
    }
}

/// `max` that keeps a NaN in `a` (`f32::max` would return `b`).
#[inline(always)]
fn max_keep_nan(a: f32, b: f32) -> f32 {
    if a.is_nan() || a >= b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_sums_are_trusted() {
        let n = Norm::new(1e-10, EpsMode::Add, 512);
        assert!(!n.untrusted(1.0) && !n.untrusted(1e-20) && !n.untrusted(0.0));
        assert!(n.untrusted(f32::INFINITY) && n.untrusted(f32::NAN));
    }

    #[test]
    fn tiny_sums_are_untrusted_only_when_eps_cannot_swamp_them() {
        for mode in [
            EpsMode::Add,
            EpsMode::Caffe,
            EpsMode::Max,
            EpsMode::TensorFlow,
        ] {
            let n = Norm::new(0.0, mode, 512);
            assert!(n.untrusted(0.0) && n.untrusted(1e-40) && !n.untrusted(1e-30));
            let n = Norm::new(1e-12, mode, 512);
            assert!(!n.untrusted(0.0) && !n.untrusted(1e-40));
        }
    }
}
