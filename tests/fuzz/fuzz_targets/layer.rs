//! Fuzz target `layer`: the ncnn layer's load_param / load_model / forward
//! through ncnn's C API, on `.param` text and `.bin` bytes built from the
//! input.
//!
//! The net is `Input -> L2Norm -> out`. The L2Norm line carries random
//! param dict entries: ids 0, 1, 2, 3 and 10 with well- and ill-typed values
//! (ints, floats, strings, old-style `-233xx=n,...` and new-style `id=a,b`
//! arrays, with lengths that disagree with their elements, and tokens ncnn's
//! parser refuses), duplicates, and extra ids (featmask 31, shape hints 30,
//! out-of-range ids). The `.bin` is the right number of weights, truncated,
//! too long, or garbage of any length. Options: 1 or 2 threads, packing on
//! or off, fp16 / bf16 storage on or off.
//!
//! For every input (stderr noise from NCNN_LOGE is expected; run with
//! `-close_fd_mask=2` to hide it):
//! * no crash, panic, sanitizer report or hang;
//! * load_param returns ncnn's error code (-1) exactly when the text is
//!   malformed or the L2Norm entries the layer reads from it (modelled here
//!   from ncnn's ParamDict typing rules, each with the type ncnn records for
//!   it, and checked with `L2NormParams::from_param_dict`) are invalid or of
//!   the wrong type, and 0 otherwise (shape hints, id 30, make success
//!   unpredictable, so only failure is checked then);
//! * load_model returns -1 exactly when the `.bin` holds fewer bytes than
//!   the weights need;
//! * when both load, a forward on a small input (dims 1-4) with the layer's
//!   channel count returns 0 and the input's shape, matching the f64
//!   reference within the tests' tolerance when the weights and eps are
//!   ordinary; an input with another channel count returns -1.

#![no_main]

#[path = "../../common/mod.rs"]
mod common;

use std::ffi::c_int;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ncnn_l2norm::{l2norm_reference, Element, L2NormParams, LayerParamDict, ParamValue, Storage, BF16};

use common::{tolerance, Net, Rng, Tensor};

// ncnn's C API as bindgen generated it for tests/common.
use common::c_api_bindings::{
    ncnn_net_get_option, ncnn_option_set_use_bf16_storage, ncnn_option_set_use_fp16_storage,
};

/// What ncnn's ParamDict makes of one value, and the type it records.
#[derive(Debug, Clone, PartialEq)]
enum Parsed {
    /// Type 2.
    Int(i32),
    /// Type 3.
    Float(f32),
    /// Types 4-6: 32-bit words (a float element's bits), recorded as a float
    /// array (6), an int array (5) or, when empty, untyped (4).
    Array { words: Vec<i32>, float: bool },
    /// Type 7.
    Str(String),
    /// The parser refuses the line.
    Error,
}

#[derive(Debug)]
struct Entry {
    /// The id as the layer sees it (old-style arrays: -23300 - key).
    id: i32,
    text: String,
    parsed: Parsed,
}

const INTS: [i32; 18] = [
    0,
    1,
    2,
    3,
    4,
    -1,
    -4,
    7,
    16,
    24,
    512,
    513,
    4096,
    1 << 20,
    (1 << 20) + 1,
    i32::MAX,
    i32::MIN,
    99_999_999,
];

const FLOATS: [f32; 14] = [
    0.0,
    -0.0,
    1e-10,
    1e-45,
    1e-38,
    0.5,
    1.0,
    -1.0,
    16.0,
    100.0,
    3.4028235e38,
    -1e-10,
    2.0,
    1e-6,
];

/// Tokens ncnn's parser refuses (with NCNN_VALIDATION, ncnn's default).
const BAD_TOKENS: [&str; 9] = [
    "1.5.3",
    "0x10",
    "-inf",
    "1e39",
    "2147483648",
    "",
    "1e",
    "--1",
    "+",
];

const STRINGS: [&str; 5] = ["abc", "\"a b\"", "nan", "inf", "L2Norm"];

