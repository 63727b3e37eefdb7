//! The kernel against the f64 reference, over awkward shapes, packings,
//! padded channel strides, dims 1-4, every eps mode and shared scales.

mod common;

use common::{assert_close_as, close_as, Rng};
use ncnn_l2norm::{
    l2norm_inplace, l2norm_reference, Element, EpsMode, Forward, Isa, L2NormError, L2NormParams,
    MatView, Storage, TensorMut, BF16, F16,
};

const MODES: [EpsMode; 4] = [
    EpsMode::Add,
    EpsMode::Caffe,
    EpsMode::Max,
    EpsMode::TensorFlow,
];

fn params(channels: usize, eps: f32, mode: EpsMode, shared: bool) -> L2NormParams {
    L2NormParams::from_raw(channels as i64, eps, mode.to_param(), shared as i32, &[]).unwrap()
}

/// Fills a buffer for `view` (padding included, so we can check it is
/// untouched), then for every instruction set this CPU has and every storage
/// type runs the kernel and compares every element with the reference.
fn check(view: MatView, p: &L2NormParams, rng: &mut Rng, what: &str) {
    let f32_len = view.layout(Storage::F32).unwrap().min_len + 7;
    let weights = rng.vec(p.weight_count(), -30.0, 30.0);
    let data = rng.vec(f32_len, -4.0, 4.0);
    check_as::<f32>(view, p, &weights, &data, what);
    let view16 = view.with_16bit_storage();
    check_as::<F16>(view16, p, &weights, &data, what);
    check_as::<BF16>(view16, p, &weights, &data, what);
}

fn check_as<E: Element>(
    view: MatView,
    p: &L2NormParams,
    weights: &[f32],
    values: &[f32],
    what: &str,
) {
    let data: Vec<E> = values.iter().map(|&x| E::from_f32(x)).collect();
    let expected = l2norm_reference(&data, &view, p, weights).unwrap();
    let forward = Forward::new::<E>(&view, p, weights).unwrap();
    for isa in Isa::available() {
        let mut got = data.clone();
        let mut t = TensorMut::from_slice(&mut got, *forward.layout()).unwrap();
        forward.run_on(isa, &mut t);
        assert_close_as(
            &got,
            &expected,
            p.channels,
            &format!("{what} {isa:?} {:?} {view:?} {p:?}", E::STORAGE),
        );
    }
    // The public entry point, on the selected path.
    let mut got = data.clone();
    l2norm_inplace(&mut got, &view, p, weights).unwrap();
    assert_close_as(
        &got,
        &expected,
        p.channels,
        &format!("{what} selected {:?}", E::STORAGE),
    );
}

/// [`check_as`] in the two storage types with f32's range, fp32 and bf16:
/// the edge-value tests' inputs (huge, tiny, subnormal) are out of fp16's.
fn check_f32_range(view: MatView, p: &L2NormParams, weights: &[f32], values: &[f32], what: &str) {
    check_as::<f32>(view, p, weights, values, what);
    check_as::<BF16>(view.with_16bit_storage(), p, weights, values, what);
}

#[test]
fn dims3_awkward_channels_all_packings() {
    let mut rng = Rng::new(1);
    for channels in [1usize, 3, 5, 16, 17, 512, 513] {
        // ncnn packs by 1, 4, 8 and 16; 2 checks the kernel's other divisor of 16.
        for elempack in [1, 2, 4, 8, 16] {
            if channels % elempack != 0 {
                continue;
            }
            for (w, h) in [(1, 1), (3, 3), (7, 5), (19, 19), (38, 38)] {
                let view = MatView::dims3(w, h, (channels / elempack) as i32, elempack as i32);
                check(
                    view,
                    &params(channels, 1e-10, EpsMode::Add, false),
                    &mut rng,
                    "dims3",
                );
            }
        }
    }
}

#[test]
fn padded_cstep() {
    let mut rng = Rng::new(2);
    for (channels, elempack) in [(5usize, 1), (17, 1), (64, 4), (32, 8), (48, 16)] {
        for pad in [0usize, 1, 3, 16, 100] {
            let base = MatView::dims3(9, 7, (channels / elempack) as i32, elempack as i32);
            let view = base.with_cstep(63 + pad);
            check(
                view,
                &params(channels, 1e-10, EpsMode::Add, false),
                &mut rng,
                "padded",
            );
        }
    }
}

