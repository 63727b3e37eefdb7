//! `cargo bench`: builds `benches/l2norm_bench.cpp` against this crate's
//! static library exactly as a C++ app would link it, runs it, and leaves the
//! table's rows in `target/l2norm-bench.tsv` for `benches/plot.py`.
//!
//! `cargo bench -- --quick` takes fewer samples.

#[path = "../tests/common/cpp.rs"]
mod cpp;

use std::process::Command;

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // -march=native only for the bench's own floor loops; the layer inside
    // the static library picks its path at run time.
    let exe = cpp::build_program("benches/l2norm_bench.cpp", &["-O3", "-march=native"]);
    let tsv = cpp::target_profile_dir().parent().unwrap().join("l2norm-bench.tsv");
    let mut cmd = Command::new(&exe);
    if quick {
        cmd.arg("--quick");
    }
    let status = cmd.arg(&tsv).status().expect("run the benchmark");
    assert!(status.success(), "benchmark failed: {status}");
    eprintln!("rows written to {}", tsv.display());
}