fn int(u: &mut Unstructured) -> Result<i32> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 | 1 => *u.choose(&INTS)?,
        2 => u.int_in_range(1..=64)?,
        _ => u.arbitrary()?,
    })
}

fn float(u: &mut Unstructured) -> Result<f32> {
    Ok(if u.ratio(3, 4)? {
        *u.choose(&FLOATS)?
    } else {
        let f = f32::from_bits(u.arbitrary()?);
        if f.is_finite() {
            f
        } else {
            1.5
        }
    })
}

/// `{:?}` of a finite f32 always has a '.' or an 'e', so ncnn reads a float.
fn float_text(f: f32) -> String {
    format!("{f:?}")
}

/// One array element: its text, whether ncnn reads it as a float, its word.
fn element(u: &mut Unstructured, as_float: Option<bool>) -> Result<(String, bool, i32)> {
    let is_float = match as_float {
        Some(f) => f,
        None => u.ratio(1, 4)?,
    };
    Ok(if is_float {
        let f = float(u)?;
        (float_text(f), true, f.to_bits() as i32)
    } else {
        let i = if u.ratio(1, 2)? {
            u.int_in_range(0..=600)?
        } else {
            int(u)?
        };
        (i.to_string(), false, i)
    })
}

/// A value for `id`: its text after `=` and what ncnn makes of it.
fn value(u: &mut Unstructured) -> Result<(String, Parsed)> {
    Ok(match u.int_in_range(0..=9u8)? {
        0..=3 => {
            let i = int(u)?;
            (i.to_string(), Parsed::Int(i))
        }
        4 | 5 => {
            let f = float(u)?;
            (float_text(f), Parsed::Float(f))
        }
        6 | 7 => {
            // New-style array: the first element decides the type of all.
            let n = u.int_in_range(1..=5usize)?;
            let (first, is_float, word) = element(u, None)?;
            let mut text = first;
            let mut words = vec![word];
            let mut parsed_ok = true;
            for _ in 1..n {
                let (t, f, w) = element(u, None)?;
                text.push(',');
                text.push_str(&t);
                if is_float && !f {
                    // An int token read as a float.
                    let v: i32 = t.parse().unwrap();
                    words.push((v as f32).to_bits() as i32);
                } else if !is_float && f {
                    parsed_ok = false; // a float token where ints are read
                } else {
                    words.push(w);
                }
            }
            let array = |words| Parsed::Array {
                words,
                float: is_float,
            };
            if n == 1 && u.ratio(1, 2)? {
                text.push(','); // a one-element array
                (text, array(words))
            } else if n == 1 {
                // A plain scalar after all.
                let parsed = if is_float {
                    Parsed::Float(f32::from_bits(words[0] as u32))
                } else {
                    Parsed::Int(words[0])
                };
                (text, parsed)
            } else if parsed_ok {
                (text, array(words))
            } else {
                (text, Parsed::Error)
            }
        }
        8 => {
            let text = u.choose(&STRINGS)?.to_string();
            let content = text.trim_matches('"').to_string();
            (text, Parsed::Str(content))
        }
        _ => (u.choose(&BAD_TOKENS)?.to_string(), Parsed::Error),
    })
}

/// An old-style array `-233xx=n,e1,...`: its text and what ncnn makes of it.
fn old_array(u: &mut Unstructured) -> Result<(String, Parsed)> {
    let n = u.int_in_range(0..=5usize)?;
    let declared = match u.int_in_range(0..=7u8)? {
        0 => n + 1,
        1 if n > 0 => n - 1,
        _ => n,
    };
    let mut text = declared.to_string();
    let mut words = Vec::new();
    let mut float = false;
    for _ in 0..n {
        let (t, f, w) = element(u, None)?;
        text.push(',');
        text.push_str(&t);
        words.push(w);
        float = f; // ncnn records the last element's type for the array
    }
    let parsed = if declared != n {
        Parsed::Error
    } else {
        Parsed::Array { words, float }
    };
    Ok((text, parsed))
}

