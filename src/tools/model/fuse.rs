//! Replacing decomposed L2Norm subgraphs by one `L2Norm` layer.
//!
//! pnnx (and the legacy onnx2ncnn) turn SSD's L2Norm module into a chain of
//! small ops, for example (pnnx 20261020, mmdetection's module after a conv):
//!
//! ```text
//! Split       splitncnn_0  1 2 1 2 3
//! UnaryOp     pow_0        1 1 2 4 0=4                        square
//! Reduction   sum_3        1 1 4 5 0=0 1=0 -23303=1,0 4=1 5=1 sum over axis 0, keepdims
//! MemoryData  pnnx_fold_48 0 1 6 0=1 1=1 2=48                 weight
//! UnaryOp     sqrt_1       1 1 5 7 0=5
//! BinaryOp    add_2        1 1 7 8 0=0 1=1 2=1.000000e-10     + eps
//! BinaryOp    mul_3        2 1 6 3 9 0=2                      weight * x
//! BinaryOp    div_4        2 1 9 8 10 0=3                     / norm
//! ```
//!
//! The matcher starts at every `Reduction` over axis 0 with keepdims (axis 0
//! of an ncnn blob is the axis L2Norm normalises: w, h or c for 1, 2 or 3/4
//! dims) and follows the blobs:
//!
//! * input: `Reduction` SUM of a square of a `Split` output (`UnaryOp` square,
//!   `BinaryOp` pow 2, or `x * x` of two outputs of the same `Split`), SUMSQ of
//!   a `Split` output, or L2 (the ReduceL2 form) of one;
//! * denominator: the symbolic state moves through `sqrt`, `rsqrt`,
//!   `reciprocal`, `+ eps` and `max(., eps)` (`BinaryOp` with a scalar or
//!   `Clip` with no upper bound); where eps enters decides the eps mode
//!   (`sqrt(ss)+eps` 0, `sqrt(ss+eps)` 1, `max(sqrt(ss),eps)` 2,
//!   `sqrt(max(ss,eps))` 3);
//! * the division of another output of the same `Split` by the norm
//!   (`BinaryOp` div, or mul by the inverse norm);
//! * at most one scale: a `BinaryOp` mul by a `MemoryData` (per-channel: its
//!   `c`, or for a 2-D blob... see `weight_of`) or by a scalar, before the
//!   division or after it. No scale gives a shared weight of 1.
//!
//! Every blob inside the chain must be read only by the chain. A chain that
//! looks like an L2Norm but cannot be fused (wrong axis, an intermediate blob
//! read elsewhere, a scale that is not per-channel) is reported as skipped; a
//! chain with a scale both before and after the division is ambiguous (which
//! one is the L2Norm weight?) and refused.
//!
//! What the exporters lose, and how it is put back:
//!
//! * axes: from ONNX opset >= 13 and torch's dynamo exporter pnnx writes the
//!   channel sum as `Reduction ... 1=0 -23303=0` (no axes; the model then
//!   computes x/|x|). The axis comes back only from pnnx's `.pnnx.param`
//!   (see [`lost_axis`]); without it the run is refused with the command
//!   that works, and so is a no-axes Reduction outside any L2Norm.
//! * eps: the dynamo export drops `+ eps`; a chain without eps gets
//!   [`DEFAULT_EPS`] added to the norm, and a note says so.
//!
//! Besides chains: with `--normalize`, ncnn `Normalize` layers in channel
//! mode become `L2Norm`, a multiply by a per-channel constant (or a scalar)
//! after one folded into its weights (torchvision's SSD300); without it, the
//! report names them and the command. pnnx moduleop L2Norm layers are named
//! with how they load, and renamed to `L2Norm` with `--moduleop`.
//!
//! The rewrite removes the chain's layers (and the `Split` outputs it used; a
//! `Split` left with one output is removed), puts the `L2Norm` where the
//! chain's last layer was, writing the chain's output blob, and rebuilds the
//! `.bin` in the new layer order: every kept layer's bytes copied unchanged,
//! the `L2Norm`'s weights as raw fp32 at its place.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use ncnn_l2norm::{EpsMode, L2NormParams, DEFAULT_EPS};

use super::bin::{self, LayerBytes};
use super::moduleop;
use super::param::{Layer, Param, ParamFile};
use super::pnnx::{self, PnnxParam};
use super::ModelError;

/// What to do besides fusing decomposed chains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FuseOptions {
    /// `--normalize`: also turn ncnn `Normalize` layers in channel mode into
    /// `L2Norm`, folding a per-channel multiply right after one into its weights.
    pub normalize: bool,
    /// `--moduleop`: rename pnnx moduleop L2Norm layers (type
    /// `<module path>.L2Norm`) to `L2Norm`, writing eps explicitly.
    pub moduleop: bool,
    /// `--pnnx-param PATH`: pnnx's `.pnnx.param` for this model; by default
    /// the one pnnx writes beside it (see [`pnnx::beside`]).
    pub pnnx_param: Option<PathBuf>,
}

/// What `fuse` knows of the files it works on: their names, for the
/// commands its messages suggest, and pnnx's `.pnnx.param` for the model,
/// read only to recover the reduction axes pnnx's last step lost.
#[derive(Debug, Clone)]
pub struct Files {
    /// IN.param, IN.bin, OUT.param, OUT.bin as given.
    pub args: [String; 4],
    /// Where pnnx's `.pnnx.param` is (given) or would be (beside IN.param).
    pub pnnx_path: PathBuf,
    /// The parsed file; `None` when there is no file there.
    pub pnnx: Option<Result<PnnxParam, String>>,
}

impl Files {
    /// For a model given as text (no files): placeholders in messages, no
    /// `.pnnx.param`. (The tool always has files; tests/fuse.rs uses this.)
    #[allow(dead_code)]
    pub fn none() -> Files {
        Files {
            args: ["IN.param", "IN.bin", "OUT.param", "OUT.bin"].map(String::from),
            pnnx_path: PathBuf::from("IN.pnnx.param"),
            pnnx: None,
        }
    }

    /// Names the four files and reads the `.pnnx.param` given with
    /// `--pnnx-param` (which must exist) or lying beside `in_param`.
    pub fn read(
        in_param: &Path,
        in_bin: &Path,
        out_param: &Path,
        out_bin: &Path,
        pnnx_param: Option<&Path>,
    ) -> Result<Files, ModelError> {
        let pnnx_path = pnnx_param.map_or_else(|| pnnx::beside(in_param), Path::to_path_buf);
        let pnnx = match std::fs::read(&pnnx_path) {
            Ok(bytes) => Some(
                String::from_utf8(bytes)
                    .map_err(|_| "not UTF-8 text".to_string())
                    .and_then(|t| PnnxParam::parse(&t)),
            ),
            Err(e) if pnnx_param.is_some() => {
                return Err(ModelError::Io {
                    path: pnnx_path.display().to_string(),
                    msg: e.to_string(),
                })
            }
            Err(_) => None,
        };
        Ok(Files {
            args: [in_param, in_bin, out_param, out_bin].map(|p| p.display().to_string()),
            pnnx_path,
            pnnx,
        })
    }

