//! The targets reuse tests/common/mod.rs (the ncnn C API declarations, the
//! `Net` wrapper, the seeded generator and the tolerance rule) through
//! `#[path]`. That module includes tests/common/cpp.rs, whose `env!` calls
//! need these two variables at compile time; the parent's build script sets
//! them only for the parent's own targets. Nothing here builds C++ programs,
//! so empty values do.
fn main() {
    println!("cargo:rustc-env=NCNN_L2NORM_CXXFLAGS=");
    println!("cargo:rustc-env=NCNN_L2NORM_LIBS=");
}
