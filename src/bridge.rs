//! The cxx bridge the C++ layer (`cpp/l2norm_layer.cpp`) calls.
//!
//! Nothing fails across it by unwinding: every function returns a status the
//! C++ side maps to an ncnn return code, and a panic (a bug) is caught here and
//! reported as an internal error rather than aborting the host app.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::L2NormError;
use crate::kernel::element::{Element, Storage, BF16, F16};
use crate::kernel::Forward;
use crate::layout::{MatView, TensorMut};
use crate::params::{EpsMode, L2NormParams, LayerParamDict, ParamValue};

#[cxx::bridge(namespace = "ncnn_l2norm::bridge")]
mod ffi {
    // ---- Shared structs ----

    /// An ncnn::Mat's shape fields.
    struct MatShape {
        dims: i32,
        w: i32,
        h: i32,
        d: i32,
        c: i32,
        elempack: i32,
        elemsize: usize,
        cstep: usize,
        /// 0 fp32, 1 fp16, 2 bf16 (ncnn tells 16-bit types apart by its
        /// options, so the layer decides); -1 for 16-bit data neither enables.
        storage: i32,
        /// Batch count (`Mat::n`); 1 on ncnn releases without batched Mats.
        n: i32,
    }

    /// One ParamDict entry, as ncnn recorded it.
    struct ParamEntry {
        /// `ParamDict::type`: 0 absent, 1 untyped scalar (.param.bin), 2 int,
        /// 3 float, 4 untyped array, 5 int array, 6 float array, 7 string.
        kind: i32,
        /// `get(id, int)`: the value for kind 2, the raw bits for kind 1.
        int_value: i32,
        /// `get(id, float)`: the value for kind 3.
        float_value: f32,
        /// `get(id, std::string)`: the value for kind 7.
        text: String,
        /// The array's 32-bit words for kinds 4 to 6.
        words: Vec<u32>,
    }

    /// The ParamDict entries an L2Norm layer reads.
    struct ParamDictEntries {
        /// Param 0.
        channels: ParamEntry,
        /// Param 1.
        eps: ParamEntry,
        /// Param 2.
        eps_mode: ParamEntry,
        /// Param 3.
        channel_shared: ParamEntry,
        /// Param 10 (pnnx's weight shape, `-23310=` in a .param line).
        weight_shape: ParamEntry,
    }

    /// The layer's checked parameters, as `check_params` resolved them.
    struct LayerParams {
        channels: i32,
        eps: f32,
        eps_mode: i32,
        channel_shared: i32,
    }

    /// 0, or an ncnn error code and the line to log.
    struct Status {
        code: i32,
        message: String,
    }

    /// Result of checking a `.param` line.
    struct ParamsCheck {
        status: Status,
        /// The resolved parameters (valid when `status.code` is 0).
        params: LayerParams,
        /// fp32 weights to read from the `.bin`.
        weight_count: i32,
    }

    /// Result of checking a forward call.
    struct ForwardPlan {
        status: Status,
        /// Independent chunks to run, one per thread at most.
        chunks: i32,
    }

    // ---- Rust items exposed to C++ ----
    extern "Rust" {
        fn kernel_isa() -> &'static str;
        fn check_params(entries: &ParamDictEntries) -> ParamsCheck;
        fn check_weights(params: &LayerParams, weights: &MatShape) -> Status;
        fn plan_forward(
            shape: &MatShape,
            params: &LayerParams,
            weight_mat: &MatShape,
            weights: &[f32],
            num_threads: i32,
        ) -> ForwardPlan;
        unsafe fn forward_chunk(
            shape: &MatShape,
            data: *mut u8,
            params: &LayerParams,
            weights: &[f32],
            chunk: i32,
            chunks: i32,
        ) -> i32;
    }
}

use ffi::{ForwardPlan, LayerParams, MatShape, ParamDictEntries, ParamEntry, ParamsCheck, Status};

/// Runs `f`, turning a panic into an internal error.
fn guarded<T>(f: impl FnOnce() -> Result<T, L2NormError>) -> Result<T, L2NormError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(L2NormError::Internal(
            "the Rust kernel panicked".to_string(),
        ))
    })
}

fn status<T>(r: &Result<T, L2NormError>) -> Status {
    match r {
        Ok(_) => Status {
            code: 0,
            message: String::new(),
        },
        Err(e) => Status {
            code: e.ncnn_code(),
            message: e.to_string(),
        },
    }
}

