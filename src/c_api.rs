//! Registering the layer on a net created through ncnn's C API (`c_api.h`).

use std::ffi::{c_char, c_int, CStr};

/// The `ncnn_net_t` handle of ncnn's C API (`struct __ncnn_net_t*`).
pub type NcnnNet = *mut std::ffi::c_void;

extern "C" {
    // cpp/l2norm_layer.cpp; declared for C in cpp/include/ncnn_l2norm/l2norm_c.h.
    fn ncnn_l2norm_register(net: NcnnNet, type_name: *const c_char) -> c_int;
}

/// Registers the L2Norm layer on `net` under `type_name` (usually `c"L2Norm"`,
/// or the dotted class path pnnx writes for a `moduleop` module). Call it
/// before `ncnn_net_load_param`. Returns ncnn's error code on failure.
///
/// The name is copied, so it need not outlive the net.
///
/// # Safety
/// `net` must be a live handle from `ncnn_net_create` of the same ncnn this
/// crate was built against, not used by another thread during the call.
pub unsafe fn register_on_c_net(net: NcnnNet, type_name: &CStr) -> Result<(), i32> {
    // SAFETY: `net` is a live ncnn_net_t by this function's contract and
    // `type_name` a NUL-terminated string that lives across the call.
    match unsafe { ncnn_l2norm_register(net, type_name.as_ptr()) } {
        0 => Ok(()),
        code => Err(code),
    }
}
