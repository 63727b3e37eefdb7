//! pnnx's own graph file, `.pnnx.param`, read for what pnnx's last step
//! (pnnx graph -> ncnn) loses.
//!
//! pnnx writes `NAME.pnnx.param` beside `NAME.ncnn.param` (unless told
//! `pnnxparam=` elsewhere). It is a text graph like ncnn's: a magic line
//! `7767517`, a count line, then one operator per line:
//!
//! ```text
//! torch.sum   torch.sum_0   1 1 3 4 dim=1 keepdim=True $input=3 #3=(1,48,12,10)f32 #4=(1,1,12,10)f32
//! ```
//!
//! type, name, input and output counts, the operand names, then `key=value`
//! parameters, `@attr=...` weights, `$arg=operand` argument names and
//! `#operand=(shape)type` shapes, every operand annotated with its shape.
//!
//! What this is read for: from an ONNX export with opset >= 13 (ReduceSum's
//! axes became an input) or torch's dynamo exporter, pnnx 20261020 records
//! `torch.sum` with `dim=1`, a bare integer, where the TorchScript and opset
//! 11 routes give the tuple `dim=(1)`; its ncnn pass reads `dim` as an
//! integer list, gets an empty one and writes `Reduction ... 1=0 -23303=0`:
//! sum over no axis. The `.pnnx.param` still has the axis, the keepdim flag
//! and the input's shape.

use std::collections::HashMap;

/// One operator line.
#[derive(Debug, Clone, PartialEq)]
pub struct PnnxOp {
    pub ty: String,
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    /// `key=value` parameters, in file order (weights, argument names and shapes excluded).
    pub params: Vec<(String, String)>,
    /// `#operand=(d0,d1,...)type`: the shape of each operand the line annotates.
    pub shapes: HashMap<String, Vec<i64>>,
}

impl PnnxOp {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The shape of the first input operand, if the line gives it.
    pub fn input_shape(&self) -> Option<&[i64]> {
        self.shapes.get(self.inputs.first()?).map(Vec::as_slice)
    }
}

/// A parsed `.pnnx.param`.
#[derive(Debug, Clone, PartialEq)]
pub struct PnnxParam {
    pub ops: Vec<PnnxOp>,
}

impl PnnxParam {
    pub fn parse(text: &str) -> Result<PnnxParam, String> {
        let mut lines = text.lines().enumerate();
        match lines.next() {
            Some((_, l)) if l.trim() == "7767517" => {}
            _ => return Err("not a pnnx .param: the first line is not 7767517".into()),
        }
        let count: usize = lines
            .next()
            .and_then(|(_, l)| l.split_whitespace().next()?.parse().ok())
            .ok_or("line 2: no operator count")?;
        let mut ops = Vec::with_capacity(count);
        for (i, line) in lines {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let at = |what: &str| format!("line {}: {what}", i + 1);
            if f.len() < 4 {
                return Err(at("fewer than 4 fields"));
            }
            let n = |s: &str| {
                s.parse::<usize>()
                    .map_err(|_| at(&format!("bad operand count {s:?}")))
            };
            let (nin, nout) = (n(f[2])?, n(f[3])?);
            if f.len() < 4 + nin + nout {
                return Err(at("fewer operands than its counts say"));
            }
            let mut op = PnnxOp {
                ty: f[0].into(),
                name: f[1].into(),
                inputs: f[4..4 + nin].iter().map(|s| s.to_string()).collect(),
                outputs: f[4 + nin..4 + nin + nout]
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                params: vec![],
                shapes: HashMap::new(),
            };
            for kv in &f[4 + nin + nout..] {
                let Some((k, v)) = kv.split_once('=') else {
                    return Err(at(&format!("{kv:?} is not key=value")));
                };
                if let Some(operand) = k.strip_prefix('#') {
                    if let Some(shape) = parse_shape(v) {
                        op.shapes.insert(operand.to_string(), shape);
                    }
                } else if !k.starts_with('@') && !k.starts_with('$') {
                    op.params.push((k.to_string(), v.to_string()));
                }
            }
            ops.push(op);
        }
        if ops.len() != count {
            return Err(format!(
                "line 2 says {count} operators, the file has {}",
                ops.len()
            ));
        }
        Ok(PnnxParam { ops })
    }

    /// The `torch.sum` operators whose `dim` pnnx wrote as a bare integer, in
    /// file order: the ones its ncnn pass turns into a `Reduction` with no axes.
    pub fn sums_with_integer_dim(&self) -> Vec<&PnnxOp> {
        self.ops
            .iter()
            .filter(|o| o.ty == "torch.sum")
            .filter(|o| o.param("dim").is_some_and(|d| d.parse::<i64>().is_ok()))
            .collect()
    }
}

/// `(1,48,12,10)f32` -> [1, 48, 12, 10]; `?` (unknown) or no parentheses -> None.
fn parse_shape(v: &str) -> Option<Vec<i64>> {
    let inner = v.strip_prefix('(')?.split_once(')')?.0;
    if inner.is_empty() {
        return Some(vec![]);
    }
    inner.split(',').map(|d| d.trim().parse().ok()).collect()
}

