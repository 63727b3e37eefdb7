//! Fuzz target `kernel`: the kernel against the f64 reference.
//!
//! The input decides a tensor (dims 1-4, extents, elempack, cstep padding,
//! fp32 / fp16 / bf16 storage), the layer's parameters (channels, eps, the
//! four eps modes, channel_shared), the weights, which kinds of values the
//! positions hold (moderate, all zero, with a NaN, with an infinity, with
//! subnormals, huge, tiny) and up to 32 single values anywhere (awkward
//! constants or raw bit patterns). tests/common's seeded `Rng` fills in the
//! rest, so a 64K-element tensor costs a few dozen input bytes. About one
//! input in 128 asks for an unpacked fp32 tensor of 2 MiB (the size from
//! which the AVX-512 path keeps elempack 1 for itself), checked on the best
//! path.
//!
//! Every code path this CPU has (`Forward::run_on`), the public entry point
//! (`l2norm_inplace`, the selected path) and a run split into chunks the way
//! the layer splits positions across threads must:
//! * match `l2norm_reference` at every channel element within the tests'
//!   tolerance (tests/common `close_as`, per storage type), with NaN exactly
//!   where it has NaN and the same infinity where it has one (or the storage
//!   type's largest finite value of its sign, one unit in the last place
//!   away);
//! * leave every other element of the buffer (cstep padding between channel
//!   groups, the tail after the last) bit for bit as it was;
//! * and, split into chunks, give bit for bit what the whole run gave.
//!
//! Value domain. By default every position's sum of squares is 0 or within
//! [2^-120, 2^120] (finite values are clamped to |x| <= 2^40; a position whose
//! squares sum below 2^-120 gets 1.0 in one channel), eps is 0 or within
//! [2^-66, 2^100] and normal weights are within 2^-20 <= |w| <= 2^20 (4 <=
//! |w| with `huge`), so
//! every f32 intermediate of a correct kernel (squares, their sum,
//! 1/denominator, 1/denominator * weight) stays a normal f32. NaN and ±inf
//! values and weights, subnormal values and weights, zero vectors and eps = 0
//! are in the default domain. Three features widen it (see Cargo.toml):
//! * `huge`: finite values up to f32::MAX (sums of squares beyond f32) and
//!   eps up to f32::MAX;
//! * `tiny`: positions whose squares underflow f32 (all |x| below ~2^-63) and
//!   eps below 2^-66 down to the smallest subnormal;
//! * `extreme-weights`: normal weights below 2^-20 or above 2^20 in
//!   magnitude, up to f32::MAX.
//!
//! What the kernel does with infinities (checked here against the
//! reference, which agrees): a position holding ±inf in some channel has a
//! sum of squares of +inf in every eps mode, so 1/denominator is 0: its finite
//! channels come out as ±0 and its infinite ones as NaN (inf * 0). An
//! infinite weight gives ±inf where x != 0 and NaN where x == 0. A NaN
//! anywhere in a position makes the whole position NaN.

#![no_main]

#[path = "../../common/mod.rs"]
mod common;

use arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use ncnn_l2norm::{
    l2norm_inplace, l2norm_reference, ChannelLayout, Element, Forward, Isa, L2NormParams, MatView,
    Storage, TensorMut, BF16, F16,
};

use common::{close_as, Rng};

/// Channel values per tensor, at most (but see LARGE_BYTES).
const MAX_ELEMENTS: usize = 1 << 16;
/// Size of the occasional large tensor: kernel/mod.rs's CACHE_RESIDENT_BYTES.
const LARGE_BYTES: usize = 2 << 20;
/// Default domain bounds (see the module docs).
const MAX_ABS_VALUE: f32 = (1u64 << 40) as f32;
const MIN_SUM_SQUARES: f64 = 7.52316384526264e-37; // 2^-120
const MIN_EPS: f32 = 1.3552527156068805e-20; // 2^-66
const MAX_EPS: f32 = 1.2676506002282294e30; // 2^100
const MAX_ABS_WEIGHT: f32 = (1u32 << 20) as f32;
/// Normal weights below this are raised to it (subnormal ones stay: their
/// results are below f32::MIN_POSITIVE, the tolerance's absolute floor).
/// 1/denominator is at least 2^-100 in the default domain, so
/// 1/denominator * weight stays normal; with `huge` it goes down to 2^-128,
/// and the bound rises to 4 so that `huge` checks the sum of squares alone.
const MIN_ABS_WEIGHT: f32 = if HUGE { 4.0 } else { 9.5367431640625e-7 }; // 2^-20

