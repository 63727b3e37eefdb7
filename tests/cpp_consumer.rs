//! C++ programs built exactly as README tells C++ users (our header, our
//! static library, their libncnn, the flags build.rs derived from it), run and
//! checked: a consumer app, and the layer's error handling called directly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::cpp::{build_program, target_command};

fn build(src: &str) -> PathBuf {
    build_program(src, &["-O1"])
}

fn run(exe: &Path, args: &[&str]) -> Output {
    target_command(exe)
        .args(args)
        .output()
        .expect("run the C++ test program")
}

#[test]
fn cpp_app_links_registers_and_runs() {
    let exe = build("tests/cpp/consumer.cpp");
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models");
    let out = run(&exe, &[models]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "consumer failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("consumer ok"), "{stdout}");
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("worst relative error"))
            .count(),
        8,
        "{stdout}"
    );

    // NCNN_L2NORM_ISA caps the code path for the whole process: the
    // portable path, and this architecture's first vector path.
    let vector = if cfg!(target_arch = "aarch64") {
        "neon"
    } else {
        "sse2"
    };
    for (isa, name) in [
        ("portable", "portable"),
        ("scalar", "portable"),
        (vector, vector),
    ] {
        let out = target_command(&exe)
            .arg(models)
            .env("NCNN_L2NORM_ISA", isa)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("consumer ok"),
            "{isa}: {stdout}"
        );
        assert!(
            stdout.contains(&format!("kernel path: {name}\n")),
            "{isa}: {stdout}"
        );
    }
}

#[test]
fn demo_source_builds_standalone() {
    // The demo is also a plain C++ program for people who copy it.
    let out = build_program("cpp/l2norm_demo.cpp", &["-O1", "-DL2NORM_DEMO_STANDALONE"]);
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models");
    let r = run(&out, &["--models", models, "--runs", "3"]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(stdout.contains("per-position channel norm"), "{stdout}");
    // A wrong models directory is a clear error, not a crash.
    let r = run(&out, &["--models", "/nonexistent"]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stderr).contains("cannot load"));
}

#[test]
fn fp16_bf16_and_packed_blobs_as_ncnn_layer_tests_pass_them() {
    let exe = build("tests/cpp/layer_storage.cpp");
    let out = run(&exe, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("storage ok"));
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.ends_with("of tolerance ok"))
            .count(),
        4 * 4 * 3 * 2,
        "{stdout}"
    );
}

