//! Building an ncnn release from source into the cache shared by every build
//! on the machine: pick the release, take the cache entry's lock, fetch the
//! source (`sdist.rs`), configure, build and install it with cmake
//! (`cmake.rs`), and mark the entry complete.
//!
//! Cache layout, under `cache_root()`:
//! `ncnn-VERSION-VARIANT/` (VARIANT: `default`, or the fnv-1a hash of
//! `NCNN_L2NORM_NCNN_CMAKE_ARGS`, and of `NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE`
//! when one is given), with `-TARGET` after it when cross-compiling
//! (`ncnn-1.0.20261020-default-aarch64-unknown-linux-gnu`), holding `src/`,
//! `build/` (removed after a successful build), `install/` (with the
//! `.ncnn-l2norm-complete` stamp, which records the cmake options and the
//! toolchain file it was built with), `toolchain.cmake` (the one written for
//! a cross build), `build.log` and `.lock`; `tools/cmake-VERSION/` for cmake
//! from PyPI.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::cmake::{find_cmake, run_logged};
use crate::env::{env_var, log, progress};
use crate::install::{inspect_prefix, Ncnn};
use crate::sdist::fetch_source;
use crate::target::{toolchain_text, Target};
use crate::{NCNN_RELEASES, NCNN_VERSION};

/// An ncnn release we can build from source.
#[derive(Debug, Clone, Copy)]
pub struct Release {
    pub version: &'static str,
    pub sdist_sha256: &'static str,
}

/// `NCNN_L2NORM_NCNN_VERSION` (or the pinned `NCNN_VERSION`) among `NCNN_RELEASES`.
pub fn release(wanted: Option<&str>) -> Result<Release, String> {
    let wanted = wanted
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .unwrap_or(NCNN_VERSION);
    NCNN_RELEASES
        .iter()
        .find(|(version, _)| *version == wanted)
        .map(|&(version, sdist_sha256)| Release {
            version,
            sdist_sha256,
        })
        .ok_or_else(|| {
            let known: Vec<&str> = NCNN_RELEASES.iter().map(|(v, _)| *v).collect();
            format!(
                "NCNN_L2NORM_NCNN_VERSION={wanted} is not a release this crate can build; known: {} (the default is {NCNN_VERSION})",
                known.join(", ")
            )
        })
}

/// The cmake options that decide what ncnn is built as: everything but where
/// its source, build tree and install go. This is the one place that decides
/// them (what a target or another backend needs belongs here too), and the
/// cache entry's stamp records them, so a change here rebuilds every cached
/// ncnn once. `toolchain` is the cmake toolchain file of a cross build (or
/// the one the user gave). `extra` is `NCNN_L2NORM_NCNN_CMAKE_ARGS`, last, so
/// that it can override any of ours.
fn configure_options(
    release: Release,
    toolchain: Option<&Path>,
    extra: &str,
) -> Result<Vec<String>, String> {
    // ncnn's CMakeLists.txt makes its version 1.0.${NCNN_VERSION} and, when
    // NCNN_VERSION is not given, sets it to the day of the build: ncnn 1.0.20261020
    // built today would report 1.0.<today> in ncnn_version(), NCNN_VERSION_STRING,
    // ncnnConfig.cmake, ncnn.pc and the shared library's name. (The same in the
    // 20261020, 20260526 and 20250503 sources.)
    let ncnn_version = release.version.strip_prefix("1.0.").ok_or_else(|| {
        format!(
            "ncnn {} does not fit ncnn's 1.0.NCNN_VERSION scheme: say in build/source.rs how to make it report its release",
            release.version
        )
    })?;
    // Release, CPU only, library only; SIMPLEOCV gives the demo imread/imwrite.
    let mut options: Vec<String> = [
        "-DCMAKE_BUILD_TYPE=Release",
        "-DNCNN_VULKAN=OFF",
        "-DNCNN_BUILD_TOOLS=OFF",
        "-DNCNN_BUILD_EXAMPLES=OFF",
        "-DNCNN_BUILD_BENCHMARK=OFF",
        "-DNCNN_BUILD_TESTS=OFF",
        "-DNCNN_PYTHON=OFF",
        "-DNCNN_SIMPLEOCV=ON",
    ]
    .map(String::from)
    .into();
    options.push(format!("-DNCNN_VERSION={ncnn_version}"));
    // The target's system, processor and compilers (see build/target.rs).
    if let Some(file) = toolchain {
        options.push(format!("-DCMAKE_TOOLCHAIN_FILE={}", file.display()));
    }
    options.extend(extra.split_whitespace().map(String::from));
    Ok(options)
}

