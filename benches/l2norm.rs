//! `cargo bench`: builds `benches/l2norm_bench.cpp` against this crate's
//! static library exactly as a C++ app would link it, runs it, and leaves the
//! table's rows in `target/l2norm-bench.tsv` for `benches/plot.py`.
//!
//! Then it fuses converter output from `tests/fixtures/fuse/` with
//! `ncnn-l2norm fuse` and times each model before and after.
//!
//! `cargo bench --bench l2norm -- --quick` takes fewer samples; `-- --only 512x38x38` times
//! one tensor (and the whole nets), `-- --only huge` only the ordinary versus
//! huge-input rows; `-- --fused-only` runs only the before/after-fuse rows.

#[path = "../tests/common/cpp.rs"]
mod cpp;
// The `ncnn-l2norm` tool's model code, compiled in: it is not part of the library.
#[allow(dead_code)]
#[path = "../src/tools/model/mod.rs"]
mod model;

use ncnn_l2norm::{CpuInfo, Forward, Isa, L2NormParams, MatView, Storage, BF16, F16};

/// The path the kernel takes for a row of the table: `tensor` `CxHxW`.
fn path_of(tensor: &str, elempack: i32, storage: &str) -> Option<Isa> {
    let dims: Vec<i32> = tensor
        .split('x')
        .map(|d| d.parse().ok())
        .collect::<Option<_>>()?;
    let [c, h, w] = dims[..] else { return None };
    let view = MatView::dims3(w, h, c / elempack, elempack);
    let params = L2NormParams::new(c as usize).ok()?;
    let weights = vec![1.0f32; c as usize];
    let isa = Isa::selected();
    Some(match storage {
        "fp16" => Forward::new::<F16>(&view.with_16bit_storage(), &params, &weights)
            .ok()?
            .path_on::<F16>(isa),
        "bf16" => Forward::new::<BF16>(&view.with_16bit_storage(), &params, &weights)
            .ok()?
            .path_on::<BF16>(isa),
        _ => Forward::new::<f32>(&view, &params, &weights)
            .ok()?
            .path_on::<f32>(isa),
    })
}

/// Adds to the results file what a figure is true of: a first line naming
/// the CPU and its caches (a `#` comment), and a `path` column, the code
/// path the kernel took for each row. Prints the rows whose path is not the
/// selected one.
fn record_paths(tsv: &std::path::Path) {
    let text = std::fs::read_to_string(tsv).expect("read the results file");
    let selected = Isa::selected();
    let mut out = format!("# {}; selected path {}\n", CpuInfo::get(), selected.name());
    let mut other = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        let path = if i == 0 {
            "path".to_string()
        } else {
            let pack = f.get(1).and_then(|p| p.parse().ok());
            let path = pack.and_then(|p| path_of(f[0], p, f.get(3).copied().unwrap_or("")));
            match path {
                Some(p) => {
                    let storage = match f.get(3) {
                        Some(&"bf16") => Storage::BF16,
                        Some(&"fp16") => Storage::F16,
                        _ => Storage::F32,
                    };
                    if p != selected.for_storage(storage) && !other.contains(&(f[0], f[1], f[3], p))
                    {
                        other.push((f[0], f[1], f[3], p));
                    }
                    p.name().to_string()
                }
                None => "-".to_string(),
            }
        };
        out.push_str(&format!("{line}\t{path}\n"));
    }
    for (tensor, pack, storage, path) in &other {
        println!(
            "kernel path for {tensor} elempack {pack} {storage}: {}",
            path.name()
        );
    }
    std::fs::write(tsv, out).expect("write the results file");
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let fused_only = std::env::args().any(|a| a == "--fused-only");
    // -march=native only for the bench's own floor loops on x86-64; the layer
    // inside the static library picks its path at run time. aarch64's floor
    // loops need only NEON, which every aarch64 CPU has (and a cross compiler
    // has no "native").
    let flags: &[&str] = if cfg!(target_arch = "x86_64") {
        &["-O3", "-march=native"]
    } else {
        &["-O3"]
    };
    let exe = cpp::build_program("benches/l2norm_bench.cpp", flags);
    let tsv = cpp::target_profile_dir()
        .parent()
        .unwrap()
        .join("l2norm-bench.tsv");
    let mut cmd = cpp::target_command(&exe);
    if quick {
        cmd.arg("--quick");
    }
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--only") {
        cmd.arg("--only").arg(
            args.get(i + 1)
                .expect("--only takes a tensor like 512x38x38"),
        );
    }
    if !fused_only {
        println!("CPU as the kernel reads it: {}\n", CpuInfo::get());
        let status = cmd.arg(&tsv).status().expect("run the benchmark");
        assert!(status.success(), "benchmark failed: {status}");
        record_paths(&tsv);
        eprintln!("rows written to {}", tsv.display());
    }

    // Converter output before and after `ncnn-l2norm fuse`, on inputs of a
    // realistic size (the nets take any input size).
    println!(
        "\nConverter output (pnnx) vs the same model after `ncnn-l2norm fuse`, default options:\n"
    );
    println!("| model | input | threads | unfused ms | fused ms | fused/unfused |\n|---|---|---|---|---|---|");
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuse");
    let work = cpp::target_profile_dir()
        .parent()
        .unwrap()
        .join("fuse-bench");
    std::fs::create_dir_all(&work).unwrap();
    for (name, outs) in [
        ("ssdlike_ts", &["out0", "out1"][..]),
        ("mmdet_conv_ts", &["out0"][..]),
        ("ssd_conv_onnx11", &["out0"][..]),
    ] {
        let (param, bin) = (
            fixtures.join(format!("{name}.ncnn.param")),
            fixtures.join(format!("{name}.ncnn.bin")),
        );
        let (fparam, fbin) = (
            work.join(format!("{name}.fused.param")),
            work.join(format!("{name}.fused.bin")),
        );
        let opts = model::fuse::FuseOptions::default();
        if let Err(e) = model::fuse::fuse_files(&param, &bin, &fparam, &fbin, opts) {
            panic!("fusing {name}: {e}");
        }
        let status = cpp::target_command(&exe)
            .arg("--pair")
            .arg(name)
            .args([&param, &bin, &fparam, &fbin])
            .args(["150", "150", "3"])
            .args(outs)
            .status()
            .expect("run the benchmark");
        assert!(status.success(), "fused-model benchmark failed: {status}");
    }
}
