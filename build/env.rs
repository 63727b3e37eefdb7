//! Reading the environment and reporting: every variable the build script
//! reads is logged and watched, so a build log (`cargo build -vv`) explains
//! which ncnn was used and why.

use std::env;
use std::fs;
use std::io::Write;

/// Reads an environment variable, asks cargo to rerun when it changes, and logs it.
pub fn env_var(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    match env::var(name) {
        Ok(v) => {
            log(&format!("{name} = {v}"));
            Some(v)
        }
        Err(_) => {
            log(&format!("{name} unset"));
            None
        }
    }
}

pub fn log(msg: &str) {
    eprintln!("ncnn-l2norm: {msg}");
}

/// Progress of the long ncnn build: to the build log and, when there is one, the terminal.
pub fn progress(msg: &str) {
    log(msg);
    if let Ok(mut tty) = fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "   ncnn-l2norm: {msg}");
    }
}