#[test]
fn dims_1_2_4() {
    let mut rng = Rng::new(3);
    for elempack in [1, 2, 4, 8, 16, 3] {
        for groups in [1, 2, 3, 5] {
            let c = groups * elempack;
            let p = params(c as usize, 1e-10, EpsMode::Add, false);
            check(MatView::dims1(groups, elempack), &p, &mut rng, "dims1");
            check(MatView::dims2(13, groups, elempack), &p, &mut rng, "dims2");
            check(
                MatView::dims4(5, 3, 4, groups, elempack),
                &p,
                &mut rng,
                "dims4",
            );
            check(
                MatView::dims4(5, 3, 4, groups, elempack).with_cstep(64),
                &p,
                &mut rng,
                "dims4 padded",
            );
        }
    }
}

#[test]
fn every_eps_mode_and_shared_scale() {
    let mut rng = Rng::new(4);
    for mode in MODES {
        for eps in [0.0, 1e-10, 1e-6, 1e-2, 1.0, 100.0] {
            for shared in [false, true] {
                for (channels, elempack) in [(3usize, 1), (16, 16), (24, 8), (513, 1)] {
                    let view = MatView::dims3(11, 3, (channels / elempack) as i32, elempack as i32);
                    check(
                        view,
                        &params(channels, eps, mode, shared),
                        &mut rng,
                        "modes",
                    );
                }
            }
        }
    }
}

#[test]
fn eps_decides_small_vectors() {
    // Tiny inputs make eps dominate, where the four modes differ most.
    let mut rng = Rng::new(5);
    for mode in MODES {
        let p = params(8, 1e-2, mode, false);
        let view = MatView::dims3(4, 4, 8, 1);
        let layout = view.layout(Storage::F32).unwrap();
        let weights = rng.vec(8, 0.5, 2.0);
        let data = rng.vec(layout.min_len, -1e-3, 1e-3);
        check_as::<f32>(view, &p, &weights, &data, &format!("{mode:?}"));
    }
}

#[test]
fn zero_vectors_stay_zero_with_positive_eps() {
    for mode in MODES {
        let view = MatView::dims3(4, 1, 3, 1).with_cstep(4);
        let mut data = vec![0.0f32; 12];
        l2norm_inplace(&mut data, &view, &params(3, 1e-10, mode, false), &[20.0; 3]).unwrap();
        assert!(data.iter().all(|&x| x == 0.0), "{mode:?}: {data:?}");
    }
}

#[test]
fn a_nan_channel_makes_its_position_nan_in_every_mode() {
    // As in PyTorch: the norm is NaN, so every channel at that position is.
    for mode in MODES {
        let view = MatView::dims3(4, 1, 3, 1).with_cstep(4);
        let p = params(3, 1e-2, mode, false);
        let mut data = vec![1.0f32; 12];
        data[4 + 2] = f32::NAN; // channel 1, position 2
        let expected = l2norm_reference(&data, &view, &p, &[1.0; 3]).unwrap();
        for isa in Isa::available() {
            let forward = Forward::new::<f32>(&view, &p, &[1.0; 3]).unwrap();
            let mut got = data.clone();
            forward.run_on(
                isa,
                &mut TensorMut::from_slice(&mut got, *forward.layout()).unwrap(),
            );
            for c in 0..3 {
                assert!(
                    got[c * 4 + 2].is_nan() && expected[c * 4 + 2].is_nan(),
                    "{mode:?} {isa:?}: {got:?}"
                );
                assert!(
                    got[c * 4].is_finite(),
                    "{mode:?} {isa:?}: other positions stay finite"
                );
            }
        }
    }
}

/// How the values of one position are drawn in [`extreme_values`].
#[derive(Debug, Clone, Copy)]
enum Magnitude {
    Ordinary,
    /// |x| up to just under f32::MAX: the f32 sum of squares overflows.
    Huge,
    /// One channel huge, the others ordinary or tiny.
    OneHuge,
    /// Subnormal and barely normal values: the squares underflow.
    Tiny,
    Zero,
}

