//! Starts the C++ demo (`cpp/l2norm_demo.cpp`), which links the layer like any
//! ncnn app would. Models default to this crate's `ncnn-models/`.

mod c_main;

use std::ffi::{c_char, c_int};

// Links the library, and with it the C++ layer and demo compiled into it.
use ncnn_l2norm as _;

extern "C" {
    fn l2norm_demo_main(argc: c_int, argv: *mut *mut c_char) -> c_int;
}

fn main() {
    let mut args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--models") {
        args.push("--models".into());
        args.push(concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models").into());
    }
    // SAFETY: l2norm_demo_main is a C main: it reads argc strings and keeps none.
    unsafe { c_main::run(l2norm_demo_main, args, "l2norm-demo") }
}
