//! `ncnn-l2norm`: the project's command-line tool. It is not part of the layer.
//!
//! `ncnn-l2norm fuse in.param in.bin out.param out.bin [--normalize] [--moduleop] [--pnnx-param P]`
//!
//! Replaces the L2Norm subgraphs that pnnx and onnx2ncnn emit (square, sum
//! over channels, sqrt, + eps, divide, scale) by one `L2Norm` layer, with
//! `--normalize` also ncnn `Normalize` layers in channel mode (and the
//! multiply after one), and with `--moduleop` renames pnnx moduleop L2Norm
//! layers to `L2Norm`. Prints what it fused; on any problem prints why,
//! writes nothing and exits non-zero.
//!
//! `ncnn-l2norm install --prefix DIR [--staticlib PATH]`
//!
//! Installs the headers, `libncnn_l2norm.a` (and `.so` next to a shared
//! libncnn), a CMake package and a pkg-config file (see `package`).
//!
//! # Why the tools live here and not in the library
//!
//! `src/` holds two things. The layer (`lib.rs`, `kernel/`, `layout.rs`,
//! `params.rs`, `error.rs`, `bridge.rs`, `c_api.rs`) is the library: the
//! `rlib` Rust code uses and the `libncnn_l2norm.a` C++ apps link. The tools
//! in this folder (`model/`: reading and rewriting ncnn models for `fuse`;
//! `package.rs`: what `install` writes; this file: the command line) are
//! compiled into this binary only, as its own modules, and use the layer
//! through its public API (`ncnn_l2norm::...`) like any other user of it.
//!
//! A `tools` cargo feature or a `#[doc(hidden)] pub mod tools` in the library
//! would also have kept the tools out of the layer's rustdoc, but a staticlib
//! archives all of its crate's code: with a feature on by default (or with
//! `doc(hidden)`, always), the `libncnn_l2norm.a` that `cargo build --release`
//! leaves for C++ apps would carry the model parser, the fuser and the
//! packager's templates, and a feature off by default would have left
//! `tests/fuse.rs` out of `cargo test`. Here the library cannot reach tool
//! code at all. The tools' unit tests run with `cargo test` (this binary's
//! test target), and `tests/fuse.rs` and `benches/l2norm.rs` compile
//! `model/` into themselves with `#[path]`, so they test exactly the code
//! this binary runs.

mod model;
mod package;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use model::fuse::{fuse_files, FuseOptions};
use package::{install, NcnnFlags};

const USAGE: &str = "usage: ncnn-l2norm fuse IN.param IN.bin OUT.param OUT.bin [--normalize] [--moduleop] [--pnnx-param P]
       ncnn-l2norm install --prefix DIR [--staticlib PATH]

fuse:

