//! Errors of the L2Norm layer and kernel, and the ncnn return code each maps to.

use thiserror::Error;

/// Everything that can be wrong with an L2Norm layer's parameters, weights or input.
///
/// The `Display` text is what the C++ layer logs with `NCNN_LOGE`, after the
/// layer's name, so it names the offending value and what was expected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum L2NormError {
    #[error("channels (param 0) is {0}; it must be between 1 and {max}", max = crate::params::MAX_CHANNELS)]
    BadChannelCount(i64),
    #[error("eps (param 1) is {0}; it must be finite and >= 0")]
    BadEps(f32),
    #[error(
        "eps_mode (param 2) is {0}; expected 0 (add), 1 (caffe), 2 (F.normalize) or 3 (tensorflow)"
    )]
    BadEpsMode(i32),
    #[error("channel_shared (param 3) is {0}; expected 0 or 1")]
    BadChannelShared(i32),
    #[error("weight shape (param 10) is {shape:?}; expected [C], [1,C], [1,C,1] or [1,C,1,1] with C matching channels")]
    BadWeightShape { shape: Vec<i32> },
    #[error("channels (param 0) is {channels} but the weight shape (param 10) says {from_shape}")]
    ChannelsDisagree { channels: usize, from_shape: usize },
    #[error("expected {expected} fp32 weights, got {got}")]
    WeightCount { expected: usize, got: usize },
    #[error("weights missing: the .bin ended before {expected} fp32 weights could be read")]
    TruncatedWeights { expected: usize },
    #[error("input is empty")]
    EmptyInput,
    #[error("input has dims={0}; L2Norm handles dims 1 to 4")]
    UnsupportedDims(i32),
    #[error("input has {got} channels but the layer was loaded with {expected}")]
    ChannelMismatch { expected: usize, got: usize },
    #[error(
        "input has elemsize {elemsize} with elempack {elempack}, which is not {storage:?} storage"
    )]
    UnsupportedStorage {
        elemsize: usize,
        elempack: i32,
        storage: crate::kernel::element::Storage,
    },
    #[error("input has 2-byte elements but the options enable neither fp16 nor bf16 storage")]
    UnknownStorage,
    #[error("input shape is inconsistent: {0}")]
    BadShape(String),
    #[error("input buffer holds {got} elements but its shape needs {needed}")]
    BufferTooSmall { needed: usize, got: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl L2NormError {
    /// The return code an ncnn layer gives for this error: -100 where ncnn
    /// itself uses it (missing weights, empty blobs), -1 for everything else.
    pub fn ncnn_code(&self) -> i32 {
        match self {
            L2NormError::TruncatedWeights { .. } | L2NormError::EmptyInput => -100,
            _ => -1,
        }
    }
}
