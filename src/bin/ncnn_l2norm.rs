//! `ncnn-l2norm fuse in.param in.bin out.param out.bin [--normalize]`
//!
//! Replaces the L2Norm subgraphs that pnnx and onnx2ncnn emit (square, sum
//! over channels, sqrt, + eps, divide, scale) by one `L2Norm` layer, and with
//! `--normalize` also ncnn `Normalize` layers in channel mode. Prints what it
//! fused; on any problem prints why, writes nothing and exits non-zero.

use std::path::Path;
use std::process::ExitCode;

use ncnn_l2norm::model::fuse::{fuse_files, FuseOptions};

const USAGE: &str = "usage: ncnn-l2norm fuse IN.param IN.bin OUT.param OUT.bin [--normalize]

Replaces each decomposed L2Norm (Split / square / Reduction sum / sqrt / + eps /
div / mul by a MemoryData weight, as pnnx and onnx2ncnn write SSD's L2Norm) by one
L2Norm layer with the same eps, eps mode and weights. Other layers and their
weights are copied unchanged.

  --normalize   also turn ncnn Normalize layers in channel mode (0=0 4=1) into L2Norm

Exit status: 0 when at least one layer was fused, 1 on any error (nothing is written),
2 on bad usage.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut opts = FuseOptions::default();
    let mut files = Vec::new();
    for a in &args {
        match a.as_str() {
            "--normalize" => opts.normalize = true,
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