/// A buffer for `view` whose positions cycle through the magnitudes
/// (padding filled with a marker the kernel must not touch).
fn extreme_values(view: &MatView, rng: &mut Rng, classes: &[Magnitude]) -> Vec<f32> {
    let layout = view.layout(Storage::F32).unwrap();
    let mut data = vec![-7.0f32; layout.min_len + 7];
    for p in 0..layout.positions {
        let class = classes[p % classes.len()];
        let huge_channel = rng.next_u64() as usize % layout.channels();
        for c in 0..layout.channels() {
            let sign = if rng.next_u64() & 1 == 0 { 1.0 } else { -1.0 };
            let x = match class {
                Magnitude::Ordinary => rng.uniform(-4.0, 4.0),
                Magnitude::Huge => sign * f32::MAX * rng.uniform(0.01, 0.99),
                Magnitude::OneHuge if c == huge_channel => sign * 1e38,
                Magnitude::OneHuge if c % 2 == 0 => rng.uniform(-4.0, 4.0),
                Magnitude::OneHuge => sign * 1e-30,
                // 2^-149 (the smallest subnormal) up to about 2^-120.
                Magnitude::Tiny => sign * 2f32.powi(-149) * rng.uniform(1.0, 6e8),
                Magnitude::Zero => 0.0,
            };
            let (g, l) = (c / layout.lanes, c % layout.lanes);
            data[g * layout.group_stride + p * layout.lanes + l] = x;
        }
    }
    data
}

#[test]
fn extreme_magnitudes_normalise_like_the_reference() {
    // Huge values must normalise (a naive f32 sum of squares overflows to
    // inf and gives zeros); tiny ones too when eps is small enough for their
    // norm to matter (their squares underflow). Checked on every path,
    // packing and padded stride, fp32 and bf16 (which has f32's range);
    // fp16 cannot hold these magnitudes (its own are covered elsewhere).
    use Magnitude::*;
    let mut rng = Rng::new(6);
    let classes = [Ordinary, Huge, Tiny, OneHuge, Zero, Huge, Tiny];
    for (channels, elempack, cstep) in [
        (3usize, 1, None),
        (16, 1, Some(40)),
        (16, 4, None),
        (32, 8, Some(160)),
        (48, 16, None),
        (513, 1, None),
    ] {
        let mut view = MatView::dims3(7, 5, (channels / elempack) as i32, elempack as i32);
        if let Some(cstep) = cstep {
            view = view.with_cstep(cstep);
        }
        let data = extreme_values(&view, &mut rng, &classes);
        for mode in MODES {
            // eps 0: the tiny norms decide everything; 1e-30: they still
            // matter; 1e-10: eps swamps them and their sums are not redone.
            for eps in [0.0, 1e-30, 1e-10] {
                let p = params(channels, eps, mode, false);
                let weights = rng.vec(p.weight_count(), -30.0, 30.0);
                let what = format!("extreme {mode:?} eps {eps}");
                check_f32_range(view, &p, &weights, &data, &what);
            }
        }
    }
}

#[test]
fn a_lone_subnormal_with_eps_0_becomes_its_weight() {
    // Found by the kernel fuzz target: one bf16 channel of -9.09e-39, eps 0.
    // Its factor 1.1e38 fits f32, but factor · weight overflowed to inf; the
    // exact path now scales such positions so the factor stays near 1.
    let view = MatView::dims1(1, 1);
    for mode in MODES {
        let p = params(1, 0.0, mode, true);
        let what = format!("lone subnormal {mode:?}");
        check_f32_range(view, &p, &[3.175], &[-9.091714e-39], &what);
    }
}

#[test]
fn small_channels_of_a_huge_position_keep_their_bits() {
    // Found by the kernel fuzz target: a bf16 position with one channel near
    // f32::MAX has a factor of about 3e-39. The exact path scaled its values
    // so that the factor was near 1, which made the small channels
    // subnormal (-1e-4 became -2.9e-43, and bf16 rounds that to -0), while a
    // weight of 1.6e5 makes their result a normal -5e-38. It now scales only
    // as far as a factor of 2^-64 needs.
    let view = MatView::dims1(3, 1);
    for mode in MODES {
        let p = params(3, 0.0, mode, false);
        let weights = [161948.75, 161948.75, 3.0];
        let values = [3.3895314e38, -0.00011587143, 1.0e-30];
        let what = format!("huge position, small channels {mode:?}");
        check_f32_range(view, &p, &weights, &values, &what);
    }
}

