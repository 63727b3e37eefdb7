//! Starts the C++ SSD demo (`cpp/ssd_demo.cpp`), which links the layer like any
//! ncnn app would. Models default to this crate's `ncnn-models/`; the annotated
//! image defaults to `ssd-demo-out.png` beside this executable (under target/).

mod c_main;

use std::ffi::{c_char, c_int};

// Links the library, and with it the C++ layer and demo compiled into it.
use ncnn_l2norm as _;

extern "C" {
    fn ssd_demo_main(argc: c_int, argv: *mut *mut c_char) -> c_int;
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--models") {
        args.push("--models".into());
        args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models").into());
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .as_deref()
        .and_then(std::path::Path::parent)
    {
        args.push("--default-out".into());
        args.push(dir.join("ssd-demo-out.png").to_string_lossy().into_owned());
    }
    // SAFETY: ssd_demo_main is a C main: it reads argc strings and keeps none.
    unsafe { c_main::run(ssd_demo_main, args, "ssd-demo") }
}