fn entry(u: &mut Unstructured, id: i32) -> Result<Entry> {
    let old = u.ratio(1, 5)?;
    let (key, (text, parsed)) = if old {
        (-23300 - id, old_array(u)?)
    } else {
        (id, value(u)?)
    };
    Ok(Entry {
        id,
        text: format!("{key}={text}"),
        parsed,
    })
}

/// The layer's entries as ncnn's ParamDict records them, each with its type
/// (later entries replacing earlier ones).
fn layer_values(entries: &[Entry]) -> LayerParamDict {
    let value = |id: i32| match entries.iter().rev().find(|e| e.id == id).map(|e| &e.parsed) {
        None | Some(Parsed::Error) => ParamValue::Absent,
        Some(Parsed::Int(i)) => ParamValue::Int(*i),
        Some(Parsed::Float(f)) => ParamValue::Float(*f),
        Some(Parsed::Array { words, .. }) if words.is_empty() => ParamValue::UntypedArray(Vec::new()),
        Some(Parsed::Array { words, float: true }) => {
            ParamValue::FloatArray(words.iter().map(|&w| f32::from_bits(w as u32)).collect())
        }
        Some(Parsed::Array { words, float: false }) => ParamValue::IntArray(words.clone()),
        Some(Parsed::Str(s)) => ParamValue::String(s.clone()),
    };
    LayerParamDict {
        channels: value(0),
        eps: value(1),
        eps_mode: value(2),
        channel_shared: value(3),
        weight_shape: value(10),
    }
}

#[derive(Debug)]
struct Case {
    param: String,
    /// Malformed text: load_param must fail.
    malformed: bool,
    /// An entry whose effect on success ncnn decides (shape hints).
    unpredictable: bool,
    params: Result<L2NormParams, ncnn_l2norm::L2NormError>,
    bin: Vec<u8>,
    /// The bin holds ordinary weights (value checks apply).
    ordinary_weights: bool,
    threads: i32,
    packing: bool,
    fp16: bool,
    bf16: bool,
    /// bf16 storage for this layer (the net's option, unless featmask masks it).
    layer_bf16: bool,
    input_shape: Vec<i32>,
    input_seed: u64,
}