#[test]
fn huge_eps_follows_the_reference() {
    // Found by the kernel fuzz target: eps = f32::MAX in the Caffe mode,
    // sqrt(sum + eps), where the sum (1e38, from a channel of 1e19) fit f32
    // but sum + eps overflowed it and every channel came out 0. An eps that
    // large also makes the other modes' factors subnormal (1 / f32::MAX).
    // Such positions now take the exact path.
    let view = MatView::dims1(8, 1);
    let weights = [-10.8, 1.6, 14.3, -6.8, 0.0, -14.6, 15.3, 15.4];
    let values = [
        0.00597, -0.0043, 0.00199, 3.47e-39, 1.15e-38, 5.42e-39, -0.0057, 1e19,
    ];
    for mode in MODES {
        for eps in [f32::MAX, 1e38, 1e30, 1.5 * 2f32.powi(63), 1e-30] {
            let p = params(8, eps, mode, false);
            let what = format!("huge eps {eps:e} {mode:?}");
            check_f32_range(view, &p, &weights, &values, &what);
        }
    }
}

#[test]
fn a_walks_last_positions_take_the_exact_path_alone() {
    // The last positions of a walk, fewer than a vector's worth, run as one
    // vector that overlaps positions already normalised. With an eps this
    // large every position takes the exact path, which may rescale a
    // position's values in place: it must see only the new positions. 19
    // and 21 positions leave 1 to 5 over on every vector width.
    for w in [19, 21] {
        let view = MatView::dims3(w, 1, 3, 1);
        let weights = [-10.8, 1.6, 14.3];
        let values: Vec<f32> = (0..view.buffer_elements())
            .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.37)
            .collect();
        for mode in MODES {
            for eps in [1e38, 1e-10] {
                let p = params(3, eps, mode, false);
                let what = format!("w {w} eps {eps:e} {mode:?}");
                check_f32_range(view, &p, &weights, &values, &what);
            }
        }
    }
}

#[test]
fn unpacked_rows_off_a_line_match_the_reference() {
    // 65x65 positions: cstep 4228 floats puts each row 16 bytes past the
    // previous one's 64-byte alignment, and 64 channels (1.08 MB) make tiles
    // 16 vectors wide on AVX-512, which then loads and stores those rows
    // aligned and shifts each vector.
    let mut rng = Rng::new(12);
    let view = MatView::dims3(65, 65, 64, 1);
    check(
        view,
        &params(64, 1e-10, EpsMode::Add, false),
        &mut rng,
        "rows off a line",
    );
}

#[test]
fn huge_values_keep_their_direction() {
    // Two channels (3e38, 4e38 would overflow f32; use 3e37, 4e37): the
    // norm is 5e37, whose inverse is subnormal in f32.
    for isa in Isa::available() {
        for mode in MODES {
            let view = MatView::dims1(2, 1);
            let p = params(2, 1e-10, mode, false);
            let forward = Forward::new::<f32>(&view, &p, &[1.0, 1.0]).unwrap();
            let mut x = [3e37f32, -4e37];
            forward.run_on(
                isa,
                &mut TensorMut::from_slice(&mut x, *forward.layout()).unwrap(),
            );
            assert!(
                (x[0] - 0.6).abs() < 1e-6 && (x[1] + 0.8).abs() < 1e-6,
                "{isa:?} {mode:?}: {x:?}"
            );
        }
    }
}

#[test]
fn infinities_follow_pytorch() {
    // x / norm with an infinite norm: the infinite channel is inf/inf = NaN,
    // the finite ones x/inf = 0, in every mode; other positions untouched.
    for isa in Isa::available() {
        for mode in MODES {
            let view = MatView::dims3(2, 1, 3, 1);
            let p = params(3, 1e-10, mode, false);
            let forward = Forward::new::<f32>(&view, &p, &[1.0; 3]).unwrap();
            let layout = *forward.layout();
            let mut x = vec![1.0f32; layout.min_len];
            x[layout.group_stride] = f32::INFINITY; // channel 1, position 0
            forward.run_on(isa, &mut TensorMut::from_slice(&mut x, layout).unwrap());
            let at = |c: usize, p: usize| x[c * layout.group_stride + p];
            assert!(at(1, 0).is_nan(), "{isa:?} {mode:?}: {x:?}");
            assert_eq!((at(0, 0), at(2, 0)), (0.0, 0.0), "{isa:?} {mode:?}");
            let third = 1.0 / 3f32.sqrt();
            assert!((at(0, 1) - third).abs() < 1e-6, "{isa:?} {mode:?}: {x:?}");
        }
    }
}

