//! `ncnn-l2norm install` and what C++ projects do with the result: the CMake
//! example consumer (cpp/cmake-example) configured, built and run against the
//! installed package, and a program built from `pkg-config` flags alone.
//! Against a shared libncnn, the same for `libncnn_l2norm.so`. Cross-compiled,
//! the programs are the target's, built with its compiler (and, for CMake, the
//! toolchain file build.rs exports) and run through the target's runner.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::cpp::{cxx, staticlib, target_command, target_profile_dir};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models");

fn check(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// A fresh install of this build into `target/<profile>/<name>/prefix`.
fn install(name: &str) -> PathBuf {
    let root = target_profile_dir().join(name);
    let _ = std::fs::remove_dir_all(&root);
    let prefix = root.join("prefix");
    let report = check(
        target_command(env!("CARGO_BIN_EXE_ncnn-l2norm"))
            .args(["install", "--prefix"])
            .arg(&prefix)
            .arg("--staticlib")
            .arg(staticlib()),
    );
    for file in [
        "include/ncnn_l2norm/l2norm.h",
        "include/ncnn_l2norm/l2norm_c.h",
        "lib/libncnn_l2norm.a",
        "lib/cmake/ncnn_l2norm/ncnn_l2normConfig.cmake",
        "lib/cmake/ncnn_l2norm/ncnn_l2normConfigVersion.cmake",
        "lib/pkgconfig/ncnn_l2norm.pc",
    ] {
        assert!(prefix.join(file).is_file(), "{file} missing:\n{report}");
    }
    let shared = env!("NCNN_L2NORM_NCNN_SHARED") == "1";
    assert_eq!(
        prefix.join("lib/libncnn_l2norm.so").is_file(),
        shared,
        "the shared library comes with a shared libncnn, and only then:\n{report}"
    );
    prefix
}

/// The demo checks every position's norm and exits non-zero if one is off.
fn run_demo(exe: &Path) {
    let stdout = check(target_command(exe).args(["--models", MODELS, "--runs", "2"]));
    assert!(stdout.contains("per-position channel norm"), "{stdout}");
}

/// The libraries an executable was linked against (`DT_NEEDED`).
fn needed(exe: &Path) -> String {
    check(Command::new("readelf").arg("-d").arg(exe))
}

fn cmake() -> String {
    let baked = env!("NCNN_L2NORM_CMAKE");
    if !baked.is_empty() {
        return baked.to_string();
    }
    std::env::var("CMAKE").unwrap_or_else(|_| "cmake".into())
}

#[test]
fn cmake_example_finds_the_installed_package() {
    let prefix = install("package-cmake");
    let mut variants = vec![("static", "OFF")];
    if env!("NCNN_L2NORM_NCNN_SHARED") == "1" {
        variants.push(("shared", "ON"));
    }
    for (variant, shared) in variants {
        let build = prefix.with_file_name(format!("build-{variant}"));
        let mut configure = Command::new(cmake());
        configure
            .arg("-S")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cpp/cmake-example"))
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
            .arg(format!("-DL2NORM_EXAMPLE_SHARED={shared}"))
            .arg("-DCMAKE_BUILD_TYPE=Release");
        let toolchain = env!("NCNN_L2NORM_CROSS_TOOLCHAIN_FILE");
        if !toolchain.is_empty() {
            // A cross toolchain file searches the target's root only: the
            // package's prefix joins it, as for any cross-built dependency.
            configure
                .arg(format!("-DCMAKE_TOOLCHAIN_FILE={toolchain}"))
                .arg(format!("-DCMAKE_FIND_ROOT_PATH={}", prefix.display()));
        }
        check(&mut configure);
        check(Command::new(cmake()).arg("--build").arg(&build));
        let exe = build.join("l2norm-demo");
        run_demo(&exe);
        assert_eq!(
            needed(&exe).contains("[libncnn_l2norm.so]"),
            variant == "shared",
            "{variant}: {}",
            needed(&exe)
        );
    }
}

#[test]
fn cmake_rejects_an_incompatible_version() {
    let prefix = install("package-version");
    let dir = prefix.with_file_name("want-9");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.10)\nproject(v CXX)\nfind_package(ncnn_l2norm 9.0 REQUIRED)\n",
    )
    .unwrap();
    let out = Command::new(cmake())
        .arg("-S")
        .arg(&dir)
        .arg("-B")
        .arg(dir.join("build"))
        .arg(format!("-DCMAKE_PREFIX_PATH={}", prefix.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "version 9 accepted:\n{stderr}");
    assert!(stderr.contains("ncnn_l2norm"), "{stderr}");
}

#[test]
fn pkg_config_flags_build_the_demo() {
    let prefix = install("package-pkgconfig");
    let flags = check(
        Command::new("pkg-config")
            .args(["--cflags", "--libs", "ncnn_l2norm"])
            .env("PKG_CONFIG_PATH", prefix.join("lib/pkgconfig")),
    );
    let exe = prefix.with_file_name("demo");
    let shared = env!("NCNN_L2NORM_NCNN_SHARED") == "1";
    let mut cmd = cxx();
    cmd.arg("-DL2NORM_DEMO_STANDALONE")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/cpp/l2norm_demo.cpp"))
        .args(flags.split_whitespace())
        .arg("-o")
        .arg(&exe);
    if shared {
        // `-lncnn_l2norm` finds the .so first, which needs a run path like any .so.
        cmd.arg(format!("-Wl,-rpath,{}", prefix.join("lib").display()));
    }
    check(&mut cmd);
    run_demo(&exe);
    assert_eq!(needed(&exe).contains("[libncnn_l2norm.so]"), shared);
}