/// The resolved parameters, checked again: the C++ layer's fields are
/// public, so a caller may have changed them since `load_param`.
fn params_of(p: &LayerParams) -> Result<L2NormParams, L2NormError> {
    L2NormParams::from_raw(
        i64::from(p.channels),
        p.eps,
        p.eps_mode,
        p.channel_shared,
        &[],
    )
}

fn value_of(e: &ParamEntry) -> ParamValue {
    match e.kind {
        0 => ParamValue::Absent,
        1 => ParamValue::Untyped(e.int_value as u32),
        2 => ParamValue::Int(e.int_value),
        3 => ParamValue::Float(e.float_value),
        4 => ParamValue::UntypedArray(e.words.clone()),
        5 => ParamValue::IntArray(e.words.iter().map(|&w| w as i32).collect()),
        6 => ParamValue::FloatArray(e.words.iter().map(|&w| f32::from_bits(w)).collect()),
        // 7, and any type a later ncnn may add: nothing a number can be read from.
        _ => ParamValue::String(e.text.clone()),
    }
}

/// Checks the weights Mat before anything reads it as `weight_count` fp32
/// values: a `ModelBin` over a Mat array hands back whatever Mat it holds.
fn check_weight_mat(p: &L2NormParams, m: &MatShape) -> Result<(), L2NormError> {
    let expected = p.weight_count();
    let kind = |got: String, hint: &'static str| {
        Err(L2NormError::WeightKind {
            expected,
            got,
            hint,
        })
    };
    if m.dims == 0 {
        return Err(L2NormError::WeightCount { expected, got: 0 });
    }
    if m.elemsize != 4 || m.elempack != 1 {
        let bits = match usize::try_from(m.elempack) {
            Ok(pack) if pack > 0 && m.elemsize.is_multiple_of(pack) => {
                format!("{}-bit elements", m.elemsize / pack * 8)
            }
            _ => "elements".to_string(),
        };
        let hint = match (m.elemsize, m.elempack) {
            (2, 1) => "; convert fp16 weights with ncnn::cast_float16_to_float32 (bf16: cast_bfloat16_to_float32) first",
            (1, 1) => "; L2Norm has no int8 weights",
            _ => "",
        };
        return kind(
            format!(
                "a Mat of {bits} (elemsize {}, elempack {})",
                m.elemsize, m.elempack
            ),
            hint,
        );
    }
    if m.dims != 1 {
        return kind(
            format!(
                "a {}-D Mat (w={} h={} d={} c={})",
                m.dims, m.w, m.h, m.d, m.c
            ),
            "",
        );
    }
    if m.n != 1 {
        return kind(format!("a batch of {} Mats", m.n), "");
    }
    let got = usize::try_from(m.w).unwrap_or(0);
    if got != expected {
        return Err(L2NormError::WeightCount { expected, got });
    }
    Ok(())
}

fn view_of(s: &MatShape) -> MatView {
    MatView {
        dims: s.dims,
        w: s.w,
        h: s.h,
        d: s.d,
        c: s.c,
        elempack: s.elempack,
        elemsize: s.elemsize,
        cstep: s.cstep,
    }
}

/// The instruction set the kernel runs on (see `Isa::selected`).
fn kernel_isa() -> &'static str {
    crate::kernel::Isa::selected().name()
}

fn check_params(entries: &ParamDictEntries) -> ParamsCheck {
    let r = guarded(|| {
        L2NormParams::from_param_dict(&LayerParamDict {
            channels: value_of(&entries.channels),
            eps: value_of(&entries.eps),
            eps_mode: value_of(&entries.eps_mode),
            channel_shared: value_of(&entries.channel_shared),
            weight_shape: value_of(&entries.weight_shape),
        })
    });
    // Defaults for a failed check; the C++ layer keeps none of them.
    let mut params = LayerParams {
        channels: 0,
        eps: crate::params::DEFAULT_EPS,
        eps_mode: EpsMode::Add.to_param(),
        channel_shared: 0,
    };
    let mut weight_count = 0;
    if let Ok(p) = &r {
        params = LayerParams {
            channels: p.channels as i32,
            eps: p.eps,
            eps_mode: p.eps_mode.to_param(),
            channel_shared: i32::from(p.channel_shared),
        };
        weight_count = p.weight_count() as i32;
    }
    ParamsCheck {
        status: status(&r),
        params,
        weight_count,
    }
}

