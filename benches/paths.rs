//! `cargo bench --bench paths`: the kernel's code paths side by side, in
//! Rust, without ncnn's layer around them: every path this CPU has (the
//! portable one included) on `--bench l2norm`'s tensors, elempacks and storage
//! types, alternating within each sample so all of them meet the same
//! machine state, against a memory floor measured in the same loop.
//!
//! This is the benchmark to run on an ARM board: there it times the NEON
//! path and the portable one against the floor (under qemu the times track
//! instruction counts, not a CPU's speed; label them emulated).
//!
//! The floor is `x *= k` over the tensor's bytes as f32, compiled for the
//! best vector width the CPU has (AVX-512F, AVX2 or the target's baseline),
//! so for 16-bit storage it is a floor on memory traffic, not on the
//! conversions; `cargo bench --bench l2norm` has the converting floor.
//!
//! A column is what the layer runs with that path selected: like the layer,
//! `avx512f` hands unpacked fp32 and fp16 tensors under 1 MiB to AVX2.
//!
//! Columns: the floor's and each path's median milliseconds per call, each
//! path's ratio to the floor, and the portable path's ratio to each other
//! path (`portable/sse2` on x86 and `portable/neon` on aarch64 compare the
//! same vector width written with intrinsics).
//!
//! `-- --quick` takes 5 samples instead of 15; `-- --only 512x38x38` times
//! one tensor; `-- --storage fp32` one storage type.

use std::hint::black_box;
use std::time::Instant;

use ncnn_l2norm::{Element, Forward, Isa, L2NormParams, MatView, TensorMut, BF16, F16};

const TENSORS: [(i32, i32, i32); 5] = [
    (512, 38, 38),
    (512, 64, 64),
    (1024, 19, 19),
    (256, 150, 150),
    (64, 19, 19),
];
const ELEMPACKS: [i32; 4] = [1, 4, 8, 16];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value_after = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .map(|i| args.get(i + 1).cloned().unwrap_or_default())
    };
    let only = value_after("--only");
    let storage = value_after("--storage");
    let samples = if quick { 5 } else { 15 };
    let paths = Isa::available();
    println!(
        "CPU as the kernel reads it: {}",
        ncnn_l2norm::CpuInfo::get()
    );
    println!(
        "Kernel paths on this CPU ({}), medians of {samples} samples, 1 thread; floor: {}.\n",
        paths
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", "),
        floor::NAME
    );
    print!("| tensor | elempack | storage | floor ms |");
    for p in &paths {
        print!(" {} ms |", p.name());
    }
    for p in &paths {
        print!(" {}/floor |", p.name());
    }
    // The portable path against each other path: against SSE2 or NEON is
    // the same vector width with intrinsics.
    for p in &paths[1..] {
        print!(" portable/{} |", p.name());
    }
    println!();
    println!("{}|", "|---".repeat(4 + 3 * paths.len() - 1));
    for (c, h, w) in TENSORS {
        let name = format!("{c}x{h}x{w}");
        if only.as_ref().is_some_and(|o| *o != name) {
            continue;
        }
        for elempack in ELEMPACKS {
            for s in ["fp32", "fp16", "bf16"] {
                if storage.as_ref().is_some_and(|o| o != s) {
                    continue;
                }
                let view = MatView::dims3(w, h, c / elempack, elempack);
                let row = match s {
                    "fp32" => time::<f32>(view, &paths, samples),
                    "fp16" => time::<F16>(view.with_16bit_storage(), &paths, samples),
                    _ => time::<BF16>(view.with_16bit_storage(), &paths, samples),
                };
                print!("| {c} x {h} x {w} | {elempack} | {s} | {:.4} |", row.floor);
                for t in &row.paths {
                    print!(" {:.4} |", t);
                }
                for t in &row.paths {
                    print!(" {:.2} |", t / row.floor);
                }
                for t in &row.paths[1..] {
                    print!(" {:.2} |", row.paths[0] / t);
                }
                println!();
            }
        }
    }
}

struct Row {
    /// Milliseconds per call.
    floor: f64,
    paths: Vec<f64>,
}

fn time<E: Element>(view: MatView, paths: &[Isa], samples: usize) -> Row {
    let layout = view.layout(E::STORAGE).expect("a valid tensor");
    let channels = layout.channels();
    let params = L2NormParams::new(channels).expect("valid parameters");
    let weights = vec![1.0f32; channels];
    let forward = Forward::new::<E>(&view, &params, &weights).expect("a checked call");
    let input: Vec<E> = (0..layout.min_len)
        .map(|i| E::from_f32((i * 7919 % 1000) as f32 * 0.004 - 2.0))
        .collect();
    let mut work = input.clone();
    let bytes = layout.min_len * E::STORAGE.bytes();
    let floor_input = vec![1.0f32; bytes / 4];
    let mut floor_work = floor_input.clone();
    // Before every timed call the input is written afresh (untimed), as
    // the layer before this one leaves it in a net: in L2 when it fits,
    // else partly in L3. Every contender meets the same state, and every
    // call the same values.
    let calls = (8_000_000 / bytes).max(1); // per sample: ~8 MB of tensor
    let mut t_floor = Vec::with_capacity(samples);
    let mut t_paths = vec![Vec::with_capacity(samples); paths.len()];
    // One warm-up round, then the samples. The order in which the floor
    // (contender 0) and the paths run turns by one each sample: whichever
    // ran just before another changed its time by up to 7% here.
    let n = paths.len() + 1;
    for sample in 0..=samples {
        let mut secs = vec![0.0; n];
        for _ in 0..calls {
            for j in 0..n {
                let c = (j + sample) % n;
                if c == 0 {
                    floor_work.copy_from_slice(&floor_input);
                    let start = Instant::now();
                    floor::scale(&mut floor_work, black_box(1.0));
                    secs[0] += start.elapsed().as_secs_f64();
                } else {
                    work.copy_from_slice(&input);
                    let mut t = TensorMut::from_slice(&mut work, *forward.layout())
                        .expect("the buffer holds the tensor");
                    let start = Instant::now();
                    forward.run_on(paths[c - 1], &mut t);
                    secs[c] += start.elapsed().as_secs_f64();
                }
            }
        }
        if sample > 0 {
            t_floor.push(secs[0] * 1e3 / calls as f64);
            for (t, s) in t_paths.iter_mut().zip(&secs[1..]) {
                t.push(s * 1e3 / calls as f64);
            }
        }
    }
    Row {
        floor: median(t_floor),
        paths: t_paths.into_iter().map(median).collect(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `x *= k`, compiled for the widest vectors the CPU has.
mod floor {
    #[cfg(target_arch = "x86_64")]
    pub const NAME: &str = "x *= k over the same bytes as f32 (AVX-512F, else AVX2, else SSE2)";
    #[cfg(not(target_arch = "x86_64"))]
    pub const NAME: &str = "x *= k over the same bytes as f32 (the target's baseline vectors)";

    #[inline(always)]
    fn plain(x: &mut [f32], k: f32) {
        for v in x {
            *v *= k;
        }
    }

    #[cfg(target_arch = "x86_64")]
    pub fn scale(x: &mut [f32], k: f32) {
        #[target_feature(enable = "avx512f")]
        fn avx512(x: &mut [f32], k: f32) {
            plain(x, k)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(x: &mut [f32], k: f32) {
            plain(x, k)
        }
        if is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F (checked just above).
            unsafe { avx512(x, k) }
        } else if is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2 (checked just above).
            unsafe { avx2(x, k) }
        } else {
            plain(x, k)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn scale(x: &mut [f32], k: f32) {
        plain(x, k)
    }
}
