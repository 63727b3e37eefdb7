//! Discovery of an ncnn already installed on the machine: `NCNN_DIR`, else
//! pkg-config, else a cmake package under `CMAKE_PREFIX_PATH`, `/usr/local`
//! and `/usr`. A cross build looks at `NCNN_DIR` only: the rest are where the
//! host's libraries live.

use std::env;
use std::path::PathBuf;
use std::process::Command;

use crate::env::{env_var, log};
use crate::install::{inspect_prefix, Ncnn};
use crate::target::{elf_machine, Target};

/// An installed ncnn: `NCNN_DIR`, else (not when cross-compiling) pkg-config,
/// else a cmake package.
pub fn find_installed(
    cmake_prefix_path: Option<String>,
    target: &Target,
) -> Result<Option<Ncnn>, String> {
    if let Some(dir) = env_var("NCNN_DIR") {
        let dir = PathBuf::from(dir);
        let ncnn = inspect_prefix(&dir, "NCNN_DIR")
            .ok_or_else(|| format!("NCNN_DIR={} holds no ncnn install (expected include/ncnn/net.h and lib/libncnn.a or lib/libncnn.so)", dir.display()))?;
        return match wrong_machine(&ncnn, target) {
            Some(why) => Err(format!("NCNN_DIR={}: {why}", dir.display())),
            None => Ok(Some(ncnn)),
        };
    }
    if target.is_cross() {
        log(&format!(
            "cross-compiling for {}: not looking at pkg-config, CMAKE_PREFIX_PATH, /usr/local or /usr (the host's libraries); NCNN_DIR can name an ncnn built for {}",
            target.triple, target.triple
        ));
        return Ok(None);
    }
    let mut prefixes: Vec<PathBuf> = cmake_prefix_path
        .map(|v| env::split_paths(&v).collect())
        .unwrap_or_default();
    prefixes.extend([PathBuf::from("/usr/local"), PathBuf::from("/usr")]);
    Ok(from_pkg_config()
        .into_iter()
        .chain(
            prefixes
                .iter()
                .filter_map(|prefix| inspect_prefix(prefix, "ncnnConfig.cmake")),
        )
        .find(|ncnn| match wrong_machine(ncnn, target) {
            Some(why) => {
                log(&format!(
                    "skipping the ncnn at {}: {why}",
                    ncnn.prefix.display()
                ));
                false
            }
            None => true,
        }))
}

/// Why `ncnn`'s library cannot link into a build for `target`, if it cannot.
fn wrong_machine(ncnn: &Ncnn, target: &Target) -> Option<String> {
    let (want, have) = (elf_machine()?, ncnn.machine?);
    (want != have).then(|| {
        format!(
            "its library is built for another machine (ELF e_machine {have}, {}) than the target {} (e_machine {want})",
            machine_name(have),
            target.triple
        )
    })
}

fn machine_name(e_machine: u16) -> &'static str {
    match e_machine {
        3 => "x86",
        62 => "x86-64",
        40 => "arm",
        183 => "aarch64",
        243 => "risc-v",
        _ => "see elf.h",
    }
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
