//! The layer inside real ncnn `Net`s, driven from Rust through ncnn's C API:
//! the bundled `.param` files, every dims, packing on and off, 1 and 2
//! threads, ncnn's own `Normalize` on the same input, custom type names, and
//! models ncnn must refuse.

mod common;

use std::path::PathBuf;

use common::{assert_close, f32_bytes, net_options, Net, Rng, Tensor};
use ncnn_l2norm::{l2norm_reference, EpsMode, L2NormParams};

fn models() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ncnn-models")
}

fn reference(input: &Tensor, p: &L2NormParams, weights: &[f32]) -> Vec<f32> {
    l2norm_reference(&input.data, &input.view(), p, weights).unwrap()
}

#[test]
#[cfg_attr(
    not(ncnn_c_api_packing_option),
    ignore = "this ncnn's C API has no ncnn_option_set_use_packing_layout: the net tests ran with packing on only (tests/cpp/consumer.cpp runs a Net with packing off through the C++ API)"
)]
fn net_tests_run_with_packing_off() {
    // Here for the record when it is ignored; otherwise: every net test
    // (these, pnnx_moduleop, fuse) ran with packing off and on.
    let rows = net_options();
    assert!(rows.contains(&(1, false)) && rows.contains(&(2, false)));
}

#[test]
fn bundled_l2norm_only_model() {
    let weights: Vec<f32> = (1..=16).map(|c| c as f32 / 4.0).collect();
    let p = L2NormParams::new(16).unwrap();
    let mut rng = Rng::new(10);
    for (threads, packing) in net_options() {
        let net = Net::new("L2Norm", threads, packing);
        net.load_files(
            &models().join("l2norm_only.param"),
            &models().join("l2norm_only.bin"),
        )
        .unwrap();
        for shape in [vec![16], vec![9, 16], vec![7, 5, 16], vec![3, 4, 5, 16]] {
            let n: i32 = shape.iter().product();
            let input = Tensor {
                shape: shape.clone(),
                data: rng.vec(n as usize, -3.0, 3.0),
            };
            let out = net.run("data", &input, &["out"]).unwrap().remove(0);
            assert_eq!(out.shape, shape);
            assert_close(
                &out.data,
                &reference(&input, &p, &weights),
                16,
                &format!("{shape:?} t{threads} pack{packing}"),
            );
        }
    }
}

#[test]
fn bundled_model_between_convolutions() {
    let mut rng = Rng::new(11);
    let input = Tensor {
        shape: vec![38, 38, 3],
        data: rng.vec(3 * 38 * 38, -1.0, 1.0),
    };
    let p = L2NormParams::new(32).unwrap();
    let mut finals = Vec::new();
    for (threads, packing) in net_options() {
        let net = Net::new("L2Norm", threads, packing);
        net.load_files(
            &models().join("conv_l2norm_conv.param"),
            &models().join("conv_l2norm_conv.bin"),
        )
        .unwrap();
        let mut outs = net.run("data", &input, &["conv1", "norm", "out"]).unwrap();
        let (conv1, norm) = (&outs[0], &outs[1]);
        assert_eq!(norm.shape, vec![38, 38, 32]);
        assert_close(
            &norm.data,
            &reference(conv1, &p, &[20.0; 32]),
            32,
            &format!("t{threads} pack{packing}"),
        );
        finals.push(outs.remove(2));
    }
    // The last convolution sees the same normalised blob under every option row.
    for f in &finals[1..] {
        assert_eq!(f.shape, finals[0].shape);
        for (a, b) in f.data.iter().zip(&finals[0].data) {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{a} vs {b}");
        }
    }
}

fn l2norm_param(type_name: &str, channels: usize, eps: f32, mode: EpsMode, shared: bool) -> String {
    format!(
        "7767517\n2 2\nInput data 0 1 data\n{type_name} norm 1 1 data out 0={channels} 1={eps:e} 2={} 3={}\n",
        mode.to_param(),
        shared as i32
    )
}

/// ncnn's Normalize in channel mode (across_spatial 0, across_channel 1).
fn normalize_param(channels: usize, eps: f32, ncnn_mode: i32, shared: bool) -> String {
    format!(
        "7767517\n2 2\nInput data 0 1 data\nNormalize norm 1 1 data out 0=0 1={} 2={eps:e} 3={} 4=1 9={ncnn_mode}\n",
        shared as i32,
        if shared { 1 } else { channels }
    )
}