    /// The `ncnn-l2norm fuse` command for these files with `opts`, plus `extra`.
    pub fn command(&self, opts: &FuseOptions, extra: &[&str]) -> String {
        let mut words: Vec<String> = vec!["ncnn-l2norm".into(), "fuse".into()];
        words.extend(self.args.iter().map(|a| shell_word(a)));
        let pnnx = format!(
            "--pnnx-param {}",
            shell_word(&self.pnnx_path.display().to_string())
        );
        for (on, flag) in [
            (opts.normalize, "--normalize".to_string()),
            (opts.moduleop, "--moduleop".to_string()),
            (opts.pnnx_param.is_some(), pnnx),
        ] {
            if on && !extra.contains(&flag.as_str()) {
                words.push(flag);
            }
        }
        words.extend(extra.iter().map(|s| s.to_string()));
        words.join(" ")
    }
}

/// `s` as one shell word: as it is when it has only safe characters, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// One `L2Norm` the fuser wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct Fused {
    /// Name of the new layer.
    pub name: String,
    /// Names of the layers it replaces, in file order.
    pub replaced: Vec<String>,
    pub channels: usize,
    pub eps: f32,
    pub eps_mode: EpsMode,
    pub channel_shared: bool,
    /// `"chain"`, `"Normalize"` or `"moduleop"`.
    pub from: &'static str,
}

/// What the fuser did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FuseReport {
    pub fused: Vec<Fused>,
    /// Chains that look like an L2Norm but were left alone, with the reason.
    pub skipped: Vec<String>,
    /// Things the user should know: a value the tool chose, what else it
    /// could convert and the command that does it. One line each.
    pub notes: Vec<String>,
}

impl fmt::Display for FuseReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for x in &self.fused {
            writeln!(
                f,
                "fused {} -> L2Norm {}: channels {}{}, eps {:e}, eps_mode {} ({})",
                x.replaced.join(" + "),
                x.name,
                x.channels,
                if x.channel_shared {
                    " (shared weight)"
                } else {
                    ""
                },
                x.eps,
                x.eps_mode.to_param(),
                mode_formula(x.eps_mode),
            )?;
        }
        for s in &self.skipped {
            writeln!(f, "skipped: {s}")?;
        }
        for n in &self.notes {
            writeln!(f, "note: {n}")?;
        }
        write!(f, "{} L2Norm layer(s) written", self.fused.len())
    }
}

fn mode_formula(m: EpsMode) -> &'static str {
    match m {
        EpsMode::Add => "x/(sqrt(ss)+eps)",
        EpsMode::Caffe => "x/sqrt(ss+eps)",
        EpsMode::Max => "x/max(sqrt(ss),eps)",
        EpsMode::TensorFlow => "x/sqrt(max(ss,eps))",
    }
}

/// Where the norm computation stands while walking the chain.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Sum of squares.
    Ss,
    /// Sum of squares with eps inside the square root: `ss + eps` (Caffe) or `max(ss, eps)` (TensorFlow).
    SsEps(EpsMode, usize),
    /// The plain norm `sqrt(ss)`.
    Norm,
    /// A complete denominator.
    Denom(EpsMode, Option<usize>),
    /// `1 / denominator`.
    Inv(EpsMode, Option<usize>),
}

/// A scale found around the division.
#[derive(Debug, Clone)]
enum Scale {
    /// `BinaryOp` mul layer, `MemoryData` layer.
    Tensor(usize, usize),
    /// `BinaryOp` mul-by-scalar layer, its value.
    Scalar(usize, f32),
}

/// A chain ready to be replaced.
#[derive(Debug)]
struct Match {
    /// Layers to remove (the Split is not among them).
    layers: BTreeSet<usize>,
    split: usize,
    /// Split outputs the chain reads; the first becomes the L2Norm input.
    split_tops: Vec<String>,
    /// Blob the L2Norm writes (the chain's output).
    output: String,
    /// Layer holding eps (its param 2 or Clip's 0), if any; none: [`DEFAULT_EPS`].
    eps_param: Option<(usize, i32)>,
    eps_mode: EpsMode,
    /// What the report should say about this match (an axis from .pnnx.param, a missing eps).
    notes: Vec<String>,
    weights: Vec<f32>,
    channel_shared: bool,
    channels: usize,
}

/// What a producing layer says when tracing a blob's channel count back.
enum Trace {
    /// It sets the count (`None`: not as a positive int).
    Found(Option<usize>),
    /// It keeps its input's count and shape: look at its first input.
    Through,
    /// Neither: the count is unknown.
    Unknown,
}

/// Param `id` of `l` when it is a positive int.
fn positive_int(l: &Layer, id: i32) -> Option<usize> {
    l.int(id, 0).ok().filter(|&v| v > 0).map(|v| v as usize)
}

/// Whether `l` keeps its first input's channel count and number of dims,
/// whatever its other params: elementwise layers, a scalar BinaryOp,
/// pooling and padding of w and h only (they change w and h), `Normalize`.
fn keeps_shape(l: &Layer) -> bool {
    match l.ty.as_str() {
        "Split" | "ReLU" | "Clip" | "Sigmoid" | "TanH" | "Dropout" | "UnaryOp" | "Swish"
        | "HardSwish" | "HardSigmoid" | "Mish" | "ELU" | "SELU" | "GELU" | "Noop" | "AbsVal"
        | "PReLU" | "BNLL" | "Pooling" | "Softplus" | "Normalize" => true,
        "BinaryOp" => l.int(1, 0) == Ok(1),
        "Padding" => l.int(7, 0) == Ok(0) && l.int(8, 0) == Ok(0),
        _ => false,
    }
}

struct Graph<'a> {
    pf: &'a ParamFile,
    bin: &'a [u8],
    lay: &'a [LayerBytes],
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    opts: &'a FuseOptions,
    files: &'a Files,
    /// Sum `Reduction`s with no axes (pnnx lost them), in file order.
    lost_sums: Vec<usize>,
}

/// A `Reduction` that reduces nothing: `reduce_all=0` and no axes, what
/// pnnx writes when it loses a ReduceSum's axes.
fn has_no_axes(l: &Layer) -> bool {
    l.ty == "Reduction" && l.int(1, 1) == Ok(0) && l.int_array(3).is_ok_and(|a| a.is_empty())
}

