//! Discovery of an ncnn already installed on the machine: `NCNN_DIR`, else
//! pkg-config, else a cmake package under `CMAKE_PREFIX_PATH`, `/usr/local`
//! and `/usr`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::env::env_var;
use crate::install::{inspect_prefix, Ncnn};

/// An installed ncnn: `NCNN_DIR`, else pkg-config, else a cmake package.
pub fn find_installed(cmake_prefix_path: Option<String>) -> Result<Option<Ncnn>, String> {
    if let Some(dir) = env_var("NCNN_DIR") {
        let dir = PathBuf::from(dir);
        return inspect_prefix(&dir, "NCNN_DIR")
            .map(Some)
            .ok_or_else(|| format!("NCNN_DIR={} holds no ncnn install (expected include/ncnn/net.h and lib/libncnn.a or lib/libncnn.so)", dir.display()));
    }
    if let Some(ncnn) = from_pkg_config() {
        return Ok(Some(ncnn));
    }
    let mut prefixes: Vec<PathBuf> = cmake_prefix_path
        .map(|v| env::split_paths(&v).collect())
        .unwrap_or_default();
    prefixes.extend([PathBuf::from("/usr/local"), PathBuf::from("/usr")]);
    Ok(prefixes
        .iter()
        .find_map(|prefix| inspect_prefix(prefix, "ncnnConfig.cmake")))
}

fn from_pkg_config() -> Option<Ncnn> {
    let var = |name: &str| -> Option<String> {
        let out = Command::new(env_var("PKG_CONFIG").unwrap_or_else(|| "pkg-config".into()))
            .args(["--variable", name, "ncnn"])
            .output()
            .ok()?;
        let v = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !v.is_empty()).then_some(v)
    };
    // ncnn.pc names its directories includedir and librarydir.
    let include = PathBuf::from(var("includedir")?);
    inspect_prefix(include.parent()?, "pkg-config")
}
