//! `ncnn-l2norm fuse` on models the real pnnx wrote (`tests/fixtures/fuse/`,
//! made by `make_fixtures.py` there: mmdetection's and ssd.pytorch's L2Norm
//! through TorchScript, ONNX opset 11 and 13 and torch's default (dynamo)
//! exporter, between convolutions, in a two-branch SSD-like net, alone;
//! F.normalize's `Normalize`; torchvision's SSD300 backbone through every
//! route) and on a hand-written onnx2ncnn model. Needs neither torch nor pnnx.
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
//! `1e-4·(1 + max|expected|)`. Where the converted model itself is wrong
//! (pnnx lost the reduction axes of the opset 13 and dynamo exports: the
//! manifest's `unfused wrong`), the fused model is checked against PyTorch
//! only, and the unfused one is checked to be far from it (NaN, or off by
//! more than 1). Measured worst differences are printed.

mod common;
// The `ncnn-l2norm` tool's model code, compiled in as the tool compiles it:
// it is not part of the library (see src/tools/main.rs).
#[allow(dead_code)]
#[path = "../src/tools/model/mod.rs"]
mod model;

use std::path::{Path, PathBuf};

use common::{net_options, Net, Tensor};
use model::bin;
use model::fuse::{fuse, fuse_files, Files, FuseOptions};
use model::param::ParamFile;
use model::ModelError;

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
    /// (eps, eps_mode, channel_shared) of each expected L2Norm, in `channels` order.
    l2norms: Vec<(f32, i32, bool)>,
    /// The converted model does not compute PyTorch's function (pnnx lost axes).
    unfused_wrong: bool,
    /// pnnx's .pnnx.param for the model, beside it.
    pnnx: Option<PathBuf>,
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
                l2norms: vec![],
                unfused_wrong: false,
                pnnx: None,
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
            "l2norm" => {
                fx.l2norms
                    .push((f[1].parse().unwrap(), f[2].parse().unwrap(), f[3] == "1"))
            }
            "unfused" if f[1] == "wrong" => fx.unfused_wrong = true,
            "pnnx" => fx.pnnx = Some(dir().join(f[1])),
            other => panic!("manifest: unknown key {other:?}"),
        }
    }
    assert_eq!(out.len(), 24, "fixtures in manifest.txt");
    out
}

/// What the tool knows of a fixture's files: the .pnnx.param beside it, if any.
fn files(fx: &Fixture) -> Files {
    let f = Files::read(
        &fx.param,
        &fx.bin,
        Path::new("out.param"),
        Path::new("out.bin"),
        None,
    )
    .unwrap();
    assert_eq!(f.pnnx.is_some(), fx.pnnx.is_some(), "{}", fx.name);
    if let Some(p) = &fx.pnnx {
        assert_eq!(&f.pnnx_path, p);
    }
    f
}

fn opts(normalize: bool) -> FuseOptions {
    FuseOptions {
        normalize,
        ..FuseOptions::default()
    }
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
        let (out, out_bin, report) = fuse(&pf, &bin_bytes, &opts(normalize), &files(&fx))
            .unwrap_or_else(|e| panic!("{}: {e}", fx.name));

        // The report: one L2Norm per module, with its channels, eps and mode.
        assert_eq!(report.fused.len(), n, "{}: {report}", fx.name);
        let mut channels: Vec<usize> = report.fused.iter().map(|f| f.channels).collect();
        let mut expected_channels = fx.channels.clone();
        channels.sort();
        expected_channels.sort();
        assert_eq!(channels, expected_channels, "{}", fx.name);
        let mut got: Vec<_> = (report.fused.iter())
            .map(|f| (f.channels, f.eps, f.eps_mode.to_param(), f.channel_shared))
            .collect();
        let mut want: Vec<_> = (fx.channels.iter().zip(&fx.l2norms))
            .map(|(&c, &(eps, mode, shared))| (c, eps, mode, shared))
            .collect();
        got.sort_by_key(|g| g.0);
        want.sort_by_key(|w| w.0);
        assert_eq!(got, want, "{}: {report}", fx.name);
        for f in &report.fused {
            let from = if normalize { "Normalize" } else { "chain" };
            assert_eq!(f.from, from, "{}", fx.name);
        }
        let summary = report.to_string();
        // A lost axis is said to come from the .pnnx.param; a lost eps is said once per chain.
        let from_pnnx = summary.matches("no axes in the .param;").count();
        assert_eq!(from_pnnx, if fx.unfused_wrong { n } else { 0 }, "{summary}");
        let no_eps = summary.matches("the chain adds no eps").count();
        assert_eq!(
            no_eps,
            if fx.name.ends_with("_dynamo") && !normalize {
                n
            } else {
                0
            },
            "{summary}"
        );
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
            let b = run(&fused_text, &out_bin, &fx, threads, packing);
            let a = if fx.unfused_wrong {
                b.clone() // not compared: the unfused model is checked to be wrong elsewhere
            } else {
                run(&text, &bin_bytes, &fx, threads, packing)
            };
            for ((a, b), e) in a.iter().zip(&b).zip(&fx.outputs) {
                let what = format!("{} {} t{threads} pack{packing}", fx.name, e.name);
                worst.1 = worst.1.max(compare(
                    b,
                    &e.tensor,
                    TOL_TORCH,
                    &format!("fused vs PyTorch {what}"),
                ));
                if fx.unfused_wrong {
                    continue;
                }
                worst.0 = worst.0.max(compare(
                    b,
                    a,
                    TOL_FUSED,
                    &format!("fused vs unfused {what}"),
                ));
                compare(
                    a,
                    &e.tensor,
                    TOL_TORCH,
                    &format!("unfused vs PyTorch {what}"),
                );
            }
        }
        let vs_unfused = if fx.unfused_wrong {
            "not compared (the unfused model is wrong)".to_string()
        } else {
            format!("{:.1e}", worst.0)
        };
        eprintln!(
            "{:<22} fused vs unfused worst |diff| {vs_unfused}, vs PyTorch {:.1e}",
            fx.name, worst.1
        );
    }
    assert_eq!(fused_count, 18);
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ncnn-l2norm-fuse-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn cli(args: &[&Path], normalize: bool) -> (i32, String, String) {
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|p| p.as_os_str()).collect();
    if normalize {
        args.push("--normalize".as_ref());
    }
    common::fuse_cli(&args)
}

