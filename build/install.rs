//! An ncnn install prefix, however it was found: where its headers and
//! library are, and how ncnn was configured (read from its `platform.h`, its
//! cmake package files and, without those, the library itself). Every later
//! step (compiling, linking, exporting) works from this description.

use std::fs;
use std::path::{Path, PathBuf};

/// What we need to know about an installed ncnn.
#[derive(Debug)]
pub struct Ncnn {
    pub prefix: PathBuf,
    pub origin: String,
    pub include_dir: PathBuf,
    pub lib_dir: PathBuf,
    pub shared: bool,
    /// Uses OpenMP: our layer's `#pragma omp` must run on ncnn's runtime.
    pub openmp: bool,
    /// OpenMP through ncnn's own runtime (`NCNN_SIMPLEOMP`): no libgomp.
    pub simpleomp: bool,
    pub threads: bool,
    pub rtti: bool,
    pub exceptions: bool,
    /// The C API has `ncnn_option_set_use_packing_layout` (ncnn 1.0.20250503
    /// does not): the tests that drive nets through the C API can turn packing off.
    pub c_api_packing_option: bool,
    /// The ELF `e_machine` the library's code is for (62 x86-64, 183 aarch64).
    pub machine: Option<u16>,
    /// The cmake toolchain file ncnn was built with, when build.rs built it
    /// with one (a cross build).
    pub toolchain_file: Option<PathBuf>,
    /// Built with `NCNN_VULKAN=ON`: the layer compiles its Vulkan parts.
    pub vulkan: bool,
    /// The glslang libraries a static Vulkan ncnn needs after it at link
    /// time (ncnn's shader compiler), in link order: those of
    /// [`GLSLANG_LIBS`] installed beside libncnn.a. Empty otherwise.
    pub glslang_libs: Vec<String>,
}

/// glslang's static libraries as ncnn's build installs them beside
/// libncnn.a, in an order a single-pass linker accepts (each after those
/// that use it). Older glslang also has OGLCompiler; newer has none of
/// the last two. Only those present are linked.
const GLSLANG_LIBS: &[&str] = &[
    "glslang",
    "SPIRV",
    "MachineIndependent",
    "OSDependent",
    "GenericCodeGen",
    "OGLCompiler",
    "glslang-default-resource-limits",
];

/// Reads an install prefix: headers, library, and how ncnn was configured.
pub fn inspect_prefix(prefix: &Path, origin: &str) -> Option<Ncnn> {
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
    // platform.h says whether ncnn was built with Vulkan; a shared libncnn.so
    // carries glslang inside it, a static libncnn.a needs glslang's libraries.
    let vulkan = platform("NCNN_VULKAN");
    let glslang_libs = if vulkan && !shared {
        GLSLANG_LIBS
            .iter()
            .filter(|name| lib_dir.join(format!("lib{name}.a")).is_file())
            .map(|name| name.to_string())
            .collect()
    } else {
        Vec::new()
    };
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
        machine: elf_machine(&lib_bytes),
        toolchain_file: None,
        vulkan,
        glslang_libs,
    })
}

/// `e_machine` of the first ELF header in `lib`: the shared library's own, or
/// a static library's first object file (ar members are stored as they are).
fn elf_machine(lib: &[u8]) -> Option<u16> {
    let start = lib.windows(4).position(|w| w == b"\x7fELF")?;
    let header = lib.get(start..start + 20)?;
    let bytes = [header[18], header[19]];
    // EI_DATA: 1 little-endian, 2 big-endian.
    Some(match header[5] {
        2 => u16::from_be_bytes(bytes),
        _ => u16::from_le_bytes(bytes),
    })
}
