//! Layer parameters: what a `.param` line says, checked once at load time.

use crate::error::{Float, L2NormError};

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
        Self::resolve(Some(channels), eps, eps_mode, channel_shared, weight_shape)
    }

    /// Checks the entries of an L2Norm layer's ncnn `ParamDict`, each with the
    /// type ncnn recorded for it: a param of the wrong type is an error, never
    /// its default (see [`ParamValue`] for what each param accepts).
    pub fn from_param_dict(dict: &LayerParamDict) -> Result<Self, L2NormError> {
        let channels = int_param(&dict.channels, 0, "channels")?;
        let eps = match &dict.eps {
            ParamValue::Absent => DEFAULT_EPS,
            ParamValue::Float(f) => *f,
            // ncnn reads an int written for a float param as that number (1=0).
            ParamValue::Int(i) => *i as f32,
            ParamValue::Untyped(bits) => f32::from_bits(*bits),
            other => {
                return Err(type_error(
                    1,
                    "eps",
                    other,
                    "a number, finite and >= 0 (for example 1=1e-10)",
                ))
            }
        };
        let eps_mode = int_param(&dict.eps_mode, 2, "eps_mode")?.unwrap_or(0);
        let channel_shared = int_param(&dict.channel_shared, 3, "channel_shared")?.unwrap_or(0);
        let weight_shape: Vec<i32> = match &dict.weight_shape {
            ParamValue::Absent => Vec::new(),
            ParamValue::IntArray(v) => v.clone(),
            ParamValue::UntypedArray(v) => v.iter().map(|&w| w as i32).collect(),
            other => {
                return Err(type_error(
                    10,
                    "weight shape",
                    other,
                    "an int array, as pnnx writes it (for example -23310=1,512)",
                ))
            }
        };
        Self::resolve(
            channels.map(i64::from),
            eps,
            eps_mode,
            channel_shared,
            &weight_shape,
        )
    }

    /// `channels`: `None` when param 0 is absent; `Some(c <= 0)` also lets the
    /// weight shape supply it.
    fn resolve(
        channels: Option<i64>,
        eps: f32,
        eps_mode: i32,
        channel_shared: i32,
        weight_shape: &[i32],
    ) -> Result<Self, L2NormError> {
        let bad_count = |got: i64| L2NormError::BadChannelCount {
            got,
            max: MAX_CHANNELS,
        };
        let from_shape = channels_from_weight_shape(weight_shape)?;
        let channels = match (channels, from_shape) {
            (Some(c), Some(s)) if c > 0 && c as u64 != s as u64 => {
                return Err(L2NormError::ChannelsDisagree {
                    channels: c as usize,
                    from_shape: s,
                })
            }
            (Some(c), _) if c > 0 => c,
            (_, Some(s)) => s as i64,
            (Some(c), None) => return Err(bad_count(c)),
            (None, None) => return Err(L2NormError::MissingChannels),
        };
        if channels < 1 || channels as u64 > MAX_CHANNELS as u64 {
            return Err(bad_count(channels));
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

/// One entry of an ncnn `ParamDict`, with the type ncnn recorded when it read
/// the `.param` line (`ParamDict::type`).
///
/// What each L2Norm param accepts: channels, eps_mode and channel_shared (ids
/// 0, 2, 3) an int; eps (1) a float or an int; the weight shape (10) an int
/// array. A binary `.param.bin` stores untyped 32-bit words, read as the type
/// the param documents.
#[derive(Debug, Clone, PartialEq)]
pub enum ParamValue {
    /// Not in the `.param` line: the param's default applies.
    Absent,
    Int(i32),
    Float(f32),
    /// A scalar from a `.param.bin`: 32 bits ncnn does not type.
    Untyped(u32),
    /// Anything ncnn could not read as a number: `nan`, `inf`, `abc`, `"0.5"`.
    String(String),
    IntArray(Vec<i32>),
    FloatArray(Vec<f32>),
    /// An array from a `.param.bin`, or an empty one: untyped 32-bit words.
    UntypedArray(Vec<u32>),
}

impl ParamValue {
    /// How the value reads in an error line: `the float 8`, `the string "nan"`.
    fn describe(&self) -> String {
        fn list<T: std::fmt::Display>(v: &[T]) -> String {
            let shown: Vec<String> = v.iter().take(8).map(|x| x.to_string()).collect();
            let more = if v.len() > 8 { ",..." } else { "" };
            format!("[{}{more}]", shown.join(","))
        }
        match self {
            ParamValue::Absent => "missing".to_string(),
            ParamValue::Int(i) => format!("the int {i}"),
            ParamValue::Float(f) => format!("the float {}", Float(*f)),
            ParamValue::Untyped(bits) => format!("the 32-bit value {bits:#010x}"),
            ParamValue::String(s) => format!("the string {s:?}"),
            ParamValue::IntArray(v) => format!("the int array {}", list(v)),
            ParamValue::FloatArray(v) => {
                let v: Vec<Float> = v.iter().map(|&f| Float(f)).collect();
                format!("the float array {}", list(&v))
            }
            ParamValue::UntypedArray(v) => format!("an array of {} values", v.len()),
        }
    }
}

/// The entries an L2Norm layer reads from its `ParamDict`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerParamDict {
    /// Param 0.
    pub channels: ParamValue,
    /// Param 1.
    pub eps: ParamValue,
    /// Param 2.
    pub eps_mode: ParamValue,
    /// Param 3.
    pub channel_shared: ParamValue,
    /// Param 10 (`-23310=` in a `.param` line).
    pub weight_shape: ParamValue,
}

impl Default for LayerParamDict {
    fn default() -> Self {
        LayerParamDict {
            channels: ParamValue::Absent,
            eps: ParamValue::Absent,
            eps_mode: ParamValue::Absent,
            channel_shared: ParamValue::Absent,
            weight_shape: ParamValue::Absent,
        }
    }
}

fn type_error(id: i32, name: &'static str, got: &ParamValue, wanted: &'static str) -> L2NormError {
    L2NormError::ParamType {
        id,
        name,
        got: got.describe(),
        wanted,
    }
}

/// An int param: `None` when absent.
fn int_param(v: &ParamValue, id: i32, name: &'static str) -> Result<Option<i32>, L2NormError> {
    match v {
        ParamValue::Absent => Ok(None),
        ParamValue::Int(i) => Ok(Some(*i)),
        ParamValue::Untyped(bits) => Ok(Some(*bits as i32)),
        other => Err(type_error(id, name, other, "an int")),
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
            Err(L2NormError::BadChannelCount {
                got: 0,
                max: MAX_CHANNELS
            })
        );
        assert_eq!(
            L2NormParams::from_raw(-3, 1e-10, 0, 0, &[]),
            Err(L2NormError::BadChannelCount {
                got: -3,
                max: MAX_CHANNELS
            })
        );
        assert!(matches!(
            L2NormParams::from_raw(1 << 21, 1e-10, 0, 0, &[]),
            Err(L2NormError::BadChannelCount { .. })
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

    fn dict(entries: &[(i32, ParamValue)]) -> LayerParamDict {
        let mut d = LayerParamDict::default();
        for (id, v) in entries {
            let slot = match id {
                0 => &mut d.channels,
                1 => &mut d.eps,
                2 => &mut d.eps_mode,
                3 => &mut d.channel_shared,
                _ => &mut d.weight_shape,
            };
            *slot = v.clone();
        }
        d
    }

    fn dict_error(entries: &[(i32, ParamValue)]) -> String {
        L2NormParams::from_param_dict(&dict(entries))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn param_dict_takes_each_param_in_its_documented_type() {
        use ParamValue::*;
        let p = L2NormParams::from_param_dict(&dict(&[
            (0, Int(16)),
            (1, Float(1e-6)),
            (2, Int(1)),
            (3, Int(0)),
        ]))
        .unwrap();
        assert_eq!((p.channels, p.eps, p.eps_mode), (16, 1e-6, EpsMode::Caffe));
        // An int where eps belongs is that number, as ncnn reads it.
        let p = L2NormParams::from_param_dict(&dict(&[(0, Int(16)), (1, Int(0))])).unwrap();
        assert_eq!(p.eps, 0.0);
        // A .param.bin's untyped words, read as the documented type.
        let p = L2NormParams::from_param_dict(&dict(&[
            (1, Untyped(0.5f32.to_bits())),
            (2, Untyped(3)),
            (10, UntypedArray(vec![1, 24])),
        ]))
        .unwrap();
        assert_eq!(
            (p.channels, p.eps, p.eps_mode),
            (24, 0.5, EpsMode::TensorFlow)
        );
        // Absent params take their defaults.
        let p = L2NormParams::from_param_dict(&dict(&[(10, IntArray(vec![1, 8]))])).unwrap();
        assert_eq!(p, L2NormParams::new(8).unwrap());
    }

    #[test]
    fn param_dict_refuses_other_types_naming_what_it_got() {
        use ParamValue::*;
        let c16 = (0, Int(16));
        assert_eq!(
            dict_error(&[c16.clone(), (1, String("nan".into()))]),
            "eps (param 1) is the string \"nan\"; it must be a number, finite and >= 0 (for example 1=1e-10)"
        );
        assert_eq!(
            dict_error(&[c16.clone(), (2, Float(1.0))]),
            "eps_mode (param 2) is the float 1; it must be an int"
        );
        assert_eq!(
            dict_error(&[c16.clone(), (3, Float(1.0))]),
            "channel_shared (param 3) is the float 1; it must be an int"
        );
        assert_eq!(
            dict_error(&[(0, Float(8.0))]),
            "channels (param 0) is the float 8; it must be an int"
        );
        assert_eq!(
            dict_error(&[(0, IntArray(vec![1, 2]))]),
            "channels (param 0) is the int array [1,2]; it must be an int"
        );
        assert_eq!(
            dict_error(&[(10, Int(16))]),
            "weight shape (param 10) is the int 16; it must be an int array, as pnnx writes it (for example -23310=1,512)"
        );
        assert_eq!(
            dict_error(&[(10, FloatArray(vec![f32::from_bits(1), f32::from_bits(16)]))]),
            "weight shape (param 10) is the float array [1e-45,2.2e-44]; it must be an int array, as pnnx writes it (for example -23310=1,512)"
        );
        assert_eq!(
            dict_error(&[]),
            "channels (param 0) is missing; give 0=C, or the weight shape as pnnx writes it (-23310=1,C)"
        );
        assert_eq!(
            dict_error(&[c16, (1, Float(-1e-30))]),
            "eps (param 1) is -1e-30; it must be finite and >= 0"
        );
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