#[test]
fn one_net_many_threads_gives_bit_identical_outputs() {
    // -pthread: std::thread in the test program itself.
    let exe = build_program("tests/cpp/concurrency.cpp", &["-O1", "-pthread"]);
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/ncnn-models");
    let out = run(&exe, &[models, "250"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout
            .lines()
            .filter(|l| l.contains("one Net, 8 threads x 250 forwards: 0 mismatches, 0 failures"))
            .count(),
        4,
        "{stdout}"
    );
}

/// Each case: the ncnn return code, and what the layer's one log line must
/// say (None: the layer logs nothing).
const CASES: &[(&str, i32, Option<&str>)] = &[
    ("zero_channels", -1, Some("channels (param 0) is 0;")),
    (
        "missing_channels",
        -1,
        Some("channels (param 0) is missing; give 0=C"),
    ),
    (
        "eps_string",
        -1,
        Some("eps (param 1) is the string \"nan\"; it must be a number"),
    ),
    (
        "eps_mode_float",
        -1,
        Some("eps_mode (param 2) is the float 1; it must be an int"),
    ),
    (
        "channel_shared_float",
        -1,
        Some("channel_shared (param 3) is the float 1; it must be an int"),
    ),
    (
        "channels_float",
        -1,
        Some("channels (param 0) is the float 8; it must be an int"),
    ),
    (
        "channels_array",
        -1,
        Some("channels (param 0) is an array of 2 values; it must be an int"),
    ),
    (
        "weight_shape_scalar",
        -1,
        Some("weight shape (param 10) is the int 16; it must be an int array"),
    ),
    (
        "weight_shape_string",
        -1,
        Some("weight shape (param 10) is the string \"1,16\"; it must be an int array"),
    ),
    (
        "tiny_negative_eps",
        -1,
        Some("eps (param 1) is -1e-30; it must be finite"),
    ),
    ("negative_channels", -1, Some("channels (param 0) is -4")),
    (
        "absurd_channels",
        -1,
        Some("channels (param 0) is 100000000"),
    ),
    ("negative_eps", -1, Some("eps (param 1) is -1;")),
    ("bad_eps_mode", -1, Some("eps_mode (param 2) is 9")),
    (
        "bad_channel_shared",
        -1,
        Some("channel_shared (param 3) is 5"),
    ),
    (
        "shape_disagrees",
        -1,
        Some("weight shape (param 10) says 8"),
    ),
    ("bad_shape", -1, Some("weight shape (param 10) is [3, 16]")),
    ("load_model_before_param", -1, Some("load_model before")),
    (
        "truncated_bin",
        -100,
        Some("the .bin ended before 16 fp32 weights"),
    ),
    (
        "weight_count_mismatch",
        -1,
        Some("expected 16 fp32 weights, got 7"),
    ),
    (
        "fp16_weights",
        -1,
        Some("weights are a Mat of 16-bit elements (elemsize 2, elempack 1); expected a 1-D Mat of 16 fp32 values; convert fp16 weights"),
    ),
    (
        "int8_weights",
        -1,
        Some("weights are a Mat of 8-bit elements (elemsize 1, elempack 1); expected a 1-D Mat of 16 fp32 values; L2Norm has no int8 weights"),
    ),
    (
        "packed_weights",
        -1,
        Some("weights are a Mat of 32-bit elements (elemsize 16, elempack 4)"),
    ),
    (
        "2d_weights",
        -1,
        Some("weights are a 2-D Mat (w=16 h=1 d=1 c=1)"),
    ),
    (
        "weights_swapped_before_forward",
        -1,
        Some("weights are a Mat of 16-bit elements"),
    ),
    (
        "int8_packed_input",
        -1,
        Some("elemsize 8 at elempack 8, i.e. 1-byte elements; fp32 storage needs 4 bytes per value; an int8 blob needs a Dequantize"),
    ),
    ("batched_input", 0, None),
    (
        "register_over_builtin",
        0,
        Some("registered as \"Normalize\", which replaces ncnn's built-in Normalize layer in this net"),
    ),
    (
        "channel_mismatch",
        -1,
        Some("input has 8 channels but the layer was loaded with 16"),
    ),
    ("empty_input", -100, Some("input is empty")),
    ("unsupported_dims", -1, Some("dims=5")),
    (
        "16bit_without_storage_option",
        -1,
        Some("neither fp16 nor bf16"),
    ),
    ("3_byte_elements", -1, Some("elemsize 3")),
    ("empty_type_name", -1, Some("non-empty type name")),
    ("good_input", 0, None),
];

#[test]
fn bad_input_gets_an_ncnn_error_and_one_log_line() {
    let exe = build("tests/cpp/layer_errors.cpp");
    let out = run(&exe, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "layer_errors crashed ({:?}):\n{stdout}\n{stderr}",
        out.status
    );
    for line in stdout.lines().filter(|l| l.starts_with("skipped:")) {
        println!("{line}");
    }

    for &(name, code, log) in CASES {
        let got = stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("case {name} did not report:\n{stdout}"));
        assert_eq!(
            got.trim().parse::<i32>().unwrap(),
            code,
            "case {name} return code"
        );

        let section: Vec<&str> = stderr
            .split(&format!("=== {name}\n"))
            .nth(1)
            .unwrap_or_else(|| panic!("no stderr section for {name}:\n{stderr}"))
            .lines()
            .take_while(|l| !l.starts_with("=== "))
            // ncnn's own lines (e.g. "ModelBin read weight_data failed") may come too.
            .filter(|l| l.contains("L2Norm"))
            .collect();
        match log {
            None => assert!(section.is_empty(), "case {name} logged {section:?}"),
            Some(text) => {
                assert_eq!(
                    section.len(),
                    1,
                    "case {name} should log one line, logged {section:?}"
                );
                assert!(
                    section[0].contains(text),
                    "case {name}: {:?} lacks {text:?}",
                    section[0]
                );
            }
        }
    }
}