const HUGE: bool = cfg!(feature = "huge");
const TINY: bool = cfg!(feature = "tiny");
const EXTREME_WEIGHTS: bool = cfg!(feature = "extreme-weights");

/// What the values at one position are like.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// uniform(-1, 1) * 2^e, e around the case's base exponent.
    Moderate,
    /// All channels ±0.
    Zero,
    /// Moderate, with a NaN in one channel.
    Nan,
    /// Moderate, with ±inf in one or more channels.
    Inf,
    /// Moderate, with subnormals (of the storage type) in some channels.
    Subnormal,
    /// The storage type's largest exponents (f32 / bf16: 2^60 to 2^127).
    Huge,
    /// Every channel below 2^-63 (or subnormal) in magnitude.
    Tiny,
}

const KINDS: [Kind; 7] = [
    Kind::Moderate,
    Kind::Zero,
    Kind::Nan,
    Kind::Inf,
    Kind::Subnormal,
    Kind::Huge,
    Kind::Tiny,
];

/// Awkward single values the input can place anywhere.
const SPECIAL: [f32; 20] = [
    0.0,
    -0.0,
    f32::NAN,
    -f32::NAN,
    f32::INFINITY,
    f32::NEG_INFINITY,
    f32::MIN_POSITIVE,
    1e-45,
    -1e-45,
    f32::MAX,
    -f32::MAX,
    1.0,
    -1.0,
    65504.0,
    65520.0,
    1e19,
    -1e-19,
    3e-39,
    5.9604645e-8, // 2^-24, fp16's smallest subnormal
    1e-10,
];

/// An element type's bit patterns (the harness writes padding and special
/// values as raw bits).
trait Bits: Element {
    fn from_bits(b: u32) -> Self;
    fn bits(self) -> u32;
    /// A subnormal of this type from random bits (nonzero).
    fn subnormal(r: u32) -> Self;
    /// A value with one of the type's largest exponents.
    fn huge(r: u32) -> Self;
    /// A value below 2^-63 in magnitude (for fp16: a subnormal).
    fn tiny(r: u32) -> Self;
}

impl Bits for f32 {
    fn from_bits(b: u32) -> Self {
        f32::from_bits(b)
    }
    fn bits(self) -> u32 {
        self.to_bits()
    }
    fn subnormal(r: u32) -> Self {
        f32::from_bits((r & 0x807f_ffff) | 1)
    }
    fn huge(r: u32) -> Self {
        // Exponent field 187..=254: 2^60 to 2^127 (finite).
        let e = 187 + (r >> 8) % 68;
        f32::from_bits((r & 0x8000_0000) | (e << 23) | (r & 0x7f_ffff))
    }
    fn tiny(r: u32) -> Self {
        // Exponent field 0..=63: subnormals up to 2^-64.
        let e = (r >> 8) % 64;
        f32::from_bits((r & 0x8000_0000) | (e << 23) | (r & 0x7f_ffff) | 1)
    }
}

impl Bits for F16 {
    fn from_bits(b: u32) -> Self {
        F16(b as u16)
    }
    fn bits(self) -> u32 {
        u32::from(self.0)
    }
    fn subnormal(r: u32) -> Self {
        F16(((r & 0x83ff) | 1) as u16)
    }
    fn huge(r: u32) -> Self {
        F16(((r & 0x8000) | 0x7800 | (r & 0x3ff)) as u16)
    }
    fn tiny(r: u32) -> Self {
        Self::subnormal(r)
    }
}

impl Bits for BF16 {
    fn from_bits(b: u32) -> Self {
        BF16(b as u16)
    }
    fn bits(self) -> u32 {
        u32::from(self.0)
    }
    fn subnormal(r: u32) -> Self {
        BF16(((r & 0x807f) | 1) as u16)
    }
    fn huge(r: u32) -> Self {
        BF16((f32::huge(r).to_bits() >> 16) as u16)
    }
    fn tiny(r: u32) -> Self {
        BF16((f32::tiny(r).to_bits() >> 16) as u16 | 1)
    }
}

/// An override of one value: `(position, channel, value)`.
#[derive(Debug)]
struct Poke {
    position: usize,
    channel: usize,
    /// Index into SPECIAL, or raw bits.
    value: Result<usize, u32>,
}