#[test]
fn matches_ncnn_normalize_in_shared_eps_modes() {
    // Normalize's eps_mode 0/1/2 are our caffe / F.normalize / tensorflow.
    let mut rng = Rng::new(12);
    for (ncnn_mode, mode) in [
        (0, EpsMode::Caffe),
        (1, EpsMode::Max),
        (2, EpsMode::TensorFlow),
    ] {
        for shared in [false, true] {
            for (channels, w, h) in [(16usize, 9, 7), (64, 19, 19), (3, 5, 5)] {
                for eps in [1e-10f32, 1e-4, 0.5] {
                    let p = L2NormParams::from_raw(
                        channels as i64,
                        eps,
                        mode.to_param(),
                        shared as i32,
                        &[],
                    )
                    .unwrap();
                    let weights = rng.vec(p.weight_count(), 1.0, 30.0);
                    let input = Tensor {
                        shape: vec![w, h, channels as i32],
                        data: rng.vec(channels * (w * h) as usize, -0.8, 0.8),
                    };
                    let expected = reference(&input, &p, &weights);
                    for (threads, packing) in net_options() {
                        let ours = Net::new("L2Norm", threads, packing);
                        ours.load(
                            &l2norm_param("L2Norm", channels, eps, mode, shared),
                            &f32_bytes(&weights),
                        )
                        .unwrap();
                        let theirs = Net::plain(threads, packing);
                        theirs
                            .load(
                                &normalize_param(channels, eps, ncnn_mode, shared),
                                &f32_bytes(&weights),
                            )
                            .unwrap();
                        let a = ours.run("data", &input, &["out"]).unwrap().remove(0);
                        let b = theirs.run("data", &input, &["out"]).unwrap().remove(0);
                        let what = format!("{mode:?} shared={shared} c={channels} eps={eps} t{threads} pack{packing}");
                        assert_close(&a.data, &expected, channels, &format!("ours {what}"));
                        assert_close(&b.data, &expected, channels, &format!("Normalize {what}"));
                    }
                }
            }
        }
    }
}

#[test]
fn registers_under_custom_type_names() {
    // pnnx's moduleop writes the module's class path as the type and the
    // weight shape as param 10, with no channel count (`-23310=1,C` for a [C]
    // weight; a [1,C,1,1] one, as here, is accepted too).
    let type_name = "mmdet.models.necks.ssd_neck.L2Norm";
    let param = format!(
        "7767517\n2 2\nInput data 0 1 data\n{type_name} norm 1 1 data out -23310=4,1,24,1,1\n"
    );
    let mut rng = Rng::new(13);
    let weights = rng.vec(24, 5.0, 25.0);
    let input = Tensor {
        shape: vec![6, 4, 24],
        data: rng.vec(24 * 24, -2.0, 2.0),
    };
    let p = L2NormParams::new(24).unwrap();
    for (threads, packing) in net_options() {
        let net = Net::new(type_name, threads, packing);
        net.load(&param, &f32_bytes(&weights)).unwrap();
        let out = net.run("data", &input, &["out"]).unwrap().remove(0);
        assert_close(&out.data, &reference(&input, &p, &weights), 24, type_name);
    }
    // The type name is copied: a temporary string works.
    let net = Net::new(&String::from("MyL2Norm"), 1, true);
    net.load(
        &l2norm_param("MyL2Norm", 24, 1e-10, EpsMode::Add, false),
        &f32_bytes(&weights),
    )
    .unwrap();
    let out = net.run("data", &input, &["out"]).unwrap().remove(0);
    assert_close(&out.data, &reference(&input, &p, &weights), 24, "MyL2Norm");
}

#[test]
fn refuses_bad_params_and_weights() {
    let w16 = f32_bytes(&[1.0; 16]);
    let bad_params = [
        "0=0",
        "0=-4",
        "0=99999999",
        "0=16 1=-1.0",
        "0=16 2=7",
        "0=16 3=2",
        "0=16 -23310=4,1,8,1,1",
        "-23310=4,2,16,1,1",
        "-23310=4,1,16,3,3",
        // No channel count at all.
        "",
        // Params of a type other than the one each documents: ncnn's
        // ParamDict keeps them (a string, a float, a scalar, a float array)
        // and its getters would hand the layer the default instead.
        "0=16 1=nan",
        "0=16 1=inf",
        "0=16 1=abc",
        "0=16 1=\"0.5\"",
        "0=16 2=1.0",
        "0=16 3=1.0",
        "0=8.0",
        "0=16 10=16",
        // A float array whose bits are the ints 1 and 16.
        "-23310=2,1.401298e-45,2.242078e-44",
    ];
    if common::ncnn_can_refuse_models("refuses_bad_params_and_weights: bad params") {
        for params in bad_params {
            let net = Net::new("L2Norm", 1, true);
            let param =
                format!("7767517\n2 2\nInput data 0 1 data\nL2Norm norm 1 1 data out {params}\n");
            assert_eq!(
                net.load(&param, &w16).err().map(|e| e.0),
                Some("load_param"),
                "{params} should be refused"
            );
        }
    }
    // Truncated .bin: 15 of 16 weights, or none.
    for bytes in [&w16[..60], &[][..]] {
        let net = Net::new("L2Norm", 1, true);
        let r = net.load(
            &l2norm_param("L2Norm", 16, 1e-10, EpsMode::Add, false),
            bytes,
        );
        assert_eq!(
            r.err().map(|e| e.0),
            Some("load_model"),
            "{} bytes should be refused",
            bytes.len()
        );
    }
}

#[test]
fn refuses_input_with_other_channel_count() {
    let net = Net::new("L2Norm", 2, true);
    net.load(
        &l2norm_param("L2Norm", 16, 1e-10, EpsMode::Add, false),
        &f32_bytes(&[1.0; 16]),
    )
    .unwrap();
    let input = Tensor {
        shape: vec![5, 5, 8],
        data: vec![1.0; 200],
    };
    assert_eq!(net.run("data", &input, &["out"]).err(), Some(-1));
    // The net still works for the right input afterwards.
    let input = Tensor {
        shape: vec![5, 5, 16],
        data: vec![1.0; 400],
    };
    let out = net.run("data", &input, &["out"]).unwrap().remove(0);
    assert!(
        out.data.iter().all(|&x| (x - 0.25).abs() < 1e-6),
        "1/sqrt(16)"
    );
}