#[test]
fn the_comparison_treats_infinity_as_infinitely_far() {
    // The oracle comparison itself: a finite result for an infinite reference
    // (or the reverse) fails unless it is the storage type's largest finite
    // value, one ulp from infinity; NaN only matches NaN.
    let inf = f32::INFINITY;
    assert!(close_as::<f32>(inf, inf, 512));
    assert!(close_as::<f32>(-inf, -inf, 512));
    assert!(!close_as::<f32>(1e30, inf, 512));
    assert!(!close_as::<f32>(inf, 1e30, 512));
    assert!(!close_as::<f32>(-inf, inf, 512));
    assert!(close_as::<f32>(f32::MAX, inf, 512));
    assert!(!close_as::<f32>(-f32::MAX, inf, 512));
    assert!(close_as::<F16>(65504.0, inf, 512));
    assert!(!close_as::<F16>(65472.0, inf, 512));
    assert!(close_as::<BF16>(f32::from_bits(0x7f7f_0000), inf, 512));
    assert!(!close_as::<f32>(65504.0, inf, 512));
    assert!(close_as::<f32>(f32::NAN, f32::NAN, 1));
    assert!(!close_as::<f32>(0.0, f32::NAN, 1));
    assert!(!close_as::<f32>(f32::NAN, 0.0, 1));
}

#[test]
fn known_values() {
    // One position, channels (3, 4): norm 5.
    let view = MatView::dims1(2, 1);
    let mut x = [3.0f32, 4.0];
    l2norm_inplace(
        &mut x,
        &view,
        &params(2, 0.0, EpsMode::Add, false),
        &[20.0, 10.0],
    )
    .unwrap();
    assert_eq!(x, [12.0, 8.0]);
    let mut x = [3.0f32, 4.0];
    l2norm_inplace(
        &mut x,
        &view,
        &params(2, 11.0, EpsMode::Caffe, true),
        &[6.0],
    )
    .unwrap();
    assert_eq!(x, [3.0, 4.0]); // sqrt(25 + 11) = 6
    let mut x = [3.0f32, 4.0];
    l2norm_inplace(&mut x, &view, &params(2, 10.0, EpsMode::Max, true), &[10.0]).unwrap();
    assert_eq!(x, [3.0, 4.0]); // max(5, 10) = 10
    let mut x = [3.0f32, 4.0];
    l2norm_inplace(
        &mut x,
        &view,
        &params(2, 100.0, EpsMode::TensorFlow, true),
        &[10.0],
    )
    .unwrap();
    assert_eq!(x, [3.0, 4.0]); // sqrt(max(25, 100)) = 10
}

#[test]
fn tensors_larger_than_l2_match_the_reference() {
    // Packed blobs of one position per vector larger than L2 run the
    // pipelined walk on AVX-512 (pass 2 of one tile beside pass 1 of the
    // next): 512x37x37 elempack 16 is 2.8 MB, beyond any L2 this crate has
    // met, its group stride (87,616 bytes) no multiple of 4 KiB, and 1369
    // positions leave one past the last whole tile. Ordinary values in
    // every storage type, then positions of every magnitude in f32's range
    // so that the exact path runs inside the walk; 1024x19x19 too (361
    // positions, 23,104-byte stride).
    use Magnitude::*;
    let mut rng = Rng::new(13);
    for (w, h, channels) in [(37, 37, 512usize), (19, 19, 1024)] {
        let view = MatView::dims3(w, h, (channels / 16) as i32, 16);
        let p = params(channels, 1e-10, EpsMode::Add, false);
        check(view, &p, &mut rng, "larger than L2");
        let data = extreme_values(&view, &mut rng, &[Ordinary, Huge, Ordinary, Tiny, OneHuge]);
        let p = params(channels, 0.0, EpsMode::Max, false);
        let weights = rng.vec(p.weight_count(), -30.0, 30.0);
        check_f32_range(view, &p, &weights, &data, "larger than L2, extreme");
    }
}