#[derive(Debug)]
struct Case {
    storage: Storage,
    /// Shape in the storage's element size, cstep as chosen.
    view: MatView,
    layout: ChannelLayout,
    params: L2NormParams,
    weights: Vec<f32>,
    /// Elements (of the storage type) after the tensor's last group.
    tail: usize,
    seed: u64,
    /// Relative frequency of each Kind (indexed like KINDS).
    kind_mix: [u8; 7],
    base_exponent: i32,
    exponent_spread: i32,
    pokes: Vec<Poke>,
    /// Chunks to split the positions into for the chunked run, and on which path.
    chunks: usize,
    chunk_isa: usize,
    /// A tensor of LARGE_BYTES or more: checked on the best path only.
    large: bool,
}

/// A count between 1 and `max`, small ones likelier (log-uniform-ish).
fn small_count(u: &mut Unstructured, max: usize) -> Result<usize> {
    let bits = u.int_in_range(0..=usize::BITS - max.leading_zeros())?;
    let hi = ((1usize << bits) - 1).clamp(1, max);
    u.int_in_range(1..=hi)
}

/// A weight: mostly uniform(-30, 30); with probability `awkward / 256` one
/// of zero, -0, NaN, ±inf, a subnormal, raw bits or a large value.
fn weight(awkward: u8, rng: &mut Rng) -> f32 {
    if (rng.next_u64() & 0xff) as u8 >= awkward {
        return rng.uniform(-30.0, 30.0);
    }
    let w = match rng.next_u64() % 8 {
        0 => 0.0,
        1 => -0.0,
        2 => f32::NAN,
        3 => f32::INFINITY,
        4 => f32::NEG_INFINITY,
        5 => f32::subnormal(rng.next_u64() as u32),
        6 => f32::from_bits(rng.next_u64() as u32),
        _ => rng.uniform(-1.0, 1.0) * MAX_ABS_WEIGHT,
    };
    if w.is_finite() && w.abs() > MAX_ABS_WEIGHT && !EXTREME_WEIGHTS {
        MAX_ABS_WEIGHT.copysign(w)
    } else if w.is_normal() && w.abs() < MIN_ABS_WEIGHT && !EXTREME_WEIGHTS {
        MIN_ABS_WEIGHT.copysign(w)
    } else {
        w
    }
}

fn eps(u: &mut Unstructured) -> Result<f32> {
    const LIST: [f32; 10] = [0.0, 1e-10, 1e-12, 1e-6, 1e-3, 1e-2, 0.5, 1.0, 100.0, 1e4];
    let e = match u.int_in_range(0..=3u8)? {
        0 | 1 => *u.choose(&LIST)?,
        // 2^-66 .. 2^100 with a random mantissa.
        2 => {
            let exponent = 127 - 66 + u.int_in_range(0..=166u32)?;
            f32::from_bits((exponent << 23) | (u.arbitrary::<u32>()? & 0x7f_ffff))
        }
        // Any non-negative finite f32, subnormals and f32::MAX included.
        _ => f32::from_bits((u.arbitrary::<u32>()? & 0x7fff_ffff).min(0x7f7f_ffff)),
    };
    // Outside the default domain unless a feature allows it.
    let e = if e > MAX_EPS && !HUGE {
        MAX_EPS
    } else if e > 0.0 && e < MIN_EPS && !TINY {
        MIN_EPS
    } else {
        e
    };
    Ok(e)
}

