//! Starts the C++ SSD demo (`cpp/ssd_demo.cpp`), which links the layer like any
//! ncnn app would. Models default to this crate's `ncnn-models/`; the annotated
//! image defaults to `ssd-demo-out.png` beside this executable (under target/).

use std::ffi::{c_char, c_int, CString};

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
    if let Some(dir) = std::env::current_exe().ok().as_deref().and_then(std::path::Path::parent) {
        args.push("--default-out".into());
        args.push(dir.join("ssd-demo-out.png").to_string_lossy().into_owned());
    }
    let args: Vec<CString> = args
        .into_iter()
        .map(|a| CString::new(a).unwrap_or_else(|_| {
            eprintln!("ssd-demo: argument contains a NUL byte");
            std::process::exit(2)
        }))
        .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: argv holds args.len() pointers to NUL-terminated strings that
    // outlive the call, then a null, as a C main() expects; the demo only reads them.
    let code = unsafe { ssd_demo_main(args.len() as c_int, argv.as_mut_ptr()) };
    std::process::exit(code);
}
