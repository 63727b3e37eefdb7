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
        let status = cmd.arg(&tsv).status().expect("run the benchmark");
        assert!(status.success(), "benchmark failed: {status}");
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
