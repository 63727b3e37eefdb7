//! Errors of the L2Norm layer and kernel, and the ncnn return code each maps to.
//!
//! This module depends on nothing else in the crate but the storage enum: the
//! limits an error reports travel inside the error, so `params` can use these
//! types without the two modules importing each other.

use std::fmt;

use thiserror::Error;

use crate::kernel::element::Storage;

/// Everything that can be wrong with an L2Norm layer's parameters, weights or input.
///
/// The `Display` text is what the C++ layer logs with `NCNN_LOGE`, after the
/// layer's name, so it names the offending value and what was expected.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum L2NormError {
    #[error("channels (param 0) is {got}; it must be between 1 and {max}")]
    BadChannelCount { got: i64, max: usize },
    #[error("channels (param 0) is missing; give 0=C, or the weight shape as pnnx writes it (-23310=1,C)")]
    MissingChannels,
    #[error("eps (param 1) is {}; it must be finite and >= 0", Float(*.0))]
    BadEps(f32),
    #[error(
        "eps_mode (param 2) is {0}; expected 0 (add), 1 (caffe), 2 (F.normalize) or 3 (tensorflow)"
    )]
    BadEpsMode(i32),
    #[error("channel_shared (param 3) is {0}; expected 0 or 1")]
    BadChannelShared(i32),
    /// A param present in the `.param` line with a type other than the one it
    /// documents (ncnn's `ParamDict` would silently return the default).
    #[error("{name} (param {id}) is {got}; it must be {wanted}")]
    ParamType {
        id: i32,
        name: &'static str,
        /// What the `.param` line holds, e.g. `the string "nan"`.
        got: String,
        /// The documented type, e.g. `an int`.
        wanted: &'static str,
    },
    #[error("weight shape (param 10) is {shape:?}; expected [C], [1,C], [1,C,1] or [1,C,1,1] with C matching channels")]
    BadWeightShape { shape: Vec<i32> },
    #[error("channels (param 0) is {channels} but the weight shape (param 10) says {from_shape}")]
    ChannelsDisagree { channels: usize, from_shape: usize },
    #[error("expected {expected} fp32 weights, got {got}")]
    WeightCount { expected: usize, got: usize },
    /// The weights Mat is not a plain 1-D fp32 vector (a `ModelBin` over a
    /// Mat array hands back whatever Mat it holds).
    #[error("weights are {got}; expected a 1-D Mat of {expected} fp32 values{hint}")]
    WeightKind {
        expected: usize,
        /// The Mat as found, e.g. `a Mat of 16-bit elements (elemsize 2, elempack 1)`.
        got: String,
        /// What to do about it, starting with "; " (or empty).
        hint: &'static str,
    },
    #[error("weights missing: the .bin ended before {expected} fp32 weights could be read")]
    TruncatedWeights { expected: usize },
    #[error("input is empty")]
    EmptyInput,
    #[error("input has dims={0}; L2Norm handles dims 1 to 4")]
    UnsupportedDims(i32),
    #[error("input has {got} channels but the layer was loaded with {expected}")]
    ChannelMismatch { expected: usize, got: usize },
    #[error(
        "input has elemsize {elemsize} at elempack {elempack}, {}; {} storage needs {} bytes per value{}",
        element_size_text(*.elemsize, *.elempack),
        storage_name(*.storage),
        .storage.bytes(),
        storage_hint(*.elemsize, *.elempack)
    )]
    UnsupportedStorage {
        elemsize: usize,
        elempack: i32,
        storage: Storage,
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

/// Formats an f32 as C's `%g` would choose: plain decimals for ordinary
/// magnitudes, an exponent for tiny and huge ones (so `-1e-30` does not print
/// as thirty zeros), and always the shortest digits that read back exactly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Float(pub f32);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let x = self.0;
        let a = x.abs();
        if x == 0.0 || !x.is_finite() || (1e-4..1e6).contains(&a) {
            write!(f, "{x}")
        } else {
            write!(f, "{x:e}")
        }
    }
}

fn storage_name(storage: Storage) -> &'static str {
    match storage {
        Storage::F32 => "fp32",
        Storage::F16 => "fp16",
        Storage::BF16 => "bf16",
    }
}

/// "1-byte elements", or what is wrong when elemsize is no multiple of elempack.
fn element_size_text(elemsize: usize, elempack: i32) -> String {
    match usize::try_from(elempack) {
        Ok(pack) if pack > 0 && elemsize.is_multiple_of(pack) => {
            format!("i.e. {}-byte elements", elemsize / pack)
        }
        _ => "which is no whole number of bytes per element".to_string(),
    }
}

fn storage_hint(elemsize: usize, elempack: i32) -> &'static str {
    if elempack > 0 && elemsize == elempack as usize {
        "; an int8 blob needs a Dequantize layer before L2Norm"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_like_percent_g() {
        assert_eq!(Float(-1e-30).to_string(), "-1e-30");
        assert_eq!(Float(1e-10).to_string(), "1e-10");
        assert_eq!(Float(-1.0).to_string(), "-1");
        assert_eq!(Float(0.5).to_string(), "0.5");
        assert_eq!(Float(3.0e38).to_string(), "3e38");
        assert_eq!(Float(f32::NAN).to_string(), "NaN");
        assert_eq!(Float(f32::NEG_INFINITY).to_string(), "-inf");
        assert_eq!(
            L2NormError::BadEps(-1e-30).to_string(),
            "eps (param 1) is -1e-30; it must be finite and >= 0"
        );
    }

    #[test]
    fn storage_errors_say_what_the_element_is() {
        let int8 = L2NormError::UnsupportedStorage {
            elemsize: 8,
            elempack: 8,
            storage: Storage::F32,
        };
        assert_eq!(
            int8.to_string(),
            "input has elemsize 8 at elempack 8, i.e. 1-byte elements; fp32 storage needs 4 bytes \
             per value; an int8 blob needs a Dequantize layer before L2Norm"
        );
        let odd = L2NormError::UnsupportedStorage {
            elemsize: 3,
            elempack: 1,
            storage: Storage::F32,
        };
        assert_eq!(
            odd.to_string(),
            "input has elemsize 3 at elempack 1, i.e. 3-byte elements; fp32 storage needs 4 bytes per value"
        );
    }
}