/// `torch.sum torch.sum_0 dim=1 keepdim=True over (1,48,12,10)`: what an operator says.
pub fn describe(op: &PnnxOp) -> String {
    let mut s = format!("{} {}", op.ty, op.name);
    for key in ["dim", "keepdim"] {
        if let Some(v) = op.param(key) {
            s.push_str(&format!(" {key}={v}"));
        }
    }
    if let Some(shape) = op.input_shape() {
        let dims: Vec<String> = shape.iter().map(i64::to_string).collect();
        s.push_str(&format!(" over ({})", dims.join(",")));
    }
    s
}

/// What a `torch.sum` says, checked against an L2Norm's channel sum: the sum
/// over the channel axis of a batch-1 NCHW tensor, keeping the dim. Returns
/// the channel count, or why it is not that sum.
pub fn channel_sum(op: &PnnxOp) -> Result<usize, String> {
    let said = describe(op);
    let dim: i64 = op
        .param("dim")
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("{said}: no integer dim"))?;
    let shape = op
        .input_shape()
        .ok_or_else(|| format!("{said}: its input's shape is not given"))?;
    if op.param("keepdim") != Some("True") {
        return Err(format!("{said}: does not keep the summed dim"));
    }
    if shape.len() != 4 || shape[0] != 1 {
        return Err(format!(
            "{said}: not a batch-1 NCHW tensor, so its dim 1 is not known to be ncnn's channel axis"
        ));
    }
    if dim != 1 && dim != -3 {
        return Err(format!(
            "{said}: sums dim {dim}, not the channel dim 1 an L2Norm sums"
        ));
    }
    usize::try_from(shape[1])
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| format!("{said}: bad channel count"))
}

/// Where pnnx writes the `.pnnx.param` of the model whose ncnn `.param` is
/// `ncnn_param`: `NAME.ncnn.param` -> `NAME.pnnx.param` (pnnx's own naming),
/// anything else `X.param` -> `X.pnnx.param`.
pub fn beside(ncnn_param: &std::path::Path) -> std::path::PathBuf {
    let name = ncnn_param
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name
        .strip_suffix(".ncnn.param")
        .or_else(|| name.strip_suffix(".param"))
        .unwrap_or(&name);
    ncnn_param.with_file_name(format!("{stem}.pnnx.param"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONNX13: &str = "7767517\n3 2\n\
pnnx.Input in0 0 1 0 #0=(1,48,12,10)f32\n\
pnnx.Expression pnnx_expr_5 1 1 0 3 expr=pow(@0,2.0) #0=(1,48,12,10)f32 #3=(1,48,12,10)f32\n\
torch.sum torch.sum_0 1 1 3 4 dim=1 keepdim=True $input=3 #3=(1,48,12,10)f32 #4=(1,1,12,10)f32\n";

    fn first_sum(text: &str) -> Result<usize, String> {
        channel_sum(PnnxParam::parse(text).unwrap().sums_with_integer_dim()[0])
    }

    #[test]
    fn reads_what_pnnx_writes_for_an_opset13_sum() {
        let p = PnnxParam::parse(ONNX13).unwrap();
        assert_eq!(p.ops.len(), 3);
        let sums = p.sums_with_integer_dim();
        assert_eq!(sums.len(), 1);
        assert_eq!(sums[0].input_shape(), Some(&[1, 48, 12, 10][..]));
        assert_eq!(channel_sum(sums[0]), Ok(48));
        assert_eq!(p.ops[1].param("expr"), Some("pow(@0,2.0)"));
    }

    #[test]
    fn tuple_dims_are_not_lost_and_other_sums_are_refused() {
        let ts = ONNX13.replace("dim=1 ", "dim=(1) ");
        assert!(PnnxParam::parse(&ts)
            .unwrap()
            .sums_with_integer_dim()
            .is_empty());
        for (from, to, why) in [
            ("dim=1 ", "dim=2 ", "sums dim 2"),
            ("keepdim=True", "keepdim=False", "does not keep"),
            (
                "#3=(1,48,12,10)f32 #4",
                "#3=(2,48,12,10)f32 #4",
                "not a batch-1 NCHW",
            ),
            (
                "#3=(1,48,12,10)f32 #4",
                "#3=(1,48,12)f32 #4",
                "not a batch-1 NCHW",
            ),
        ] {
            let e = first_sum(&ONNX13.replace(from, to)).unwrap_err();
            assert!(e.contains(why), "{to}: {e}");
        }
        assert_eq!(first_sum(&ONNX13.replace("dim=1 ", "dim=-3 ")), Ok(48));
    }

    #[test]
    fn refuses_what_is_not_a_pnnx_param() {
        assert!(PnnxParam::parse("7767518\n0 0\n").is_err());
        assert!(PnnxParam::parse(&ONNX13.replace("3 2\n", "4 2\n")).is_err());
        assert!(PnnxParam::parse("7767517\n1 1\ntorch.sum s 1 1 3\n").is_err());
    }

    #[test]
    fn finds_the_file_pnnx_writes_beside_the_model() {
        use std::path::Path;
        assert_eq!(
            beside(Path::new("d/ssd.ncnn.param")),
            Path::new("d/ssd.pnnx.param")
        );
        assert_eq!(beside(Path::new("ssd.param")), Path::new("ssd.pnnx.param"));
    }
}
