//! Build script: find ncnn (or build the pinned release once per machine),
//! compile the C++ layer and the cxx bridge against it, and link.
//!
//! Where ncnn comes from, in this order (the first that applies wins):
//! 1. `NCNN_DIR`: an ncnn install prefix (holding `include/ncnn/net.h` and
//!    `lib/libncnn.a` or `.so`). If it is set but wrong, the build fails.
//! 2. pkg-config (`ncnn.pc`), then `lib/cmake/ncnn/ncnnConfig.cmake` under
//!    `CMAKE_PREFIX_PATH`, `/usr/local` and `/usr`.
//! 3. The pinned release (or the one of `NCNN_RELEASES` that
//!    `NCNN_L2NORM_NCNN_VERSION` names), built from the source distribution the
//!    ncnn project publishes on PyPI (fetched with pip, sha256-checked),
//!    configured with cmake (from PyPI when the machine has none) into a cache
//!    shared by every build on the machine. `NCNN_L2NORM_NO_BUILD=1` skips this
//!    step, making the build offline and discovery-only.
//!
//! Every environment variable read is logged as `NAME = value` or `NAME unset`
//! (see the build script output with `cargo build -vv`).

use std::env;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// The ncnn release built when none is installed (`NCNN_L2NORM_NCNN_VERSION`
/// picks another of `NCNN_RELEASES`).
const NCNN_VERSION: &str = "1.0.20261020";
/// The releases we can build from source: version and the sha256 of
/// `ncnn-VERSION.tar.gz`, its source distribution on PyPI. These are the
/// releases whose sdist holds ncnn's full source.
const NCNN_RELEASES: &[(&str, &str)] = &[
    (
        "1.0.20261020",
        "ad8cdd63e9755cfa8e23b9b6d9ce46156077d80298a89e7c3ba325ffccfca200",
    ),
    (
        "1.0.20260526",
        "282f0f4a1beec1f5212aa0d22c00737418645055f33c2d2082922931cdbdc537",
    ),
    (
        "1.0.20250503",
        "f5823ce44071e210419a339b5a4dbf39058fd568905a65e9c56319917f2af7b3",
    ),
];
/// cmake from PyPI when the machine has none (3.x: ncnn 2025 releases need >= 3.10).
const CMAKE_PYPI_VERSION: &str = "3.31.6";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=cpp");
    println!("cargo:rerun-if-changed=src/bridge.rs");

    let ncnn = find_ncnn().unwrap_or_else(|e| fail(&e));
    log(&format!(
        "using ncnn at {} ({})",
        ncnn.prefix.display(),
        ncnn.origin
    ));
    log(&format!("{ncnn:?}"));

    compile_cpp(&ncnn);
    link_ncnn(&ncnn);
    export_paths(&ncnn);
}

/// What we need to know about an installed ncnn.
#[derive(Debug)]
struct Ncnn {
    prefix: PathBuf,
    origin: String,
    include_dir: PathBuf,
    lib_dir: PathBuf,
    shared: bool,
    /// Uses OpenMP: our layer's `#pragma omp` must run on ncnn's runtime.
    openmp: bool,
    /// OpenMP through ncnn's own runtime (`NCNN_SIMPLEOMP`): no libgomp.
    simpleomp: bool,
    threads: bool,
    rtti: bool,
    exceptions: bool,
    /// The C API has `ncnn_option_set_use_packing_layout` (ncnn 1.0.20250503
    /// does not): the tests that drive nets through the C API can turn packing off.
    c_api_packing_option: bool,
}

// ---------------------------------------------------------------- discovery

fn find_ncnn() -> Result<Ncnn, String> {
    // Read (and so log, and have cargo watch) every variable discovery depends
    // on up front: a later step's variable must rerun this script even when
    // an earlier step decided the last build.
    for var in [
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        env_var(var);
    }
    let cmake_prefix_path = env_var("CMAKE_PREFIX_PATH");
    let no_build = env_var("NCNN_L2NORM_NO_BUILD").is_some_and(|v| v != "0");
    // Checked even when an installed ncnn wins: a typo fails here, not later.
    let wanted_version = env_var("NCNN_L2NORM_NCNN_VERSION");
    let release = release(wanted_version.as_deref())?;
    if let Some(ncnn) = find_installed(cmake_prefix_path)? {
        if let Some(v) = wanted_version {
            println!(
                "cargo:warning=NCNN_L2NORM_NCNN_VERSION={v} is ignored: using the installed ncnn at {} ({})",
                ncnn.prefix.display(),
                ncnn.origin
            );
        }
        return Ok(ncnn);
    }
    if no_build {
        return Err("no installed ncnn found and NCNN_L2NORM_NO_BUILD forbids building one".into());
    }
    build_ncnn(release)
}