fn case(u: &mut Unstructured) -> Result<Case> {
    let threads = u.int_in_range(1..=2)?;
    let packing = u.arbitrary()?;
    let fp16 = u.arbitrary()?;
    let bf16 = u.arbitrary()?;
    let mut entries = Vec::new();
    // The layer's own ids, each present or not, some twice.
    for id in [0, 1, 2, 3, 10] {
        for _ in 0..u.int_in_range(0..=2u8)? {
            entries.push(entry(u, id)?);
        }
    }
    // Extra ids: ignored ones, featmask, shape hints, ids ncnn refuses.
    for _ in 0..u.int_in_range(0..=3u8)? {
        let e = match u.int_in_range(0..=9u8)? {
            0..=5 => {
                let id = u.int_in_range(4..=29)?;
                entry(u, if id == 10 { 11 } else { id })?
            }
            6 => {
                let featmask = u.int_in_range(0..=255)?;
                Entry {
                    id: 31,
                    text: format!("31={featmask}"),
                    parsed: Parsed::Int(featmask),
                }
            }
            7 => entry(u, 30)?,
            8 => {
                let id = *u.choose(&[32, 40, 99])?;
                let key = if u.arbitrary()? { id } else { -23300 - id };
                Entry {
                    id,
                    text: format!("{key}=1"),
                    parsed: Parsed::Error,
                }
            }
            _ => Entry {
                id: -1,
                text: "-1=1".to_string(),
                parsed: Parsed::Error,
            },
        };
        entries.push(e);
    }
    // Shuffle a little: move one entry to the end.
    if entries.len() > 1 {
        let i = u.choose_index(entries.len())?;
        let e = entries.remove(i);
        entries.push(e);
    }
    let sep = if u.ratio(1, 8)? { "\t" } else { " " };
    let mut line = String::from("L2Norm norm 1 1 data out");
    for e in &entries {
        line.push_str(sep);
        line.push_str(&e.text);
    }
    let param = format!("7767517\n2 2\nInput data 0 1 data\n{line}\n");
    let malformed = entries.iter().any(|e| e.parsed == Parsed::Error);
    let unpredictable = entries.iter().any(|e| e.id == 30);
    let dict = layer_values(&entries);
    // ncnn masks the layer's options with featmask (id 31): bit 2 turns
    // bf16 storage off for it.
    let featmask = match entries.iter().rev().find(|e| e.id == 31) {
        Some(Entry {
            parsed: Parsed::Int(m),
            ..
        }) => *m,
        _ => 0,
    };
    let layer_bf16 = bf16 && featmask & (1 << 2) == 0;
    let params = L2NormParams::from_param_dict(&dict);

    // The .bin.
    let needed = params.as_ref().map_or(16, |p| p.weight_count() * 4);
    let mut rng = Rng::new(u64::from(u.arbitrary::<u32>()?));
    let mut ordinary_weights = false;
    let bin: Vec<u8> = match u.int_in_range(0..=7u8)? {
        0..=3 => {
            ordinary_weights = true;
            common::f32_bytes(&rng.vec(needed / 4, -30.0, 30.0))
        }
        4 => (0..needed).map(|_| rng.next_u64() as u8).collect(),
        5 => {
            let cut = u.int_in_range(0..=needed.max(1) - 1)?;
            common::f32_bytes(&rng.vec(needed / 4, 1.0, 2.0))[..cut].to_vec()
        }
        6 => {
            let mut b = common::f32_bytes(&rng.vec(needed / 4, -1.0, 1.0));
            b.extend((0..u.int_in_range(1..=64)?).map(|_| rng.next_u64() as u8));
            b
        }
        _ => {
            let len = u.int_in_range(0..=2 * needed + 16)?;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        }
    };

    // The input: the layer's channel count or another one.
    let dims = u.int_in_range(1..=4usize)?;
    let layer_channels = params.as_ref().map_or(16, |p| p.channels) as i32;
    let channels = if u.ratio(7, 8)? {
        layer_channels
    } else {
        u.int_in_range(1..=64)?
    };
    let mut shape: Vec<i32> = (0..dims - 1).map(|_| 1).collect();
    for s in shape.iter_mut() {
        *s = u.int_in_range(1..=9)?;
    }
    // [w], [w, h], [w, h, c], [w, h, d, c]: channels are w for dims 1, h for dims 2.
    match dims {
        1 => shape = vec![channels],
        2 => shape = vec![shape[0], channels],
        _ => shape.push(channels),
    }
    let input_seed = u.arbitrary()?;
    Ok(Case {
        param,
        malformed,
        unpredictable,
        params,
        bin,
        ordinary_weights,
        threads,
        packing,
        fp16,
        bf16,
        layer_bf16,
        input_shape: shape,
        input_seed,
    })
}

/// ncnn's own fp32 -> bf16 (`float32_to_bfloat16`: round half up on the bits).
fn bf16_ncnn(x: f32) -> f32 {
    f32::from_bits(((x.to_bits().wrapping_add(0x8000)) >> 16) << 16)
}

