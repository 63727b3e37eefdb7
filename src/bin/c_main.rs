//! Shared by the demo launchers: hands this process's arguments to a C++
//! `main`-style entry point compiled into the library, and exits with its code.

use std::ffi::{c_char, c_int, CString};

/// A C `main`: `(argc, argv)`, argv null-terminated.
pub type CMain = unsafe extern "C" fn(c_int, *mut *mut c_char) -> c_int;

/// Runs `main` with `args` (the program name first) and exits with its status.
///
/// # Safety
/// `main` must behave as a C `main` does: read at most `argc` strings from
/// `argv` and not keep them after returning.
pub unsafe fn run(main: CMain, args: Vec<String>, name: &str) -> ! {
    let args: Vec<CString> = args
        .into_iter()
        .map(|a| {
            CString::new(a).unwrap_or_else(|_| {
                eprintln!("{name}: argument contains a NUL byte");
                std::process::exit(2)
            })
        })
        .collect();
    let mut argv: Vec<*mut c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
    argv.push(std::ptr::null_mut());
    // SAFETY: argv holds args.len() pointers to NUL-terminated strings that
    // outlive the call, then a null; `main` only reads them (the contract).
    let code = unsafe { main(args.len() as c_int, argv.as_mut_ptr()) };
    std::process::exit(code)
}
