//! Build script: find ncnn (or build the pinned release once per machine),
//! compile the C++ layer and the cxx bridge against it, and link.
//!
//! Where ncnn comes from, in this order (the first that applies wins):
//! 1. `NCNN_DIR`: an ncnn install prefix (holding `include/ncnn/net.h` and
//!    `lib/libncnn.a` or `.so`). If it is set but wrong (or built for another
//!    machine than the target), the build fails.
//! 2. pkg-config (`ncnn.pc`), then `lib/cmake/ncnn/ncnnConfig.cmake` under
//!    `CMAKE_PREFIX_PATH`, `/usr/local` and `/usr`. Not when cross-compiling:
//!    they hold the host's ncnn.
//! 3. The pinned release (or the one of `NCNN_RELEASES` that
//!    `NCNN_L2NORM_NCNN_VERSION` names), built from the source distribution the
//!    ncnn project publishes on PyPI (fetched with pip, sha256-checked),
//!    configured with cmake (from PyPI when the machine has none) into a cache
//!    shared by every build on the machine. `NCNN_L2NORM_NO_BUILD=1` skips this
//!    step, making the build offline and discovery-only.
//!
//! Cross-compiling (`cargo build --target T` with `T` not the host) is the
//! same sequence for the target: the C++ side and ncnn are compiled with the
//! target's compilers, found by the cc crate's rules (`CXX_<target>`,
//! `TARGET_CXX`, ..., else e.g. `aarch64-linux-gnu-g++`), ncnn through a
//! cmake toolchain file build.rs writes (or `NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE`)
//! into a cache entry of its own per target.
//!
//! Every environment variable read is logged as `NAME = value` or `NAME unset`
//! (see the build script output with `cargo build -vv`).
//!
//! This file is the order of the steps; each step is a file in `build/`:
//! - `target.rs`: the target, its compilers and its cmake toolchain file;
//! - `find.rs`: an installed ncnn (steps 1 and 2);
//! - `source.rs`: the build from source and its cache (step 3), with
//!   `sdist.rs` (fetching the source with pip) and `cmake.rs` (finding and
//!   running cmake);
//! - `install.rs`: what an ncnn install prefix holds and how it was configured;
//! - `cpp.rs`: compiling our C++ side against it and linking ncnn;
//! - `export.rs`: the paths and flags we hand on to dependents and tests;
//! - `env.rs`: reading (and logging) the environment.

#[path = "build/cmake.rs"]
mod cmake;
#[path = "build/cpp.rs"]
mod cpp;
#[path = "build/env.rs"]
mod env;
#[path = "build/export.rs"]
mod export;
#[path = "build/find.rs"]
mod find;
#[path = "build/install.rs"]
mod install;
#[path = "build/sdist.rs"]
mod sdist;
#[path = "build/source.rs"]
mod source;
#[path = "build/target.rs"]
mod target;

use env::{env_var, log};
use install::Ncnn;
use target::Target;

/// The ncnn release built when none is installed (`NCNN_L2NORM_NCNN_VERSION`
/// picks another of `NCNN_RELEASES`).
const NCNN_VERSION: &str = "1.0.20261020";
/// The releases we can build from source: version and the sha256 of
/// `ncnn-VERSION.tar.gz`, its source distribution on PyPI. These are the
/// releases whose sdist holds ncnn's full source.
const NCNN_RELEASES: &[(&str, &str)] = &[
    (
        "1.0.20261020",
        "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200",
    ),
    (
        "1.0.20260526",
        "282f0f4a1beec1f5212aa0d22c00737418645055f33c2d2082922931cdbdc537",
    ),
    (
        "1.0.20250503",
        "f5823ce44071e210419a339b5a4dbf39058fd568905a65e9c56319917f2af7b3",
    ),
];

fn main() {
    // Cargo also reruns this script when it recompiles it, which a change to
    // any file in build/ does (rustc's dep-info lists every module).
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=src/bridge.rs");

    let target = Target::from_cargo();
    if target.is_cross() {
        log(&format!(
            "cross-compiling for {} on {}",
            target.triple, target.host
        ));
    }
    let ncnn = find_ncnn(&target).unwrap_or_else(|e| fail(&e, &target));
    log(&format!(
        "using ncnn at {} ({})",
        ncnn.prefix.display(),
        ncnn.origin
    ));
    log(&format!("{ncnn:?}"));

    cpp::compile_cpp(&ncnn);
    cpp::link_ncnn(&ncnn);
    export::export_paths(&ncnn, &target);
}

/// The discovery order of the module docs: an installed ncnn, else the build
/// from source unless `NCNN_L2NORM_NO_BUILD` forbids it.
fn find_ncnn(target: &Target) -> Result<Ncnn, String> {
    // Read (and so log, and have cargo watch) every variable discovery depends
    // on up front: a later step's variable must rerun this script even when
    // an earlier step decided the last build.
    for var in [
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        env_var(var);
    }
    let cmake_prefix_path = env_var("CMAKE_PREFIX_PATH");
    let no_build = env_var("NCNN_L2NORM_NO_BUILD").is_some_and(|v| v != "0");
    // Checked even when an installed ncnn wins: a typo fails here, not later.
    let wanted_version = env_var("NCNN_L2NORM_NCNN_VERSION");
    let release = source::release(wanted_version.as_deref())?;
    let toolchain_file = env_var("NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE").map(std::path::PathBuf::from);
    if let Some(ncnn) = find::find_installed(cmake_prefix_path, target)? {
        if let Some(v) = wanted_version {
            println!(
                "cargo:warning=NCNN_L2NORM_NCNN_VERSION={v} is ignored: using the installed ncnn at {} ({})",
                ncnn.prefix.display(),
                ncnn.origin
            );
        }
        if let Some(file) = toolchain_file {
            println!(
                "cargo:warning=NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE={} is ignored: using the installed ncnn at {} ({})",
                file.display(),
                ncnn.prefix.display(),
                ncnn.origin
            );
        }
        return Ok(ncnn);
    }
    if no_build {
        return Err("no installed ncnn found and NCNN_L2NORM_NO_BUILD forbids building one".into());
    }
    source::build_ncnn(release, target, toolchain_file)
}

/// The one failure message: what went wrong, then every way to give the build an ncnn.
fn fail(msg: &str, target: &Target) -> ! {
    eprintln!("\nncnn-l2norm: cannot find or build ncnn.\n{msg}\n");
    eprintln!(
        "Set NCNN_DIR to an ncnn install prefix (the directory holding include/ncnn and lib),"
    );
    eprintln!("or install ncnn so pkg-config or CMAKE_PREFIX_PATH finds it,");
    eprintln!(
        "or allow the build from source: it needs python3 with pip and network access to PyPI,"
    );
    eprintln!(
        "plus a C++ compiler (and builds into NCNN_L2NORM_CACHE_DIR or ~/.cache/ncnn-l2norm)."
    );
    if target.is_cross() {
        eprintln!(
        "Cross-compiling: the target's C/C++ compilers (CC_<target>/CXX_<target>, e.g. CXX_aarch64_unknown_linux_gnu,"
    );
        eprintln!(
        "else aarch64-linux-gnu-g++ and the like), or NCNN_DIR at an ncnn built for the target; see docs/building.md."
    );
    }
    std::process::exit(1);
}