fn case(u: &mut Unstructured, seed: u64) -> Result<Case> {
    // What the values are like comes first, in few bytes, so that short
    // inputs (libFuzzer starts short) reach every kind of position and weight.
    let storage = *u.choose(&[Storage::F32, Storage::F16, Storage::BF16])?;
    let nibbles = u.arbitrary::<u32>()?;
    let mut kind_mix = [0u8; 7];
    for (i, m) in kind_mix.iter_mut().enumerate() {
        *m = ((nibbles >> (4 * i)) & 15) as u8;
    }
    kind_mix[0] += 1; // some moderate positions, always
    let awkward_weights = u.arbitrary::<u8>()?;
    let mode = u.int_in_range(0..=3i32)?;
    let shared = u.ratio(1, 4)?;
    let eps = eps(u)?;
    let base_exponent = u.int_in_range(-10..=10i32)?;
    let exponent_spread = u.int_in_range(0..=4i32)?;

    // ncnn packs by 1, 4, 8 and 16; 2 and 3 are the kernel's other divisor of
    // 16 and a non-divisor (the portable path), as tests/kernel.rs uses them.
    let lanes = *u.choose(&[1usize, 1, 4, 4, 8, 8, 16, 16, 2, 3])?;
    let mut dims = u.int_in_range(1..=4i32)?;
    let mut groups = small_count(u, 4096 / lanes)?;
    let mut ext = [1usize; 3]; // w, h, d of the positions
    let n_ext = match dims {
        1 => 0,
        2 => 1,
        3 => 2,
        _ => 3,
    };
    for e in ext.iter_mut().take(n_ext) {
        *e = small_count(u, 256)?;
    }
    // Keep the tensor within 4096 elements (3 inputs in 4: fast runs) or
    // MAX_ELEMENTS: shrink positions, then groups.
    let cap = if u.int_in_range(0..=3u8)? == 3 {
        MAX_ELEMENTS
    } else {
        4096
    };
    while groups * lanes * ext.iter().product::<usize>() > cap {
        if let Some(e) = ext.iter_mut().filter(|e| **e > 1).max() {
            *e /= 2;
        } else {
            groups /= 2;
        }
    }
    // Now and then (1 in 128) an unpacked fp32 tensor of 2 MiB or more: below
    // that the AVX-512 path hands unpacked tensors to AVX2 (kernel/mod.rs,
    // CACHE_RESIDENT_BYTES), so only these reach AVX-512 with elempack 1,
    // the path of large unpacked blobs in real nets. (Its 16-bit loads and
    // stores are the ones packed tensors use.) Such a case takes ~0.3 s.
    let large = lanes == 1 && storage == Storage::F32 && u.int_in_range(0..=127u8)? == 127;
    if large {
        dims = dims.max(2);
        groups = groups.min(1024);
        let min_elements = LARGE_BYTES / storage.bytes();
        ext = [
            min_elements.div_ceil(groups) + u.int_in_range(0..=64usize)?,
            1,
            1,
        ];
    }
    let positions: usize = ext.iter().product();
    let (w, h, d) = (ext[0] as i32, ext[1] as i32, ext[2] as i32);
    let g = groups as i32;
    let lanes_i = lanes as i32;
    let view = match dims {
        1 => MatView::dims1(g, lanes_i),
        2 => MatView::dims2(w, g, lanes_i),
        3 => MatView::dims3(w, h, g, lanes_i),
        _ => MatView::dims4(w, h, d, g, lanes_i),
    };
    let view = match storage {
        Storage::F32 => view,
        _ => view.with_16bit_storage(),
    };
    // cstep for dims 3 and 4: exact, ncnn's (16-byte aligned), or padded.
    let view = if dims >= 3 {
        let aligned = (positions * view.elemsize).div_ceil(16) * 16 / view.elemsize;
        let cstep = match u.int_in_range(0..=3u8)? {
            0 => aligned,
            1 => positions,
            2 => aligned + u.int_in_range(1..=40usize)?,
            _ => positions + u.int_in_range(1..=7usize)?,
        };
        view.with_cstep(cstep)
    } else {
        view
    };
    let layout = view
        .layout(storage)
        .expect("the harness builds valid views");
    let channels = groups * lanes;
    let params = L2NormParams::from_raw(channels as i64, eps, mode, shared as i32, &[])
        .expect("the harness builds valid parameters");
    let mut rng = Rng::new(seed ^ 0x5eed);
    let weights = (0..params.weight_count())
        .map(|_| weight(awkward_weights, &mut rng))
        .collect();
    let tail = u.int_in_range(0..=8usize)?;
    let chunks = u.int_in_range(1..=4usize)?;
    let chunk_isa = u.arbitrary::<u8>()? as usize;
    let mut pokes = Vec::new();
    while pokes.len() < 32 && !u.is_empty() {
        let position = u.int_in_range(0..=positions - 1)?;
        let channel = u.int_in_range(0..=channels - 1)?;
        let value = if u.ratio(3, 4)? {
            Ok(u.choose_index(SPECIAL.len())?)
        } else {
            Err(u.arbitrary::<u32>()?)
        };
        pokes.push(Poke {
            position,
            channel,
            value,
        });
    }
    Ok(Case {
        storage,
        view,
        layout,
        params,
        weights,
        tail,
        seed,
        kind_mix,
        base_exponent,
        exponent_spread,
        pokes,
        chunks,
        chunk_isa,
        large,
    })
}

