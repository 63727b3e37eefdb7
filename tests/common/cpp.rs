//! Building C++ programs against this crate the way README tells C++ users:
//! our header, `libncnn_l2norm.a`, their libncnn, and the flags build.rs
//! derived from that ncnn. Shared by the tests and the benchmark.
//!
//! Built for the target, with the C++ compiler build.rs compiled our C++ side
//! with; when that is not the host (`cargo test --target ...`), the programs,
//! like the test binaries, run through cargo's runner for the target.

#![allow(dead_code)]

use std::ffi::OsStr;
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

/// The C++ compiler build.rs compiled our C++ side with, by the cc crate's
/// rules (`CXX`, `CXX_<target>`, ...: the target's when cross-compiling),
/// with the arguments that select the target.
pub fn cxx() -> Command {
    let mut words = env!("NCNN_L2NORM_CXX").split_whitespace();
    let mut cmd = Command::new(words.next().expect("build.rs exports NCNN_L2NORM_CXX"));
    cmd.args(words);
    cmd
}

/// A command that runs `program`, built for the target, the way cargo runs
/// the test binaries: directly, or, when cross-compiled, through the runner
/// named by `CARGO_TARGET_<TRIPLE>_RUNNER` in the environment (e.g. `qemu-aarch64
/// -L /usr/aarch64-linux-gnu -cpu cortex-a53`). Without one, the program runs
/// directly (as it does where binfmt_misc runs foreign executables).
pub fn target_command(program: impl AsRef<OsStr>) -> Command {
    let triple = env!("NCNN_L2NORM_TARGET");
    let runner = (triple != env!("NCNN_L2NORM_HOST"))
        .then(|| {
            let var: String = triple
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() {
                        c.to_ascii_uppercase()
                    } else {
                        '_'
                    }
                })
                .collect();
            std::env::var(format!("CARGO_TARGET_{var}_RUNNER")).ok()
        })
        .flatten();
    let mut words = runner.as_deref().unwrap_or_default().split_whitespace();
    match words.next() {
        Some(runner) => {
            let mut cmd = Command::new(runner);
            cmd.args(words).arg(program);
            cmd
        }
        None => Command::new(program),
    }
}

/// `CXX FLAGS SRC $NCNN_L2NORM_CXXFLAGS libncnn_l2norm.a $NCNN_L2NORM_LIBS -o OUT`,
/// `CXX` being [`cxx`]. `src` is relative to the crate root; returns the executable.
pub fn build_program(src: &str, flags: &[&str]) -> PathBuf {
    let out = target_profile_dir().join(format!(
        "cpp-{}",
        Path::new(src).file_stem().unwrap().to_str().unwrap()
    ));
    let mut cmd = cxx();
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
