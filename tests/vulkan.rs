//! The layer on Vulkan (docs/vulkan.md): the shader against the f64 reference
//! on awkward shapes, every eps mode, packing and storage; huge, tiny and
//! special values; a net mixing CPU and GPU layers; the bundled SSD on the
//! GPU against the CPU; bad input. The C++ side is `tests/cpp/vulkan_layer.cpp`
//! and `ssd-demo --gpu`.
//!
//! These need an ncnn built with `NCNN_VULKAN=ON` (the `vulkan` configuration
//! of `.ci/matrix`) and a Vulkan device (lavapipe: Debian's
//! `mesa-vulkan-drivers libvulkan1`). Without either, the run prints
//! `tests/vulkan.rs: SKIPPED, nothing on Vulkan was tested: <why>` on the
//! terminal (past libtest's capture) and each test `skipped: Vulkan: <why>`
//! (seen with `--show-output`, collected by `.ci/matrix`) and passes, unless
//! `NCNN_L2NORM_REQUIRE_VULKAN=1` (set by `.ci/matrix vulkan`) makes the
//! absence a failure.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

use common::cpp::{build_program, target_command};

const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models");

/// `Some(program)` when the layer has its Vulkan parts and ncnn finds a
/// device; `None` after printing why not (or a panic when required).
fn vulkan_program() -> Option<&'static Path> {
    static PROGRAM: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PROGRAM.get_or_init(|| {
        let found = find_program();
        if let Err(why) = &found {
            // Straight to the terminal, past libtest's capture, once: a plain
            // `cargo test` shows that these tests checked nothing.
            let _ = writeln!(
                std::io::stderr().lock(),
                "\ntests/vulkan.rs: SKIPPED, nothing on Vulkan was tested: {why}\n"
            );
        }
        found
    });
    match found {
        Ok(exe) => Some(exe.as_path()),
        Err(why) => {
            let required = std::env::var("NCNN_L2NORM_REQUIRE_VULKAN").is_ok_and(|v| v == "1");
            assert!(!required, "NCNN_L2NORM_REQUIRE_VULKAN=1 but {why}");
            // For `--show-output` and .ci/matrix's summary of skipped parts.
            println!("skipped: Vulkan: {why}");
            None
        }
    }
}

/// Builds the C++ test program and asks it for the device.
fn find_program() -> Result<PathBuf, String> {
    if env!("NCNN_L2NORM_NCNN_VULKAN") != "1" {
        return Err("this build's ncnn has NCNN_VULKAN off; build the `vulkan` configuration (.ci/matrix vulkan, docs/vulkan.md)".into());
    }
    let exe = build_program("tests/cpp/vulkan_layer.cpp", &["-O1"]);
    let out = run(&exe, "info");
    let (stdout, stderr) = text(&out);
    match out.status.code() {
        Some(0) => {
            eprintln!("{}", stdout.trim());
            Ok(exe)
        }
        Some(3) => Err(format!(
            "ncnn finds no Vulkan device (install a driver: Debian's mesa-vulkan-drivers libvulkan1 give lavapipe)\n{stderr}"
        )),
        _ => panic!("vulkan_layer info failed:\n{stdout}\n{stderr}"),
    }
}

fn run(exe: &Path, mode: &str) -> Output {
    target_command(exe)
        .arg(mode)
        .output()
        .expect("run vulkan_layer")
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs one mode of the C++ program; it prints a line per case and
/// "<mode> ok" at the end.
fn run_mode(mode: &str) -> Option<String> {
    let exe = vulkan_program()?;
    let out = run(exe, mode);
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout.contains(&format!("\n{mode} ok\n")),
        "vulkan_layer {mode} failed:\n{stdout}\n{stderr}"
    );
    Some(stdout)
}

