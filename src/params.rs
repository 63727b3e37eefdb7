//! Layer parameters: what a `.param` line says, checked once at load time.

use crate::error::L2NormError;

/// Largest channel count a layer accepts. It bounds the weight allocation a
/// malformed `.param` can ask for (4 MiB of fp32); real detectors stay far below
/// (VGG's conv4_3 has 512).
pub const MAX_CHANNELS: usize = 1 << 20;

/// Default eps: mmdetection's and ssd.pytorch's `L2Norm`.
pub const DEFAULT_EPS: f32 = 1e-10;

/// Where eps enters the norm. `ss` is the sum of squares over channels at one
/// position; the output is `weight[c] * x[c] / denominator`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpsMode {
    /// `sqrt(ss) + eps`: mmdetection and ssd.pytorch `L2Norm` (param 2=0, the default).
    Add,
    /// `sqrt(ss + eps)`: Caffe SSD's Normalize, ncnn `Normalize` eps_mode 0 (2=1).
    Caffe,
    /// `max(sqrt(ss), eps)`: PyTorch `F.normalize`, ncnn `Normalize` eps_mode 1 (2=2).
    Max,
    /// `sqrt(max(ss, eps))`: TensorFlow `l2_normalize`, ncnn `Normalize` eps_mode 2 (2=3).
    TensorFlow,
}

impl EpsMode {
    /// The value of param 2 for each mode.
    pub fn from_param(v: i32) -> Result<Self, L2NormError> {
        match v {
            0 => Ok(EpsMode::Add),
            1 => Ok(EpsMode::Caffe),
            2 => Ok(EpsMode::Max),
            3 => Ok(EpsMode::TensorFlow),
            other => Err(L2NormError::BadEpsMode(other)),
        }
    }

    pub fn to_param(self) -> i32 {
        match self {
            EpsMode::Add => 0,
            EpsMode::Caffe => 1,
            EpsMode::Max => 2,
            EpsMode::TensorFlow => 3,
        }
    }

    /// `1 / denominator` in f64 (the reference). A NaN sum stays NaN in
    /// every mode, as in PyTorch (`clamp_min` propagates NaN; `f64::max` would not).
    pub fn inv_norm_f64(self, ss: f64, eps: f64) -> f64 {
        let max_nan = |a: f64, b: f64| if a.is_nan() || a >= b { a } else { b };
        let denom = match self {
            EpsMode::Add => ss.sqrt() + eps,
            EpsMode::Caffe => (ss + eps).sqrt(),
            EpsMode::Max => max_nan(ss.sqrt(), eps),
            EpsMode::TensorFlow => max_nan(ss, eps).sqrt(),
        };
        1.0 / denom
    }
}

/// Checked parameters of one L2Norm layer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct L2NormParams {
    /// Channels of the input (and weights, unless `channel_shared`).
    pub channels: usize,
    pub eps: f32,
    pub eps_mode: EpsMode,
    /// One weight scales every channel.
    pub channel_shared: bool,
}

impl L2NormParams {
    /// mmdetection's `L2Norm(channels)`: eps 1e-10 added to the norm, one weight per channel.
    pub fn new(channels: usize) -> Result<Self, L2NormError> {
        Self::from_raw(channels as i64, DEFAULT_EPS, 0, 0, &[])
    }

    /// Checks the values read from a `.param` line.
    ///
    /// `channels <= 0` means "not given"; then `weight_shape` (param 10, as
    /// pnnx writes a module's weight shape) must supply it.
    pub fn from_raw(
        channels: i64,
        eps: f32,
        eps_mode: i32,
        channel_shared: i32,
        weight_shape: &[i32],
    ) -> Result<Self, L2NormError> {
        let from_shape = channels_from_weight_shape(weight_shape)?;
        let channels = match (channels, from_shape) {
            (c, Some(s)) if c > 0 && c as u64 != s as u64 => {
                return Err(L2NormError::ChannelsDisagree {
                    channels: c as usize,
                    from_shape: s,
                })
            }
            (c, _) if c > 0 => c,
            (_, Some(s)) => s as i64,
            (c, None) => return Err(L2NormError::BadChannelCount(c)),
        };
        if channels < 1 || channels as u64 > MAX_CHANNELS as u64 {
            return Err(L2NormError::BadChannelCount(channels));
        }
        if !(eps.is_finite() && eps >= 0.0) {
            return Err(L2NormError::BadEps(eps));
        }
        let eps_mode = EpsMode::from_param(eps_mode)?;
        let channel_shared = match channel_shared {
            0 => false,
            1 => true,
            other => return Err(L2NormError::BadChannelShared(other)),
        };
        Ok(L2NormParams {
            channels: channels as usize,
            eps,
            eps_mode,
            channel_shared,
        })
    }