impl<'a> Graph<'a> {
    fn layer(&self, i: usize) -> &'a Layer {
        &self.pf.layers[i]
    }

    fn label(&self, i: usize) -> String {
        format!("{} {}", self.layer(i).ty, self.layer(i).name)
    }

    /// The one layer reading `blob`, if exactly one layer reads it (once or twice).
    fn sole_consumer(&self, blob: &str) -> Result<usize, String> {
        let c = self.consumers.get(blob).map(Vec::as_slice).unwrap_or(&[]);
        match c {
            [] => Err(format!("blob {blob} is not read by any layer")),
            [one] => Ok(*one),
            [a, rest @ ..] if rest.iter().all(|r| r == a) => Ok(*a),
            _ => Err(format!(
                "blob {blob} is also read by {}",
                c.iter()
                    .skip(1)
                    .map(|&i| self.label(i))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }

    fn producer_of(&self, blob: &str) -> usize {
        self.producer[blob]
    }

    /// `Split` layer that produced `blob`, if it is one.
    fn split_of(&self, blob: &str) -> Option<usize> {
        let p = self.producer_of(blob);
        (self.layer(p).ty == "Split").then_some(p)
    }

    /// Follows `blob` back to the layer that says its channel count: each
    /// producer is asked `step`, and the walk goes on through the ones it
    /// passes (at most 64 layers).
    fn trace_channels(&self, blob: &str, step: impl Fn(&Layer) -> Trace) -> Option<usize> {
        let mut blob = blob;
        for _ in 0..64 {
            let l = self.layer(self.producer_of(blob));
            match step(l) {
                Trace::Found(c) => return c,
                Trace::Through => blob = l.bottoms.first()?,
                Trace::Unknown => return None,
            }
        }
        None
    }

    /// Channel count of `blob` when the graph says it: the producing layer's
    /// output count, looking through layers that keep the channel count.
    fn channels_of(&self, blob: &str) -> Option<usize> {
        self.trace_channels(blob, |l| match l.ty.as_str() {
            "Convolution"
            | "ConvolutionDepthWise"
            | "Deconvolution"
            | "DeconvolutionDepthWise"
            | "Convolution1D"
            | "ConvolutionDepthWise1D"
            | "Deconvolution1D"
            | "DeconvolutionDepthWise1D"
            | "Convolution3D"
            | "ConvolutionDepthWise3D"
            | "Deconvolution3D"
            | "DeconvolutionDepthWise3D"
            | "DeformableConv2D"
            | "InnerProduct"
            | "BatchNorm"
            | "InstanceNorm"
            | "L2Norm"
            | "Scale"
            | "Bias" => Trace::Found(positive_int(l, 0)),
            "Normalize" if l.int(1, 0) == Ok(0) => Trace::Found(positive_int(l, 3)),
            "Input" => Trace::Found(positive_int(l, 2)),
            _ if keeps_shape(l) => Trace::Through,
            _ => Trace::Unknown,
        })
    }

    /// Channel count of `blob` when the graph shows it is a 3-D ncnn blob
    /// (w, h, c): written by a 2-D convolution, or an `Input` with w, h and
    /// c, looking through layers that keep the shape.
    fn channels_3d_of(&self, blob: &str) -> Option<usize> {
        self.trace_channels(blob, |l| match l.ty.as_str() {
            "Convolution"
            | "ConvolutionDepthWise"
            | "Deconvolution"
            | "DeconvolutionDepthWise"
            | "DeformableConv2D" => Trace::Found(positive_int(l, 0)),
            "Input"
                if l.int(11, 0) == Ok(0)
                    && positive_int(l, 0).is_some()
                    && positive_int(l, 1).is_some() =>
            {
                Trace::Found(positive_int(l, 2))
            }
            "BatchNorm" | "Scale" | "Bias" | "InstanceNorm" | "L2Norm" => Trace::Through,
            _ if keeps_shape(l) => Trace::Through,
            _ => Trace::Unknown,
        })
    }

    fn is_binary(&self, i: usize, op: i32, scalar: bool) -> bool {
        let l = self.layer(i);
        l.ty == "BinaryOp"
            && l.int(0, 0) == Ok(op)
            && (l.int(1, 0) == Ok(1)) == scalar
            && l.bottoms.len() == if scalar { 1 } else { 2 }
    }

    fn is_unary(&self, i: usize, op: i32) -> bool {
        let l = self.layer(i);
        l.ty == "UnaryOp" && l.int(0, 0) == Ok(op)
    }

    fn scalar(&self, i: usize) -> Option<f32> {
        self.layer(i).float(2, 0.0).ok()
    }
}

/// Outcome of looking at one Reduction.
enum Look {
    /// Not an L2Norm-shaped chain at all.
    No,
    Skip(String),
    Found(Match),
}

/// A `BinaryOp` mul of `blob` by a MemoryData or a scalar: the scale and the mul's output.
fn scale_after(g: &Graph, blob: &str) -> Result<Option<(Scale, String)>, String> {
    let Ok(m) = g.sole_consumer(blob) else {
        return Ok(None);
    };
    if g.is_binary(m, 2, true) {
        let s = g.scalar(m).ok_or("bad scalar")?;
        return Ok(Some((Scale::Scalar(m, s), g.layer(m).tops[0].clone())));
    }
    if g.is_binary(m, 2, false) {
        let l = g.layer(m);
        let other = if l.bottoms[0] == blob {
            &l.bottoms[1]
        } else {
            &l.bottoms[0]
        };
        if other == blob {
            return Ok(None);
        }
        let md = g.producer_of(other);
        if g.layer(md).ty == "MemoryData" {
            return Ok(Some((Scale::Tensor(m, md), l.tops[0].clone())));
        }
    }
    Ok(None)
}

/// Layers to fold into the `L2Norm` that replaces layer `i` (a `Normalize`):
/// a multiply of its output, its one reader, by a scalar or by a constant
/// `MemoryData` that is per channel. Returns the layers, the scale values,
/// whether the scale is one shared value, and the multiply's output blob;
/// `Ok(None)` when no such multiply follows, `Err` when one does that cannot
/// be folded (the reason).
#[allow(clippy::type_complexity)]
fn fold_scale_after(
    g: &Graph,
    i: usize,
    removed: &HashSet<usize>,
) -> Result<Option<(Vec<usize>, Vec<f32>, bool, String)>, String> {
    let found = match scale_after(g, &g.layer(i).tops[0])? {
        None => return Ok(None),
        Some((Scale::Scalar(m, s), out)) => (vec![m], vec![s], true, out),
        Some((Scale::Tensor(m, md), out)) => {
            g.sole_consumer(&g.layer(md).tops[0])?;
            let (w, shared) = weight_of(g, md)?;
            (vec![m, md], w, shared, out)
        }
    };
    if found.0.iter().any(|l| removed.contains(l)) {
        return Ok(None);
    }
    Ok(Some(found))
}

/// Per-channel weights of a `MemoryData` scale (decoded from the .bin), or an
/// error saying why it is not one. Accepted: a 3-D or 4-D `MemoryData` whose
/// `c` is the channel count and whose values are the same at every position
/// of a channel (pnnx's `[1,C,1,1]` constant, and the `expand_as`'d
/// `[1,C,H,W]` one ONNX exports fold into), or a single value (shared).
fn weight_of(g: &Graph, md: usize) -> Result<(Vec<f32>, bool), String> {
    let l = g.layer(md);
    let label = g.label(md);
    let (w, h, d, c) = (l.int(0, 0)?, l.int(1, 0)?, l.int(11, 0)?, l.int(2, 0)?);
    let chunk = g.lay[md]
        .chunks
        .first()
        .ok_or(format!("{label} holds no data"))?;
    let values = bin::decode_f32(g.bin, chunk).map_err(|e| format!("{label}: {e}"))?;
    if values.len() == 1 {
        return Ok((values, true));
    }
    if c <= 0 {
        return Err(format!(
            "{label} (w={w} h={h} d={d} c={c}) is not a per-channel scale: its values do not lie along the c axis"
        ));
    }
    let c = c as usize;
    if c == 1 || values.len() % c != 0 {
        return Err(format!("{label} (w={w} h={h} d={d} c={c}) is not a per-channel scale: its values do not lie along the c axis"));
    }
    let per = values.len() / c;
    let mut weights = Vec::with_capacity(c);
    for ch in values.chunks_exact(per) {
        if ch.iter().any(|v| v.to_bits() != ch[0].to_bits()) {
            return Err(format!(
                "{label} varies within a channel: it is not a per-channel scale"
            ));
        }
        weights.push(ch[0]);
    }
    Ok((weights, false))
}

/// Follows the chain from Reduction `r`.
fn look(g: &Graph, r: usize) -> Result<Look, String> {
    let red = g.layer(r);
    let op = red.int(0, 0)?;
    if !(op == 0 || op == 2 || op == 8) || red.int(4, 0)? != 1 || red.float(2, 1.0)? != 1.0 {
        return Ok(Look::No);
    }
    let mut chain: BTreeSet<usize> = BTreeSet::from([r]);
    // The input: squares of a Split output, or the Split output itself.
    let (split, mut split_tops) = if op == 0 {
        let q = g.producer_of(&red.bottoms[0]);
        let ql = g.layer(q);
        let is_square = g.is_unary(q, 4) || (g.is_binary(q, 6, true) && g.scalar(q) == Some(2.0));
        let is_self_mul = g.is_binary(q, 2, false)
            && g.split_of(&ql.bottoms[0]).is_some()
            && g.split_of(&ql.bottoms[0]) == g.split_of(&ql.bottoms[1]);
        if !(is_square || is_self_mul) {
            return Ok(Look::No);
        }
        let Some(s) = g.split_of(&ql.bottoms[0]) else {
            return Ok(Look::No);
        };
        if let Err(e) = g.sole_consumer(&ql.tops[0]) {
            return Ok(Look::Skip(format!(
                "{}: squares are not only summed: {e}",
                g.label(r)
            )));
        }
        chain.insert(q);
        let mut tops: Vec<String> = ql.bottoms.clone();
        tops.dedup();
        (s, tops)
    } else {
        let Some(s) = g.split_of(&red.bottoms[0]) else {
            return Ok(Look::No);
        };
        (s, vec![red.bottoms[0].clone()])
    };
    let x = g.layer(split).bottoms[0].clone();
    // The denominator.
    let mut state = if op == 8 { State::Norm } else { State::Ss };
    let mut blob = red.tops[0].clone();
    let (numerator, div_out) = loop {
        let next = match g.sole_consumer(&blob) {
            Ok(n) => n,
            Err(e) => return Ok(Look::Skip(format!("{}: intermediate {e}", g.label(r)))),
        };
        let l = g.layer(next);
        state = match state {
            State::Ss if g.is_unary(next, 5) => State::Norm,
            State::Ss if g.is_unary(next, 6) => State::Inv(EpsMode::Caffe, None),
            State::Ss if g.is_binary(next, 0, true) => State::SsEps(EpsMode::Caffe, next),
            State::Ss if g.is_binary(next, 4, true) => State::SsEps(EpsMode::TensorFlow, next),
            State::Ss if is_clip_min(l) => State::SsEps(EpsMode::TensorFlow, next),
            State::SsEps(m, e) if g.is_unary(next, 5) => State::Denom(m, Some(e)),
            State::SsEps(m, e) if g.is_unary(next, 6) => State::Inv(m, Some(e)),
            State::Norm if g.is_binary(next, 0, true) => State::Denom(EpsMode::Add, Some(next)),
            State::Norm if g.is_binary(next, 4, true) || is_clip_min(l) => {
                State::Denom(EpsMode::Max, Some(next))
            }
            State::Norm if g.is_unary(next, 15) => State::Inv(EpsMode::Add, None),
            State::Denom(m, e) if g.is_unary(next, 15) => State::Inv(m, e),
            // x / denominator
            State::Norm | State::Denom(..)
                if g.is_binary(next, 3, false) && l.bottoms[1] == blob && l.bottoms[0] != blob =>
            {
                chain.insert(next);
                break (l.bottoms[0].clone(), l.tops[0].clone());
            }
            // x * (1 / denominator)
            State::Inv(..) if g.is_binary(next, 2, false) && l.bottoms[0] != l.bottoms[1] => {
                chain.insert(next);
                let other = if l.bottoms[0] == blob {
                    &l.bottoms[1]
                } else {
                    &l.bottoms[0]
                };
                break (other.clone(), l.tops[0].clone());
            }
            _ => {
                return Ok(Look::Skip(format!(
                    "{}: the norm goes on to {}, not a division of the input",
                    g.label(r),
                    g.label(next)
                )))
            }
        };
        chain.insert(next);
        blob = l.tops[0].clone();
    };
    let (eps_mode, eps_layer) = match state {
        State::Norm => (EpsMode::Add, None),
        State::Denom(m, e) | State::Inv(m, e) => (m, e),
        _ => unreachable!("the loop breaks only from Norm, Denom or Inv"),
    };
    // The numerator: the Split's input, possibly scaled first.
    let mut before: Option<Scale> = None;
    if g.split_of(&numerator) == Some(split) && !split_tops.contains(&numerator) {
        split_tops.push(numerator.clone());
    } else {
        let n = g.producer_of(&numerator);
        let nl = g.layer(n);
        let from_split = |b: &String| g.split_of(b) == Some(split) && !split_tops.contains(b);
        if g.is_binary(n, 2, true) && from_split(&nl.bottoms[0]) {
            before = Some(Scale::Scalar(n, g.scalar(n).unwrap_or(1.0)));
            split_tops.push(nl.bottoms[0].clone());
        } else if g.is_binary(n, 2, false) && nl.bottoms.iter().any(from_split) {
            let (xb, other) = if from_split(&nl.bottoms[0]) {
                (&nl.bottoms[0], &nl.bottoms[1])
            } else {
                (&nl.bottoms[1], &nl.bottoms[0])
            };
            let md = g.producer_of(other);
            if g.layer(md).ty != "MemoryData" {
                return Ok(Look::Skip(format!(
                    "{}: the input is multiplied by {} before the division",
                    g.label(r),
                    g.label(md)
                )));
            }
            before = Some(Scale::Tensor(n, md));
            split_tops.push(xb.clone());
        } else {
            return Ok(Look::Skip(format!(
                "{}: the norm divides blob {numerator}, which is not the normalised input {x}",
                g.label(r)
            )));
        }
        if let Err(e) = g.sole_consumer(&numerator) {
            return Ok(Look::Skip(format!("{}: intermediate {e}", g.label(r))));
        }
    }
    // The chain has an L2Norm's shape: check the axis it normalises.
    let axes = red.int_array(3)?;
    let mut axis_from_pnnx = None;
    if op == 0 && has_no_axes(red) {
        axis_from_pnnx = Some(lost_axis(g, r, &x)?);
    } else if red.int(1, 1)? != 0 || axes != [0] {
        let why = if red.int(1, 1)? != 0 {
            "reduces every axis".to_string()
        } else if axes.is_empty() {
            "has reduce_all=0 and no axes, so ncnn reduces nothing (pnnx drops the axes of ONNX opset >= 13 reductions: export with opset_version=11, or convert the TorchScript model)".to_string()
        } else {
            format!(
                "reduces axes {axes:?}, not axis 0, the axis L2Norm normalises (pnnx writes axis 1 when it could not find the batch axis, e.g. for an L2Norm traced without a layer before it: the blob is then 4-D with the channels in d)"
            )
        };
        return Ok(Look::Skip(format!("{}: {why}", g.label(r))));
    } else if red.int(5, 0)? != 1 {
        return Ok(Look::Skip(format!(
            "{}: axes written without 5=1 (ncnn refuses this old form)",
            g.label(r)
        )));
    }
    // A scale after the division.
    let after = scale_after(g, &div_out)?;
    let (scale, output) = match (before, after) {
        (Some(_), Some((_, _))) => {
            return Err(format!(
                "ambiguous match at {}: the input is scaled both before and after the division ({} and {}); which one is the L2Norm weight?",
                g.label(r),
                g.label(g.producer_of(&numerator)),
                g.label(g.sole_consumer(&div_out).unwrap_or(r))
            ))
        }
        (Some(s), None) => (Some(s), div_out),
        (None, Some((s, out))) => (Some(s), out),
        (None, None) => (None, div_out),
    };
    let (weights, channel_shared) = match &scale {
        None => (vec![1.0], true),
        Some(Scale::Scalar(m, s)) => {
            chain.insert(*m);
            (vec![*s], true)
        }
        Some(Scale::Tensor(m, md)) => {
            chain.insert(*m);
            chain.insert(*md);
            let md_out = &g.layer(*md).tops[0];
            if let Err(e) = g.sole_consumer(md_out) {
                return Ok(Look::Skip(format!("{}: weight {e}", g.label(r))));
            }
            match weight_of(g, *md) {
                Ok(w) => w,
                Err(e) => return Ok(Look::Skip(format!("{}: {e}", g.label(r)))),
            }
        }
    };
    // Every blob a chain layer writes, except the output, stays inside the chain.
    for &i in &chain {
        for t in &g.layer(i).tops {
            if *t != output {
                if let Err(e) = g.sole_consumer(t) {
                    return Ok(Look::Skip(format!("{}: intermediate {e}", g.label(r))));
                }
                let c = g.sole_consumer(t).unwrap();
                if !chain.contains(&c) {
                    return Ok(Look::Skip(format!(
                        "{}: intermediate blob {t} is read by {} outside the chain",
                        g.label(r),
                        g.label(c)
                    )));
                }
            }
        }
    }
    let channels = match (channel_shared, g.channels_of(&x)) {
        (false, Some(c)) if c != weights.len() => {
            return Ok(Look::Skip(format!(
                "{}: the weight has {} channels, input blob {x} has {c}",
                g.label(r),
                weights.len()
            )))
        }
        (false, _) => weights.len(),
        (true, Some(c)) => c,
        (true, None) => {
            return Ok(Look::Skip(format!(
                "{}: the scale is shared and the graph does not say how many channels blob {x} has",
                g.label(r)
            )))
        }
    };
    let eps_param = eps_layer.map(|e| (e, if g.layer(e).ty == "Clip" { 0 } else { 2 }));
    let mut notes: Vec<String> = axis_from_pnnx.into_iter().collect();
    let eps_mode = if eps_layer.is_none() {
        notes.push(format!(
            "{}: the chain adds no eps (torch's dynamo ONNX export drops the module's `+ eps`): the L2Norm uses {DEFAULT_EPS:e} added to the norm, mmdetection's and ssd.pytorch's, which gives 0 where the chain gives 0/0 = NaN and differs from the chain only where the norm is below about 2e-3",
            g.label(r)
        ));
        EpsMode::Add
    } else {
        eps_mode
    };
    Ok(Look::Found(Match {
        layers: chain,
        split,
        split_tops,
        output,
        eps_param,
        eps_mode,
        notes,
        weights,
        channel_shared,
        channels,
    }))
}

/// The channel count of the sum `Reduction` `r` that pnnx wrote with no
/// axes, from pnnx's `.pnnx.param`, and the line the report prints; or why
/// the axis cannot be known for certain (the whole run is refused: the model
/// as converted does not compute an L2Norm there).
///
/// pnnx's ncnn step turns every `torch.sum` whose `dim` it wrote as a bare
/// integer into a no-axes `Reduction`, in graph order, so the k-th such
/// Reduction here is the k-th such `torch.sum` there. That sum must be the
/// channel sum of a batch-1 NCHW tensor with keepdim, over as many channels as
/// this graph shows blob `x` has as a 3-D ncnn blob (w, h, c), where ncnn's
/// axis 0 is PyTorch's dim 1.
fn lost_axis(g: &Graph, r: usize, x: &str) -> Result<String, String> {
    let k = g
        .lost_sums
        .iter()
        .position(|&i| i == r)
        .expect("r is a lost sum");
    let what = format!(
        "{} sums over no axis (1=0 -23303=0), so this model computes x/|x| there, not an L2Norm: pnnx loses ReduceSum's axes from ONNX opset >= 13 and torch's default (dynamo) exporter",
        g.label(r)
    );
    let path = g.files.pnnx_path.display().to_string();
    let p = match &g.files.pnnx {
        None => {
            let name = g
                .files
                .pnnx_path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let mut files = g.files.clone();
            files.pnnx_path = PathBuf::from("DIR").join(&name);
            let mut opts = g.opts.clone();
            opts.pnnx_param = Some(files.pnnx_path.clone());
            return Err(format!(
                "{what}.\npnnx wrote the axis in {name}, beside the .ncnn.param it converted (it is not at {path}); give it:\n  {}\nor export the ONNX model with opset 11, whose axes pnnx keeps: torch.onnx.export(model, (x,), \"model.onnx\", dynamo=False, opset_version=11)",
                files.command(&opts, &[])
            ));
        }
        Some(Err(e)) => {
            return Err(format!(
                "{what}.\n{path} should say which axis, but cannot be read: {e}"
            ))
        }
        Some(Ok(p)) => p,
    };
    let sums = p.sums_with_integer_dim();
    if sums.len() != g.lost_sums.len() {
        return Err(format!(
            "{what}.\n{path} has {} torch.sum with an integer dim, this model {} sums with no axes: it is not the .pnnx.param of this model (give the right one with --pnnx-param)",
            sums.len(),
            g.lost_sums.len()
        ));
    }
    let op = sums[k];
    let c = pnnx::channel_sum(op).map_err(|e| format!("{what}.\n{path}: {e}"))?;
    match g.channels_3d_of(x) {
        Some(n) if n == c => Ok(format!(
            "{}: no axes in the .param; {path} says {}: the channel axis",
            g.label(r),
            pnnx::describe(op)
        )),
        Some(n) => Err(format!(
            "{what}.\n{path} says {} ({c} channels), but blob {x} has {n}: it is not the .pnnx.param of this model (give the right one with --pnnx-param)",
            pnnx::describe(op)
        )),
        None => Err(format!(
            "{what}.\n{path} says {}, but this graph does not show that blob {x} is a 3-D ncnn blob (w, h, c) with c = dim 1: cannot tell for certain which ncnn axis it sums (pnnx keeps 4-D blobs when it cannot find the batch axis, e.g. an L2Norm converted without a layer before it)",
            pnnx::describe(op)
        )),
    }
}

/// `Clip` with a lower bound and no upper one: `max(x, min)`.
fn is_clip_min(l: &Layer) -> bool {
    l.ty == "Clip"
        && l.float(1, f32::MAX).map(|m| m >= f32::MAX).unwrap_or(false)
        && l.param(0).is_some()
}

/// A layer to write: an original one (possibly with edited blobs) or a new L2Norm.
enum Out {
    Keep(usize, Layer),
    New(Layer, Vec<f32>),
}

/// Fuses `pf` + `bin` and returns the new model and what was done. Errors
/// (nothing to write) on a `.bin` that does not match the `.param`, on an
/// ambiguous chain, on a reduction over no axes that cannot be repaired for
/// certain, and when nothing was fused. `files` names the files for the
/// commands messages suggest and holds pnnx's `.pnnx.param`, if any.
pub fn fuse(
    pf: &ParamFile,
    bin: &[u8],
    opts: &FuseOptions,
    files: &Files,
) -> Result<(ParamFile, Vec<u8>, FuseReport), ModelError> {
    let lay = bin::layout(pf, bin)?;
    let g = Graph {
        pf,
        bin,
        lay: &lay,
        producer: pf.producers(),
        consumers: pf.consumers(),
        opts,
        files,
        lost_sums: (pf.layers.iter().enumerate())
            .filter(|(_, l)| has_no_axes(l) && l.int(0, 0) == Ok(0))
            .map(|(i, _)| i)
            .collect(),
    };
    let mut report = FuseReport::default();
    let mut matches: Vec<Match> = Vec::new();
    let mut claimed: HashSet<usize> = HashSet::new();
    for (i, l) in pf.layers.iter().enumerate() {
        if l.ty != "Reduction" {
            continue;
        }
        match look(&g, i).map_err(ModelError::Fuse)? {
            Look::No => {}
            Look::Skip(why) => report.skipped.push(why),
            Look::Found(m) => {
                if let Some(&c) = m.layers.iter().find(|c| claimed.contains(c)) {
                    return Err(ModelError::Fuse(format!(
                        "ambiguous match: {} belongs to two L2Norm chains",
                        g.label(c)
                    )));
                }
                claimed.extend(m.layers.iter().copied());
                matches.push(m);
            }
        }
    }

    let mut names: HashSet<String> = pf.layers.iter().map(|l| l.name.clone()).collect();
    let mut fresh_name = |base: &str| {
        let mut name = base.to_string();
        let mut k = 0;
        while names.contains(&name) {
            k += 1;
            name = format!("{base}_{k}");
        }
        names.insert(name.clone());
        name
    };

    // New layers keyed by the index of the layer they take the place of.
    let mut replace_at: HashMap<usize, (Layer, Vec<f32>)> = HashMap::new();
    let mut removed: HashSet<usize> = HashSet::new();
    // Split index -> its tops to drop, and the renames of kept ones.
    let mut split_drop: HashMap<usize, HashSet<String>> = HashMap::new();
    let mut inputs: Vec<(usize, String)> = Vec::new(); // (split, top the L2Norm reads)
    let mut normalize_seen: Vec<String> = Vec::new(); // convertible Normalize layers left alone
    let mut moduleop_seen: Vec<(String, String, Vec<i32>)> = Vec::new(); // (name, type, shape)
    for m in &matches {
        let last = *m.layers.iter().max().unwrap();
        let eps_param = match m.eps_param {
            Some((i, id)) => {
                let src = g.layer(i).param(id).unwrap();
                Param::float_from(1, src)
                    .unwrap_or_else(|| Param::float(1, src.as_float().unwrap_or(0.0)))
            }
            None => Param::float(1, DEFAULT_EPS),
        };
        let eps = eps_param.as_float().unwrap();
        L2NormParams::from_raw(
            m.channels as i64,
            eps,
            m.eps_mode.to_param(),
            m.channel_shared as i32,
            &[],
        )
        .map_err(|e| ModelError::Fuse(format!("{}: {e}", g.label(last))))?;
        let name = fresh_name(&format!("l2norm_{}", g.layer(last).name));
        let layer = Layer {
            ty: "L2Norm".into(),
            name: name.clone(),
            bottoms: vec![m.split_tops[0].clone()],
            tops: vec![m.output.clone()],
            params: vec![
                Param::int(0, m.channels as i32),
                eps_param,
                Param::int(2, m.eps_mode.to_param()),
                Param::int(3, m.channel_shared as i32),
            ],
        };
        report.fused.push(Fused {
            name,
            replaced: m.layers.iter().map(|&i| g.layer(i).name.clone()).collect(),
            channels: m.channels,
            eps,
            eps_mode: m.eps_mode,
            channel_shared: m.channel_shared,
            from: "chain",
        });
        report.notes.extend(m.notes.iter().cloned());
        removed.extend(m.layers.iter().copied());
        replace_at.insert(last, (layer, m.weights.clone()));
        split_drop
            .entry(m.split)
            .or_default()
            .extend(m.split_tops[1..].iter().cloned());
        inputs.push((m.split, m.split_tops[0].clone()));
    }

    for (i, l) in pf.layers.iter().enumerate() {
        if l.ty != "Normalize" {
            continue;
        }
        let label = g.label(i);
        let (across_spatial, across_channel) = (
            l.int(0, 0).map_err(ModelError::Fuse)?,
            l.int(4, 1).map_err(ModelError::Fuse)?,
        );
        if across_spatial != 0 || across_channel != 1 {
            if opts.normalize {
                report.skipped.push(format!(
                    "{label}: not in channel mode (0={across_spatial} 4={across_channel})"
                ));
            }
            continue;
        }
        if !opts.normalize {
            normalize_seen.push(l.name.clone());
            continue;
        }
        let ncnn_mode = l.int(9, 0).map_err(ModelError::Fuse)?;
        let mode = match ncnn_mode {
            0 => EpsMode::Caffe,
            1 => EpsMode::Max,
            2 => EpsMode::TensorFlow,
            other => {
                return Err(ModelError::Fuse(format!(
                    "{label}: unknown eps_mode 9={other}"
                )))
            }
        };
        let shared = l.int(1, 0).map_err(ModelError::Fuse)? != 0;
        let size = l.int(3, 0).map_err(ModelError::Fuse)?;
        // One scale when shared, one per channel (at least one) otherwise.
        if (shared && size != 1) || size < 1 {
            return Err(ModelError::Fuse(format!(
                "{label}: scale_data_size 3={size} with channel_shared 1={}",
                shared as i32
            )));
        }
        let eps_param = match l.param(2) {
            Some(p) => Param::float_from(1, p)
                .unwrap_or_else(|| Param::float(1, p.as_float().unwrap_or(0.0))),
            None => Param::float(1, 0.0001),
        };
        let eps = eps_param.as_float().unwrap();
        let mut weights = bin::decode_f32(bin, &lay[i].chunks[0])?;
        let mut replaced = vec![i];
        let mut tops = l.tops.clone();
        // A multiply by a constant right after it (torchvision's
        // `scale_weight.view(1, -1, 1, 1) * F.normalize(x)`) folds into the weights.
        let mut folded_shared = shared;
        match fold_scale_after(&g, i, &removed) {
            Ok(None) => {}
            Ok(Some((layers, scale, scale_shared, out))) => {
                weights = match (shared, scale_shared) {
                    (_, true) => weights.iter().map(|w| w * scale[0]).collect(),
                    (true, false) => scale.iter().map(|s| weights[0] * s).collect(),
                    (false, false) if weights.len() == scale.len() => {
                        weights.iter().zip(&scale).map(|(w, s)| w * s).collect()
                    }
                    (false, false) => {
                        return Err(ModelError::Fuse(format!(
                            "{label} has {} channels, the multiply after it {}",
                            weights.len(),
                            scale.len()
                        )))
                    }
                };
                folded_shared = shared && scale_shared;
                for &m in &layers {
                    replaced.push(m);
                    removed.insert(m);
                }
                tops = vec![out];
            }
            Err(why) => report.notes.push(format!(
                "{label}: the multiply after it stays a separate layer: {why}"
            )),
        }
        let channels = if folded_shared {
            g.channels_of(&l.bottoms[0]).ok_or_else(|| {
                ModelError::Fuse(format!(
                    "{label} has a shared scale (1=1): the L2Norm needs the channel count, and the graph does not say how many channels blob {} has",
                    l.bottoms[0]
                ))
            })?
        } else {
            weights.len()
        };
        if let Some(c) = g.channels_of(&l.bottoms[0]) {
            if c != channels {
                return Err(ModelError::Fuse(format!(
                    "{label}: the weights are for {channels} channels, blob {} has {c}",
                    l.bottoms[0]
                )));
            }
        }
        L2NormParams::from_raw(
            channels as i64,
            eps,
            mode.to_param(),
            folded_shared as i32,
            &[],
        )
        .map_err(|e| ModelError::Fuse(format!("{label}: {e}")))?;
        let name = fresh_name(&format!("l2norm_{}", l.name));
        report.fused.push(Fused {
            name: name.clone(),
            replaced: {
                replaced.sort_unstable(); // file order
                replaced
                    .iter()
                    .map(|&r| pf.layers[r].name.clone())
                    .collect()
            },
            channels,
            eps,
            eps_mode: mode,
            channel_shared: folded_shared,
            from: "Normalize",
        });
        let layer = Layer {
            ty: "L2Norm".into(),
            name,
            bottoms: l.bottoms.clone(),
            tops,
            params: vec![
                Param::int(0, channels as i32),
                eps_param,
                Param::int(2, mode.to_param()),
                Param::int(3, folded_shared as i32),
            ],
        };
        removed.insert(i);
        replace_at.insert(i, (layer, weights));
    }

    // pnnx moduleop L2Norm layers: already one layer.
    for (i, l) in pf.layers.iter().enumerate() {
        if !moduleop::is_l2norm_class(&l.ty) {
            continue;
        }
        let m = moduleop::read(l).map_err(ModelError::Fuse)?;
        if !opts.moduleop {
            moduleop_seen.push((l.name.clone(), l.ty.clone(), m.shape.clone()));
            continue;
        }
        let weights = bin::decode_f32(bin, &lay[i].chunks[0])?;
        let name = fresh_name(&format!("l2norm_{}", l.name));
        report.fused.push(Fused {
            name: name.clone(),
            replaced: vec![l.name.clone()],
            channels: m.channels,
            eps: DEFAULT_EPS,
            eps_mode: EpsMode::Add,
            channel_shared: false,
            from: "moduleop",
        });
        report.notes.push(format!(
            "{} ({}) renamed to L2Norm: eps {DEFAULT_EPS:e} added to the norm written explicitly (pnnx does not write the module's eps; {DEFAULT_EPS:e} is mmdetection's and ssd.pytorch's), the weight copied unchanged",
            l.name, l.ty
        ));
        let layer = Layer {
            ty: "L2Norm".into(),
            name,
            bottoms: l.bottoms.clone(),
            tops: l.tops.clone(),
            params: vec![
                Param::int(0, m.channels as i32),
                Param::float(1, DEFAULT_EPS),
                Param::int(2, EpsMode::Add.to_param()),
                Param::int(3, 0),
            ],
        };
        removed.insert(i);
        replace_at.insert(i, (layer, weights));
    }

    // A reduction over no axes left in the output would leave it as wrong as the input.
    for (i, l) in pf.layers.iter().enumerate() {
        if has_no_axes(l) && !removed.contains(&i) {
            return Err(ModelError::Fuse(format!(
                "{} reduces over no axis (1=0 -23303=0): the model as converted is wrong there (pnnx loses the axes of ONNX opset >= 13 and dynamo-exported reductions), and it is not part of an L2Norm this tool could fuse{}. Export with opset 11 (torch.onnx.export(model, (x,), \"model.onnx\", dynamo=False, opset_version=11)) or convert the TorchScript model",
                g.label(i),
                report
                    .skipped
                    .iter()
                    .find(|s| s.starts_with(&g.label(i)))
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            )));
        }
    }

    let cmd = |flag: &str| files.command(opts, &[flag]);
    if !normalize_seen.is_empty() {
        report.notes.push(format!(
            "{} ncnn Normalize layer(s) in channel mode ({}) can become L2Norm too, with the multiply after each folded in: {}",
            normalize_seen.len(),
            normalize_seen.join(", "),
            cmd("--normalize")
        ));
    }
    for (name, ty, shape) in &moduleop_seen {
        report.notes.push(format!(
            "layer {name} ({ty}, weight shape {shape:?}) is a pnnx moduleop L2Norm, already one layer: it loads as it is with register_l2norm(net, \"{ty}\") (eps {DEFAULT_EPS:e}); to load it with the default register_l2norm(net), rename it: {}",
            cmd("--moduleop")
        ));
    }

    if report.fused.is_empty() {
        let mut msg = "no L2Norm chain".to_string();
        if opts.normalize {
            msg.push_str(" or channel-mode Normalize");
        }
        msg.push_str(" to fuse");
        for s in &report.skipped {
            msg.push_str("\n  skipped: ");
            msg.push_str(s);
        }
        for n in &report.notes {
            msg.push_str("\n  note: ");
            msg.push_str(n);
        }
        return Err(ModelError::Fuse(msg));
    }

    // Splits: drop the outputs the chains no longer read; a Split left with
    // one output goes, its reader reads the Split's input instead.
    let mut rename: HashMap<String, String> = HashMap::new();
    let mut out: Vec<Out> = Vec::new();
    for (i, l) in pf.layers.iter().enumerate() {
        if let Some((layer, w)) = replace_at.remove(&i) {
            out.push(Out::New(layer, w));
            continue;
        }
        if removed.contains(&i) {
            continue;
        }
        let mut l = l.clone();
        if let Some(drop) = split_drop.get(&i) {
            l.tops.retain(|t| !drop.contains(t));
            if l.tops.len() == 1 && inputs.iter().any(|(s, t)| *s == i && *t == l.tops[0]) {
                rename.insert(l.tops[0].clone(), l.bottoms[0].clone());
                continue;
            }
        }
        out.push(Out::Keep(i, l));
    }

    let mut layers = Vec::with_capacity(out.len());
    let mut new_bin = Vec::with_capacity(bin.len());
    for o in out {
        let mut l = match o {
            Out::Keep(i, l) => {
                new_bin.extend_from_slice(&bin[lay[i].start..lay[i].end]);
                l
            }
            Out::New(l, w) => {
                for v in w {
                    new_bin.extend_from_slice(&v.to_le_bytes());
                }
                l
            }
        };
        for b in &mut l.bottoms {
            if let Some(r) = rename.get(b) {
                *b = r.clone();
            }
        }
        layers.push(l);
    }
    let new_pf = ParamFile { layers };
    // The result must itself be a consistent model.
    let reparsed = ParamFile::parse(&new_pf.to_text())
        .map_err(|e| ModelError::Fuse(format!("internal error, fused .param invalid: {e}")))?;
    bin::layout(&reparsed, &new_bin)
        .map_err(|e| ModelError::Fuse(format!("internal error, fused .bin invalid: {e}")))?;
    Ok((new_pf, new_bin, report))
}

fn read(path: &Path) -> Result<Vec<u8>, ModelError> {
    std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.display().to_string(),
        msg: e.to_string(),
    })
}

