//! `ncnn-l2norm install --prefix DIR`: what a C++ project expects next to the
//! static library.
//!
//! ```text
//! DIR/include/ncnn_l2norm/{l2norm.h, l2norm_c.h}
//! DIR/lib/libncnn_l2norm.a
//! DIR/lib/libncnn_l2norm.so            only when the ncnn we built against is shared
//! DIR/lib/cmake/ncnn_l2norm/ncnn_l2normConfig.cmake, ...ConfigVersion.cmake
//! DIR/lib/pkgconfig/ncnn_l2norm.pc
//! ```
//!
//! The CMake package and the pkg-config file carry the same compile and link
//! flags the tests build their C++ programs with (`NCNN_L2NORM_CXXFLAGS` and
//! `NCNN_L2NORM_LIBS` from build.rs): the found ncnn's headers and library,
//! `-fopenmp` when it uses OpenMP, `-fno-rtti`/`-fno-exceptions` when it was
//! built so, and what Rust's standard library needs from the system.
//!
//! A shared `libncnn_l2norm.so` is built only against a shared libncnn: with
//! a static one, the app and the plugin would each hold their own copy of
//! ncnn (its `Layer` vtables, allocators and globals), or the plugin would
//! depend on ncnn symbols the app never exports.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const HEADERS: [(&str, &str); 2] = [
    (
        "l2norm.h",
        include_str!("../../cpp/include/ncnn_l2norm/l2norm.h"),
    ),
    (
        "l2norm_c.h",
        include_str!("../../cpp/include/ncnn_l2norm/l2norm_c.h"),
    ),
];

/// What build.rs found out about the ncnn this crate was built against.
#[derive(Debug, Clone)]
pub struct NcnnFlags {
    /// `-I` directories of ncnn's headers.
    pub include_dirs: Vec<String>,
    /// Other compile flags (`-fopenmp`, `-fno-rtti`, `-fno-exceptions`).
    pub compile_options: Vec<String>,
    /// Link flags after our library: ncnn, OpenMP, the system libraries.
    pub link_flags: Vec<String>,
    pub shared: bool,
}

impl NcnnFlags {
    /// The flags of this build (build.rs's exports), without our own
    /// `cpp/include` (the installed headers replace it).
    pub fn of_this_build() -> NcnnFlags {
        let own_include = concat!(env!("CARGO_MANIFEST_DIR"), "/cpp/include");
        let mut include_dirs = Vec::new();
        let mut compile_options = Vec::new();
        for flag in env!("NCNN_L2NORM_CXXFLAGS").split_whitespace() {
            match flag.strip_prefix("-I") {
                Some(dir) if dir == own_include => {}
                Some(dir) => include_dirs.push(dir.to_string()),
                None => compile_options.push(flag.to_string()),
            }
        }
        NcnnFlags {
            include_dirs,
            compile_options,
            link_flags: env!("NCNN_L2NORM_LIBS")
                .split_whitespace()
                .map(String::from)
                .collect(),
            shared: env!("NCNN_L2NORM_NCNN_SHARED") == "1",
        }
    }
}

