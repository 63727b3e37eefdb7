//! What the build tells others about the ncnn it used: `links` metadata for
//! dependents (`DEP_NCNN_L2NORM_*`), compile-time environment for our tests
//! and the README's link line, and the cfg for C API differences between
//! releases.

use std::env;
use std::path::PathBuf;

use crate::cmake::existing_cmake;
use crate::install::Ncnn;
use crate::source::cache_root;

/// Paths for dependents (`DEP_NCNN_L2NORM_*`), tests and the README's link line.
pub fn export_paths(ncnn: &Ncnn) {
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
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_SHARED={}",
        u8::from(ncnn.shared)
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
