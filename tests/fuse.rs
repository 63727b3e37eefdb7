//! `ncnn-l2norm fuse` on models the real pnnx wrote (`tests/fixtures/fuse/`,
//! made by `make_fixtures.py` there: mmdetection's and ssd.pytorch's L2Norm
//! through TorchScript and ONNX, between convolutions, in a two-branch
//! SSD-like net, alone, and F.normalize's `Normalize`) and on a hand-written
//! onnx2ncnn model. Needs neither torch nor pnnx.
//!
//! For every fixture the fuser must fuse (or refuse) as the manifest says; a
//! fused model has one `L2Norm` per module and none of the chain's layers,
//! every other layer's weight bytes are identical, and the fused and unfused
//! models give the same outputs through ncnn under threads {1,2} x packing
//! {off,on} (on only where ncnn's C API cannot turn it off): `|fused - unfused| <= 1e-5·(1 + max|unfused|)` for every
//! element, absolute plus relative to the largest value of that output (the
//! chain and the layer round differently, by a few ulp of values up to ~20;
//! the convolution after it sums hundreds of such products, and an output
//! element near zero by cancellation keeps the absolute error of the sum, so
//! the relative part is taken at the tensor's scale, not the element's).
//! Both are also checked against PyTorch's outputs within
//! `1e-4·(1 + max|expected|)`. Measured worst differences are printed.

mod common;
// The `ncnn-l2norm` tool's model code, compiled in as the tool compiles it:
// it is not part of the library (see src/tools/main.rs).
#[allow(dead_code)]
#[path = "../src/tools/model/mod.rs"]
mod model;

use std::path::{Path, PathBuf};

use common::{net_options, Net, Tensor};
use model::bin;
use model::fuse::{fuse, fuse_files, FuseOptions};
use model::param::ParamFile;
use model::ModelError;
use ncnn_l2norm::EpsMode;

type Blob = common::FixtureBlob;

const TOL_FUSED: f32 = 1e-5;
const TOL_TORCH: f32 = 1e-4;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuse")
}

#[derive(Debug, Clone)]
enum Expect {
    Fuse(usize, bool),
    Refuse(String),
}

#[derive(Debug, Clone)]
struct Fixture {
    name: String,
    param: PathBuf,
    bin: PathBuf,
    input: Option<Blob>,
    outputs: Vec<Blob>,
    expect: Option<Expect>,
    channels: Vec<usize>,
}

/// `BLOB FILE 1 C H W` from the manifest.
fn blob(fields: &[&str]) -> Blob {
    common::fixture_blob(&dir(), fields)
}

fn fixtures() -> Vec<Fixture> {
    let text = std::fs::read_to_string(dir().join("manifest.txt")).expect("manifest.txt");
    let mut out: Vec<Fixture> = Vec::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f[0] == "fixture" {
            out.push(Fixture {
                name: f[1].into(),
                param: PathBuf::new(),
                bin: PathBuf::new(),
                input: None,
                outputs: vec![],
                expect: None,
                channels: vec![],
            });
            continue;
        }
        let fx = out
            .last_mut()
            .expect("manifest: a line before the first fixture");
        match f[0] {
            "param" => fx.param = dir().join(f[1]),
            "bin" => fx.bin = dir().join(f[1]),
            "input" => fx.input = Some(blob(&f[1..])),
            "output" => fx.outputs.push(blob(&f[1..])),
            "expect" if f[1] == "fuse" => {
                fx.expect = Some(Expect::Fuse(
                    f[2].parse().unwrap(),
                    f.get(3) == Some(&"--normalize"),
                ))
            }
            "expect" if f[1] == "refuse" => fx.expect = Some(Expect::Refuse(f[2..].join(" "))),
            "channels" => fx.channels = f[1..].iter().map(|c| c.parse().unwrap()).collect(),
            other => panic!("manifest: unknown key {other:?}"),
        }
    }
    assert_eq!(out.len(), 14, "fixtures in manifest.txt");
    out
}