/// Builds `release` for `target` into the cache (once per release, cmake
/// options and target; later builds reuse it). `toolchain_file` is
/// `NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE`; without it, a cross build writes its own.
pub fn build_ncnn(
    release: Release,
    target: &Target,
    toolchain_file: Option<PathBuf>,
) -> Result<Ncnn, String> {
    let version = release.version;
    let options = env_var("NCNN_L2NORM_NCNN_CMAKE_ARGS").unwrap_or_default();
    // The key of a native build without a toolchain file is what it always
    // was: .ci/matrix and existing caches find entries by it.
    let mut key = options.clone();
    if let Some(file) = &toolchain_file {
        key.push_str(&format!("\nCMAKE_TOOLCHAIN_FILE={}", file.display()));
    }
    let mut entry = if key.trim().is_empty() {
        format!("ncnn-{version}-default")
    } else {
        format!("ncnn-{version}-{:016x}", fnv1a(&key))
    };
    if target.is_cross() {
        entry = format!("{entry}-{}", target.triple);
    }
    let root = cache_root()?.join(entry);
    fs::create_dir_all(&root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    let install = root.join("install");
    let stamp = install.join(".ncnn-l2norm-complete");

    // Serialise builds across cargo processes (debug, release, tests in parallel).
    let lock_file = fs::File::create(root.join(".lock"))
        .map_err(|e| format!("cannot create lock in {}: {e}", root.display()))?;
    if lock_file.try_lock().is_err() {
        progress(&format!(
            "waiting for another build of ncnn in {}",
            root.display()
        ));
        lock_file
            .lock()
            .map_err(|e| format!("cannot lock {}: {e}", root.display()))?;
    }
    // A cross build's toolchain file, written (under the lock) from the
    // target's compilers as cc finds them now; or the user's.
    let toolchain = match toolchain_file {
        Some(file) => Some(given_toolchain(file)?),
        None if target.is_cross() => Some(write_toolchain(&root, target)?),
        None => None,
    };

    // The directory name is the cache key (release, NCNN_L2NORM_NCNN_CMAKE_ARGS
    // and the target; .ci/matrix finds entries by it). The stamp says the
    // install is complete and records every cmake option it was configured
    // with, and the toolchain file's text (the compilers): an entry built
    // with other options, e.g. by an older build.rs that let ncnn take the
    // build date as its version, or by other compilers, is rebuilt in place
    // rather than used.
    let configure =
        configure_options(release, toolchain.as_ref().map(|t| t.0.as_path()), &options)?;
    let mut stamp_text = format!("ncnn {version}\n{}\n", configure.join("\n"));
    if let Some((file, text)) = &toolchain {
        stamp_text.push_str(&format!("==== {}\n{text}", file.display()));
    }
    match fs::read_to_string(&stamp) {
        Ok(found) if found == stamp_text => {
            return inspect_prefix(&install, "cache")
                .map(|ncnn| with_toolchain(ncnn, &toolchain))
                .ok_or_else(|| {
                    format!(
                        "cached ncnn at {} is broken; delete {}",
                        install.display(),
                        root.display()
                    )
                });
        }
        Ok(_) => {
            progress(&format!(
                "cached ncnn in {} was configured with other cmake options; rebuilding it",
                root.display()
            ));
            let _ = fs::remove_dir_all(&install);
            let _ = fs::remove_dir_all(root.join("build"));
        }
        // No stamp: not built yet, or a build that stopped part-way (its
        // build tree is reused).
        Err(_) => {}
    }

    let started = Instant::now();
    progress(&format!(
        "building ncnn {version} into {} (once per machine, several minutes)",
        root.display()
    ));
    if let Some((file, _)) = &toolchain {
        progress(&format!(
            "cross-compiling ncnn for {} with the cmake toolchain file {}",
            target.triple,
            file.display()
        ));
    }
    let src = fetch_source(&root, release)?;
    let cmake = find_cmake(&root)?;
    let build = root.join("build");
    let log_path = root.join("build.log");
    run_logged(
        Command::new(&cmake)
            .arg("-S")
            .arg(&src)
            .arg("-B")
            .arg(&build)
            .arg(format!("-DCMAKE_INSTALL_PREFIX={}", install.display()))
            .args(&configure),
        &log_path,
        "configure ncnn",
    )?;
    let jobs = env_var("NUM_JOBS").unwrap_or_else(|| "2".into());
    run_logged(
        Command::new(&cmake)
            .arg("--build")
            .arg(&build)
            .args(["-j", &jobs]),
        &log_path,
        "build ncnn",
    )?;
    run_logged(
        Command::new(&cmake).arg("--install").arg(&build),
        &log_path,
        "install ncnn",
    )?;
    // ncnn_version() returns NCNN_VERSION_STRING: say so if the release's
    // source ignored -DNCNN_VERSION.
    let platform_h = install.join("include/ncnn/platform.h");
    if !fs::read_to_string(&platform_h)
        .unwrap_or_default()
        .contains(&format!("#define NCNN_VERSION_STRING \"{version}\""))
    {
        println!(
            "cargo:warning=ncnn built from the {version} source does not report version {version}: see NCNN_VERSION_STRING in {}",
            platform_h.display()
        );
    }
    fs::write(&stamp, stamp_text).map_err(|e| e.to_string())?;
    progress(&format!(
        "built ncnn in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    // The build tree is 400 MB of objects; the install is all we use.
    let _ = fs::remove_dir_all(&build);
    inspect_prefix(&install, "built from source")
        .map(|ncnn| with_toolchain(ncnn, &toolchain))
        .ok_or_else(|| format!("ncnn install at {} is incomplete", install.display()))
}

fn with_toolchain(ncnn: Ncnn, toolchain: &Option<(PathBuf, String)>) -> Ncnn {
    Ncnn {
        toolchain_file: toolchain.as_ref().map(|(file, _)| file.clone()),
        ..ncnn
    }
}

/// The toolchain file written for a cross build, into the cache entry: its
/// path and text. A different text from the last one (other compilers) also
/// means the part-built tree, configured with the old ones, is stale.
fn write_toolchain(root: &Path, target: &Target) -> Result<(PathBuf, String), String> {
    let file = root.join("toolchain.cmake");
    let text = toolchain_text(target)?;
    if fs::read_to_string(&file).ok().as_deref() != Some(text.as_str()) {
        let _ = fs::remove_dir_all(root.join("build"));
        fs::write(&file, &text).map_err(|e| format!("cannot write {}: {e}", file.display()))?;
    }
    log(&format!(
        "cmake toolchain file for {}: {}\n{}",
        target.triple,
        file.display(),
        text.trim_end()
    ));
    Ok((file, text))
}

/// The user's toolchain file (`NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE`): its
/// absolute path (cmake resolves a relative one against the build tree) and text.
fn given_toolchain(file: PathBuf) -> Result<(PathBuf, String), String> {
    let file = fs::canonicalize(&file)
        .map_err(|e| format!("NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE={}: {e}", file.display()))?;
    let text = fs::read_to_string(&file)
        .map_err(|e| format!("NCNN_L2NORM_CMAKE_TOOLCHAIN_FILE={}: {e}", file.display()))?;
    Ok((file, text))
}

/// `NCNN_L2NORM_CACHE_DIR`, else `$XDG_CACHE_HOME/ncnn-l2norm`, else `~/.cache/ncnn-l2norm`.
pub fn cache_root() -> Result<PathBuf, String> {
    if let Some(dir) = env_var("NCNN_L2NORM_CACHE_DIR") {
        return Ok(PathBuf::from(dir));
    }
    if let Some(dir) = env_var("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(dir).join("ncnn-l2norm"));
    }
    env_var("HOME")
        .map(|h| PathBuf::from(h).join(".cache/ncnn-l2norm"))
        .ok_or_else(|| "no cache directory: set NCNN_L2NORM_CACHE_DIR".to_string())
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}
