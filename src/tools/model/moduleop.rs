//! Layers pnnx wrote with `moduleop=<class path>` for an L2Norm module.
//!
//! pnnx keeps such a module as one layer whose type is the module's dotted
//! class path (`mmdet.models.necks.ssd_neck.L2Norm`,
//! `layers.modules.l2norm.L2Norm`), with its one tensor attribute, the
//! weight, as raw fp32 in the `.bin` and that tensor's shape as the
//! int-array param 10 (`-23310=1,512`). Scalar members such as eps are
//! dropped. Our layer, registered under the class path, reads exactly this
//! (eps 1e-10 added to the norm by default, both projects' value).
//!
//! Recognised here: a type whose last dotted component is `L2Norm` and whose
//! only param is a weight shape our layer accepts (`[C]`, `[1,C]`, `[1,C,1]`,
//! `[1,C,1,1]`). Anything more (a second tensor attribute writes param 11) is
//! not the one-weight module the layer implements and is refused by name.

use ncnn_l2norm::{L2NormParams, DEFAULT_EPS};

use super::param::Layer;

/// Whether `ty` looks like the class path pnnx writes for an `L2Norm` module.
pub fn is_l2norm_class(ty: &str) -> bool {
    ty.rsplit_once('.')
        .is_some_and(|(path, class)| class == "L2Norm" && !path.is_empty())
}

/// A pnnx moduleop L2Norm layer, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleopL2Norm {
    pub channels: usize,
    /// Param 10 as pnnx wrote it.
    pub shape: Vec<i32>,
}

/// Reads a layer whose type [`is_l2norm_class`]; errors say why it is not
/// the one-weight L2Norm module our layer implements.
pub fn read(l: &Layer) -> Result<ModuleopL2Norm, String> {
    let label = format!("layer {} ({})", l.name, l.ty);
    if let Some(p) = l.params.iter().find(|p| p.id != 10) {
        return Err(format!(
            "{label} has param {} besides the weight shape (param 10): pnnx writes one param per tensor attribute, so this module has more than the one weight an L2Norm has",
            p.id
        ));
    }
    let shape = l.int_array(10)?;
    if shape.is_empty() {
        return Err(format!(
            "{label} has no weight shape (param 10): not a moduleop L2Norm as pnnx writes it"
        ));
    }
    let p = L2NormParams::from_raw(0, DEFAULT_EPS, 0, 0, &shape)
        .map_err(|e| format!("{label}: weight shape {shape:?}: {e}"))?;
    Ok(ModuleopL2Norm {
        channels: p.channels,
        shape,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::param::ParamFile;

    fn layer(line: &str) -> Layer {
        let text = format!("7767517\n2 2\nInput in0 0 1 in0\n{line}\n");
        ParamFile::parse(&text).unwrap().layers.remove(1)
    }

    #[test]
    fn recognises_pnnx_class_paths() {
        assert!(is_l2norm_class("mmdet.models.necks.ssd_neck.L2Norm"));
        assert!(is_l2norm_class("layers.modules.l2norm.L2Norm"));
        for other in [
            "L2Norm",
            ".L2Norm",
            "x.ChannelL2Norm",
            "x.L2Norm.y",
            "Normalize",
        ] {
            assert!(!is_l2norm_class(other), "{other}");
        }
    }

    #[test]
    fn reads_the_weight_shape_and_refuses_more() {
        let ok = layer("a.L2Norm norm 1 1 in0 out -23310=1,48");
        assert_eq!(read(&ok).unwrap().channels, 48);
        let four = layer("a.L2Norm norm 1 1 in0 out -23310=4,1,48,1,1");
        assert_eq!(read(&four).unwrap().channels, 48);
        let two = layer("a.L2Norm norm 1 1 in0 out -23310=1,48 -23311=1,48");
        assert!(read(&two).unwrap_err().contains("param 11"));
        let none = layer("a.L2Norm norm 1 1 in0 out");
        assert!(read(&none).unwrap_err().contains("no weight shape"));
        let bad = layer("a.L2Norm norm 1 1 in0 out -23310=2,3,48");
        assert!(read(&bad).unwrap_err().contains("weight shape"));
    }
}
