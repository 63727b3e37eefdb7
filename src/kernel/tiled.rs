//! The one-pass algorithm every path shares, over tiles of positions.
//!
//! For a tile, pass 1 reads each channel group's slice of the tile and
//! accumulates squares per lane (`acc[j] += x[j]^2`, one float per position and
//! lane); the lanes of each position are summed to its sum of squares and
//! turned into `1 / denominator`, spread back over the lanes as `k[j]`; pass 2
//! scales the same slices (`x[j] *= k[j] * w[j]`) while they are still in
//! cache. DRAM sees one read and one write of the tensor, like `x *= k`.
//!
//! Both passes are plain element-wise loops over contiguous slices, whatever
//! the elempack; a [`RowKernel`] supplies them for one instruction set.

use super::element::Element;
use super::Scale;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// Largest tile, in floats of one channel group (positions * lanes).
pub(crate) const MAX_TILE_FLOATS: usize = 4096;

/// The weights of one channel group, repeated to 16 floats: the factor for
/// element `j` of a row is `w16[j % 16]` (lanes divides 16).
pub(crate) type Weights16 = [f32; 16];

/// The two row loops of the algorithm, for one element type.
pub(crate) trait RowKernel<E: Element>: Copy {
    /// `acc[j] += row[j]^2`; `acc.len() == row.len()`.
    fn accumulate(self, acc: &mut [f32], row: &[E]);
    /// `row[j] *= k[j] * w16[j % 16]`; `k.len() == row.len()`, and
    /// `row` starts on a multiple of 16 elements of the pattern.
    fn scale(self, row: &mut [E], k: &[f32], w16: &Weights16);
}

/// Normalises every position of `t` with kernel `kern`.
///
/// `#[inline(always)]` so that each instruction set's entry point (a
/// `#[target_feature]` function) compiles all of it, the reductions included,
/// with its own vector width.
#[inline(always)]
pub(crate) fn normalize<E: Element, K: RowKernel<E>>(
    kern: K,
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    eps: f32,
    eps_mode: EpsMode,
    tile: usize,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    debug_assert!(16 % lanes == 0 && tile * lanes <= MAX_TILE_FLOATS);
    let mut acc = [0.0f32; MAX_TILE_FLOATS];
    let mut inv = [0.0f32; MAX_TILE_FLOATS];
    let range = t.positions();
    let mut t0 = range.start;
    while t0 < range.end {
        let t1 = (t0 + tile).min(range.end);
        let (n, len) = (t1 - t0, (t1 - t0) * lanes);
        let acc = &mut acc[..len];
        acc.fill(0.0);
        for g in 0..layout.groups {
            kern.accumulate(acc, t.row(g, t0..t1));
        }
        // Sum the lanes of each position, invert its norm, spread it back.
        if lanes == 1 {
            invert_norms(acc, eps, eps_mode);
        } else {
            let inv = &mut inv[..n];
            for (ss, lane_sums) in inv.iter_mut().zip(acc.chunks_exact(lanes)) {
                *ss = lane_sums.iter().sum();
            }
            invert_norms(inv, eps, eps_mode);
            for (ks, &k) in acc.chunks_exact_mut(lanes).zip(inv.iter()) {
                ks.fill(k);
            }
        }
        let k = &*acc;
        for g in 0..layout.groups {
            let w16 = scale.weights16(g, lanes);
            kern.scale(t.row(g, t0..t1), k, &w16);
        }
        t0 = t1;
    }
}

/// Replaces each sum of squares by `1 / denominator`: one simple loop per
/// mode, so each vectorises (sqrt and division are exact in every width).
#[inline(always)]
pub(crate) fn invert_norms(ss: &mut [f32], eps: f32, eps_mode: EpsMode) {
    match eps_mode {
        EpsMode::Add => ss.iter_mut().for_each(|s| *s = 1.0 / (s.sqrt() + eps)),
        EpsMode::Caffe => ss.iter_mut().for_each(|s| *s = 1.0 / (*s + eps).sqrt()),
        EpsMode::Max => ss.iter_mut().for_each(|s| *s = 1.0 / s.sqrt().max(eps)),
        EpsMode::TensorFlow => ss.iter_mut().for_each(|s| *s = 1.0 / s.max(eps).sqrt()),
    }
}

/// Positions per tile: the tile's slice of all channels stays within
/// `tile_bytes` (so pass 2 finds it in cache), in whole multiples of 16
/// positions where possible (cache-line aligned rows).
pub(crate) fn tile_positions(channels: usize, lanes: usize, elem_bytes: usize, tile_bytes: usize) -> usize {
    let by_cache = tile_bytes / elem_bytes / channels.max(1);
    let by_buffer = MAX_TILE_FLOATS / lanes;
    let tile = by_cache.min(by_buffer);
    // Rows of a tile must span whole multiples of 16 elements (the weight
    // pattern's period) when lanes divides 16.
    let step = if 16 % lanes == 0 { 16 / lanes } else { 1 };
    if tile >= 16 {
        tile & !15
    } else {
        (tile - tile % step).max(step)
    }
}
