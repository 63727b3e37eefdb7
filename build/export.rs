//! What the build tells others about the ncnn it used: `links` metadata for
//! dependents (`DEP_NCNN_L2NORM_*`), compile-time environment for our tests
//! and the README's link line, and the cfg for C API differences between
//! releases.

use std::env;
use std::path::PathBuf;

use crate::cmake::existing_cmake;
use crate::env::log;
use crate::install::Ncnn;
use crate::source::cache_root;
use crate::target::{cxx_command, toolchain_text, Target};

/// Paths for dependents (`DEP_NCNN_L2NORM_*`), tests and the README's link line.
pub fn export_paths(ncnn: &Ncnn, target: &Target) {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:root={}", manifest.display());
    println!("cargo:include={}", manifest.join("cpp/include").display());
    println!("cargo:ncnn_prefix={}", ncnn.prefix.display());

    let mut cxxflags = vec![
        format!("-I{}", manifest.join("cpp/include").display()),
        format!("-I{}", ncnn.include_dir.display()),
    ];
    // As ncnn's cmake target: -fopenmp for its users with libgomp only; with
    // ncnn's own runtime (NCNN_SIMPLEOMP) it would link libgomp next to it.
    if ncnn.openmp && !ncnn.simpleomp {
        cxxflags.push("-fopenmp".into());
    }
    if !ncnn.rtti {
        cxxflags.push("-fno-rtti".into());
    }
    if !ncnn.exceptions {
        cxxflags.push("-fno-exceptions".into());
    }
    let mut libs = vec![
        format!("-L{}", ncnn.lib_dir.display()),
        "-lncnn".to_string(),
    ];
    // A static Vulkan ncnn's shader compiler.
    libs.extend(ncnn.glslang_libs.iter().map(|l| format!("-l{l}")));
    if ncnn.shared {
        libs.push(format!("-Wl,-rpath,{}", ncnn.lib_dir.display()));
    }
    if ncnn.openmp && !ncnn.simpleomp {
        libs.push("-fopenmp".into());
    }
    // What Rust's std needs from the system (`rustc --print native-static-libs`).
    libs.extend(["-lpthread", "-ldl", "-lm"].map(String::from));
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_PREFIX={}",
        ncnn.prefix.display()
    );
    println!(
        "cargo:rustc-env=NCNN_L2NORM_CXXFLAGS={}",
        cxxflags.join(" ")
    );
    println!("cargo:rustc-env=NCNN_L2NORM_LIBS={}", libs.join(" "));
    // The C++ compiler that compiled our C++ side (the target's, by cc's
    // rules), for the C++ programs the tests build against this crate; and
    // the target, whose runner (CARGO_TARGET_<TRIPLE>_RUNNER) runs them when
    // it is not the host.
    let cxx = cxx_command().unwrap_or_else(|e| panic!("{e}"));
    println!("cargo:rustc-env=NCNN_L2NORM_CXX={cxx}");
    println!("cargo:rustc-env=NCNN_L2NORM_TARGET={}", target.triple);
    println!("cargo:rustc-env=NCNN_L2NORM_HOST={}", target.host);
    // A cmake toolchain file for the target, for the test that configures the
    // CMake example consumer: the one ncnn was built with, else, cross-compiling
    // against an NCNN_DIR, one written here (empty: build natively).
    let toolchain = match (&ncnn.toolchain_file, target.is_cross()) {
        (Some(file), _) => file.display().to_string(),
        (None, true) => consumer_toolchain(target),
        (None, false) => String::new(),
    };
    println!("cargo:rustc-env=NCNN_L2NORM_CROSS_TOOLCHAIN_FILE={toolchain}");
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_SHARED={}",
        u8::from(ncnn.shared)
    );
    // Whether the layer was built with its Vulkan parts: the Vulkan tests
    // run when it was, and say they did not when it was not.
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_VULKAN={}",
        u8::from(ncnn.vulkan)
    );
    // For the test that configures the CMake example consumer.
    let cmake = cache_root().ok().and_then(|cache| existing_cmake(&cache));
    println!(
        "cargo:rustc-env=NCNN_L2NORM_CMAKE={}",
        cmake.map(|c| c.display().to_string()).unwrap_or_default()
    );

    // The tests declare ncnn's C API by hand; this one is not in every release.
    println!("cargo:rustc-check-cfg=cfg(ncnn_c_api_packing_option)");
    // Dependents (the fuzz crate, which reuses the tests' declarations) read
    // it as DEP_NCNN_L2NORM_C_API_PACKING_OPTION.
    println!(
        "cargo:c_api_packing_option={}",
        u8::from(ncnn.c_api_packing_option)
    );
    if ncnn.c_api_packing_option {
        println!("cargo:rustc-cfg=ncnn_c_api_packing_option");
    }
}

/// The toolchain file written into OUT_DIR for C++ consumers of a cross build
/// against an installed ncnn; empty (with a line in the log) where build.rs
/// cannot write one for this target.
fn consumer_toolchain(target: &Target) -> String {
    let file =
        PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("toolchain.cmake");
    match toolchain_text(target).and_then(|text| {
        std::fs::write(&file, text).map_err(|e| format!("cannot write {}: {e}", file.display()))
    }) {
        Ok(()) => file.display().to_string(),
        Err(e) => {
            log(&format!("no cmake toolchain file for C++ consumers: {e}"));
            String::new()
        }
    }
}