#[test]
fn shader_matches_the_reference_on_every_shape_mode_packing_and_storage() {
    let Some(stdout) = run_mode("shapes") else {
        return;
    };
    // Every storage and packing ran (fp16 storage only where the device has it).
    for needle in [
        "elempack 1 fp32",
        "elempack 4 fp32",
        "elempack 8 fp32",
        "elempack 4 fp16-packed",
        "elempack 8 fp16-packed",
        "C 513",
        "dims 1",
        "dims 2",
        "dims 4",
        "eps_mode 3",
        "shared 1",
    ] {
        assert!(stdout.contains(needle), "no case with {needle}:\n{stdout}");
    }
    if !stdout.contains("skipped: fp16 storage") {
        assert!(stdout.contains("elempack 4 fp16-storage"), "{stdout}");
    }
    if !stdout.contains("skipped: bf16 blobs") {
        assert!(stdout.contains("elempack 4 bf16-packed"), "{stdout}");
    }
    eprintln!("{}", stdout.lines().rev().nth(1).unwrap_or(""));
}

#[test]
fn huge_tiny_zero_nan_and_infinite_values_as_on_the_cpu() {
    let Some(stdout) = run_mode("edges") else {
        return;
    };
    assert!(
        stdout.contains("near FLT_MAX, eps_mode 3, elempack 4"),
        "{stdout}"
    );
}

#[test]
fn net_mixing_cpu_and_gpu_layers_matches_the_cpu() {
    let Some(stdout) = run_mode("net") else {
        return;
    };
    // A configuration is skipped only where ncnn's own CPU fallback fails
    // its control (it says so); at least one ran, on the GPU.
    assert!(
        stdout.lines().any(|l| l.starts_with("net on the GPU (")),
        "{stdout}"
    );
    if !stdout.contains("skipped: the mixed net on the GPU (fp32 blobs, packing on)") {
        assert!(
            stdout.contains("4 threads x 5 extractions on one net"),
            "{stdout}"
        );
        // The fallback layer ran on the CPU, ours on the GPU.
        assert!(
            stdout.contains("norm2  L2NormCpu    on the CPU"),
            "{stdout}"
        );
        assert!(
            stdout.contains("norm1  L2Norm       on the GPU"),
            "{stdout}"
        );
    }
    // Every configuration ran the net with no CPU layer in it.
    assert!(
        stdout.contains("GPU-only net (fp32 blobs, packing on)")
            && stdout.contains("GPU-only net (ncnn's default blobs, packing off)"),
        "{stdout}"
    );
    if !stdout.contains("skipped: elempack 8 through a net") {
        assert!(
            stdout.contains("GPU-only net (fp32 blobs, packing on, pack8)"),
            "{stdout}"
        );
    }
    eprintln!("{stdout}");
}

#[test]
fn bad_input_gives_a_code_and_one_log_line() {
    let Some(exe) = vulkan_program() else {
        return;
    };
    let out = run(exe, "errors");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success() && stdout.contains("\nerrors ok\n"),
        "{stdout}\n{stderr}"
    );
    // Each case's stderr (after its "case:" marker) holds exactly one line
    // from the layer, naming it.
    let cases: Vec<&str> = stderr.split("case: ").skip(1).collect();
    assert_eq!(cases.len(), 5, "{stderr}");
    for case in cases {
        let lines = case
            .lines()
            .filter(|l| l.contains("L2Norm vk_norm: "))
            .count();
        assert_eq!(lines, 1, "expected one log line for: {case}");
    }
}

/// One detection: label, score, normalised box.
#[derive(Debug, Clone, Copy)]
struct Det {
    label: i32,
    score: f32,
    b: [f32; 4],
}

