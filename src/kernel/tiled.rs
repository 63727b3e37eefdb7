//! The one-pass algorithm as plain loops over slices, for elempacks that do
//! not divide 16 (none of ncnn's: a `Mat` built by hand), on every target.
//! Elempacks that divide 16 take `blocked`'s register-blocked walk instead
//! (the `portable` vector where there are no intrinsics), which keeps its
//! accumulators in registers; this one keeps them in a stack array.
//!
//! For a tile of positions, pass 1 reads each channel group's slice of the
//! tile and accumulates squares per lane (`acc[j] += x[j]^2`, one float per
//! position and lane); the lanes of each position are summed to its sum of
//! squares and turned into `1 / denominator`, spread back over the lanes as
//! `k[j]`; pass 2 scales the same slices (`x[j] *= k[j] * w[j]`) while they
//! are still in cache. DRAM sees one read and one write of the tensor, like
//! `x *= k`.

use super::element::Element;
use super::norm::Norm;
use super::Scale;
use crate::layout::TensorMut;

/// Largest tile, in elements of one channel group (positions * lanes).
pub(crate) const MAX_TILE_FLOATS: usize = 4096;

/// Normalises every position of `t`, `tile` positions at a time.
pub(crate) fn normalize<E: Element>(
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    norm: Norm,
    tile: usize,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let tile = tile.clamp(1, (MAX_TILE_FLOATS / lanes).max(1));
    // Stack buffers; only elempacks above MAX_TILE_FLOATS (not ncnn's) need
    // a heap one. `tile` is at most MAX_TILE_FLOATS, so `inv` always fits.
    let mut acc_stack = [0.0f32; MAX_TILE_FLOATS];
    let mut acc_heap = Vec::new();
    let acc: &mut [f32] = if tile * lanes <= MAX_TILE_FLOATS {
        &mut acc_stack
    } else {
        acc_heap.resize(tile * lanes, 0.0);
        &mut acc_heap
    };
    let mut inv = [0.0f32; MAX_TILE_FLOATS];
    let range = t.positions();
    let mut t0 = range.start;
    while t0 < range.end {
        let t1 = (t0 + tile).min(range.end);
        let (n, len) = (t1 - t0, (t1 - t0) * lanes);
        let acc = &mut acc[..len];
        acc.fill(0.0);
        for g in 0..layout.groups {
            for (a, x) in acc.iter_mut().zip(t.row(g, t0..t1).iter()) {
                let x = x.to_f32();
                *a += x * x;
            }
        }
        let inv = &mut inv[..n];
        for (ss, lane_sums) in inv.iter_mut().zip(acc.chunks_exact(lanes)) {
            *ss = lane_sums.iter().sum();
        }
        norm.invert_at(t, t0, inv);
        if lanes > 1 && 16 % lanes == 0 {
            // Spread the factors over the lanes so pass 2 runs in chunks of
            // 16 elements against one 16-float weight pattern per group.
            for (ks, &k) in acc.chunks_exact_mut(lanes).zip(inv.iter()) {
                ks.fill(k);
            }
            for g in 0..layout.groups {
                let mut w16 = [0.0f32; 16];
                for (i, w) in w16.iter_mut().enumerate() {
                    *w = scale.weight(g * lanes + i % lanes);
                }
                for (xs, ks) in t.row(g, t0..t1).chunks_mut(16).zip(acc.chunks(16)) {
                    for ((x, &k), &w) in xs.iter_mut().zip(ks).zip(&w16) {
                        *x = E::from_f32(x.to_f32() * (k * w));
                    }
                }
            }
        } else {
            for g in 0..layout.groups {
                scale_row(t.row(g, t0..t1), inv, scale, g, lanes);
            }
        }
        t0 = t1;
    }
}

/// `row[p·lanes + l] *= inv[p] * weight(g·lanes + l)`.
#[inline(always)]
fn scale_row<E: Element>(row: &mut [E], inv: &[f32], scale: Scale<'_>, g: usize, lanes: usize) {
    if lanes == 1 {
        let w = scale.weight(g);
        for (x, &k) in row.iter_mut().zip(inv) {
            *x = E::from_f32(x.to_f32() * (k * w));
        }
        return;
    }
    match scale {
        Scale::Shared(w) => {
            for (xs, &k) in row.chunks_exact_mut(lanes).zip(inv) {
                let f = k * w;
                xs.iter_mut().for_each(|x| *x = E::from_f32(x.to_f32() * f));
            }
        }
        Scale::PerChannel(ws) => {
            let ws = &ws[g * lanes..(g + 1) * lanes];
            for (xs, &k) in row.chunks_exact_mut(lanes).zip(inv) {
                for (x, &w) in xs.iter_mut().zip(ws) {
                    *x = E::from_f32(x.to_f32() * (k * w));
                }
            }
        }
    }
}

/// Positions per tile: the tile's slice of all channels stays within
/// `tile_bytes` (so pass 2 finds it in cache), in whole multiples of 16
/// positions where possible (cache-line aligned rows).
/// When lanes divides 16, a tile's rows are whole multiples of 16 elements
/// (the weight pattern's period).
pub(crate) fn tile_positions(
    channels: usize,
    lanes: usize,
    elem_bytes: usize,
    tile_bytes: usize,
) -> usize {
    let tile = tile_bytes / elem_bytes / channels.max(1);
    let step = if 16 % lanes == 0 { 16 / lanes } else { 1 };
    if tile >= 16 {
        tile & !15
    } else {
        (tile - tile % step).max(step)
    }
}