Replaces each decomposed L2Norm (Split / square / Reduction sum / sqrt / + eps /
div / mul by a MemoryData weight, as pnnx and onnx2ncnn write SSD's L2Norm) by one
L2Norm layer with the same eps, eps mode and weights. Other layers and their
weights are copied unchanged. A chain without eps (torch's dynamo export drops it)
gets 1e-10 added to the norm, and the tool says so.

A sum pnnx wrote with no axes (ONNX opset >= 13 and dynamo exports) is repaired
from pnnx's IN.pnnx.param (NAME.pnnx.param beside NAME.ncnn.param, as pnnx
writes it) when that file says it is the channel sum; otherwise it is refused.

  --normalize       also turn ncnn Normalize layers in channel mode (0=0 4=1) into
                    L2Norm, folding a multiply by a per-channel constant after one
                    (torchvision's SSD300) into its weights
  --moduleop        rename pnnx moduleop L2Norm layers (type <module path>.L2Norm,
                    weight shape -23310) to L2Norm with eps 1e-10 written, so that
                    register_l2norm(net) loads them
  --pnnx-param P    pnnx's .pnnx.param for this model, when not beside IN.param

Exit status: 0 when at least one layer was fused, 1 on any error (nothing is written),
2 on bad usage.

install:
Writes DIR/include/ncnn_l2norm/, DIR/lib/libncnn_l2norm.a (and libncnn_l2norm.so
when the ncnn this was built against is shared), DIR/lib/cmake/ncnn_l2norm/ (for
find_package(ncnn_l2norm)) and DIR/lib/pkgconfig/ncnn_l2norm.pc.
  --staticlib PATH  the libncnn_l2norm.a to install (default: the one `cargo build`
                    left next to this program)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("install") {
        return install_command(&args[1..]);
    }
    let mut opts = FuseOptions::default();
    let mut files = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--normalize" => opts.normalize = true,
            "--moduleop" => opts.moduleop = true,
            "--pnnx-param" => match it.next() {
                Some(p) => opts.pnnx_param = Some(PathBuf::from(p)),
                None => {
                    eprintln!("ncnn-l2norm: --pnnx-param needs a path\n\n{USAGE}");
                    return ExitCode::from(2);
                }
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            s if s.starts_with("--") => {
                eprintln!("ncnn-l2norm: unknown option {s}\n\n{USAGE}");
                return ExitCode::from(2);
            }
            s => files.push(s),
        }
    }
    let [cmd, in_param, in_bin, out_param, out_bin] = files[..] else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    if cmd != "fuse" {
        eprintln!("ncnn-l2norm: unknown command {cmd:?}\n\n{USAGE}");
        return ExitCode::from(2);
    }
    match fuse_files(
        Path::new(in_param),
        Path::new(in_bin),
        Path::new(out_param),
        Path::new(out_bin),
        opts,
    ) {
        Ok(report) => {
            println!("{report}");
            println!("wrote {out_param} and {out_bin}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ncnn-l2norm: {e}\nnothing written");
            ExitCode::from(1)
        }
    }
}

fn install_command(args: &[String]) -> ExitCode {
    let mut prefix = None;
    let mut staticlib = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.clone().next()) {
            ("--prefix", Some(v)) => prefix = Some(PathBuf::from(v)),
            ("--staticlib", Some(v)) => staticlib = Some(PathBuf::from(v)),
            ("-h" | "--help", _) => {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            _ => {
                eprintln!("ncnn-l2norm install: unexpected {a:?}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
        it.next();
    }
    let Some(prefix) = prefix else {
        eprintln!("ncnn-l2norm install: --prefix DIR is required\n\n{USAGE}");
        return ExitCode::from(2);
    };
    let staticlib = match staticlib.map_or_else(built_staticlib, Ok) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("ncnn-l2norm install: {e}");
            return ExitCode::from(1);
        }
    };
    match install(&prefix, &staticlib, &NcnnFlags::of_this_build()) {
        Ok(files) => {
            for f in files {
                println!("installed {}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ncnn-l2norm install: {e}");
            ExitCode::from(1)
        }
    }
}

/// `libncnn_l2norm.a` next to this program, as `cargo build` leaves it;
/// refused when a newer one sits in `deps/` (`cargo run` and `cargo test`
/// rebuild the library there without copying it out).
fn built_staticlib() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate this program: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let lib = dir.join("libncnn_l2norm.a");
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let Some(lib_time) = modified(&lib) else {
        return Err(format!(
            "{} not found: run `cargo build --release` first, or pass --staticlib",
            lib.display()
        ));
    };
    let newer_in_deps = std::fs::read_dir(dir.join("deps"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("libncnn_l2norm-") && name.ends_with(".a")
        })
        .find(|p| modified(p).is_some_and(|t| t > lib_time));
    if let Some(newer) = newer_in_deps {
        return Err(format!(
            "{} is older than {}: run `cargo build --release` to refresh it, or pass --staticlib",
            lib.display(),
            newer.display()
        ));
    }
    Ok(lib)
}