/// Checks that `ncnn-l2norm fuse` wrote to `op`/`ob` exactly what `fuse`
/// computes for `fx` with `normalize`.
fn assert_wrote_what_fuse_computes(fx: &Fixture, op: &Path, ob: &Path, normalize: bool) {
    let (pf, b) = load(fx);
    let (want, want_bin, _) = fuse(&pf, &b, &opts(normalize), &files(fx)).unwrap();
    assert_eq!(
        std::fs::read_to_string(op).unwrap(),
        want.to_text(),
        "{}",
        fx.name
    );
    assert_eq!(std::fs::read(ob).unwrap(), want_bin, "{}", fx.name);
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
                assert_wrote_what_fuse_computes(&fx, &op, &ob, normalize);
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
fn unfused_opset13_and_dynamo_models_are_wrong() {
    // pnnx's ONNX opset >= 13 and dynamo chains reduce nothing (empty axes):
    // the converted model itself does not compute an L2Norm (x/|x|: ±1, and
    // NaN where x is 0, which the fixtures' relu gives). This checks that the
    // unfused models are indeed far from PyTorch, so that matching PyTorch
    // after fusing (fuses_what_pnnx_and_onnx2ncnn_write) is the repair, not
    // a copy (ncnn 1.0.20261020 gives wrong numbers, 1.0.20260526 NaN).
    let mut checked = 0;
    for fx in fixtures().into_iter().filter(|f| f.unfused_wrong) {
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
        checked += 1;
    }
    println!("{checked} unfused models checked wrong");
}

/// Runs the CLI with extra arguments; (exit code, stdout, stderr).
/// The `ncnn-l2norm fuse ...` command a refusal suggests, as arguments after `fuse`.
fn suggested(stderr: &str) -> Vec<String> {
    let at = stderr
        .find("ncnn-l2norm fuse ")
        .unwrap_or_else(|| panic!("no command in {stderr}"));
    let line = stderr[at..].lines().next().unwrap();
    line.split_whitespace().skip(2).map(String::from).collect()
}

#[test]
fn without_the_pnnx_param_lost_axes_are_refused_with_the_command_that_works() {
    // The opset 13 and dynamo models away from their .pnnx.param: refused,
    // nothing written, and the printed command, with DIR the folder where the
    // .pnnx.param is, fuses them exactly as with the file beside.
    let d = temp_dir("nopnnx");
    for fx in fixtures()
        .into_iter()
        .filter(|f| f.pnnx.is_some() && f.name.contains("_conv_"))
    {
        let (ip, ib) = (
            d.join(format!("{}.ncnn.param", fx.name)),
            d.join(format!("{}.ncnn.bin", fx.name)),
        );
        std::fs::copy(&fx.param, &ip).unwrap();
        std::fs::copy(&fx.bin, &ib).unwrap();
        let (op, ob) = (d.join("out.param"), d.join("out.bin"));
        let (code, _, stderr) = cli(&[&ip, &ib, &op, &ob], false);
        assert_eq!(code, 1, "{}: {stderr}", fx.name);
        assert!(
            stderr.contains("sums over no axis")
                && stderr.contains("x/|x|")
                && stderr.contains(&format!(
                    "it is not at {}",
                    d.join(format!("{}.pnnx.param", fx.name)).display()
                ))
                && stderr.contains("opset_version=11")
                && stderr.contains("nothing written"),
            "{}: {stderr}",
            fx.name
        );
        assert!(!op.exists() && !ob.exists());
        let args: Vec<String> = suggested(&stderr)
            .into_iter()
            .map(|a| a.replace("DIR/", &format!("{}/", dir().display())))
            .collect();
        assert_eq!(args.len(), 6, "{args:?}");
        let (code, stdout, stderr) = common::fuse_cli(&args);
        assert_eq!(code, 0, "{}: {stderr}", fx.name);
        assert!(stdout.contains("no axes in the .param"), "{stdout}");
        assert_wrote_what_fuse_computes(&fx, &op, &ob, false);
        std::fs::remove_file(&op).unwrap();
        std::fs::remove_file(&ob).unwrap();
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn a_pnnx_param_that_does_not_say_channels_is_refused() {
    let fx = |name: &str| fixtures().into_iter().find(|f| f.name == name).unwrap();
    let mmdet = fx("mmdet_conv_dynamo");
    let (pf, b) = load(&mmdet);
    let with = |pnnx_text: &str| {
        let d = temp_dir(&format!("badpnnx{}", pnnx_text.len()));
        let p = d.join("other.pnnx.param");
        std::fs::write(&p, pnnx_text).unwrap();
        let f = Files::read(
            &mmdet.param,
            &mmdet.bin,
            Path::new("o.param"),
            Path::new("o.bin"),
            Some(&p),
        )
        .unwrap();
        let e = fuse(&pf, &b, &opts(false), &f).unwrap_err().to_string();
        let _ = std::fs::remove_dir_all(&d);
        e
    };
    let own = std::fs::read_to_string(mmdet.pnnx.as_ref().unwrap()).unwrap();
    assert!(own.contains("dim=1 keepdim=True"), "{own}");
    // Another model's: two sums, or one over 40 channels.
    let e = with(&std::fs::read_to_string(fx("ssdlike_dynamo").pnnx.unwrap()).unwrap());
    assert!(
        e.contains("has 2 torch.sum with an integer dim, this model 1")
            && e.contains("not the .pnnx.param of this model"),
        "{e}"
    );
    let e = with(&std::fs::read_to_string(fx("ssd_conv_dynamo").pnnx.unwrap()).unwrap());
    assert!(e.contains("(40 channels), but blob 1 has 48"), "{e}");
    // Another axis, or the dim not kept.
    let e = with(&own.replace("dim=1 keepdim=True", "dim=2 keepdim=True"));
    assert!(e.contains("sums dim 2, not the channel dim 1"), "{e}");
    let e = with(&own.replace("dim=1 keepdim=True", "dim=1 keepdim=False"));
    assert!(e.contains("does not keep the summed dim"), "{e}");
    // Not a pnnx param at all.
    let e = with("hello\n");
    assert!(e.contains("cannot be read: not a pnnx .param"), "{e}");
    // --pnnx-param naming a file that is not there.
    let e = Files::read(
        &mmdet.param,
        &mmdet.bin,
        Path::new("o"),
        Path::new("o"),
        Some(Path::new("/nonexistent/x.pnnx.param")),
    )
    .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.pnnx.param"), "{e}");
}

#[test]
fn a_reduction_over_no_axis_outside_an_l2norm_is_refused() {
    // A no-axes mean after a conv (what pnnx makes of torch.mean(x, dim=1) from
    // ONNX opset >= 13), next to an L2Norm that would fuse: the output would
    // still be wrong, so nothing is written.
    let (param, b) = mmdet_conv();
    let mut lines: Vec<String> = param.lines().map(String::from).collect();
    let counts: Vec<usize> = (lines[1].split_whitespace())
        .map(|c| c.parse().unwrap())
        .collect();
    lines[1] = format!("{} {}", counts[0] + 1, counts[1] + 1);
    lines.push("Reduction mean_x 1 1 out0 mean_out 0=3 1=0 -23303=0 4=1 5=1".into());
    let edited = lines.join("\n") + "\n";
    assert_refused(&edited, &b, "Reduction mean_x reduces over no axis");
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
            &FuseOptions::default(),
            &Files::none()
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
        &FuseOptions::default(),
        &Files::none(),
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
    let e = fuse(&pf, &1f32.to_le_bytes(), &opts(true), &Files::none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("shared scale") && e.contains("channel count"),
        "{e}"
    );
    // Without --normalize the Normalize is not touched: nothing to do.
    let e = fuse(&pf, &1f32.to_le_bytes(), &opts(false), &Files::none())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no L2Norm chain")
            && e.contains("1 ncnn Normalize layer(s) in channel mode (n) can become L2Norm")
            && e.contains("ncnn-l2norm fuse IN.param IN.bin OUT.param OUT.bin --normalize"),
        "{e}"
    );
    // With an Input that states its channels, it converts (eps text copied).
    let param = param.replace("Input in0 0 1 in0", "Input in0 0 1 in0 0=5 1=5 2=7");
    let (out, out_bin, _) = fuse(
        &ParamFile::parse(&param).unwrap(),
        &1f32.to_le_bytes(),
        &opts(true),
        &Files::none(),
    )
    .unwrap();
    assert!(out.to_text().contains("L2Norm                   l2norm_n                 1 1 in0 out 0=7 1=1.000000e-6 2=2 3=1\n"), "{}", out.to_text());
    assert_eq!(out_bin, 1f32.to_le_bytes());
}

/// conv (4 channels) -> Normalize (`shared`: 1=1 3=1, else 1=0 3=4) -> mul by
/// MemoryData `md` (`0=1 1=1 2=4` per channel, or `0=2 1=1 2=4` with values
/// varying in a channel); (param text, bin).
fn normalize_then_scale(shared: bool, md: &str, md_values: &[f32]) -> (String, Vec<u8>) {
    let scale = if shared { "1=1 3=1" } else { "1=0 3=4" };
    let param = format!(
        "7767517\n5 5\nInput in0 0 1 in0\nConvolution conv 1 1 in0 x 0=4 1=1 5=0 6=12\n\
Normalize n 1 1 x y 0=0 {scale} 2=1.000000e-12 4=1 9=1\nMemoryData w 0 1 w {md}\n\
BinaryOp mul 2 1 w y out 0=2\n"
    );
    let mut b = vec![0u8; 4]; // conv flag
    b.extend((0..12).flat_map(|i| (i as f32 * 0.1).to_le_bytes()));
    let normalize_scale: Vec<f32> = if shared {
        vec![1.0]
    } else {
        vec![1.0, 2.0, 3.0, 4.0]
    };
    b.extend(normalize_scale.iter().flat_map(|v| v.to_le_bytes()));
    b.extend(md_values.iter().flat_map(|v| v.to_le_bytes()));
    (param, b)
}

fn l2norm_weights(out: &ParamFile, out_bin: &[u8]) -> Vec<f32> {
    let lay = bin::layout(out, out_bin).unwrap();
    let i = out.layers.iter().position(|l| l.ty == "L2Norm").unwrap();
    bin::decode_f32(out_bin, &lay[i].chunks[0]).unwrap()
}

#[test]
fn normalize_folds_the_per_channel_multiply_after_it() {
    // torchvision's form: shared Normalize scale 1, then * per-channel weight.
    let (param, b) = normalize_then_scale(true, "0=1 1=1 2=4", &[20.0, 21.0, 22.0, 23.0]);
    let pf = ParamFile::parse(&param).unwrap();
    let (out, out_bin, report) = fuse(&pf, &b, &opts(true), &Files::none()).unwrap();
    assert_eq!(out.layers.len(), 3, "{}", out.to_text());
    let l = out.layers.iter().find(|l| l.ty == "L2Norm").unwrap();
    assert_eq!((l.bottoms[0].as_str(), l.tops[0].as_str()), ("x", "out"));
    assert_eq!(
        l.params
            .iter()
            .map(|p| p.text().to_string())
            .collect::<Vec<_>>(),
        ["0=4", "1=1.000000e-12", "2=2", "3=0"]
    );
    assert_eq!(l2norm_weights(&out, &out_bin), [20.0, 21.0, 22.0, 23.0]);
    assert_eq!(report.fused[0].replaced, ["n", "w", "mul"]);
    // A per-channel Normalize scale multiplies with it.
    let (param, b) = normalize_then_scale(false, "0=1 1=1 2=4", &[20.0, 21.0, 22.0, 23.0]);
    let (out, out_bin, _) = fuse(
        &ParamFile::parse(&param).unwrap(),
        &b,
        &opts(true),
        &Files::none(),
    )
    .unwrap();
    assert_eq!(l2norm_weights(&out, &out_bin), [20.0, 42.0, 66.0, 92.0]);
    // A MemoryData that varies within a channel is no per-channel scale: the
    // multiply stays, and the report says why.
    let varying: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let (param, b) = normalize_then_scale(true, "0=2 1=1 2=4", &varying);
    let (out, out_bin, report) = fuse(
        &ParamFile::parse(&param).unwrap(),
        &b,
        &opts(true),
        &Files::none(),
    )
    .unwrap();
    assert!(
        out.layers.iter().any(|l| l.name == "mul"),
        "{}",
        out.to_text()
    );
    assert_eq!(l2norm_weights(&out, &out_bin), [1.0]);
    assert!(
        report.to_string().contains("Normalize n: the multiply after it stays a separate layer: MemoryData w varies within a channel"),
        "{report}"
    );
}