#[test]
fn chunks_partition_positions_and_match_whole_run() {
    let mut rng = Rng::new(6);
    for (w, h, channels, elempack) in [
        (150, 150, 64usize, 16),
        (64, 64, 512, 16),
        (38, 38, 512, 1),
        (65, 65, 64, 1),
        (1000, 1, 8, 8),
    ] {
        let view = MatView::dims3(w, h, (channels / elempack) as i32, elempack as i32);
        let p = params(channels, 1e-10, EpsMode::Add, false);
        let weights = rng.vec(channels, 1.0, 30.0);
        let forward = Forward::new::<f32>(&view, &p, &weights).unwrap();
        let layout = *forward.layout();
        let original = rng.vec(layout.min_len, -2.0, 2.0);
        // Chunks end where the whole run's tiles do not, so this also checks
        // that every tile width (and the last vector) sums and inverts a
        // position bit for bit alike, on every path.
        for isa in Isa::available() {
            let mut whole = original.clone();
            forward.run_on(isa, &mut TensorMut::from_slice(&mut whole, layout).unwrap());
            for threads in [1, 2, 3, 8, 64] {
                let n = forward.chunks(threads);
                assert!(n >= 1 && n <= threads as usize);
                let mut covered = 0;
                let mut data = original.clone();
                for i in 0..n {
                    let r = forward.chunk_positions(i, n);
                    assert_eq!(r.start, covered, "chunks must be contiguous");
                    assert!(r.start.is_multiple_of(16) || r.start == layout.positions);
                    covered = r.end;
                    // SAFETY: `data` holds the whole tensor (min_len floats) and is
                    // borrowed by nothing else; chunks run one after another.
                    let mut t =
                        unsafe { TensorMut::from_raw_positions(data.as_mut_ptr(), layout, r) };
                    forward.run_on(isa, &mut t);
                }
                assert_eq!(covered, layout.positions);
                assert_eq!(
                    data, whole,
                    "{isa:?}: chunked run differs from whole run ({threads} threads)"
                );
            }
        }
    }
}

#[test]
fn rejects_what_it_cannot_run() {
    let view = MatView::dims3(4, 4, 8, 1);
    let p = params(8, 1e-10, EpsMode::Add, false);
    let mut data = vec![1.0f32; view.layout(Storage::F32).unwrap().min_len];
    assert_eq!(
        l2norm_inplace(&mut data, &view, &p, &[1.0; 7]),
        Err(L2NormError::WeightCount {
            expected: 8,
            got: 7
        })
    );
    assert_eq!(
        l2norm_inplace(&mut data, &MatView::dims3(4, 4, 4, 1), &p, &[1.0; 8]),
        Err(L2NormError::ChannelMismatch {
            expected: 8,
            got: 4
        })
    );
    assert!(matches!(
        l2norm_inplace(&mut data[..100], &view, &p, &[1.0; 8]),
        Err(L2NormError::BufferTooSmall { .. })
    ));
    assert_eq!(
        l2norm_inplace(&mut data, &MatView { dims: 5, ..view }, &p, &[1.0; 8]),
        Err(L2NormError::UnsupportedDims(5))
    );
    assert!(
        data.iter().all(|&x| x == 1.0),
        "a refused call must not write"
    );
    // 16-bit data with an fp32 view (or the reverse) is refused, not misread.
    let mut halves = vec![F16::from_f32(1.0); 256];
    assert!(matches!(
        l2norm_inplace(&mut halves, &view, &p, &[1.0; 8]),
        Err(L2NormError::UnsupportedStorage { .. })
    ));
    assert!(matches!(
        l2norm_inplace(&mut data, &view.with_16bit_storage(), &p, &[1.0; 8]),
        Err(L2NormError::UnsupportedStorage { .. })
    ));
}

