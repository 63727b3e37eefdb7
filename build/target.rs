//! The machine the crate is built for. Cross-compiling (cargo's `TARGET` is
//! not its `HOST`) is a supported way to build: ncnn is then taken from
//! `NCNN_DIR` or built for the target, never found among the host's
//! libraries, and every C/C++ compiler is the target's as the cc crate finds
//! it (`CXX_<target>`, `TARGET_CXX`, `CXX`, else the target's gcc, such as
//! `aarch64-linux-gnu-g++` for `aarch64-unknown-linux-gnu`): the one
//! cxx-build, which uses cc, compiles our C++ side with.
//!
//! ncnn's cmake build learns the target from a toolchain file:
//! `NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE` when the user gives one (the only way
//! for targets other than Linux, e.g. the Android NDK's), else one written
//! here from those compilers.

use std::env;
use std::path::{Path, PathBuf};

use crate::env::log;

/// What the build is for.
#[derive(Debug, Clone)]
pub struct Target {
    /// cargo's `TARGET`, e.g. `aarch64-unknown-linux-gnu`.
    pub triple: String,
    /// cargo's `HOST`, the machine the build runs on.
    pub host: String,
}

impl Target {
    /// cargo's `TARGET` and `HOST` (cargo sets both for every build script).
    pub fn from_cargo() -> Target {
        let var = |name: &str| env::var(name).unwrap_or_else(|_| panic!("cargo sets {name}"));
        Target {
            triple: var("TARGET"),
            host: var("HOST"),
        }
    }

    /// Whether this is a cross build: ncnn and every program must be the target's.
    pub fn is_cross(&self) -> bool {
        self.triple != self.host
    }
}

/// The target's C (`cpp` false) or C++ compiler, resolved as cc resolves it
/// for cxx-build: the same program, with the arguments that select the target.
pub fn compiler(cpp: bool) -> Result<cc::Tool, String> {
    cc::Build::new().cpp(cpp).try_get_compiler().map_err(|e| {
        format!(
            "no {} compiler for the target: {e}",
            if cpp { "C++" } else { "C" }
        )
    })
}

/// The target's C++ compiler as one command line (program, then the
/// arguments that select the target, such as clang's `--target=`), for the
/// C++ programs our tests build against this crate.
pub fn cxx_command() -> Result<String, String> {
    let tool = compiler(true)?;
    let mut words = vec![tool.path().display().to_string()];
    words.extend(
        tool.args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .filter(|a| selects_target(a)),
    );
    Ok(words.join(" "))
}

/// Compiler arguments that decide what machine the code is for (cc adds
/// them, e.g. `--target=` for clang, `-m64`, `-march=` for some ARM targets);
/// the rest of cc's arguments are its optimisation and debug settings.
fn selects_target(arg: &str) -> bool {
    [
        "--target=",
        "-m32",
        "-m64",
        "-march=",
        "-mcpu=",
        "-mfpu=",
        "-mfloat-abi=",
        "-mabi=",
        "--sysroot",
        "-isysroot",
    ]
    .iter()
    .any(|p| arg.starts_with(p))
}

/// The cmake toolchain file text for `target`, from the target's compilers.
/// Linux targets only: for another OS, the user gives a toolchain file.
pub fn toolchain_text(target: &Target) -> Result<String, String> {
    let os = env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os != "linux" {
        return Err(format!(
            "build.rs writes cmake toolchain files for Linux targets only; to build ncnn for {} give one with NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE (for Android, the NDK's build/cmake/android.toolchain.cmake: see docs/building.md), or set NCNN_DIR to an ncnn built for it",
            target.triple
        ));
    }
    let cc = compiler(false)?;
    let cxx = compiler(true)?;
    // ncnn picks its SIMD sources by CMAKE_SYSTEM_PROCESSOR ("^(arm|aarch64)",
    // "^(x86|i686|...)", "^riscv", ...): the triple's first part matches them.
    let processor = target.triple.split('-').next().unwrap_or_default();
    let mut text = format!(
        "# Written by ncnn-l2norm's build.rs: ncnn for {} (built on {}),\n\
         # with the compilers cc finds for that target.\n\
         set(CMAKE_SYSTEM_NAME Linux)\n\
         set(CMAKE_SYSTEM_PROCESSOR {processor})\n\
         set(CMAKE_C_COMPILER \"{}\")\n\
         set(CMAKE_CXX_COMPILER \"{}\")\n",
        target.triple,
        target.host,
        cc.path().display(),
        cxx.path().display()
    );
    if cxx.is_like_clang() {
        // One clang serves every target; cmake passes it --target= from these.
        text.push_str(&format!(
            "set(CMAKE_C_COMPILER_TARGET {0})\nset(CMAKE_CXX_COMPILER_TARGET {0})\n",
            target.triple
        ));
    }
    match target_root(&cc) {
        Some(root) => text.push_str(&format!(
            "# Libraries, headers and packages from the target's root only, never\n\
             # the host's; programs (the build's own tools) from the host.\n\
             list(APPEND CMAKE_FIND_ROOT_PATH \"{}\")\n\
             set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)\n\
             set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)\n\
             set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)\n\
             set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)\n",
            root.display()
        )),
        None => log(&format!(
            "no root directory for {} found ({} -print-sysroot, /usr/<its prefix>): cmake searches the host's directories",
            target.triple,
            cc.path().display()
        )),
    }
    Ok(text)
}

/// Where the target's libraries and headers live: the compiler's sysroot
/// when it has one, else Debian's and Ubuntu's layout for cross toolchains,
/// `/usr/aarch64-linux-gnu` for `aarch64-linux-gnu-gcc`.
fn target_root(cc: &cc::Tool) -> Option<PathBuf> {
    let sysroot = cc
        .to_command()
        .arg("-print-sysroot")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty() && s != "/")
        .map(PathBuf::from);
    let prefix_dir = cc
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .and_then(|n| {
            ["-gcc", "-cc", "-clang"]
                .iter()
                .find_map(|s| n.strip_suffix(s).map(str::to_string))
        })
        .map(|prefix| Path::new("/usr").join(prefix));
    sysroot.into_iter().chain(prefix_dir).find(|d| d.is_dir())
}

/// The ELF `e_machine` of code for the target's architecture
/// (`CARGO_CFG_TARGET_ARCH`), where we know it: an installed ncnn built for
/// another machine is refused with a clear message, not a page of link errors.
pub fn elf_machine() -> Option<u16> {
    Some(match env::var("CARGO_CFG_TARGET_ARCH").ok()?.as_str() {
        "x86" => 3,
        "x86_64" => 62,
        "arm" => 40,
        "aarch64" => 183,
        "riscv32" | "riscv64" => 243,
        "loongarch64" => 258,
        "powerpc" => 20,
        "powerpc64" => 21,
        "s390x" => 22,
        "mips" | "mips64" => 8,
        _ => return None,
    })
}