/// Whether `got` matches the reference for `input` (values read as `E`,
/// rounded from fp32 by `round`) within the tests' tolerance for `E`.
fn matches_as<E: Element>(
    input: &Tensor,
    round: impl Fn(f32) -> f32,
    p: &L2NormParams,
    weights: &[f32],
    got: &[f32],
) -> Result<(), String> {
    let rounded: Vec<E> = input.data.iter().map(|&x| E::from_f32(round(x))).collect();
    let view = match E::STORAGE {
        Storage::F32 => input.view(),
        _ => input.view().with_16bit_storage(),
    };
    let want = l2norm_reference(&rounded, &view, p, weights).map_err(|e| e.to_string())?;
    for (i, (&g, w)) in got.iter().zip(&want).enumerate() {
        let w = w.to_f32();
        let ok =
            (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tolerance::<E>(p.channels, w);
        if !ok {
            return Err(format!("element {i}: got {g} want {w} ({:?})", E::STORAGE));
        }
    }
    Ok(())
}

fn run(c: &Case) {
    let net = Net::new("L2Norm", c.threads, c.packing);
    // SAFETY: a live net; the option pointer points into it.
    unsafe {
        let opt = ncnn_net_get_option(net.raw().cast());
        ncnn_option_set_use_fp16_storage(opt, c.fp16 as c_int);
        ncnn_option_set_use_bf16_storage(opt, c.bf16 as c_int);
    }
    let loaded = net.load(&c.param, &c.bin);
    let expect_param_ok = !c.malformed && c.params.is_ok();
    match loaded {
        Err(("load_param", code)) => {
            assert_eq!(code, -1, "load_param's error code\n{c:#?}");
            assert!(
                !expect_param_ok || c.unpredictable,
                "load_param failed ({code}) on valid parameters\n{c:#?}"
            );
            return;
        }
        _ => assert!(
            expect_param_ok,
            "load_param succeeded on {} parameters\n{c:#?}",
            if c.malformed { "malformed" } else { "invalid" }
        ),
    }
    let p = c.params.as_ref().unwrap();
    let enough = c.bin.len() >= p.weight_count() * 4;
    match loaded {
        Err((_, code)) => {
            assert_eq!(code, -1, "load_model's error code\n{c:#?}");
            assert!(
                !enough,
                "load_model failed ({code}) on a {}-byte bin\n{c:#?}",
                c.bin.len()
            );
            return;
        }
        Ok(()) => assert!(
            enough,
            "load_model accepted a {}-byte bin\n{c:#?}",
            c.bin.len()
        ),
    }

    let n: i32 = c.input_shape.iter().product();
    if n > 1 << 16 {
        return; // keep runs fast; load_param/load_model were the point
    }
    let mut rng = Rng::new(c.input_seed);
    // No value halfway between two bf16s: ncnn rounds such ties to even in
    // its AVX512-BF16 cast (vcvtneps2bf16) but away from zero in the scalar
    // tail of the same cast, so which way a tie goes depends on its place in
    // the row. Away from ties both roundings agree, and the reference below
    // stays exact. (Found by this target on a CPU with AVX512-BF16: 4096
    // channels of 3x3, one tie in a row's ninth element.)
    let data = rng
        .vec(n as usize, -4.0, 4.0)
        .into_iter()
        .map(|x| {
            let bits = x.to_bits();
            if bits & 0xffff == 0x8000 {
                f32::from_bits(bits + 1)
            } else {
                x
            }
        })
        .collect();
    let input = Tensor {
        shape: c.input_shape.clone(),
        data,
    };
    let channels = match c.input_shape.len() {
        1 => c.input_shape[0],
        2 => c.input_shape[1],
        _ => *c.input_shape.last().unwrap(),
    };
    let result = net.run("data", &input, &["out"]);
    if channels as usize != p.channels {
        assert_eq!(
            result.err(),
            Some(-1),
            "input with {channels} channels\n{c:#?}"
        );
        return;
    }
    let out = match result {
        Ok(mut outs) => outs.remove(0),
        Err(code) => panic!("forward failed ({code}) on a matching input\n{c:#?}"),
    };
    assert_eq!(out.shape, input.shape, "output shape\n{c:#?}");
    let weights: Vec<f32> = c
        .bin
        .chunks_exact(4)
        .take(p.weight_count())
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    if !c.ordinary_weights {
        return;
    }
    // fp32, unless the net cast to bf16 (x86: bf16 storage on for the
    // layer). Either
    // rounding of the input to bf16 (ncnn's own, or to nearest even) is
    // accepted.
    let verdict = if c.layer_bf16 {
        matches_as::<BF16>(&input, bf16_ncnn, p, &weights, &out.data)
            .or_else(|_| matches_as::<BF16>(&input, |x| x, p, &weights, &out.data))
    } else {
        matches_as::<f32>(&input, |x| x, p, &weights, &out.data)
    };
    if let Err(e) = verdict {
        panic!("forward output differs from the reference: {e}\n{c:#?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(c) = case(&mut u) else { return };
    run(&c);
});