    /// How many fp32 weights the `.bin` holds for this layer.
    pub fn weight_count(&self) -> usize {
        if self.channel_shared {
            1
        } else {
            self.channels
        }
    }

    pub fn check_weights(&self, weights: &[f32]) -> Result<(), L2NormError> {
        let expected = self.weight_count();
        if weights.len() != expected {
            return Err(L2NormError::WeightCount {
                expected,
                got: weights.len(),
            });
        }
        Ok(())
    }
}

/// Channel count from a weight shape: `[C]`, `[1,C]`, `[1,C,1]` or `[1,C,1,1]`
/// (how PyTorch modules shape a per-channel scale). `None` when no shape is given.
fn channels_from_weight_shape(shape: &[i32]) -> Result<Option<usize>, L2NormError> {
    let bad = || L2NormError::BadWeightShape {
        shape: shape.to_vec(),
    };
    let c = match shape {
        [] => return Ok(None),
        [c] => *c,
        [1, c] | [1, c, 1] | [1, c, 1, 1] => *c,
        _ => return Err(bad()),
    };
    if c < 1 || c as u64 > MAX_CHANNELS as u64 {
        return Err(bad());
    }
    Ok(Some(c as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_mmdetection() {
        let p = L2NormParams::new(512).unwrap();
        assert_eq!(p.eps, 1e-10);
        assert_eq!(p.eps_mode, EpsMode::Add);
        assert_eq!(p.weight_count(), 512);
    }

    #[test]
    fn rejects_bad_values() {
        assert_eq!(
            L2NormParams::from_raw(0, 1e-10, 0, 0, &[]),
            Err(L2NormError::BadChannelCount(0))
        );
        assert_eq!(
            L2NormParams::from_raw(-3, 1e-10, 0, 0, &[]),
            Err(L2NormError::BadChannelCount(-3))
        );
        assert!(matches!(
            L2NormParams::from_raw(1 << 21, 1e-10, 0, 0, &[]),
            Err(L2NormError::BadChannelCount(_))
        ));
        assert_eq!(
            L2NormParams::from_raw(8, -1.0, 0, 0, &[]),
            Err(L2NormError::BadEps(-1.0))
        );
        assert!(matches!(
            L2NormParams::from_raw(8, f32::NAN, 0, 0, &[]),
            Err(L2NormError::BadEps(_))
        ));
        assert_eq!(
            L2NormParams::from_raw(8, 1e-10, 4, 0, &[]),
            Err(L2NormError::BadEpsMode(4))
        );
        assert_eq!(
            L2NormParams::from_raw(8, 1e-10, 0, 2, &[]),
            Err(L2NormError::BadChannelShared(2))
        );
    }

    #[test]
    fn weight_shape_supplies_or_checks_channels() {
        for shape in [&[64][..], &[1, 64], &[1, 64, 1], &[1, 64, 1, 1]] {
            assert_eq!(
                L2NormParams::from_raw(0, 1e-10, 0, 0, shape)
                    .unwrap()
                    .channels,
                64
            );
        }
        assert_eq!(
            L2NormParams::from_raw(32, 1e-10, 0, 0, &[1, 64, 1, 1]),
            Err(L2NormError::ChannelsDisagree {
                channels: 32,
                from_shape: 64
            })
        );
        assert!(matches!(
            L2NormParams::from_raw(0, 1e-10, 0, 0, &[2, 64]),
            Err(L2NormError::BadWeightShape { .. })
        ));
        assert!(matches!(
            L2NormParams::from_raw(0, 1e-10, 0, 0, &[1, 64, 3, 3]),
            Err(L2NormError::BadWeightShape { .. })
        ));
        assert!(matches!(
            L2NormParams::from_raw(0, 1e-10, 0, 0, &[0]),
            Err(L2NormError::BadWeightShape { .. })
        ));
    }

    #[test]
    fn shared_scale_has_one_weight() {
        let p = L2NormParams::from_raw(16, 1e-10, 0, 1, &[]).unwrap();
        assert_eq!(p.weight_count(), 1);
        assert!(p.check_weights(&[20.0]).is_ok());
        assert_eq!(
            p.check_weights(&[1.0; 16]),
            Err(L2NormError::WeightCount {
                expected: 1,
                got: 16
            })
        );
    }
}
