//! `cargo bench --bench vulkan`: builds `benches/vulkan_bench.cpp` against
//! this crate's static library and runs it, fp32 blobs then fp16 blobs (where
//! the device has them): our layer on Vulkan, ncnn's Normalize on Vulkan and
//! the CPU fallback inside a net, on SSD's L2Norm tensors (docs/vulkan.md).
//!
//! Needs an ncnn built with `NCNN_VULKAN=ON` and a Vulkan device; without
//! them it says so and does nothing. `-- --quick` takes 5 samples instead of 15.

#[path = "../tests/common/cpp.rs"]
mod cpp;

fn main() {
    if env!("NCNN_L2NORM_NCNN_VULKAN") != "1" {
        println!("vulkan bench: this build's ncnn has NCNN_VULKAN off; build the `vulkan` configuration (docs/vulkan.md)");
        return;
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let exe = cpp::build_program("benches/vulkan_bench.cpp", &["-O2"]);
    for storage in ["fp32", "fp16"] {
        let mut cmd = cpp::target_command(&exe);
        cmd.args(["--storage", storage]);
        if quick {
            cmd.arg("--quick");
        }
        let status = cmd.status().expect("run the Vulkan benchmark");
        match status.code() {
            Some(0) => {}
            Some(3) => println!("({storage}: skipped, see above)"),
            _ => panic!("Vulkan benchmark failed: {status}"),
        }
        println!();
    }
}
