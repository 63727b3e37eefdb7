//! The C++ side: the layer, the cxx bridge and the demo apps compiled with
//! cxx-build against the ncnn found, with the flags that ncnn's configuration
//! requires, and the link lines for ncnn and what it needs.

use std::fs;
use std::path::PathBuf;

use crate::install::Ncnn;

pub fn compile_cpp(ncnn: &Ncnn) {
    let mut build = cxx_build::bridge("src/bridge.rs");
    // Every .cpp directly in cpp/ (the layer and the demo apps, whose mains are
    // `extern "C"` functions the cargo bins call) goes into the library.
    let mut sources: Vec<PathBuf> = fs::read_dir("cpp")
        .expect("cpp/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cpp"))
        .collect();
    sources.sort();
    build
        .files(&sources)
        .include("cpp/include")
        .include(&ncnn.include_dir)
        .std("c++14")
        .flag_if_supported("-Wno-unused-parameter");
    if ncnn.openmp {
        // Our `#pragma omp` must use ncnn's OpenMP runtime (libgomp, or ncnn's
        // own with NCNN_SIMPLEOMP, which implements the same entry points).
        build.flag("-fopenmp");
    } else {
        // ncnn without OpenMP (NCNN_OPENMP=OFF) ignores its `#pragma omp`, and
        // so do we: forward runs its chunks in turn on the calling thread.
        build.flag_if_supported("-Wno-unknown-pragmas");
    }
    // A subclass of ncnn::Layer compiled with RTTI references ncnn's typeinfo,
    // which an ncnn built with -fno-rtti does not have.
    if !ncnn.rtti {
        build.flag("-fno-rtti");
    }
    if !ncnn.exceptions {
        build.flag("-fno-exceptions");
    }
    build.compile("ncnn_l2norm_cpp");
}

pub fn link_ncnn(ncnn: &Ncnn) {
    println!("cargo:rustc-link-search=native={}", ncnn.lib_dir.display());
    if ncnn.shared {
        println!("cargo:rustc-link-lib=dylib=ncnn");
        // Tests and the demo find libncnn.so where it was found at build time.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", ncnn.lib_dir.display());
    } else {
        // -bundle: the C++ app that links our staticlib links its own libncnn;
        // bundling ours into libncnn_l2norm.a would duplicate every symbol.
        println!("cargo:rustc-link-lib=static:-bundle=ncnn");
    }
    if ncnn.openmp && !ncnn.simpleomp {
        println!("cargo:rustc-link-lib=gomp");
    }
    if ncnn.threads {
        println!("cargo:rustc-link-lib=pthread");
    }
    println!("cargo:rustc-link-lib=stdc++");
}