/// Writes `bytes` to a temporary file next to `path`; returns its path.
fn write_temp(path: &Path, bytes: &[u8]) -> Result<std::path::PathBuf, ModelError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.fuse-tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| ModelError::Io {
        path: tmp.display().to_string(),
        msg: e.to_string(),
    })?;
    Ok(tmp)
}

/// Reads a model, fuses it and writes the result. Both outputs are written
/// to temporary files first and renamed into place only when both are
/// complete: on any error no output file is created or changed.
pub fn fuse_files(
    in_param: &Path,
    in_bin: &Path,
    out_param: &Path,
    out_bin: &Path,
    opts: FuseOptions,
) -> Result<FuseReport, ModelError> {
    let text = String::from_utf8(read(in_param)?).map_err(|_| ModelError::Io {
        path: in_param.display().to_string(),
        msg: "not UTF-8 text".into(),
    })?;
    let pf = ParamFile::parse(&text)?;
    let bin = read(in_bin)?;
    let files = Files::read(
        in_param,
        in_bin,
        out_param,
        out_bin,
        opts.pnnx_param.as_deref(),
    )?;
    let (new_pf, new_bin, report) = fuse(&pf, &bin, &opts, &files)?;
    let tp = write_temp(out_param, new_pf.to_text().as_bytes())?;
    let tb = match write_temp(out_bin, &new_bin) {
        Ok(t) => t,
        Err(e) => {
            let _ = std::fs::remove_file(&tp);
            return Err(e);
        }
    };
    let rename = |from: &Path, to: &Path| {
        std::fs::rename(from, to).map_err(|e| ModelError::Io {
            path: to.display().to_string(),
            msg: e.to_string(),
        })
    };
    if let Err(e) = rename(&tb, out_bin) {
        let _ = std::fs::remove_file(&tp);
        let _ = std::fs::remove_file(&tb);
        return Err(e);
    }
    if let Err(e) = rename(&tp, out_param) {
        let _ = std::fs::remove_file(&tp);
        return Err(e);
    }
    Ok(report)
}
