//! # ncnn-l2norm
//!
//! SSD's channel-wise `L2Norm` (mmdetection / ssd.pytorch) as an ncnn layer.
//! At every spatial position the vector of channel values is divided by its
//! L2 norm plus eps, then channel `c` is multiplied by a learned `weight[c]`:
//!
//! ```text
//! out[c] = weight[c] * x[c] / (sqrt(sum_c x[c]^2) + eps)      (eps = 1e-10)
//! ```
//!
//! The kernel ([`l2norm_inplace`]) works directly on ncnn `Mat` memory
//! described by a [`MatView`]. A C++ `ncnn::Layer` subclass
//! (`cpp/include/ncnn_l2norm/l2norm.h`) calls it through a `cxx` bridge; C++
//! apps link this crate's static library and call
//! `ncnn_l2norm::register_l2norm(net)` before `load_param`. Rust code driving
//! ncnn through its C API registers the layer with [`register_on_c_net`].
//!
//! Module map: `params` (what a `.param` line says), `layout` (how a `Mat`
//! holds channels and positions), [`kernel`] (the computation, its code
//! paths and its f64 reference), `bridge` (the cxx bridge), `c_api`
//! (registration on a C-API net), `error` (what can be wrong with a layer's
//! parameters, weights or input). That is the whole library: the `rlib` and the
//! `libncnn_l2norm.a` C++ apps link.
//!
//! Not part of it: `src/tools/` is the `ncnn-l2norm` command-line tool
//! (`fuse` rewrites converted models to use the layer, `install` writes the
//! headers, libraries, CMake package and pkg-config file), a separate binary
//! that uses this library through its public API; `src/bin/` holds the
//! cargo targets that start the C++ demos (`l2norm-demo`, `ssd-demo`).

mod bridge;
mod c_api;
mod error;
pub mod kernel;
mod layout;
mod params;

pub use c_api::{register_on_c_net, NcnnNet};
pub use error::L2NormError;
pub use kernel::cpu::CpuInfo;
pub use kernel::element::{Element, Storage, BF16, F16};
pub use kernel::reference::l2norm_reference;
pub use kernel::{l2norm_inplace, Forward, Isa};
pub use layout::{ChannelLayout, MatView, TensorMut};
pub use params::{EpsMode, L2NormParams, LayerParamDict, ParamValue, DEFAULT_EPS, MAX_CHANNELS};
