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
use crate::params::L2NormParams;

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
    }

    /// The layer's values as read from its ParamDict.
    struct LayerParams {
        /// Param 0; 0 when absent.
        channels: i32,
        /// Param 1.
        eps: f32,
        /// Param 2.
        eps_mode: i32,
        /// Param 3.
        channel_shared: i32,
        /// Param 10 (pnnx's weight shape); empty when absent.
        weight_shape: Vec<i32>,
    }

    /// 0, or an ncnn error code and the line to log.
    struct Status {
        code: i32,
        message: String,
    }

    /// Result of checking a `.param` line.
    struct ParamsCheck {
        status: Status,
        /// Input channels the layer expects.
        channels: i32,
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
        fn check_params(params: &LayerParams) -> ParamsCheck;
        fn check_weights(params: &LayerParams, weights: &[f32]) -> Status;
        fn plan_forward(
            shape: &MatShape,
            params: &LayerParams,
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

use ffi::{ForwardPlan, LayerParams, MatShape, ParamsCheck, Status};

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

fn params_of(p: &LayerParams) -> Result<L2NormParams, L2NormError> {
    L2NormParams::from_raw(
        i64::from(p.channels),
        p.eps,
        p.eps_mode,
        p.channel_shared,
        &p.weight_shape,
    )
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

fn check_params(params: &LayerParams) -> ParamsCheck {
    let r = guarded(|| params_of(params));
    let (channels, weight_count) = match &r {
        Ok(p) => (p.channels as i32, p.weight_count() as i32),
        Err(_) => (0, 0),
    };
    ParamsCheck {
        status: status(&r),
        channels,
        weight_count,
    }
}

fn check_weights(params: &LayerParams, weights: &[f32]) -> Status {
    status(&guarded(|| params_of(params)?.check_weights(weights)))
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
    weights: &[f32],
    num_threads: i32,
) -> ForwardPlan {
    let r = guarded(|| {
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
