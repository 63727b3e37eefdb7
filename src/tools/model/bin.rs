//! Where each layer's weights sit in an ncnn `.bin`.
//!
//! A `.bin` is the concatenation, in layer order, of what each layer's
//! `load_model` reads through `ModelBin::load(n, type)`:
//!
//! * type 1 ("raw"): `n` little-endian fp32, no header;
//! * type 0 ("tagged"): a 4-byte flag, then by its value
//!   `0x01306B47` `n` fp16 / `0x01348B83` `n` bf16 (2n bytes padded to 4),
//!   `0x000D4B38` `n` int8 (n bytes padded to 4), `0x0002C056` or `0` `n` fp32,
//!   any other value (bytes not all zero) a quantisation table: 256 fp32 then
//!   `n` one-byte indices padded to 4;
//! * types 3/4/6/8 (MemoryData's int8-ish load types): `n` bytes padded to 4.
//!
//! [`weight_loads`] says, per layer type and params, which loads its
//! `load_model` makes (ncnn 1.0.20261020, `src/layer/*.cpp`); [`layout`] walks
//! the file with them and fails on a file too short or too long for the
//! `.param`, and on layer types whose layout it does not know.

use ncnn_l2norm::kernel::element::f16_to_f32;
use ncnn_l2norm::L2NormParams;

use super::moduleop;
use super::param::{Layer, ParamFile};
use super::ModelError;

pub const TAG_FP16: u32 = 0x0130_6B47;
pub const TAG_BF16: u32 = 0x0134_8B83;
pub const TAG_INT8: u32 = 0x000D_4B38;
pub const TAG_FP32_SCALED: u32 = 0x0002_C056;

/// One `ModelBin::load` call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Load {
    /// `load(n, 1)`: n fp32.
    Raw(usize),
    /// `load(n, 0)`: a flag word, then n values in the flagged encoding.
    Tagged(usize),
    /// `load(n, 3|4|6|8)`: n bytes padded to 4.
    Bytes(usize),
}

/// How a chunk's values are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    F32,
    F16,
    BF16,
    Int8,
    /// 256-entry fp32 table + one-byte indices.
    Quantized,
    /// Raw bytes (load types 3/4/6/8).
    Bytes,
}

/// The bytes one load read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk (of its flag word when tagged).
    pub offset: usize,
    /// Total length, flag word and padding included.
    pub len: usize,
    /// Number of values.
    pub count: usize,
    pub encoding: Encoding,
    pub tagged: bool,
}

/// The byte range of one layer's weights.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerBytes {
    pub start: usize,
    pub end: usize,
    pub chunks: Vec<Chunk>,
}

/// Layer types of ncnn whose `load_model` reads nothing.
const WEIGHTLESS: &[&str] = &[
    "AbsVal",
    "ArgMax",
    "BNLL",
    "Concat",
    "Crop",
    "Dropout",
    "Eltwise",
    "ELU",
    "Exp",
    "Flatten",
    "Input",
    "Log",
    "LRN",
    "MVN",
    "Pooling",
    "Power",
    "Proposal",
    "Reduction",
    "ReLU",
    "Reshape",
    "ROIPooling",
    "Sigmoid",
    "Slice",
    "Softmax",
    "Split",
    "SPP",
    "TanH",
    "Threshold",
    "Tile",
    "BinaryOp",
    "UnaryOp",
    "Squeeze",
    "ExpandDims",
    "Permute",
    "PriorBox",
    "DetectionOutput",
    "Interp",
    "ShuffleChannel",
    "Clip",
    "Reorg",
    "YoloDetectionOutput",
    "Yolov3DetectionOutput",
    "PSROIPooling",
    "ROIAlign",
    "Packing",
    "Cast",
    "HardSigmoid",
    "SELU",
    "HardSwish",
    "Noop",
    "PixelShuffle",
    "DeepCopy",
    "Mish",
    "StatisticsPooling",
    "Swish",
    "Softplus",
    "GELU",
    "Pooling1D",
    "Pooling3D",
    "MatMul",
    "Einsum",
    "GLU",
    "Fold",
    "Unfold",
    "GridSample",
    "CumulativeSum",
    "CopyTo",
    "Erf",
    "Diag",
    "CELU",
    "Shrink",
    "Spectrogram",
    "InverseSpectrogram",
    "Flip",
    "SDPA",
    "RotaryEmbed",
];

