//! The portable fp32 kernel: one pass over memory, tile by tile.
//!
//! For a tile of positions, pass 1 reads every channel group's slice of the
//! tile and accumulates squares per lane; the lanes of each position are then
//! summed to the position's sum of squares and turned into `1 / denominator`;
//! pass 2 scales the same slices while they are still in cache. Memory is
//! thus read from DRAM once and written once, like a single `x *= k` pass.
//!
//! Written as plain loops over contiguous slices so the compiler vectorises
//! them for whatever target it builds (this is the path aarch64 gets).

use super::Scale;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// Largest tile, in floats of one channel group (positions * lanes).
pub(crate) const MAX_TILE_FLOATS: usize = 2048;

/// Normalises every position of `t`.
pub(crate) fn normalize(t: &mut TensorMut<'_>, scale: Scale<'_>, eps: f32, eps_mode: EpsMode) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let tile = super::tile_positions(&layout);
    let mut acc = [0.0f32; MAX_TILE_FLOATS];
    let mut inv = [0.0f32; MAX_TILE_FLOATS];
    let range = t.positions();
    let mut t0 = range.start;
    while t0 < range.end {
        let t1 = (t0 + tile).min(range.end);
        let n = t1 - t0;
        let acc = &mut acc[..n * lanes];
        acc.fill(0.0);
        for g in 0..layout.groups {
            let row = t.row(g, t0..t1);
            for (a, &x) in acc.iter_mut().zip(row.iter()) {
                *a += x * x;
            }
        }
        let inv = &mut inv[..n];
        for (k, lane_sums) in inv.iter_mut().zip(acc.chunks_exact(lanes)) {
            *k = eps_mode.inv_norm_f32(lane_sums.iter().sum(), eps);
        }
        for g in 0..layout.groups {
            let row = t.row(g, t0..t1);
            match scale {
                Scale::Shared(w) => scale_row_broadcast(row, inv, w, lanes),
                Scale::PerChannel(ws) if lanes == 1 => scale_row_broadcast(row, inv, ws[g], 1),
                Scale::PerChannel(ws) => {
                    let w = &ws[g * lanes..(g + 1) * lanes];
                    for (xs, &k) in row.chunks_exact_mut(lanes).zip(inv.iter()) {
                        for (x, &wl) in xs.iter_mut().zip(w) {
                            *x *= wl * k;
                        }
                    }
                }
            }
        }
        t0 = t1;
    }
}

/// `row[p * lanes + l] *= w * inv[p]`: one weight for the whole row.
#[inline(always)]
fn scale_row_broadcast(row: &mut [f32], inv: &[f32], w: f32, lanes: usize) {
    for (xs, &k) in row.chunks_exact_mut(lanes).zip(inv.iter()) {
        let f = w * k;
        for x in xs {
            *x *= f;
        }
    }
}
