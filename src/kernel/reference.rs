//! The oracle: a plain, position-by-position L2Norm accumulating in f64.
//!
//! Every fast path is tested against this. It favours being obviously right
//! over speed: no tiling, no SIMD, every product and sum in f64, one rounding
//! to f32 at the end.

use super::element::Element;
use crate::error::L2NormError;
use crate::layout::MatView;
use crate::params::L2NormParams;

/// Returns a copy of `data` with every position of the tensor `view`
/// describes normalised; padding between channel groups is copied unchanged.
/// 16-bit inputs are widened exactly; results are rounded once to `E`.
pub fn l2norm_reference<E: Element>(
    data: &[E],
    view: &MatView,
    params: &L2NormParams,
    weights: &[f32],
) -> Result<Vec<E>, L2NormError> {
    let layout = view.layout(E::STORAGE)?;
    params.check_weights(weights)?;
    if layout.channels() != params.channels {
        return Err(L2NormError::ChannelMismatch {
            expected: params.channels,
            got: layout.channels(),
        });
    }
    if data.len() < layout.min_len {
        return Err(L2NormError::BufferTooSmall {
            needed: layout.min_len,
            got: data.len(),
        });
    }
    let index = |channel: usize, p: usize| {
        let (g, l) = (channel / layout.lanes, channel % layout.lanes);
        g * layout.group_stride + p * layout.lanes + l
    };
    let weight = |channel: usize| {
        f64::from(if params.channel_shared {
            weights[0]
        } else {
            weights[channel]
        })
    };
    let mut out = data.to_vec();
    for p in 0..layout.positions {
        let ss: f64 = (0..params.channels)
            .map(|ch| f64::from(data[index(ch, p)].to_f32()).powi(2))
            .sum();
        let inv = params.eps_mode.inv_norm_f64(ss, f64::from(params.eps));
        for ch in 0..params.channels {
            let i = index(ch, p);
            out[i] = E::from_f32((weight(ch) * f64::from(data[i].to_f32()) * inv) as f32);
        }
    }
    Ok(out)
}