/// Installs into `prefix`; `staticlib` is this build's `libncnn_l2norm.a`.
/// Returns the files written.
pub fn install(prefix: &Path, staticlib: &Path, ncnn: &NcnnFlags) -> Result<Vec<PathBuf>, String> {
    let prefix =
        std::path::absolute(prefix).map_err(|e| format!("prefix {}: {e}", prefix.display()))?;
    let include = prefix.join("include/ncnn_l2norm");
    let lib = prefix.join("lib");
    let cmake_dir = lib.join("cmake/ncnn_l2norm");
    let pc_dir = lib.join("pkgconfig");
    for dir in [&include, &cmake_dir, &pc_dir] {
        fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut written = Vec::new();
    let mut write = |path: PathBuf, bytes: &[u8]| -> Result<(), String> {
        fs::write(&path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
        Ok(())
    };
    let so = lib.join("libncnn_l2norm.so");
    for (name, text) in HEADERS {
        write(include.join(name), text.as_bytes())?;
    }
    let archive = fs::read(staticlib).map_err(|e| format!("{}: {e}", staticlib.display()))?;
    write(lib.join("libncnn_l2norm.a"), &archive)?;
    write(
        cmake_dir.join("ncnn_l2normConfig.cmake"),
        cmake_config(ncnn).as_bytes(),
    )?;
    write(
        cmake_dir.join("ncnn_l2normConfigVersion.cmake"),
        cmake_config_version().as_bytes(),
    )?;
    write(
        pc_dir.join("ncnn_l2norm.pc"),
        pkg_config(&prefix, ncnn).as_bytes(),
    )?;
    if ncnn.shared {
        link_shared(staticlib, &so, ncnn)?;
        written.push(so);
    } else if so.exists() {
        // From an earlier install against a shared ncnn: no longer ours.
        fs::remove_file(&so).map_err(|e| format!("cannot remove {}: {e}", so.display()))?;
    }
    Ok(written)
}

/// `libncnn_l2norm.so` from the static library: every object of it, linked
/// against libncnn.so, exporting only the layer's C and C++ API.
fn link_shared(staticlib: &Path, so: &Path, ncnn: &NcnnFlags) -> Result<(), String> {
    let script = so.with_extension("map");
    fs::write(
        &script,
        "{\n  global:\n    ncnn_l2norm_register;\n    extern \"C++\" {\n      ncnn_l2norm::L2Norm*;\n      \"vtable for ncnn_l2norm::L2Norm\";\n      \"typeinfo for ncnn_l2norm::L2Norm\";\n      \"typeinfo name for ncnn_l2norm::L2Norm\";\n      ncnn_l2norm::l2norm_layer_*;\n      ncnn_l2norm::register_l2norm*;\n      ncnn_l2norm::kernel_isa*;\n    };\n  local: *;\n};\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", script.display()))?;
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    let mut cmd = Command::new(&cxx);
    cmd.args([
        "-shared",
        "-Wl,-soname,libncnn_l2norm.so",
        "-Wl,--whole-archive",
    ])
    .arg(staticlib)
    .arg("-Wl,--no-whole-archive")
    .args(&ncnn.link_flags)
    .arg(format!("-Wl,--version-script={}", script.display()))
    .arg("-o")
    .arg(so);
    let out = cmd.output().map_err(|e| format!("cannot run {cxx}: {e}"))?;
    let _ = fs::remove_file(&script);
    if !out.status.success() {
        return Err(format!(
            "linking {} failed: {cmd:?}\n{}",
            so.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// `find_package(ncnn_l2norm)`: imported targets `ncnn_l2norm::ncnn_l2norm`
/// (static) and, next to a shared libncnn, `ncnn_l2norm::ncnn_l2norm_shared`.
fn cmake_config(ncnn: &NcnnFlags) -> String {
    let list = |v: &[String]| v.join(";");
    let mut s = String::new();
    let _ = write!(
        s,
        r#"# ncnn_l2norm {VERSION}: CMake package written by `ncnn-l2norm install`.
#
#   find_package(ncnn_l2norm REQUIRED)
#   target_link_libraries(app PRIVATE ncnn_l2norm::ncnn_l2norm)
#
# The targets carry the ncnn this library was built against (headers,
# library, OpenMP and system libraries): link nothing else for ncnn.

get_filename_component(_ncnn_l2norm_prefix "${{CMAKE_CURRENT_LIST_DIR}}/../../.." ABSOLUTE)

set(_ncnn_l2norm_ncnn_includes "{includes}")
set(_ncnn_l2norm_compile_options "{compile}")
set(_ncnn_l2norm_link_flags "{link}")

if(NOT TARGET ncnn_l2norm::ncnn_l2norm)
  add_library(ncnn_l2norm::ncnn_l2norm STATIC IMPORTED)
  set_target_properties(ncnn_l2norm::ncnn_l2norm PROPERTIES
    IMPORTED_LOCATION "${{_ncnn_l2norm_prefix}}/lib/libncnn_l2norm.a"
    IMPORTED_LINK_INTERFACE_LANGUAGES CXX
    INTERFACE_INCLUDE_DIRECTORIES "${{_ncnn_l2norm_prefix}}/include;${{_ncnn_l2norm_ncnn_includes}}"
    INTERFACE_COMPILE_OPTIONS "${{_ncnn_l2norm_compile_options}}"
    INTERFACE_LINK_LIBRARIES "${{_ncnn_l2norm_link_flags}}")
endif()

if(EXISTS "${{_ncnn_l2norm_prefix}}/lib/libncnn_l2norm.so" AND NOT TARGET ncnn_l2norm::ncnn_l2norm_shared)
  add_library(ncnn_l2norm::ncnn_l2norm_shared SHARED IMPORTED)
  set_target_properties(ncnn_l2norm::ncnn_l2norm_shared PROPERTIES
    IMPORTED_LOCATION "${{_ncnn_l2norm_prefix}}/lib/libncnn_l2norm.so"
    IMPORTED_SONAME libncnn_l2norm.so
    INTERFACE_INCLUDE_DIRECTORIES "${{_ncnn_l2norm_prefix}}/include;${{_ncnn_l2norm_ncnn_includes}}"
    INTERFACE_COMPILE_OPTIONS "${{_ncnn_l2norm_compile_options}}"
    INTERFACE_LINK_LIBRARIES "${{_ncnn_l2norm_link_flags}}")
endif()

set(ncnn_l2norm_VERSION {VERSION})
set(ncnn_l2norm_FOUND TRUE)
"#,
        includes = list(&ncnn.include_dirs),
        compile = list(&ncnn.compile_options),
        link = list(&ncnn.link_flags),
    );
    s
}

/// Same-major-version compatibility (0.x: same minor).
fn cmake_config_version() -> String {
    let (major, rest) = VERSION.split_once('.').unwrap_or((VERSION, ""));
    let minor = rest.split('.').next().unwrap_or("0");
    format!(
        r#"set(PACKAGE_VERSION {VERSION})
if(PACKAGE_FIND_VERSION VERSION_GREATER PACKAGE_VERSION)
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif(NOT PACKAGE_FIND_VERSION_MAJOR STREQUAL "{major}")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
elseif("{major}" STREQUAL "0" AND NOT PACKAGE_FIND_VERSION_MINOR STREQUAL "{minor}")
  set(PACKAGE_VERSION_COMPATIBLE FALSE)
else()
  set(PACKAGE_VERSION_COMPATIBLE TRUE)
  if(PACKAGE_FIND_VERSION STREQUAL PACKAGE_VERSION)
    set(PACKAGE_VERSION_EXACT TRUE)
  endif()
endif()
"#
    )
}

/// `pkg-config --cflags --libs ncnn_l2norm`.
fn pkg_config(prefix: &Path, ncnn: &NcnnFlags) -> String {
    let cflags: Vec<String> = ncnn
        .include_dirs
        .iter()
        .map(|d| format!("-I{d}"))
        .chain(ncnn.compile_options.iter().cloned())
        .collect();
    format!(
        "prefix={prefix}\nlibdir=${{prefix}}/lib\nincludedir=${{prefix}}/include\n\n\
         Name: ncnn_l2norm\n\
         Description: SSD's channel-wise L2Norm as an ncnn custom layer\n\
         Version: {VERSION}\n\
         Cflags: -I${{includedir}} {cflags}\n\
         Libs: -L${{libdir}} -lncnn_l2norm {libs}\n",
        prefix = prefix.display(),
        cflags = cflags.join(" "),
        libs = ncnn.link_flags.join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_build_names_ncnn() {
        let f = NcnnFlags::of_this_build();
        assert!(!f.include_dirs.is_empty(), "{f:?}");
        assert!(f.link_flags.iter().any(|l| l == "-lncnn"), "{f:?}");
        assert!(
            !f.include_dirs.iter().any(|d| d.ends_with("cpp/include")),
            "{f:?}"
        );
    }

    #[test]
    fn version_file_names_this_version() {
        assert!(cmake_config_version().contains(&format!("set(PACKAGE_VERSION {VERSION})")));
    }
}
