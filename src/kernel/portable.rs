//! The portable kernel: plain loops over slices, written so the compiler
//! vectorises them for whatever it targets (this is what aarch64 and other
//! non-x86 targets run, and the x86 fallback when no SIMD path applies).

use super::element::Element;
use super::tiled::{RowKernel, Weights16};
use super::Scale;
use crate::layout::TensorMut;
use crate::params::EpsMode;

/// Row loops for any target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Portable;

impl<E: Element> RowKernel<E> for Portable {
    #[inline(always)]
    fn accumulate(self, acc: &mut [f32], row: &[E]) {
        for (a, &x) in acc.iter_mut().zip(row) {
            let x = x.to_f32();
            *a += x * x;
        }
    }

    #[inline(always)]
    fn scale(self, row: &mut [E], k: &[f32], w16: &Weights16) {
        for (xs, ks) in row.chunks_mut(16).zip(k.chunks(16)) {
            for ((x, &k), &w) in xs.iter_mut().zip(ks).zip(w16) {
                *x = E::from_f32(x.to_f32() * (k * w));
            }
        }
    }
}

/// Any elempack (also ones that do not divide 16): per-lane weights looked up
/// directly. Slower; ncnn itself only packs by 1, 4, 8 and 16.
pub(crate) fn normalize_any_lanes<E: Element>(
    t: &mut TensorMut<'_, E>,
    scale: Scale<'_>,
    eps: f32,
    eps_mode: EpsMode,
    tile: usize,
) {
    let layout = *t.layout();
    let lanes = layout.lanes;
    let range = t.positions();
    let tile = tile.max(1);
    let mut acc = vec![0.0f32; tile * lanes];
    let mut inv = vec![0.0f32; tile];
    let mut t0 = range.start;
    while t0 < range.end {
        let t1 = (t0 + tile).min(range.end);
        let n = t1 - t0;
        let acc = &mut acc[..n * lanes];
        acc.fill(0.0);
        for g in 0..layout.groups {
            Portable.accumulate(acc, t.row(g, t0..t1));
        }
        for (k, lane_sums) in inv[..n].iter_mut().zip(acc.chunks_exact(lanes)) {
            *k = eps_mode.inv_norm_f32(lane_sums.iter().sum(), eps);
        }
        for g in 0..layout.groups {
            let row = t.row(g, t0..t1);
            for (xs, &k) in row.chunks_exact_mut(lanes).zip(&inv[..n]) {
                for (l, x) in xs.iter_mut().enumerate() {
                    *x = E::from_f32(x.to_f32() * (k * scale.weight(g * lanes + l)));
                }
            }
        }
        t0 = t1;
    }
}
