//! Building C++ programs against this crate the way README tells C++ users:
//! our header, `libncnn_l2norm.a`, their libncnn, and the flags build.rs
//! derived from that ncnn. Shared by the tests and the benchmark.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `target/<profile>/`.
pub fn target_profile_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent().and_then(Path::parent).unwrap().to_path_buf()
}

/// The static library of this build. `cargo build` copies it to
/// `target/<profile>/libncnn_l2norm.a`; under `cargo test` and `cargo bench`
/// it stays in `deps/` with a hash in its name, so take the newest there.
pub fn staticlib() -> PathBuf {
    let deps = target_profile_dir().join("deps");
    std::fs::read_dir(&deps)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("libncnn_l2norm-") && name.ends_with(".a")
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no libncnn_l2norm-*.a in {}", deps.display()))
}

/// `c++ FLAGS SRC $NCNN_L2NORM_CXXFLAGS libncnn_l2norm.a $NCNN_L2NORM_LIBS -o OUT`.
/// `src` is relative to the crate root; returns the executable.
pub fn build_program(src: &str, flags: &[&str]) -> PathBuf {
    let out = target_profile_dir().join(format!(
        "cpp-{}",
        Path::new(src).file_stem().unwrap().to_str().unwrap()
    ));
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let mut cmd = Command::new(&cxx);
    cmd.args(flags)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join(src))
        .args(env!("NCNN_L2NORM_CXXFLAGS").split_whitespace())
        .arg(staticlib())
        .args(env!("NCNN_L2NORM_LIBS").split_whitespace())
        .arg("-o")
        .arg(&out);
    let result = cmd.output().expect("run the C++ compiler");
    assert!(
        result.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&result.stderr)
    );
    out
}
