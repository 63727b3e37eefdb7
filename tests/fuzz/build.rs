//! The targets reuse tests/common/mod.rs (the ncnn C API declarations, the
//! `Net` wrapper, the seeded generator and the tolerance rule) through
//! `#[path]`. That module includes tests/common/cpp.rs, whose `env!` calls
//! need these variables at compile time; the parent's build script sets
//! them only for the parent's own targets. Nothing here builds C++ programs,
//! so empty values do.
//! The same module's C API declarations depend on the ncnn release, which
//! the parent's build script reports through `links` metadata.
fn main() {
    println!("cargo:rustc-env=NCNN_L2NORM_CXXFLAGS=");
    println!("cargo:rustc-env=NCNN_L2NORM_LIBS=");
    println!("cargo:rustc-env=NCNN_L2NORM_CXX=c++");
    for name in ["NCNN_L2NORM_TARGET", "NCNN_L2NORM_HOST"] {
        let value = std::env::var(if name.ends_with("TARGET") { "TARGET" } else { "HOST" }).unwrap_or_default();
        println!("cargo:rustc-env={name}={value}");
    }
    println!("cargo:rustc-check-cfg=cfg(ncnn_c_api_packing_option)");
    if std::env::var("DEP_NCNN_L2NORM_C_API_PACKING_OPTION").as_deref() == Ok("1") {
        println!("cargo:rustc-cfg=ncnn_c_api_packing_option");
    }
}