/// ncnn layer types with weights whose layout this tool does not walk.
const UNSUPPORTED: &[&str] = &[
    "RNN",
    "LSTM",
    "GRU",
    "MultiHeadAttention",
    "Gemm",
    "Quantize",
    "Dequantize",
    "Requantize",
];

fn count(layer: &Layer, v: i32, what: &str) -> Result<usize, String> {
    usize::try_from(v).map_err(|_| format!("{} {}: negative {what} {v}", layer.ty, layer.name))
}

fn product(layer: &Layer, dims: &[i32]) -> Result<usize, String> {
    dims.iter().try_fold(1usize, |acc, &d| {
        count(layer, d, "dimension")?
            .checked_mul(acc)
            .ok_or_else(|| format!("{} {}: weight size overflows", layer.ty, layer.name))
    })
}

/// The loads `layer`'s `load_model` makes, in order.
pub fn weight_loads(layer: &Layer) -> Result<Vec<Load>, ModelError> {
    loads(layer).map_err(ModelError::Bin)
}

fn loads(l: &Layer) -> Result<Vec<Load>, String> {
    let n = |v: i32, what: &str| count(l, v, what);
    let mut out = Vec::new();
    match l.ty.as_str() {
        t if WEIGHTLESS.contains(&t) => {}
        // Convolutions: weight (tagged), bias (raw), int8 scales.
        "Convolution" | "ConvolutionDepthWise" | "Convolution1D" | "ConvolutionDepthWise1D" | "Convolution3D"
        | "ConvolutionDepthWise3D" | "Deconvolution" | "DeconvolutionDepthWise" | "Deconvolution1D"
        | "DeconvolutionDepthWise1D" | "Deconvolution3D" | "DeconvolutionDepthWise3D" | "DeformableConv2D" => {
            let dynamic_id = match l.ty.as_str() {
                "Convolution" | "ConvolutionDepthWise" | "Convolution1D" | "ConvolutionDepthWise1D" => Some(19),
                "Deconvolution" | "DeconvolutionDepthWise" | "Deconvolution1D" | "DeconvolutionDepthWise1D" => Some(28),
                _ => None,
            };
            if let Some(id) = dynamic_id {
                if l.int(id, 0)? != 0 {
                    return Ok(out);
                }
            }
            let num_output = n(l.int(0, 0)?, "num_output")?;
            out.push(Load::Tagged(n(l.int(6, 0)?, "weight_data_size")?));
            if l.int(5, 0)? != 0 {
                out.push(Load::Raw(num_output));
            }
            let int8 = match l.ty.as_str() {
                "Convolution" | "ConvolutionDepthWise" => l.int(8, 0)?,
                _ => 0,
            };
            if int8 != 0 {
                if l.ty == "Convolution" {
                    out.extend([Load::Raw(num_output), Load::Raw(1)]);
                    if int8 > 100 {
                        out.push(Load::Raw(1));
                    }
                } else {
                    match int8 {
                        1 | 101 => out.extend([Load::Raw(n(l.int(7, 1)?, "group")?), Load::Raw(1)]),
                        2 | 102 => out.extend([Load::Raw(1), Load::Raw(1)]),
                        other => return Err(format!("{} {}: bad int8_scale_term {other}", l.ty, l.name)),
                    }
                    if int8 > 100 {
                        out.push(Load::Raw(1));
                    }
                }
            }
        }
        "InnerProduct" => {
            let num_output = n(l.int(0, 0)?, "num_output")?;
            out.push(Load::Tagged(n(l.int(2, 0)?, "weight_data_size")?));
            if l.int(1, 0)? != 0 {
                out.push(Load::Raw(num_output));
            }
            if l.int(8, 0)? != 0 {
                out.extend([Load::Raw(num_output), Load::Raw(1)]);
            }
        }
        "Embed" => {
            out.push(Load::Tagged(n(l.int(3, 0)?, "weight_data_size")?));
            if l.int(2, 0)? != 0 {
                out.push(Load::Raw(n(l.int(0, 0)?, "num_output")?));
            }
            if l.int(18, 0)? != 0 {
                out.push(Load::Raw(1));
            }
        }
        "BatchNorm" => out.extend([Load::Raw(n(l.int(0, 0)?, "channels")?); 4]),
        "Bias" | "PReLU" => out.push(Load::Raw(n(l.int(0, 0)?, "size")?)),
        "Scale" => {
            let size = l.int(0, 0)?;
            if size != -233 {
                out.push(Load::Raw(n(size, "scale_data_size")?));
                if l.int(1, 0)? != 0 {
                    out.push(Load::Raw(n(size, "scale_data_size")?));
                }
            }
        }
        "Normalize" => out.push(Load::Raw(n(l.int(3, 0)?, "scale_data_size")?)),
        "InstanceNorm" | "LayerNorm" | "GroupNorm" | "RMSNorm" => {
            let (size_id, affine_id) = if l.ty == "GroupNorm" { (1, 3) } else { (0, 2) };
            if l.int(affine_id, 1)? != 0 {
                let size = n(l.int(size_id, 0)?, "channels")?;
                out.push(Load::Raw(size));
                if l.ty != "RMSNorm" {
                    out.push(Load::Raw(size));
                }
            }
        }
        "Padding" => {
            let size = l.int(6, 0)?;
            if size != 0 {
                out.push(Load::Raw(n(size, "per_channel_pad_data_size")?));
            }
        }
        "MemoryData" => {
            let (w, h, d, c) = (l.int(0, 0)?, l.int(1, 0)?, l.int(11, 0)?, l.int(2, 0)?);
            // Same branching as MemoryData::load_model.
            let size = if d != 0 {
                product(l, &[w, h, d, c])?
            } else if c != 0 {
                product(l, &[w, h, c])?
            } else if h != 0 {
                product(l, &[w, h])?
            } else if w != 0 {
                product(l, &[w])?
            } else {
                return Ok(out); // 0 0 0: a zero scalar, nothing read
            };
            out.push(match l.int(21, 1)? {
                0 => Load::Tagged(size),
                1 => Load::Raw(size),
                3 | 4 | 6 | 8 => Load::Bytes(size),
                other => return Err(format!("MemoryData {}: load type {other} is not one ncnn reads", l.name)),
            });
        }
        "L2Norm" => {
            let p = L2NormParams::from_raw(
                l.int(0, 0)? as i64,
                l.float(1, ncnn_l2norm::DEFAULT_EPS)?,
                l.int(2, 0)?,
                l.int(3, 0)?,
                &l.int_array(10)?,
            )
            .map_err(|e| format!("L2Norm {}: {e}", l.name))?;
            out.push(Load::Raw(p.weight_count()));
        }
        // pnnx moduleop L2Norm: our layer under the class path reads param 10's weight, raw fp32.
        t if moduleop::is_l2norm_class(t) => {
            let m = moduleop::read(l)?;
            out.push(Load::Raw(m.channels));
        }
        t if UNSUPPORTED.contains(&t) => {
            return Err(format!("layer {} is a {t}: this tool does not know where its weights are in the .bin", l.name))
        }
        t => {
            return Err(format!(
                "layer {} has type {t:?}, which is not an ncnn layer this tool knows: cannot tell whether or how many weights it reads from the .bin",
                l.name
            ))
        }
    }
    Ok(out)
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

fn read_u32(bin: &[u8], at: usize) -> Option<u32> {
    bin.get(at..at.checked_add(4)?)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
}

/// The chunk one load reads at `at`.
fn chunk_at(bin: &[u8], at: usize, load: Load) -> Result<Chunk, String> {
    let bytes = |n: usize, per: usize| {
        n.checked_mul(per)
            .ok_or("weight size overflows".to_string())
    };
    let (len, count, encoding, tagged) = match load {
        Load::Raw(n) => (bytes(n, 4)?, n, Encoding::F32, false),
        Load::Bytes(n) => (align4(n), n, Encoding::Bytes, false),
        Load::Tagged(n) => {
            let flag = read_u32(bin, at).ok_or_else(|| {
                format!(
                    "the file ends at byte {} inside a type flag at {at}",
                    bin.len()
                )
            })?;
            let (data, enc) = match flag {
                TAG_FP16 => (align4(bytes(n, 2)?), Encoding::F16),
                TAG_BF16 => (align4(bytes(n, 2)?), Encoding::BF16),
                TAG_INT8 => (align4(n), Encoding::Int8),
                TAG_FP32_SCALED | 0 => (bytes(n, 4)?, Encoding::F32),
                _ => (1024 + align4(n), Encoding::Quantized),
            };
            (4 + data, n, enc, true)
        }
    };
    Ok(Chunk {
        offset: at,
        len,
        count,
        encoding,
        tagged,
    })
}

/// Walks the `.bin` layer by layer: one [`LayerBytes`] per layer of `param`.
/// Fails when a layer's data runs past the end, or bytes are left over.
pub fn layout(param: &ParamFile, bin: &[u8]) -> Result<Vec<LayerBytes>, ModelError> {
    let mut at = 0usize;
    let mut out = Vec::with_capacity(param.layers.len());
    for l in &param.layers {
        let start = at;
        let mut chunks = Vec::new();
        for load in weight_loads(l)? {
            let c = chunk_at(bin, at, load)
                .map_err(|e| ModelError::Bin(format!("{} {}: {e}", l.ty, l.name)))?;
            let end = at.checked_add(c.len).filter(|&e| e <= bin.len()).ok_or_else(|| {
                ModelError::Bin(format!(
                    "truncated: {} {} needs {} bytes at offset {at} ({} values), the file has {} bytes",
                    l.ty,
                    l.name,
                    c.len,
                    c.count,
                    bin.len()
                ))
            })?;
            chunks.push(c);
            at = end;
        }
        out.push(LayerBytes {
            start,
            end: at,
            chunks,
        });
    }
    if at != bin.len() {
        return Err(ModelError::Bin(format!(
            "{} trailing bytes: the layers of the .param read {at} bytes, the file has {} (does this .bin belong to this .param?)",
            bin.len() - at,
            bin.len()
        )));
    }
    Ok(out)
}

/// The values of a chunk as f32 (int8 and raw-byte chunks have no float meaning).
pub fn decode_f32(bin: &[u8], c: &Chunk) -> Result<Vec<f32>, ModelError> {
    let data = &bin[c.offset + if c.tagged { 4 } else { 0 }..c.offset + c.len];
    let u16s = || {
        data.chunks_exact(2)
            .take(c.count)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    Ok(match c.encoding {
        Encoding::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect(),
        Encoding::F16 => u16s().map(f16_to_f32).collect(),
        Encoding::BF16 => u16s().map(|v| f32::from_bits((v as u32) << 16)).collect(),
        Encoding::Quantized => {
            let table: Vec<f32> = data[..1024]
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            data[1024..1024 + c.count]
                .iter()
                .map(|&i| table[i as usize])
                .collect()
        }
        Encoding::Int8 | Encoding::Bytes => {
            return Err(ModelError::Bin(format!(
                "the chunk at offset {} holds int8 data, not floats",
                c.offset
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(lines: &str) -> ParamFile {
        let layers = lines.lines().count();
        let blobs: std::collections::HashSet<&str> = lines
            .lines()
            .flat_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let (nb, nt): (usize, usize) = (f[2].parse().unwrap(), f[3].parse().unwrap());
                f[4 + nb..4 + nb + nt].to_vec()
            })
            .collect();
        ParamFile::parse(&format!("7767517\n{layers} {}\n{lines}", blobs.len())).unwrap()
    }

    const NET: &str = "Input data 0 1 data
Convolution conv 1 1 data c 0=2 1=1 5=1 6=6
MemoryData w 0 1 w 0=1 1=1 2=3
BatchNorm bn 1 1 c b 0=2
L2Norm n 1 1 b o 0=2 1=1e-10
";

    fn f32s(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn bin(conv_tag: u32) -> Vec<u8> {
        let mut b = conv_tag.to_le_bytes().to_vec();
        match conv_tag {
            TAG_FP16 => b.extend([
                0x00, 0x3c, 0x00, 0x40, 0x00, 0xc2, 0x00, 0x00, 0x00, 0x00, 0x00, 0x34,
            ]), // 1 2 -3 0 0 0.25
            _ => b.extend(f32s(&[1.0, 2.0, -3.0, 0.0, 0.0, 0.25])),
        }
        b.extend(f32s(&[0.5, -0.5])); // conv bias
        b.extend(f32s(&[7.0, 8.0, 9.0])); // memorydata
        b.extend(f32s(&[1.0; 8])); // batchnorm
        b.extend(f32s(&[20.0, 21.0])); // l2norm
        b
    }

    #[test]
    fn walks_layers_in_order() {
        let p = model(NET);
        for tag in [0, TAG_FP16] {
            let b = bin(tag);
            let lay = layout(&p, &b).unwrap();
            let conv_len = if tag == 0 { 4 + 24 } else { 4 + 12 };
            let ranges: Vec<(usize, usize)> = lay.iter().map(|l| (l.start, l.end)).collect();
            let c = conv_len + 8;
            assert_eq!(
                ranges,
                [
                    (0, 0),
                    (0, c),
                    (c, c + 12),
                    (c + 12, c + 44),
                    (c + 44, c + 52)
                ]
            );
            assert_eq!(
                decode_f32(&b, &lay[1].chunks[0]).unwrap(),
                [1.0, 2.0, -3.0, 0.0, 0.0, 0.25]
            );
            assert_eq!(decode_f32(&b, &lay[1].chunks[1]).unwrap(), [0.5, -0.5]);
            assert_eq!(decode_f32(&b, &lay[2].chunks[0]).unwrap(), [7.0, 8.0, 9.0]);
            assert_eq!(decode_f32(&b, &lay[4].chunks[0]).unwrap(), [20.0, 21.0]);
        }
    }

    #[test]
    fn tag_sizes_follow_modelbin() {
        let at = |flag: u32, n| chunk_at(&flag.to_le_bytes(), 0, Load::Tagged(n)).unwrap();
        assert_eq!(at(0, 3).len, 4 + 12);
        assert_eq!(at(TAG_FP32_SCALED, 3).len, 4 + 12);
        assert_eq!((at(TAG_FP16, 3).len, at(TAG_FP16, 4).len), (4 + 8, 4 + 8));
        assert_eq!(at(TAG_BF16, 5).len, 4 + 12);
        assert_eq!(at(TAG_INT8, 5).len, 4 + 8);
        assert_eq!(at(0x0000_0100, 5).len, 4 + 1024 + 8);
        assert_eq!(chunk_at(&[], 0, Load::Bytes(5)).unwrap().len, 8);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x8400), -(2f32.powi(-14)));
    }

    #[test]
    fn refuses_truncated_long_and_garbage_files() {
        let p = model(NET);
        let b = bin(0);
        let short = layout(&p, &b[..b.len() - 4]).unwrap_err().to_string();
        assert!(
            short.contains("truncated") && short.contains("L2Norm n"),
            "{short}"
        );
        let mut long = b.clone();
        long.extend([0; 4]);
        assert!(layout(&p, &long)
            .unwrap_err()
            .to_string()
            .contains("4 trailing bytes"));
        assert!(layout(&p, &[])
            .unwrap_err()
            .to_string()
            .contains("inside a type flag"));
        // Garbage where the conv's flag should be reads as a quantisation table
        // (1024 bytes) the file does not have.
        let mut garbage = b.clone();
        garbage[..4].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        assert!(layout(&p, &garbage)
            .unwrap_err()
            .to_string()
            .contains("truncated: Convolution conv"));
    }

    #[test]
    fn refuses_unknown_types_and_bad_params() {
        let e = layout(&model("Input data 0 1 data\nMyOp m 1 1 data o 0=3\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"MyOp\""), "{e}");
        let e = layout(&model("Input data 0 1 data\nLSTM m 1 1 data o 0=3\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("LSTM"), "{e}");
        let e = layout(&model("Input data 0 1 data\nBias m 1 1 data o 0=-3\n"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("negative"), "{e}");
        let e = layout(
            &model("Input data 0 1 data\nL2Norm m 1 1 data o 0=0\n"),
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("L2Norm m"), "{e}");
        // Weightless and dynamic-weight layers read nothing.
        let p =
            model("Input data 0 1 data\nReLU r 1 1 data a\nConvolution c 1 1 a o 0=2 6=8 19=1\n");
        assert_eq!(
            layout(&p, &[]).unwrap().iter().map(|l| l.end).max(),
            Some(0)
        );
    }
}