/// `ssd-demo --eval` on the bundled images with `extra` options: the
/// detections per image, and the demo's stderr.
fn ssd_eval(extra: &[&str]) -> (Vec<Vec<Det>>, String) {
    let images: Vec<String> = std::fs::read_dir(format!("{MODELS}/images"))
        .unwrap()
        .flatten()
        .map(|e| e.path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(".png") && !p.ends_with("_annotated.png"))
        .collect();
    assert!(images.len() >= 3, "{images:?}");
    let list =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("vk-list{}.txt", extra.join("")));
    let mut sorted = images.clone();
    sorted.sort();
    std::fs::write(&list, sorted.join("\n") + "\n").unwrap();
    let out = target_command(env!("CARGO_BIN_EXE_ssd-demo"))
        .args(["--models", MODELS, "--eval", list.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("run ssd-demo");
    let (stdout, stderr) = text(&out);
    assert!(
        out.status.success(),
        "ssd-demo {extra:?} failed:\n{stdout}\n{stderr}"
    );
    let mut result: Vec<Vec<Det>> = Vec::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.first() {
            Some(&"image") => result.push(Vec::new()),
            Some(&"det") => {
                let v: Vec<f32> = f[3..8].iter().map(|x| x.parse().unwrap()).collect();
                result.last_mut().unwrap().push(Det {
                    label: f[1].parse().unwrap(),
                    score: v[0],
                    b: [v[1], v[2], v[3], v[4]],
                });
            }
            _ => {}
        }
    }
    assert_eq!(result.len(), sorted.len(), "{stdout}");
    (result, stderr)
}

/// Largest difference in score or coordinate between detections paired in
/// order (the demo sorts them by score); Err when labels or counts differ
/// among those scoring above `floor`.
fn compare(a: &[Vec<Det>], b: &[Vec<Det>], floor: f32) -> Result<f32, String> {
    let mut worst = 0f32;
    for (x, y) in a.iter().zip(b) {
        let x: Vec<&Det> = x.iter().filter(|d| d.score > floor).collect();
        for d in x {
            // Its counterpart: same label, closest box.
            let best = y
                .iter()
                .filter(|e| e.label == d.label)
                .map(|e| {
                    (0..4)
                        .map(|i| (d.b[i] - e.b[i]).abs())
                        .fold((d.score - e.score).abs(), f32::max)
                })
                .fold(f32::INFINITY, f32::min);
            if !best.is_finite() {
                return Err(format!("{d:?} has no counterpart"));
            }
            worst = worst.max(best);
        }
    }
    Ok(worst)
}

#[test]
fn ssd_on_vulkan_gives_the_cpu_detections() {
    if vulkan_program().is_none() {
        return;
    }
    let (cpu, _) = ssd_eval(&["--threads", "2", "--no-fp16-arithmetic"]);
    let (gpu32, stderr) = ssd_eval(&["--gpu", "--gpu-fp32"]);
    assert!(stderr.contains("on Vulkan device 0: "), "{stderr}");
    let (gpu16, _) = ssd_eval(&["--gpu"]);
    assert!(
        cpu.iter().any(|d| !d.is_empty()),
        "no detections on the CPU"
    );
    // fp32 blobs: the convolutions sum in another order on the device; 1e-4
    // in a score or normalised coordinate. ncnn's default fp16 blobs round
    // every blob to 11 bits: 1e-2. Both ways, above a score of 0.05 (lower
    // ones may cross DetectionOutput's threshold of 0.01 either way).
    for (name, gpu, tol) in [("fp32", &gpu32, 1e-4f32), ("fp16", &gpu16, 1e-2)] {
        let ab = compare(&cpu, gpu, 0.05).unwrap_or_else(|e| panic!("{name}: CPU -> GPU: {e}"));
        let ba = compare(gpu, &cpu, 0.05).unwrap_or_else(|e| panic!("{name}: GPU -> CPU: {e}"));
        eprintln!(
            "SSD on Vulkan ({name} blobs) vs the CPU: largest difference {:.2e}",
            ab.max(ba)
        );
        assert!(
            ab.max(ba) <= tol,
            "{name}: largest difference {} > {tol}",
            ab.max(ba)
        );
    }
}