fn load(fx: &Fixture) -> (ParamFile, Vec<u8>) {
    let pf = ParamFile::parse(&std::fs::read_to_string(&fx.param).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", fx.name));
    (pf, std::fs::read(&fx.bin).unwrap())
}

fn run(param: &str, weights: &[u8], fx: &Fixture, threads: i32, packing: bool) -> Vec<Tensor> {
    let net = Net::new("L2Norm", threads, packing);
    net.load(param, weights)
        .unwrap_or_else(|e| panic!("{}: {e:?}", fx.name));
    let input = fx.input.as_ref().unwrap();
    let names: Vec<&str> = fx.outputs.iter().map(|b| b.name.as_str()).collect();
    net.run(&input.name, &input.tensor, &names)
        .unwrap_or_else(|e| panic!("{}: run {e}", fx.name))
}

/// Largest |got - expected|, panicking past `tol·(1 + max|expected|)`.
fn compare(got: &Tensor, expected: &Tensor, tol: f32, what: &str) -> f32 {
    assert_eq!(got.shape, expected.shape, "{what}: shape");
    let scale = expected.data.iter().fold(0f32, |m, e| m.max(e.abs()));
    let limit = tol * (1.0 + scale);
    let mut worst = 0f32;
    for (i, (&g, &e)) in got.data.iter().zip(&expected.data).enumerate() {
        let d = (g - e).abs();
        assert!(
            d <= limit,
            "{what}: element {i}: got {g}, expected {e} (|diff| {d} > {limit})"
        );
        worst = worst.max(d);
    }
    worst
}

#[test]
fn fuses_what_pnnx_and_onnx2ncnn_write() {
    let mut fused_count = 0;
    for fx in fixtures() {
        let Some(Expect::Fuse(n, normalize)) = fx.expect.clone() else {
            continue;
        };
        fused_count += 1;
        let (pf, bin_bytes) = load(&fx);
        let (out, out_bin, report) = fuse(&pf, &bin_bytes, FuseOptions { normalize })
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));

        // The report: one L2Norm per module, with its channels, eps and mode.
        assert_eq!(report.fused.len(), n, "{}: {report}", fx.name);
        let mut channels: Vec<usize> = report.fused.iter().map(|f| f.channels).collect();
        let mut expected_channels = fx.channels.clone();
        channels.sort();
        expected_channels.sort();
        assert_eq!(channels, expected_channels, "{}", fx.name);
        for f in &report.fused {
            if normalize {
                assert_eq!(
                    (f.eps, f.eps_mode, f.channel_shared, f.from),
                    (1e-6, EpsMode::Max, true, "Normalize"),
                    "{}",
                    fx.name
                );
            } else {
                assert_eq!(
                    (f.eps, f.eps_mode, f.channel_shared, f.from),
                    (1e-10, EpsMode::Add, false, "chain"),
                    "{}",
                    fx.name
                );
            }
        }
        let summary = report.to_string();
        for f in &report.fused {
            let line = format!("-> L2Norm {}: channels {}", f.name, f.channels);
            assert!(
                summary.contains(&line),
                "{}: {line:?} not in\n{summary}",
                fx.name
            );
        }
        assert!(
            summary.ends_with(&format!("{n} L2Norm layer(s) written")),
            "{summary}"
        );

        // The fused .param: n L2Norms, none of the replaced layers, no op of a chain left.
        let l2norms: Vec<_> = out.layers.iter().filter(|l| l.ty == "L2Norm").collect();
        assert_eq!(l2norms.len(), n, "{}", fx.name);
        for f in &report.fused {
            for name in &f.replaced {
                assert!(
                    out.layers.iter().all(|l| &l.name != name),
                    "{}: {name} still there",
                    fx.name
                );
            }
        }
        let leftover = ["Reduction", "UnaryOp", "MemoryData", "Normalize"];
        assert!(
            out.layers
                .iter()
                .all(|l| !leftover.contains(&l.ty.as_str())),
            "{}:\n{}",
            fx.name,
            out.to_text()
        );
        assert!(
            out.layers
                .iter()
                .all(|l| l.ty != "BinaryOp" || l.int(1, 0) == Ok(1)),
            "{}: a tensor BinaryOp left",
            fx.name
        );

        // Every kept layer's weight bytes are identical.
        let before = bin::layout(&pf, &bin_bytes).unwrap();
        let after = bin::layout(&out, &out_bin).unwrap();
        for (l, r) in out.layers.iter().zip(&after) {
            if l.ty == "L2Norm" {
                assert_eq!(
                    r.end - r.start,
                    4 * if l.int(3, 0) == Ok(1) {
                        1
                    } else {
                        l.int(0, 0).unwrap() as usize
                    }
                );
                continue;
            }
            let i = pf.layers.iter().position(|o| o.name == l.name).unwrap();
            assert_eq!(
                &out_bin[r.start..r.end],
                &bin_bytes[before[i].start..before[i].end],
                "{}: {} bytes",
                fx.name,
                l.name
            );
        }

        // Same outputs through ncnn, fused and unfused, and as PyTorch's.
        let (text, fused_text) = (pf.to_text(), out.to_text());
        let mut worst = (0f32, 0f32);
        for (threads, packing) in net_options() {
            let a = run(&text, &bin_bytes, &fx, threads, packing);
            let b = run(&fused_text, &out_bin, &fx, threads, packing);
            for ((a, b), e) in a.iter().zip(&b).zip(&fx.outputs) {
                let what = format!("{} {} t{threads} pack{packing}", fx.name, e.name);
                worst.0 = worst.0.max(compare(
                    b,
                    a,
                    TOL_FUSED,
                    &format!("fused vs unfused {what}"),
                ));
                worst.1 = worst.1.max(compare(
                    b,
                    &e.tensor,
                    TOL_TORCH,
                    &format!("fused vs PyTorch {what}"),
                ));
                compare(
                    a,
                    &e.tensor,
                    TOL_TORCH,
                    &format!("unfused vs PyTorch {what}"),
                );
            }
        }
        eprintln!(
            "{:<22} fused vs unfused worst |diff| {:.1e}, vs PyTorch {:.1e}",
            fx.name, worst.0, worst.1
        );
    }
    assert_eq!(fused_count, 8);
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ncnn-l2norm-fuse-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cli(args: &[&Path], normalize: bool) -> (i32, String, String) {
    let mut cmd = common::cpp::target_command(env!("CARGO_BIN_EXE_ncnn-l2norm"));
    cmd.arg("fuse").args(args);
    if normalize {
        cmd.arg("--normalize");
    }
    let o = cmd.output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

#[test]
fn cli_writes_what_fuse_computes_and_refuses_as_the_manifest_says() {
    let d = temp_dir("cli");
    for fx in fixtures() {
        let (op, ob) = (
            d.join(format!("{}.param", fx.name)),
            d.join(format!("{}.bin", fx.name)),
        );
        match fx.expect.clone().unwrap() {
            Expect::Fuse(n, normalize) => {
                let (code, stdout, stderr) = cli(&[&fx.param, &fx.bin, &op, &ob], normalize);
                assert_eq!(code, 0, "{}: {stderr}", fx.name);
                assert_eq!(stdout.matches("fused ").count(), n, "{stdout}");
                let (pf, b) = load(&fx);
                let (want, want_bin, _) = fuse(&pf, &b, FuseOptions { normalize }).unwrap();
                assert_eq!(
                    std::fs::read_to_string(&op).unwrap(),
                    want.to_text(),
                    "{}",
                    fx.name
                );
                assert_eq!(std::fs::read(&ob).unwrap(), want_bin, "{}", fx.name);
            }
            Expect::Refuse(why) => {
                let (code, stdout, stderr) = cli(&[&fx.param, &fx.bin, &op, &ob], false);
                assert_eq!(code, 1, "{}: {stdout}", fx.name);
                assert!(
                    stderr.contains(&why) && stderr.contains("nothing written"),
                    "{}: {why:?} not in {stderr}",
                    fx.name
                );
                assert!(!op.exists() && !ob.exists(), "{}: output written", fx.name);
            }
        }
    }
    // Bad usage.
    assert_eq!(cli(&[Path::new("a")], false).0, 2);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn unfused_opset13_models_are_wrong_so_refusing_them_is_right() {
    // pnnx's ONNX opset >= 13 chain reduces nothing (empty axes): the model
    // itself does not compute an L2Norm, and fusing it would change what it
    // computes. This checks that the unfused model is indeed far from PyTorch
    // (ncnn 1.0.20261020 gives wrong numbers, 1.0.20260526 NaN).
    for fx in fixtures()
        .into_iter()
        .filter(|f| f.name.ends_with("conv_onnx13"))
    {
        let (pf, b) = load(&fx);
        let (threads, packing) = net_options()[0];
        // ncnn 1.0.20250503's Reduction gives an empty blob for the empty axes
        // list (later releases reduce nothing) and ncnn then crashes in the
        // next layer: there is no output to compare.
        let reduction = pf.layers.iter().find(|l| l.ty == "Reduction").unwrap();
        let input = fx.input.as_ref().unwrap();
        let net = Net::new("L2Norm", threads, packing);
        net.load(&pf.to_text(), &b).unwrap();
        if net
            .blob_is_empty(&input.name, &input.tensor, &reduction.tops[0])
            .unwrap()
        {
            println!(
                "skipped: {}: this ncnn's Reduction gives an empty blob for an empty axes list, and the layer after it crashes ncnn",
                fx.name
            );
            continue;
        }
        let got = run(&pf.to_text(), &b, &fx, threads, packing);
        let worst = got[0]
            .data
            .iter()
            .zip(&fx.outputs[0].tensor.data)
            .map(|(&g, &e)| common::abs_diff(g, e))
            .fold(0f32, f32::max);
        assert!(
            worst > 1.0,
            "{}: unfused differs from PyTorch by only {worst}",
            fx.name
        );
    }
}

/// The mmdetection conv fixture (TorchScript), as (param text, bin).
fn mmdet_conv() -> (String, Vec<u8>) {
    let fx = fixtures()
        .into_iter()
        .find(|f| f.name == "mmdet_conv_ts")
        .unwrap();
    (
        std::fs::read_to_string(&fx.param).unwrap(),
        std::fs::read(&fx.bin).unwrap(),
    )
}

/// Runs the CLI on a model that must be refused; checks exit code, message
/// and that pre-existing output files are left untouched.
fn assert_refused(param: &str, bin_bytes: &[u8], why: &str) {
    let d = temp_dir(&format!("refuse-{}", why.len()));
    let (ip, ib, op, ob) = (
        d.join("in.param"),
        d.join("in.bin"),
        d.join("out.param"),
        d.join("out.bin"),
    );
    std::fs::write(&ip, param).unwrap();
    std::fs::write(&ib, bin_bytes).unwrap();
    std::fs::write(&ob, b"old").unwrap(); // an existing output is not replaced
    let (code, _, stderr) = cli(&[&ip, &ib, &op, &ob], false);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains(why), "{why:?} not in {stderr}");
    assert!(!op.exists(), "out.param written");
    assert_eq!(std::fs::read(&ob).unwrap(), b"old");
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 3, "temp files left: {leftovers:?}");
    // `fuse_files` says the same.
    let e = fuse_files(&ip, &ib, &op, &ob, FuseOptions::default()).unwrap_err();
    assert!(e.to_string().contains(why), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn refuses_bin_one_float_short_or_long() {
    let (param, b) = mmdet_conv();
    assert_refused(&param, &b[..b.len() - 4], "truncated: Convolution conv_2");
    let mut long = b.clone();
    long.extend(1f32.to_le_bytes());
    assert_refused(&param, &long, "4 trailing bytes");
    assert!(matches!(
        fuse(
            &ParamFile::parse(&param).unwrap(),
            &long,
            FuseOptions::default()
        ),
        Err(ModelError::Bin(_))
    ));
}

#[test]
fn refuses_when_an_intermediate_blob_is_read_elsewhere() {
    // sqrt_1's output (blob 7) also feeds an extra layer: the chain cannot go.
    let (param, b) = mmdet_conv();
    assert!(
        param.contains("UnaryOp                  sqrt_1                   1 1 5 7 0=5"),
        "{param}"
    );
    let edited = param.replacen("11 12\n", "12 13\n", 1) + "UnaryOp extra 1 1 7 extra_out 0=0\n";
    assert_refused(
        &edited,
        &b,
        "intermediate blob 7 is also read by UnaryOp extra",
    );
    // The same with the weight's blob.
    let edited = param.replacen("11 12\n", "12 13\n", 1) + "UnaryOp extra 1 1 6 extra_out 0=0\n";
    assert_refused(&edited, &b, "blob 6 is also read by UnaryOp extra");
}

/// conv -> L2Norm chain with a MemoryData scale before the division, and
/// with `post` a second one after it; (param text, bin).
fn scaled_chain(post: bool) -> (String, Vec<u8>) {
    let mut layers = vec![
        "Input      in0   0 1 in0",
        "Convolution conv 1 1 in0 x 0=4 1=1 5=0 6=12",
        "MemoryData w1    0 1 w1 0=1 1=1 2=4",
        "Split      split 1 2 x x0 x1",
        "UnaryOp    sq    1 1 x0 s 0=4",
        "Reduction  sum   1 1 s ss 0=0 1=0 -23303=1,0 4=1 5=1",
        "UnaryOp    sqrt  1 1 ss n 0=5",
        "BinaryOp   eps   1 1 n d 0=0 1=1 2=1.000000e-10",
        "BinaryOp   pre   2 1 w1 x1 xw 0=2",
        "BinaryOp   div   2 1 xw d y 0=3",
    ];
    if post {
        layers.insert(3, "MemoryData w2    0 1 w2 0=1 1=1 2=4");
        layers.push("BinaryOp   post  2 1 y w2 out 0=2");
    }
    let blobs = if post { 13 } else { 11 };
    let param = format!("7767517\n{} {blobs}\n{}\n", layers.len(), layers.join("\n"));
    // conv: flag 0 + 12 fp32; w1: 4 fp32 (13..16); w2: 4 fp32 (17..20).
    let mut b = vec![0u8; 4];
    let floats = if post { 20 } else { 16 };
    b.extend((0..floats).flat_map(|i| (i as f32 + 1.0).to_le_bytes()));
    (param, b)
}

#[test]
fn refuses_ambiguous_scales() {
    // A per-channel MemoryData scale both before and after the division:
    // which one is the L2Norm weight?
    let (param, b) = scaled_chain(true);
    assert_refused(&param, &b, "ambiguous match at Reduction sum");
    // Without the second scale the same chain fuses, reading w1 as the weight.
    let (param, b) = scaled_chain(false);
    let (out, out_bin, report) = fuse(
        &ParamFile::parse(&param).unwrap(),
        &b,
        FuseOptions::default(),
    )
    .unwrap();
    assert_eq!(report.fused.len(), 1);
    let l = out.layers.iter().find(|l| l.ty == "L2Norm").unwrap();
    assert_eq!(
        (l.bottoms[0].as_str(), l.tops[0].as_str()),
        ("x", "y"),
        "Split removed, output kept"
    );
    assert_eq!(out.layers.len(), 3);
    assert_eq!(&out_bin[..52], &b[..52], "conv bytes");
    let w: Vec<f32> = out_bin[52..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(w, [13.0, 14.0, 15.0, 16.0]);
}

#[test]
fn normalize_with_shared_scale_needs_the_channel_count() {
    let param = "7767517\n2 2\nInput in0 0 1 in0\nNormalize n 1 1 in0 out 0=0 1=1 2=1.000000e-6 3=1 4=1 9=1\n";
    let pf = ParamFile::parse(param).unwrap();
    let e = fuse(&pf, &1f32.to_le_bytes(), FuseOptions { normalize: true })
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shared scale") && e.contains("channel count"),
        "{e}"
    );
    // Without --normalize the Normalize is not touched: nothing to do.
    let e = fuse(&pf, &1f32.to_le_bytes(), FuseOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no L2Norm chain"), "{e}");
    // With an Input that states its channels, it converts (eps text copied).
    let param = param.replace("Input in0 0 1 in0", "Input in0 0 1 in0 0=5 1=5 2=7");
    let (out, out_bin, _) = fuse(
        &ParamFile::parse(&param).unwrap(),
        &1f32.to_le_bytes(),
        FuseOptions { normalize: true },
    )
    .unwrap();
    assert!(out.to_text().contains("L2Norm                   l2norm_n                 1 1 in0 out 0=7 1=1.000000e-6 2=2 3=1\n"), "{}", out.to_text());
    assert_eq!(out_bin, 1f32.to_le_bytes());
}
