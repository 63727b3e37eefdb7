//! Reading, checking and rewriting ncnn models (`.param` + `.bin`), for the
//! `ncnn-l2norm fuse` tool.
//!
//! * [`param`]: the `.param` text — layers, blobs and their parameters —
//!   parsed into a [`param::ParamFile`] and written back, byte for byte the
//!   same for the layers left untouched.
//! * [`bin`]: where each layer's weights sit in the `.bin`. The file has no
//!   index: each layer reads, in layer order, what its `load_model` asks for,
//!   so the walk mirrors ncnn's `load_model` per layer type (raw fp32 arrays,
//!   and "tagged" arrays whose 4-byte flag says fp32, fp16, bf16, int8 or a
//!   quantisation table follows). A `.bin` that is too short or too long for
//!   its `.param`, or a layer type whose weight layout is unknown, is refused.
//! * [`fuse`]: finds the chains of small ops that converters (pnnx,
//!   onnx2ncnn) emit for SSD's L2Norm module and replaces each by one
//!   `L2Norm` layer; optionally turns ncnn `Normalize` layers in channel mode
//!   into `L2Norm` (folding a per-channel multiply after it into the
//!   weights); recognises pnnx `moduleop` L2Norm layers and optionally
//!   renames them to `L2Norm`. Other layers' weight bytes are copied unchanged.
//! * [`moduleop`]: what pnnx writes for an L2Norm module kept as one layer.
//! * [`pnnx`]: pnnx's own `.pnnx.param`, read for the reduction axes pnnx's
//!   ncnn step loses on ONNX opset >= 13 and dynamo exports.

pub mod bin;
pub mod fuse;
pub mod moduleop;
pub mod param;
pub mod pnnx;

/// Everything that can go wrong reading or rewriting a model. The messages
/// name the layer (and type) involved: they are what the tool prints.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error(".param line {line}: {msg}")]
    Param { line: usize, msg: String },
    #[error(".bin: {0}")]
    Bin(String),
    #[error("fuse: {0}")]
    Fuse(String),
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },
}