/// Buffer index of channel `ch` at position `p`.
fn index(l: &ChannelLayout, ch: usize, p: usize) -> usize {
    (ch / l.lanes) * l.group_stride + p * l.lanes + ch % l.lanes
}

/// The buffer: channel values as the case says, everything else random bits.
fn fill<E: Bits>(c: &Case) -> Vec<E> {
    let l = &c.layout;
    let len = c.view.buffer_elements() * l.lanes + c.tail;
    let mut rng = Rng::new(c.seed);
    let mut buf: Vec<E> = (0..len)
        .map(|_| E::from_bits(rng.next_u64() as u32))
        .collect();
    let total: u32 = c.kind_mix.iter().map(|&m| u32::from(m)).sum();
    let channels = l.channels();
    let mut pos_values = vec![0.0f32; channels];
    for p in 0..l.positions {
        let mut pick = (rng.next_u64() % u64::from(total)) as u32;
        let mut kind = Kind::Moderate;
        for (k, &m) in KINDS.iter().zip(&c.kind_mix) {
            if pick < u32::from(m) {
                kind = *k;
                break;
            }
            pick -= u32::from(m);
        }
        let spread = c.exponent_spread;
        let e = c.base_exponent + (rng.next_u64() % (2 * spread as u64 + 1)) as i32 - spread;
        let scale = 2f32.powi(e);
        for (ch, v) in pos_values.iter_mut().enumerate() {
            let r = rng.next_u64() as u32;
            let x = match kind {
                Kind::Zero => E::from_f32(if r & 1 == 0 { 0.0 } else { -0.0 }),
                Kind::Huge => E::huge(r),
                Kind::Tiny => E::tiny(r),
                Kind::Subnormal if r % 3 == 0 => E::subnormal(r >> 2),
                _ => E::from_f32(rng.uniform(-1.0, 1.0) * scale),
            };
            buf[index(l, ch, p)] = x;
            *v = x.to_f32();
        }
        let r = rng.next_u64() as usize;
        match kind {
            Kind::Nan => buf[index(l, r % channels, p)] = E::from_f32(f32::NAN),
            Kind::Inf => {
                for k in 0..1 + (r >> 32) % 3 {
                    let inf = if (r >> k) & 1 == 0 {
                        f32::INFINITY
                    } else {
                        f32::NEG_INFINITY
                    };
                    buf[index(l, (r + k * 7919) % channels, p)] = E::from_f32(inf);
                }
            }
            _ => {}
        }
    }
    for poke in &c.pokes {
        let x = match poke.value {
            Ok(i) => E::from_f32(SPECIAL[i]),
            Err(bits) => E::from_bits(bits),
        };
        buf[index(l, poke.channel, poke.position)] = x;
    }
    // Keep to the default domain unless a feature widens it.
    for p in 0..l.positions {
        let mut ss = 0.0f64;
        for ch in 0..channels {
            let i = index(l, ch, p);
            let x = buf[i].to_f32();
            if x.is_finite() && x.abs() > MAX_ABS_VALUE && !HUGE {
                buf[i] = E::from_f32(MAX_ABS_VALUE.copysign(x));
            }
            let x = f64::from(buf[i].to_f32());
            if x.is_finite() {
                ss += x * x;
            }
        }
        if ss > 0.0 && ss < MIN_SUM_SQUARES && !TINY {
            buf[index(l, 0, p)] = E::from_f32(1.0);
        }
    }
    buf
}