/// An installed ncnn: `NCNN_DIR`, else pkg-config, else a cmake package.
fn find_installed(cmake_prefix_path: Option<String>) -> Result<Option<Ncnn>, String> {
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

/// An ncnn release we can build from source.
#[derive(Debug, Clone, Copy)]
struct Release {
    version: &'static str,
    sdist_sha256: &'static str,
}

/// `NCNN_L2NORM_NCNN_VERSION` (or the pinned `NCNN_VERSION`) among `NCNN_RELEASES`.
fn release(wanted: Option<&str>) -> Result<Release, String> {
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

/// Reads an install prefix: headers, library, and how ncnn was configured.
fn inspect_prefix(prefix: &Path, origin: &str) -> Option<Ncnn> {
    let include_dir = prefix.join("include/ncnn");
    if !include_dir.join("net.h").is_file() {
        return None;
    }
    let lib_dir = [
        "lib",
        "lib64",
        "lib/x86_64-linux-gnu",
        "lib/aarch64-linux-gnu",
    ]
    .iter()
    .map(|l| prefix.join(l))
    .find(|d| d.join("libncnn.a").is_file() || d.join("libncnn.so").exists())?;

    let platform_h = fs::read_to_string(include_dir.join("platform.h")).unwrap_or_default();
    let platform = |name: &str| platform_h.contains(&format!("#define {name} 1"));
    let cmake_dir = lib_dir.join("cmake/ncnn");
    let config = fs::read_to_string(cmake_dir.join("ncnnConfig.cmake")).unwrap_or_default();
    let targets = fs::read_to_string(cmake_dir.join("ncnn.cmake")).unwrap_or_default();
    let config_on = |name: &str| config.contains(&format!("set({name} ON)"));

    let static_lib = lib_dir.join("libncnn.a");
    let shared = if config.is_empty() {
        !static_lib.is_file()
    } else {
        config_on("NCNN_SHARED_LIB")
    };
    let lib_file = if shared {
        lib_dir.join("libncnn.so")
    } else {
        static_lib
    };
    let lib_bytes = fs::read(&lib_file).unwrap_or_default();
    let lib_has = |sym: &str| lib_bytes.windows(sym.len()).any(|w| w == sym.as_bytes());

    let simpleomp = platform("NCNN_SIMPLEOMP");
    // Without cmake files, a reference to libgomp's entry point tells.
    let openmp = simpleomp
        || if config.is_empty() {
            lib_has("GOMP_parallel")
        } else {
            config_on("NCNN_OPENMP")
        };
    // ncnn exports -fno-rtti / -fno-exceptions to its users through the cmake
    // target; without one, the library's typeinfo for ncnn::Layer tells RTTI.
    let rtti = if targets.is_empty() {
        lib_has("_ZTIN4ncnn5LayerE")
    } else {
        !targets.contains("-fno-rtti")
    };
    let exceptions = !targets.contains("-fno-exceptions");
    let c_api_h = fs::read_to_string(include_dir.join("c_api.h")).unwrap_or_default();
    Some(Ncnn {
        prefix: prefix.to_path_buf(),
        origin: origin.to_string(),
        include_dir,
        lib_dir,
        shared,
        openmp,
        simpleomp,
        threads: platform("NCNN_THREADS"),
        rtti,
        exceptions,
        c_api_packing_option: c_api_h.contains("ncnn_option_set_use_packing_layout("),
    })
}

// ---------------------------------------------------------- build from source

/// Builds `release` into the cache (once per release and cmake options; later
/// builds reuse it).
fn build_ncnn(release: Release) -> Result<Ncnn, String> {
    let version = release.version;
    let options = env_var("NCNN_L2NORM_NCNN_CMAKE_ARGS").unwrap_or_default();
    let variant = if options.trim().is_empty() {
        "default".to_string()
    } else {
        format!("{:016x}", fnv1a(&options))
    };
    let root = cache_root()?.join(format!("ncnn-{version}-{variant}"));
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
    if stamp.is_file() {
        return inspect_prefix(&install, "cache").ok_or_else(|| {
            format!(
                "cached ncnn at {} is broken; delete {}",
                install.display(),
                root.display()
            )
        });
    }

    let started = Instant::now();
    progress(&format!(
        "building ncnn {version} into {} (once per machine, several minutes)",
        root.display()
    ));
    let src = fetch_source(&root, release)?;
    let cmake = find_cmake(&root)?;
    let build = root.join("build");
    let log_path = root.join("build.log");
    let mut configure = Command::new(&cmake);
    configure
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_INSTALL_PREFIX={}", install.display()))
        // Release, CPU only, library only; SIMPLEOCV gives the demo imread/imwrite.
        .args([
            "-DCMAKE_BUILD_TYPE=Release",
            "-DNCNN_VULKAN=OFF",
            "-DNCNN_BUILD_TOOLS=OFF",
            "-DNCNN_BUILD_EXAMPLES=OFF",
            "-DNCNN_BUILD_BENCHMARK=OFF",
            "-DNCNN_BUILD_TESTS=OFF",
            "-DNCNN_PYTHON=OFF",
            "-DNCNN_SIMPLEOCV=ON",
        ])
        .args(options.split_whitespace());
    run_logged(&mut configure, &log_path, "configure ncnn")?;
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
    fs::write(&stamp, format!("ncnn {version} {options}\n")).map_err(|e| e.to_string())?;
    progress(&format!(
        "built ncnn in {:.0} s",
        started.elapsed().as_secs_f64()
    ));
    // The build tree is 400 MB of objects; the install is all we use.
    let _ = fs::remove_dir_all(&build);
    inspect_prefix(&install, "built from source")
        .ok_or_else(|| format!("ncnn install at {} is incomplete", install.display()))
}

/// `NCNN_L2NORM_CACHE_DIR`, else `$XDG_CACHE_HOME/ncnn-l2norm`, else `~/.cache/ncnn-l2norm`.
fn cache_root() -> Result<PathBuf, String> {
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

fn python() -> String {
    env_var("PYTHON").unwrap_or_else(|| "python3".into())
}

/// Unpacks the ncnn source distribution into `root/src`.
///
/// `pip download` checks the sha256, unpacks the tarball and then fails while
/// generating metadata (ncnn's setup.py stamps today's date as the version);
/// with `--no-clean` and our own TMPDIR the unpacked tree stays behind.
fn fetch_source(root: &Path, release: Release) -> Result<PathBuf, String> {
    let Release {
        version,
        sdist_sha256,
    } = release;
    let src = root.join("src");
    if src.join("CMakeLists.txt").is_file() && src.join("src/layer/normalize.cpp").is_file() {
        return Ok(src);
    }
    let tmp = root.join("pip-tmp");
    let _ = fs::remove_dir_all(&tmp);
    let _ = fs::remove_dir_all(&src);
    fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let requirements = tmp.join("requirements.txt");
    fs::write(
        &requirements,
        format!("ncnn=={version} --hash=sha256:{sdist_sha256}\n"),
    )
    .map_err(|e| e.to_string())?;
    progress(&format!("fetching ncnn {version} source with pip"));
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-clean",
            "--no-build-isolation",
            "--require-hashes",
            "-r",
        ])
        .arg(&requirements)
        .arg("-d")
        .arg(tmp.join("dl"))
        .env("TMPDIR", &tmp)
        .output()
        .map_err(|e| format!("cannot run {} -m pip: {e}", python()))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if text.contains("DO NOT MATCH THE HASHES") {
        return Err(format!(
            "ncnn {version} source failed its sha256 check:\n{text}"
        ));
    }
    let unpacked = fs::read_dir(&tmp)
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("pip-download-"))
        .flat_map(|e| fs::read_dir(e.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .find(|p| p.join("CMakeLists.txt").is_file() && p.join("src/net.h").is_file())
        .ok_or_else(|| {
            format!(
                "pip did not leave the ncnn source in {}; pip said:\n{text}",
                tmp.display()
            )
        })?;
    fs::rename(&unpacked, &src).map_err(|e| {
        format!(
            "cannot move {} to {}: {e}",
            unpacked.display(),
            src.display()
        )
    })?;
    let _ = fs::remove_dir_all(&tmp);
    Ok(src)
}

/// `CMAKE`, else `cmake` on PATH, else cmake from PyPI installed into the cache.
fn find_cmake(root: &Path) -> Result<PathBuf, String> {
    let cache = root.parent().unwrap_or(root);
    if let Some(cmake) = existing_cmake(cache) {
        return Ok(cmake);
    }
    let tools = cmake_tools_dir(cache);
    let cmake = tools.join("cmake/data/bin/cmake");
    progress(&format!(
        "installing cmake {CMAKE_PYPI_VERSION} from PyPI into {}",
        tools.display()
    ));
    let out = Command::new(python())
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--target",
        ])
        .arg(&tools)
        .arg(format!("cmake=={CMAKE_PYPI_VERSION}"))
        .output()
        .map_err(|e| format!("cannot run {} -m pip: {e}", python()))?;
    if !cmake_works(&cmake) {
        return Err(format!(
            "no cmake: none on PATH and `pip install cmake=={CMAKE_PYPI_VERSION}` failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(cmake)
}

/// `$CMAKE`, a cmake on PATH, or the one an earlier build put in `cache`.
fn existing_cmake(cache: &Path) -> Option<PathBuf> {
    if let Some(c) = env_var("CMAKE") {
        return Some(PathBuf::from(c));
    }
    [
        PathBuf::from("cmake"),
        cmake_tools_dir(cache).join("cmake/data/bin/cmake"),
    ]
    .into_iter()
    .find(|c| cmake_works(c))
}

fn cmake_tools_dir(cache: &Path) -> PathBuf {
    cache.join(format!("tools/cmake-{CMAKE_PYPI_VERSION}"))
}

fn cmake_works(cmake: &Path) -> bool {
    Command::new(cmake)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Runs `cmd`, appending its output to `log_path` and echoing build progress.
fn run_logged(cmd: &mut Command, log_path: &Path, what: &str) -> Result<(), String> {
    let mut log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(|e| e.to_string())?;
    let _ = writeln!(log, "==== {what}: {cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.try_clone().map_err(|e| e.to_string())?))
        .spawn()
        .map_err(|e| format!("cannot {what}: {e}"))?;
    let mut last_tens = None;
    for line in BufReader::new(child.stdout.take().expect("piped stdout"))
        .lines()
        .map_while(Result::ok)
    {
        let _ = writeln!(log, "{line}");
        // cmake's makefiles prefix lines with "[ 42%]"; report every ten percent.
        let percent = line
            .strip_prefix('[')
            .and_then(|l| l.split_once("%]"))
            .and_then(|(p, _)| p.trim().parse::<u32>().ok());
        if let Some(p) = percent.filter(|p| Some(p / 10) != last_tens) {
            progress(&format!("{what}: {p}%"));
            last_tens = Some(p / 10);
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        let tail: Vec<String> = fs::read_to_string(log_path)
            .unwrap_or_default()
            .lines()
            .rev()
            .take(30)
            .map(str::to_string)
            .collect();
        let tail: Vec<String> = tail.into_iter().rev().collect();
        return Err(format!(
            "{what} failed ({status}); log {}:\n{}",
            log_path.display(),
            tail.join("\n")
        ));
    }
    Ok(())
}

// ------------------------------------------------------------ compile & link

fn compile_cpp(ncnn: &Ncnn) {
    let mut build = cxx_build::bridge("src/bridge.rs");
    // Every .cpp directly in cpp/ (the layer and the demo apps, whose mains are
    // `extern "C"` functions the cargo bins call) goes into the library.
    let mut sources: Vec<PathBuf> = fs::read_dir("cpp")
        .expect("cpp/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cpp"))
        .collect();
    sources.sort();
    build
        .files(&sources)
        .include("cpp/include")
        .include(&ncnn.include_dir)
        .std("c++14")
        .flag_if_supported("-Wno-unused-parameter");
    if ncnn.openmp {
        // Our `#pragma omp` must use ncnn's OpenMP runtime (libgomp, or ncnn's
        // own with NCNN_SIMPLEOMP, which implements the same entry points).
        build.flag("-fopenmp");
    } else {
        // ncnn without OpenMP (NCNN_OPENMP=OFF) ignores its `#pragma omp`, and
        // so do we: forward runs its chunks in turn on the calling thread.
        build.flag_if_supported("-Wno-unknown-pragmas");
    }
    // A subclass of ncnn::Layer compiled with RTTI references ncnn's typeinfo,
    // which an ncnn built with -fno-rtti does not have.
    if !ncnn.rtti {
        build.flag("-fno-rtti");
    }
    if !ncnn.exceptions {
        build.flag("-fno-exceptions");
    }
    build.compile("ncnn_l2norm_cpp");
}

fn link_ncnn(ncnn: &Ncnn) {
    println!("cargo:rustc-link-search=native={}", ncnn.lib_dir.display());
    if ncnn.shared {
        println!("cargo:rustc-link-lib=dylib=ncnn");
        // Tests and the demo find libncnn.so where it was found at build time.
        println!("cargo:rustc-link-arg=-Wl,-rpath,{}", ncnn.lib_dir.display());
    } else {
        // -bundle: the C++ app that links our staticlib links its own libncnn;
        // bundling ours into libncnn_l2norm.a would duplicate every symbol.
        println!("cargo:rustc-link-lib=static:-bundle=ncnn");
    }
    if ncnn.openmp && !ncnn.simpleomp {
        println!("cargo:rustc-link-lib=gomp");
    }
    if ncnn.threads {
        println!("cargo:rustc-link-lib=pthread");
    }
    println!("cargo:rustc-link-lib=stdc++");
}

/// Paths for dependents (`DEP_NCNN_L2NORM_*`), tests and the README's link line.
fn export_paths(ncnn: &Ncnn) {
    let manifest =
        PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:root={}", manifest.display());
    println!("cargo:include={}", manifest.join("cpp/include").display());
    println!("cargo:ncnn_prefix={}", ncnn.prefix.display());

    let mut cxxflags = vec![
        format!("-I{}", manifest.join("cpp/include").display()),
        format!("-I{}", ncnn.include_dir.display()),
    ];
    // As ncnn's cmake target: -fopenmp for its users with libgomp only; with
    // ncnn's own runtime (NCNN_SIMPLEOMP) it would link libgomp next to it.
    if ncnn.openmp && !ncnn.simpleomp {
        cxxflags.push("-fopenmp".into());
    }
    if !ncnn.rtti {
        cxxflags.push("-fno-rtti".into());
    }
    if !ncnn.exceptions {
        cxxflags.push("-fno-exceptions".into());
    }
    let mut libs = vec![
        format!("-L{}", ncnn.lib_dir.display()),
        "-lncnn".to_string(),
    ];
    if ncnn.shared {
        libs.push(format!("-Wl,-rpath,{}", ncnn.lib_dir.display()));
    }
    if ncnn.openmp && !ncnn.simpleomp {
        libs.push("-fopenmp".into());
    }
    // What Rust's std needs from the system (`rustc --print native-static-libs`).
    libs.extend(["-lpthread", "-ldl", "-lm"].map(String::from));
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_PREFIX={}",
        ncnn.prefix.display()
    );
    println!(
        "cargo:rustc-env=NCNN_L2NORM_CXXFLAGS={}",
        cxxflags.join(" ")
    );
    println!("cargo:rustc-env=NCNN_L2NORM_LIBS={}", libs.join(" "));
    println!(
        "cargo:rustc-env=NCNN_L2NORM_NCNN_SHARED={}",
        u8::from(ncnn.shared)
    );
    // For the test that configures the CMake example consumer.
    let cmake = cache_root().ok().and_then(|cache| existing_cmake(&cache));
    println!(
        "cargo:rustc-env=NCNN_L2NORM_CMAKE={}",
        cmake.map(|c| c.display().to_string()).unwrap_or_default()
    );

    // The tests declare ncnn's C API by hand; this one is not in every release.
    println!("cargo:rustc-check-cfg=cfg(ncnn_c_api_packing_option)");
    // Dependents (the fuzz crate, which reuses the tests' declarations) read
    // it as DEP_NCNN_L2NORM_C_API_PACKING_OPTION.
    println!(
        "cargo:c_api_packing_option={}",
        u8::from(ncnn.c_api_packing_option)
    );
    if ncnn.c_api_packing_option {
        println!("cargo:rustc-cfg=ncnn_c_api_packing_option");
    }
}

// ------------------------------------------------------------------ helpers

/// Reads an environment variable, asks cargo to rerun when it changes, and logs it.
fn env_var(name: &str) -> Option<String> {
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

fn log(msg: &str) {
    eprintln!("ncnn-l2norm: {msg}");
}

/// Progress of the long ncnn build: to the build log and, when there is one, the terminal.
fn progress(msg: &str) {
    log(msg);
    if let Ok(mut tty) = fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "   ncnn-l2norm: {msg}");
    }
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

fn fail(msg: &str) -> ! {
    eprintln!("\nncnn-l2norm: cannot find or build ncnn.\n{msg}\n");
    eprintln!(
        "Set NCNN_DIR to an ncnn install prefix (the directory holding include/ncnn and lib),"
    );
    eprintln!("or install ncnn so pkg-config or CMAKE_PREFIX_PATH finds it,");
    eprintln!(
        "or allow the build from source: it needs python3 with pip and network access to PyPI,"
    );
    eprintln!(
        "plus a C++ compiler (and builds into NCNN_L2NORM_CACHE_DIR or ~/.cache/ncnn-l2norm)."
    );
    std::process::exit(1);
}
