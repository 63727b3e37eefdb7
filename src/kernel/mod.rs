//! The L2Norm kernel: checks, work splitting, and the computation itself.
//!
//! * [`reference`]: the f64 oracle.
//! * `scalar`: the portable one-pass fp32 kernel.
//!
//! [`Forward`] is what both the safe slice API and the C++ layer go through:
//! it checks a `Mat` description against the layer's parameters and weights
//! once, then runs any position range of it.

pub mod reference;
mod scalar;

use std::ops::Range;

use crate::error::L2NormError;
use crate::layout::{ChannelLayout, MatView, TensorMut};
use crate::params::L2NormParams;

/// The per-channel multiplier after normalisation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scale<'w> {
    Shared(f32),
    PerChannel(&'w [f32]),
}

/// Bytes of tensor below which a further thread costs more (waking it,
/// sharing the work) than it saves.
const MIN_BYTES_PER_CHUNK: usize = 256 * 1024;

/// A checked forward call: input shape, parameters and weights agree.
#[derive(Debug, Clone, Copy)]
pub struct Forward<'w> {
    layout: ChannelLayout,
    params: L2NormParams,
    scale: Scale<'w>,
}

impl<'w> Forward<'w> {
    pub fn new(view: &MatView, params: &L2NormParams, weights: &'w [f32]) -> Result<Self, L2NormError> {
        params.check_weights(weights)?;
        let layout = view.layout()?;
        if layout.channels() != params.channels {
            return Err(L2NormError::ChannelMismatch { expected: params.channels, got: layout.channels() });
        }
        let scale = if params.channel_shared { Scale::Shared(weights[0]) } else { Scale::PerChannel(weights) };
        Ok(Forward { layout, params: *params, scale })
    }

    pub fn layout(&self) -> &ChannelLayout {
        &self.layout
    }

    /// How many chunks to split the positions into for `num_threads` threads.
    pub fn chunks(&self, num_threads: i32) -> usize {
        let bytes = self.layout.channels() * self.layout.positions * 4;
        let by_size = (bytes / MIN_BYTES_PER_CHUNK).min(self.layout.positions / 16);
        (num_threads.max(1) as usize).min(by_size).max(1)
    }

    /// Positions of chunk `i` of `n`: contiguous, nearly equal, and starting on
    /// a multiple of 16 positions so threads do not share cache lines.
    pub fn chunk_positions(&self, i: usize, n: usize) -> Range<usize> {
        let total = self.layout.positions;
        let boundary = |k: usize| if k >= n { total } else { ((total * k / n) & !15).min(total) };
        boundary(i)..boundary(i + 1)
    }

    /// Normalises the positions `t` covers.
    pub fn run(&self, t: &mut TensorMut<'_>) {
        debug_assert_eq!(*t.layout(), self.layout);
        scalar::normalize(t, self.scale, self.params.eps, self.params.eps_mode);
    }
}

/// Positions per tile: the tile's slice of all channels (channels * tile * 4
/// bytes) stays near 128 KiB, well inside L2, so pass 2 finds it in cache.
fn tile_positions(layout: &ChannelLayout) -> usize {
    const TILE_BYTES: usize = 128 * 1024;
    let by_cache = TILE_BYTES / 4 / layout.channels().max(1);
    let by_buffer = scalar::MAX_TILE_FLOATS / layout.lanes;
    // Whole multiples of 16 positions keep tiles on cache-line boundaries.
    let tile = by_cache.min(by_buffer);
    if tile >= 16 {
        tile & !15
    } else {
        tile.max(1)
    }
}

/// Normalises, in place, the tensor `view` describes inside `data`.
///
/// `data` holds the `Mat`'s buffer as floats (padding between channel groups
/// included and left untouched). Runs on the calling thread.
///
/// ```
/// use ncnn_l2norm::{l2norm_inplace, L2NormParams, MatView};
/// // 2 channels, 3 positions (a 1 x 3 image), no channel padding.
/// let view = MatView::dims3(3, 1, 2, 1).with_cstep(3);
/// let mut x = [3.0, 0.0, 1.0, 4.0, 0.0, 0.0];
/// l2norm_inplace(&mut x, &view, &L2NormParams::new(2).unwrap(), &[20.0, 20.0]).unwrap();
/// assert!((x[0] - 12.0).abs() < 1e-5 && (x[3] - 16.0).abs() < 1e-5);
/// assert_eq!(x[1], 0.0);
/// ```
pub fn l2norm_inplace(
    data: &mut [f32],
    view: &MatView,
    params: &L2NormParams,
    weights: &[f32],
) -> Result<(), L2NormError> {
    let forward = Forward::new(view, params, weights)?;
    let mut t = TensorMut::from_slice(data, forward.layout)?;
    forward.run(&mut t);
    Ok(())
}