/// Panics, describing the case, unless `got` matches `want` at every channel
/// element and `original` everywhere else.
fn check<E: Bits>(
    c: &Case,
    what: &str,
    original: &[E],
    got: &[E],
    want: &[E],
    is_channel: &[bool],
) {
    let l = &c.layout;
    for (i, ((&o, &g), &w)) in original.iter().zip(got).zip(want).enumerate() {
        if !is_channel[i] {
            assert!(
                g.bits() == o.bits(),
                "{what}: element {i} outside the tensor changed: {:#x} -> {:#x}\n{c:#?}",
                o.bits(),
                g.bits()
            );
            continue;
        }
        if close_as::<E>(g.to_f32(), w.to_f32(), l.channels()) {
            continue;
        }
        // Which channel and position, and what the position held.
        let (grp, rest) = (i / l.group_stride, i % l.group_stride);
        let (p, lane) = (rest / l.lanes, rest % l.lanes);
        let ch = grp * l.lanes + lane;
        let inputs: Vec<f32> = (0..l.channels())
            .map(|k| original[index(l, k, p)].to_f32())
            .collect();
        let ss: f64 = inputs.iter().map(|&x| f64::from(x).powi(2)).sum();
        let weight = c.weights[if c.params.channel_shared { 0 } else { ch }];
        // docs/numerics.md's edge values: where a position's factor lies below 2^-64
        // (a huge norm or a huge eps) the exact path scales its values by
        // 2^e (e < 0, leaving a factor in [2^-64, 2^-63)), and a value that
        // this takes to 0 in the storage type meets an infinite weight as
        // 0 · inf = NaN where the reference has ±inf.
        let k = c.params.eps_mode.inv_norm_f64(ss, f64::from(c.params.eps));
        let e = k.log2().floor() as i32 + 64;
        let scaled = f64::from(original[i].to_f32()) * 2f64.powi(e.min(0));
        if weight.is_infinite()
            && g.to_f32().is_nan()
            && w.to_f32().is_infinite()
            && !(2f64.powi(-64)..=2f64.powi(64)).contains(&k)
            && E::from_f32(scaled as f32).to_f32() == 0.0
        {
            continue;
        }
        panic!(
            "{what} {:?}: channel {ch} position {p}: got {} want {} (input {}, weight {})\n\
             position's inputs (sum of squares {ss:e}): {:?}\n{c:#?}",
            c.storage,
            g.to_f32(),
            w.to_f32(),
            original[i].to_f32(),
            c.weights[if c.params.channel_shared { 0 } else { ch }],
            &inputs[..inputs.len().min(64)],
        );
    }
}

fn run<E: Bits>(c: &Case) {
    let l = c.layout;
    let original = fill::<E>(c);
    let mut is_channel = vec![false; original.len()];
    for p in 0..l.positions {
        for ch in 0..l.channels() {
            is_channel[index(&l, ch, p)] = true;
        }
    }
    let want = l2norm_reference(&original, &c.view, &c.params, &c.weights).expect("reference");
    let forward = Forward::new::<E>(&c.view, &c.params, &c.weights).expect("valid case");
    // Large tensors take the best path only (the others are the same code
    // as on small tensors, and each pass costs milliseconds).
    let mut isas = Isa::available();
    if c.large {
        isas.drain(..isas.len() - 1);
    }
    let mut whole = Vec::new();
    for &isa in &isas {
        let mut got = original.clone();
        let mut t = TensorMut::from_slice(&mut got, *forward.layout()).expect("buffer fits");
        forward.run_on(isa, &mut t);
        check(c, &format!("{isa:?}"), &original, &got, &want, &is_channel);
        whole.push(got);
    }
    if !c.large {
        let mut got = original.clone();
        l2norm_inplace(&mut got, &c.view, &c.params, &c.weights).expect("valid case");
        check(c, "l2norm_inplace", &original, &got, &want, &is_channel);
    }

    // Chunks as the layer's threads run them: each chunk through its own
    // TensorMut over the shared buffer, one after another.
    let k = c.chunk_isa % isas.len();
    let mut got = original.clone();
    for i in 0..c.chunks {
        let r = forward.chunk_positions(i, c.chunks);
        // SAFETY: `got` holds the whole tensor (the layout's min_len checked
        // by from_slice above on a buffer of the same length) and nothing
        // else borrows it; chunks run one after another.
        let mut t = unsafe { TensorMut::from_raw_positions(got.as_mut_ptr(), l, r) };
        forward.run_on(isas[k], &mut t);
    }
    for (i, (g, w)) in got.iter().zip(&whole[k]).enumerate() {
        let same = g.bits() == w.bits() || (g.to_f32().is_nan() && w.to_f32().is_nan());
        assert!(
            same,
            "{:?} in {} chunks: element {i} is {} but the whole run gave {}\n{c:#?}",
            isas[k],
            c.chunks,
            g.to_f32(),
            w.to_f32()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The values' seed is a hash of the whole input (FNV-1a: fixed, unlike
    // std's hasher, so committed inputs mean the same values on every
    // toolchain), so any mutation varies them without spending input bytes.
    let seed = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut u = Unstructured::new(data);
    let Ok(c) = case(&mut u, seed) else { return };
    match c.storage {
        Storage::F32 => run::<f32>(&c),
        Storage::F16 => run::<F16>(&c),
        Storage::BF16 => run::<BF16>(&c),
    }
});