#[test]
fn this_machine_runs_its_best_path() {
    // The CI machines have AVX-512; make sure the fast path is not silently lost.
    let available = Isa::available();
    assert_eq!(available[0], Isa::Portable);
    #[cfg(target_arch = "x86_64")]
    assert!(available.contains(&Isa::Sse2));
    // Every aarch64 CPU has NEON, so every test above ran it; those with
    // FEAT_FHM (qemu's `max`) also ran the fmlal path.
    #[cfg(target_arch = "aarch64")]
    if std::arch::is_aarch64_feature_detected!("fhm") {
        assert_eq!(available, [Isa::Portable, Isa::Neon, Isa::NeonFhm]);
    } else {
        assert_eq!(available, [Isa::Portable, Isa::Neon]);
    }
    println!(
        "paths: {}",
        available
            .iter()
            .map(|isa| isa.name())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if std::env::var("NCNN_L2NORM_ISA").is_err() {
        assert_eq!(Isa::selected(), *available.last().unwrap());
    }
}

/// Two paths claimed to give the same bits for 16-bit storage `E`: for
/// every shape `(w, h, channels, elempack)` and every `(mode, eps)` case,
/// random values in ±4 with the `specials` at every `step`-th element
/// (starting at the case's index), run on path `a` and on path `b`; every
/// element must come out as the same bits (`bits` of each), except that
/// with `any_nan` two NaNs match whatever their payloads.
#[allow(clippy::too_many_arguments)]
fn assert_paths_agree<E: Element>(
    rng: &mut Rng,
    shapes: &[(i32, i32, usize, usize)],
    cases: &[(EpsMode, f32)],
    specials: &[E],
    step: usize,
    (a, b): (Isa, Isa),
    bits: fn(&E) -> u16,
    any_nan: bool,
) {
    for &(w, h, channels, elempack) in shapes {
        let view = MatView::dims3(w, h, (channels / elempack) as i32, elempack as i32)
            .with_16bit_storage();
        let layout = view.layout(E::STORAGE).unwrap();
        for (m, &(mode, eps)) in cases.iter().enumerate() {
            let p = params(channels, eps, mode, false);
            let weights = rng.vec(channels, -30.0, 30.0);
            let forward = Forward::new::<E>(&view, &p, &weights).unwrap();
            let mut data: Vec<E> = rng
                .vec(layout.min_len, -4.0, 4.0)
                .into_iter()
                .map(E::from_f32)
                .collect();
            for (i, x) in data.iter_mut().enumerate().skip(m).step_by(step) {
                *x = specials[i % specials.len()];
            }
            let (mut on_a, mut on_b) = (data.clone(), data);
            forward.run_on(a, &mut TensorMut::from_slice(&mut on_a, layout).unwrap());
            forward.run_on(b, &mut TensorMut::from_slice(&mut on_b, layout).unwrap());
            for (i, (x, y)) in on_a.iter().zip(&on_b).enumerate() {
                let nan = any_nan && x.to_f32().is_nan() && y.to_f32().is_nan();
                assert!(
                    bits(x) == bits(y) || nan,
                    "{w}x{h}x{channels} elempack {elempack} {mode:?}: element {i} is \
                     {:#06x} on {}, {:#06x} on {}",
                    bits(x),
                    a.name(),
                    bits(y),
                    b.name()
                );
            }
        }
    }
}

/// FEAT_FHM's pass 1 (`fmlal`: halves squared exactly, added with one
/// rounding) is claimed to give bit for bit what the plain NEON path's
/// `fcvtl` then `fmla` give, so fp16 results must be identical on every
/// elempack, tile width and ending, with subnormal, largest and zero halves
/// among ordinary ones (NaNs compared as NaNs).
#[cfg(target_arch = "aarch64")]
#[test]
fn the_fhm_path_matches_plain_neon_bit_for_bit() {
    if !Isa::available().contains(&Isa::NeonFhm) {
        println!("skipped: this CPU has no FEAT_FHM (qemu -cpu max has it)");
        return;
    }
    let specials = [
        0x0001u16, 0x8001, 0x03ff, 0x7bff, 0xfbff, 0x0000, 0x8000, 0x3c00,
    ]
    .map(F16);
    let shapes = [
        (38, 38, 512, 1),
        (38, 38, 512, 4),
        (38, 38, 512, 8),
        (19, 19, 1024, 16),
        (5, 3, 3, 1),
        (7, 1, 24, 8),
        (1, 1, 17, 1),
        (11, 13, 64, 4),
    ];
    let cases = MODES.map(|mode| (mode, 1e-10));
    let paths = (Isa::Neon, Isa::NeonFhm);
    let mut rng = Rng::new(19);
    assert_paths_agree(
        &mut rng,
        &shapes,
        &cases,
        &specials,
        97,
        paths,
        |x| x.0,
        true,
    );
}

#[test]
fn the_bf16_path_matches_plain_avx512_bit_for_bit() {
    // `avx512f+bf16` narrows bf16 results with `vcvtneps2bf16`, claimed to
    // round exactly as the integer code of plain AVX-512 does, with the
    // subnormal results it would flush sent through that code instead.
    // Random values meet about one rounding tie in 65,536 elements; eps 1
    // in the Max mode leaves factors of 1, so subnormal inputs give
    // subnormal results; NaNs (with payloads) and infinities come through.
    if !Isa::available().contains(&Isa::Avx512Bf16) {
        println!("skipped: this CPU has no AVX512_BF16");
        return;
    }
    let specials = [
        f32::from_bits(0x0000_0001),
        f32::from_bits(0x8040_8000),
        f32::from_bits(0x007f_ffff),
        f32::from_bits(0x7fc1_2345),
        f32::from_bits(0xff80_0001),
        f32::INFINITY,
        f32::MAX,
        0.0,
        -0.0,
        1e-39,
    ]
    .map(BF16::from_f32);
    let shapes = [
        (38, 38, 512, 1),
        (38, 38, 512, 4),
        (38, 38, 512, 8),
        (38, 38, 512, 16),
        (19, 19, 1024, 16),
        (5, 3, 3, 1),
        (7, 1, 24, 8),
        (11, 13, 64, 16),
    ];
    let cases = [(EpsMode::Add, 1e-10), (EpsMode::Max, 1.0)];
    let paths = (Isa::Avx512, Isa::Avx512Bf16);
    let mut rng = Rng::new(23);
    assert_paths_agree(
        &mut rng,
        &shapes,
        &cases,
        &specials,
        89,
        paths,
        |x| x.0,
        false,
    );
}

/// `path_on` names the path `run_on` takes, which the benchmarks record:
/// on a CPU with AVX-512 and AVX2, AVX2 for unpacked fp32 and fp16 tensors
/// that stay in L2 (four fifths of the L2 the CPU reports), AVX-512 for
/// larger, packed or bf16 ones; the portable path for a path the CPU lacks
/// and for elempacks that do not divide 16.
#[test]
fn path_on_names_the_path_run_on_takes() {
    let available = Isa::available();
    let weights = vec![1.0f32; 512];
    let params = L2NormParams::new(512).unwrap();
    let path = |w: i32, h: i32, pack: i32, storage: Storage, isa: Isa| {
        let view = MatView::dims3(w, h, 512 / pack, pack);
        match storage {
            Storage::F32 => Forward::new::<f32>(&view, &params, &weights)
                .unwrap()
                .path_on::<f32>(isa),
            Storage::F16 => Forward::new::<F16>(&view.with_16bit_storage(), &params, &weights)
                .unwrap()
                .path_on::<F16>(isa),
            Storage::BF16 => Forward::new::<BF16>(&view.with_16bit_storage(), &params, &weights)
                .unwrap()
                .path_on::<BF16>(isa),
        }
    };
    let best = *available.last().unwrap();
    // AVX512_BF16 changes only bf16 storage: fp32 and fp16 run plain AVX-512.
    let best_not_bf16 = if best == Isa::Avx512Bf16 {
        Isa::Avx512
    } else {
        best
    };
    // 512 channels at elempack 1 of 512x38x38 are 2.8 MiB, beyond any L2 here.
    assert_eq!(path(38, 38, 1, Storage::F32, best), best_not_bf16);
    assert_eq!(path(38, 38, 8, Storage::F16, best), best_not_bf16);
    assert_eq!(path(38, 38, 8, Storage::BF16, best), best);
    let p = L2NormParams::new(3 * 512).unwrap();
    let w3 = vec![1.0f32; 3 * 512];
    let odd = Forward::new::<f32>(&MatView::dims3(2, 2, 512, 3), &p, &w3).unwrap();
    assert_eq!(odd.path_on::<f32>(best), Isa::Portable);
    #[cfg(target_arch = "x86_64")]
    {
        assert_eq!(path(4, 4, 1, Storage::F32, Isa::Neon), Isa::Portable);
        if available.contains(&Isa::Avx512) {
            // 512 channels x 4x4 fp32: 32 KiB, L2-resident everywhere.
            assert_eq!(path(4, 4, 1, Storage::F32, Isa::Avx512), Isa::Avx2);
            assert_eq!(path(4, 4, 1, Storage::F16, Isa::Avx512), Isa::Avx2);
            assert_eq!(path(4, 4, 1, Storage::BF16, Isa::Avx512), Isa::Avx512);
            assert_eq!(path(4, 4, 16, Storage::F32, Isa::Avx512), Isa::Avx512);
        }
        if available.contains(&Isa::Avx512Bf16) {
            assert_eq!(
                path(4, 4, 1, Storage::BF16, Isa::Avx512Bf16),
                Isa::Avx512Bf16
            );
            assert_eq!(path(4, 4, 1, Storage::F32, Isa::Avx512Bf16), Isa::Avx2);
            assert_eq!(path(38, 38, 16, Storage::F16, Isa::Avx512Bf16), Isa::Avx512);
        }
    }
}