fn check_weights(params: &LayerParams, weights: &MatShape) -> Status {
    status(&guarded(|| check_weight_mat(&params_of(params)?, weights)))
}

fn storage_of(s: &MatShape) -> Result<Storage, L2NormError> {
    match s.storage {
        0 => Ok(Storage::F32),
        1 => Ok(Storage::F16),
        2 => Ok(Storage::BF16),
        _ => Err(L2NormError::UnknownStorage),
    }
}

/// Checks a forward call for element type `E`.
fn forward_for<'w, E: Element>(
    s: &MatShape,
    p: &LayerParams,
    weights: &'w [f32],
) -> Result<Forward<'w>, L2NormError> {
    Forward::new::<E>(&view_of(s), &params_of(p)?, weights)
}

fn plan_forward(
    shape: &MatShape,
    params: &LayerParams,
    weight_mat: &MatShape,
    weights: &[f32],
    num_threads: i32,
) -> ForwardPlan {
    let r = guarded(|| {
        check_weight_mat(&params_of(params)?, weight_mat)?;
        if shape.n != 1 {
            // The C++ layer hands over one batch item at a time.
            return Err(L2NormError::Internal(format!(
                "a batch of {} Mats reached the kernel",
                shape.n
            )));
        }
        let forward = match storage_of(shape)? {
            Storage::F32 => forward_for::<f32>(shape, params, weights)?,
            Storage::F16 => forward_for::<F16>(shape, params, weights)?,
            Storage::BF16 => forward_for::<BF16>(shape, params, weights)?,
        };
        Ok(forward.chunks(num_threads))
    });
    ForwardPlan {
        status: status(&r),
        chunks: *r.as_ref().unwrap_or(&0) as i32,
    }
}

/// Normalises chunk `chunk` of `chunks` of the `Mat` at `data`.
///
/// # Safety
/// `data` must be the `data` pointer of a live ncnn `Mat` whose shape fields
/// are `shape` (so `cstep * c * elemsize` bytes, or `w * h * elemsize` for
/// dims 1-2, are valid for reads and writes), and no one else may access the
/// positions of this chunk until it returns. Different chunks of one plan touch
/// disjoint positions and may run concurrently.
unsafe fn forward_chunk(
    shape: &MatShape,
    data: *mut u8,
    params: &LayerParams,
    weights: &[f32],
    chunk: i32,
    chunks: i32,
) -> i32 {
    let r = guarded(|| {
        if chunk < 0 || chunks < 1 || chunk >= chunks {
            return Err(L2NormError::Internal(format!("chunk {chunk} of {chunks}")));
        }
        let (chunk, chunks) = (chunk as usize, chunks as usize);
        // SAFETY (each arm): this function's contract is run_chunk's, with
        // `storage` naming the element type the Mat holds.
        match storage_of(shape)? {
            Storage::F32 => unsafe {
                run_chunk::<f32>(shape, data, params, weights, chunk, chunks)
            },
            Storage::F16 => unsafe {
                run_chunk::<F16>(shape, data, params, weights, chunk, chunks)
            },
            Storage::BF16 => unsafe {
                run_chunk::<BF16>(shape, data, params, weights, chunk, chunks)
            },
        }
    });
    status(&r).code
}

/// # Safety
/// As `forward_chunk`, with `data` holding elements of `E`.
unsafe fn run_chunk<E: Element>(
    shape: &MatShape,
    data: *mut u8,
    params: &LayerParams,
    weights: &[f32],
    chunk: usize,
    chunks: usize,
) -> Result<(), L2NormError> {
    let forward = forward_for::<E>(shape, params, weights)?;
    if data.is_null() || data.align_offset(std::mem::align_of::<E>()) != 0 {
        return Err(L2NormError::Internal(format!(
            "Mat data {data:p} is null or misaligned"
        )));
    }
    let positions = forward.chunk_positions(chunk, chunks);
    // SAFETY: by the contract `data` points at a Mat of shape `shape`, whose
    // layout `Forward::new` derived and checked for this element type, so
    // every element of every channel group at these positions is valid;
    // chunks partition the positions, so no other chunk touches them.
    let mut t =
        unsafe { TensorMut::from_raw_positions(data.cast::<E>(), *forward.layout(), positions) };
    forward.run(&mut t);
    Ok(())
}
