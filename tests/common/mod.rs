//! Test helpers: the few ncnn C API functions the tests call (declared by hand:
//! bindgen needs libclang, which our build machines lack), owning wrappers,
//! a seeded generator and the tolerance rule.

#![allow(dead_code)]

pub mod cpp;

use std::ffi::{c_char, c_int, c_void, CString};

use ncnn_l2norm::{register_on_c_net, Element, NcnnNet, Storage};

type NcnnMat = *mut c_void;
type NcnnOption = *mut c_void;
type NcnnExtractor = *mut c_void;
type NcnnAllocator = *mut c_void;

extern "C" {
    fn ncnn_net_create() -> NcnnNet;
    fn ncnn_net_destroy(net: NcnnNet);
    fn ncnn_net_get_option(net: NcnnNet) -> NcnnOption;
    fn ncnn_net_load_param_memory(net: NcnnNet, mem: *const c_char) -> c_int;
    fn ncnn_net_load_param(net: NcnnNet, path: *const c_char) -> c_int;
    fn ncnn_net_load_model(net: NcnnNet, path: *const c_char) -> c_int;
    fn ncnn_option_set_num_threads(opt: NcnnOption, n: c_int);
    #[cfg(ncnn_c_api_packing_option)]
    fn ncnn_option_set_use_packing_layout(opt: NcnnOption, on: c_int);
    fn ncnn_extractor_create(net: NcnnNet) -> NcnnExtractor;
    fn ncnn_extractor_destroy(ex: NcnnExtractor);
    fn ncnn_extractor_input(ex: NcnnExtractor, name: *const c_char, mat: NcnnMat) -> c_int;
    fn ncnn_extractor_extract(ex: NcnnExtractor, name: *const c_char, mat: *mut NcnnMat) -> c_int;
    fn ncnn_mat_create_1d(w: c_int, a: NcnnAllocator) -> NcnnMat;
    fn ncnn_mat_create_2d(w: c_int, h: c_int, a: NcnnAllocator) -> NcnnMat;
    fn ncnn_mat_create_3d(w: c_int, h: c_int, c: c_int, a: NcnnAllocator) -> NcnnMat;
    fn ncnn_mat_create_4d(w: c_int, h: c_int, d: c_int, c: c_int, a: NcnnAllocator) -> NcnnMat;
    fn ncnn_mat_destroy(mat: NcnnMat);
    fn ncnn_mat_get_dims(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_w(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_h(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_d(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_c(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_elemsize(mat: NcnnMat) -> usize;
    fn ncnn_mat_get_elempack(mat: NcnnMat) -> c_int;
    fn ncnn_mat_get_cstep(mat: NcnnMat) -> usize;
    fn ncnn_mat_get_data(mat: NcnnMat) -> *mut c_void;
}

/// Whether nets made here can run with packing off. ncnn 1.0.20250503's C API
/// has no `ncnn_option_set_use_packing_layout`, so its C API nets always pack
/// (ncnn's default); build.rs checks this ncnn's `c_api.h`.
pub const C_API_PACKING_OFF: bool = cfg!(ncnn_c_api_packing_option);

/// The (threads, packing) rows the net tests run under: 1 and 2 threads,
/// packing off and on; without the packing-off rows where the C API cannot
/// turn packing off (`net_c_api::net_tests_run_with_packing_off` is then
/// ignored, saying so).
pub fn net_options() -> Vec<(i32, bool)> {
    [(1, false), (1, true), (2, false), (2, true)]
        .into_iter()
        .filter(|&(_, packing)| packing || C_API_PACKING_OFF)
        .collect()
}

/// Whether this ncnn refuses a bad model cleanly: `Net::load_param` returns
/// an error and the net can then be destroyed. Probed once per test binary, in
/// a child process (`tests/cpp/refusal_probe.cpp`, which does not involve our
/// layer). ncnn 1.0.20250503 does not: it crashes in `Net::clear` on layers it
/// has not created, and carries on past a layer's failed `load_param`.
pub fn ncnn_refuses_models_cleanly() -> bool {
    static PROBE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        let exe = cpp::build_program("tests/cpp/refusal_probe.cpp", &["-O1"]);
        let out = std::process::Command::new(&exe)
            .output()
            .expect("run the refusal probe");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let how = match out.status.code() {
            Some(0) => return true,
            Some(1) => "accepted a model it should refuse".to_string(),
            Some(c) => panic!("refusal probe exited with {c}:\n{stdout}"),
            None => format!("crashed ({})", out.status),
        };
        println!("ncnn refusal probe {how}:\n{}", stdout.trim_end());
        false
    })
}

/// For a test (or part of one) that needs ncnn to refuse models: false, after
/// saying so on the test's output (`--show-output` shows it; `.ci/matrix`
/// lists it), when this ncnn cannot.
pub fn ncnn_can_refuse_models(what: &str) -> bool {
    let ok = ncnn_refuses_models_cleanly();
    if !ok {
        println!("skipped: {what}: this ncnn cannot refuse a model without crashing");
    }
    ok
}

/// A dense fp32 tensor in ncnn's shape terms (elempack 1), as `(shape, values)`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// `[w]`, `[w, h]`, `[w, h, c]` or `[w, h, d, c]`, like ncnn's constructors.
    pub shape: Vec<i32>,
    /// Channel-major, no padding: channel stride `w*h*d`.
    pub data: Vec<f32>,
}

impl Tensor {
    pub fn positions(&self) -> usize {
        match self.shape.len() {
            1 => 1,
            2 => self.shape[0] as usize,
            3 => (self.shape[0] * self.shape[1]) as usize,
            _ => (self.shape[0] * self.shape[1] * self.shape[2]) as usize,
        }
    }

    /// The matching unpacked, unpadded `MatView`.
    pub fn view(&self) -> ncnn_l2norm::MatView {
        use ncnn_l2norm::MatView;
        let s = &self.shape;
        match s.len() {
            1 => MatView::dims1(s[0], 1),
            2 => MatView::dims2(s[0], s[1], 1),
            3 => MatView::dims3(s[0], s[1], s[2], 1).with_cstep((s[0] * s[1]) as usize),
            _ => {
                MatView::dims4(s[0], s[1], s[2], s[3], 1).with_cstep((s[0] * s[1] * s[2]) as usize)
            }
        }
    }
}

/// An ncnn `Net` made through the C API, with L2Norm registered.
pub struct Net(NcnnNet);

impl Net {
    /// A net with L2Norm registered under `type_name`, `threads` threads and packing on or off.
    pub fn new(type_name: &str, threads: i32, packing: bool) -> Net {
        let net = Net::plain(threads, packing);
        let name = CString::new(type_name).unwrap();
        // SAFETY: a live net handle, used by this thread only.
        unsafe { register_on_c_net(net.0, &name) }.expect("register L2Norm");
        net
    }

    /// A net with nothing registered (for ncnn's built-in layers).
    pub fn plain(threads: i32, packing: bool) -> Net {
        // SAFETY: ncnn_net_create returns a fresh handle we own;
        // ncnn_net_get_option points into it (not to be destroyed).
        unsafe {
            let net = ncnn_net_create();
            let opt = ncnn_net_get_option(net);
            ncnn_option_set_num_threads(opt, threads);
            #[cfg(ncnn_c_api_packing_option)]
            ncnn_option_set_use_packing_layout(opt, packing as c_int);
            #[cfg(not(ncnn_c_api_packing_option))]
            assert!(packing, "this ncnn's C API cannot turn packing off");
            Net(net)
        }
    }

    pub fn raw(&self) -> NcnnNet {
        self.0
    }

    /// `load_param` from text, then `load_model` from `weights` (via a temp file).
    pub fn load(&self, param: &str, weights: &[u8]) -> Result<(), (&'static str, i32)> {
        let param = CString::new(param).unwrap();
        // SAFETY: live net, NUL-terminated text.
        let r = unsafe { ncnn_net_load_param_memory(self.0, param.as_ptr()) };
        if r != 0 {
            return Err(("load_param", r));
        }
        let path = temp_file(weights);
        let cpath = CString::new(path.to_str().unwrap()).unwrap();
        // SAFETY: live net, NUL-terminated path.
        let r = unsafe { ncnn_net_load_model(self.0, cpath.as_ptr()) };
        let _ = std::fs::remove_file(&path);
        if r != 0 {
            return Err(("load_model", r));
        }
        Ok(())
    }

    pub fn load_files(
        &self,
        param: &std::path::Path,
        bin: &std::path::Path,
    ) -> Result<(), (&'static str, i32)> {
        let p = CString::new(param.to_str().unwrap()).unwrap();
        let b = CString::new(bin.to_str().unwrap()).unwrap();
        // SAFETY: live net, NUL-terminated paths.
        unsafe {
            match ncnn_net_load_param(self.0, p.as_ptr()) {
                0 => {}
                r => return Err(("load_param", r)),
            }
            match ncnn_net_load_model(self.0, b.as_ptr()) {
                0 => Ok(()),
                r => Err(("load_model", r)),
            }
        }
    }

    /// Feeds `input` to blob `in_name` and extracts each of `outputs`, unpacked to elempack 1.
    pub fn run(&self, in_name: &str, input: &Tensor, outputs: &[&str]) -> Result<Vec<Tensor>, i32> {
        // SAFETY: extract hands over live fp32 Mats.
        self.extract(in_name, input, outputs, |m| unsafe { read_mat(m) })
    }

    /// Whether ncnn gives blob `name` as an empty Mat when `input` is fed to `in_name`.
    pub fn blob_is_empty(&self, in_name: &str, input: &Tensor, name: &str) -> Result<bool, i32> {
        // SAFETY: extract hands over live Mats.
        self.extract(in_name, input, &[name], |m| unsafe {
            ncnn_mat_get_dims(m) == 0
        })
        .map(|v| v[0])
    }

    /// `run` with `read` taking each extracted Mat (destroyed after it returns).
    fn extract<T>(
        &self,
        in_name: &str,
        input: &Tensor,
        outputs: &[&str],
        mut read: impl FnMut(NcnnMat) -> T,
    ) -> Result<Vec<T>, i32> {
        // SAFETY: the Mat is created with input's shape and filled within its
        // channels' bounds; handles are destroyed exactly once.
        unsafe {
            let s = &input.shape;
            let null = std::ptr::null_mut();
            let mat = match s.len() {
                1 => ncnn_mat_create_1d(s[0], null),
                2 => ncnn_mat_create_2d(s[0], s[1], null),
                3 => ncnn_mat_create_3d(s[0], s[1], s[2], null),
                _ => ncnn_mat_create_4d(s[0], s[1], s[2], s[3], null),
            };
            write_mat(mat, &input.data);
            let ex = ncnn_extractor_create(self.0);
            let name = CString::new(in_name).unwrap();
            ncnn_extractor_input(ex, name.as_ptr(), mat);
            let mut results = Vec::new();
            let mut status = 0;
            for out in outputs {
                let name = CString::new(*out).unwrap();
                let mut m: NcnnMat = std::ptr::null_mut();
                let r = ncnn_extractor_extract(ex, name.as_ptr(), &mut m);
                if r != 0 {
                    status = r;
                    if !m.is_null() {
                        ncnn_mat_destroy(m);
                    }
                    break;
                }
                results.push(read(m));
                ncnn_mat_destroy(m);
            }
            ncnn_extractor_destroy(ex);
            ncnn_mat_destroy(mat);
            if status != 0 {
                Err(status)
            } else {
                Ok(results)
            }
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // SAFETY: we own the handle and drop it once.
        unsafe { ncnn_net_destroy(self.0) }
    }
}

/// # Safety
/// `mat` is a live fp32 elempack-1 Mat with as many values as `data`.
unsafe fn write_mat(mat: NcnnMat, data: &[f32]) {
    let (dims, cstep) = (ncnn_mat_get_dims(mat), ncnn_mat_get_cstep(mat));
    let base = ncnn_mat_get_data(mat) as *mut f32;
    let channels = if dims >= 3 {
        ncnn_mat_get_c(mat) as usize
    } else {
        1
    };
    let per = data.len() / channels;
    for q in 0..channels {
        std::ptr::copy_nonoverlapping(data[q * per..].as_ptr(), base.add(q * cstep), per);
    }
}

/// # Safety
/// `mat` is a live fp32 Mat.
unsafe fn read_mat(mat: NcnnMat) -> Tensor {
    let dims = ncnn_mat_get_dims(mat);
    let (w, h, d, c) = (
        ncnn_mat_get_w(mat),
        ncnn_mat_get_h(mat),
        ncnn_mat_get_d(mat),
        ncnn_mat_get_c(mat),
    );
    assert_eq!(ncnn_mat_get_elempack(mat), 1, "extract should unpack");
    assert_eq!(ncnn_mat_get_elemsize(mat), 4, "extract should give fp32");
    let cstep = ncnn_mat_get_cstep(mat);
    let base = ncnn_mat_get_data(mat) as *const f32;
    let (shape, channels, per) = match dims {
        1 => (vec![w], 1, w as usize),
        2 => (vec![w, h], 1, (w * h) as usize),
        3 => (vec![w, h, c], c as usize, (w * h) as usize),
        _ => (vec![w, h, d, c], c as usize, (w * h * d) as usize),
    };
    let mut data = Vec::with_capacity(channels * per);
    for q in 0..channels {
        data.extend_from_slice(std::slice::from_raw_parts(base.add(q * cstep), per));
    }
    Tensor { shape, data }
}

fn temp_file(bytes: &[u8]) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    let path = std::env::temp_dir().join(format!(
        "ncnn-l2norm-test-{}-{}.bin",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// xorshift64*: reproducible inputs without a dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E3779B97F4A7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let u = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * u
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

pub fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The fp32 tolerance, relative to each expected value.
///
/// A sum of `n` squares in f32, in any order, has relative error at most
/// about `n·u` (u = 2^-24); the square root halves it; the reciprocal and the
/// two multiplications add about `3u`. So `(channels + 8)·u·|expected|` bounds
/// the error of any correct fp32 kernel, plus the smallest normal f32 for
/// results that underflow. A wrong channel, lane or weight is off by far more.
pub fn fp32_tolerance(channels: usize, expected: f32) -> f32 {
    (channels as f32 + 8.0) * f32::EPSILON / 2.0 * expected.abs() + f32::MIN_POSITIVE
}

/// Tolerance for a result stored as `E`, relative to the expected value.
///
/// fp32: [`fp32_tolerance`]. fp16 / bf16: the kernel's f32 result is within
/// the fp32 tolerance of the exact value and is rounded once to `E`, as is the
/// reference's, so the two are at most one `E` ulp apart: `2^-10·|x|` for fp16
/// (10 mantissa bits; `2^-24` absolute in its subnormal range), `2^-7·|x|` for
/// bf16 (7 mantissa bits).
pub fn tolerance<E: Element>(channels: usize, expected: f32) -> f32 {
    let fp32 = fp32_tolerance(channels, expected);
    match E::STORAGE {
        Storage::F32 => fp32,
        Storage::F16 => fp32 + (expected.abs() * 2f32.powi(-10)).max(2f32.powi(-24)),
        Storage::BF16 => fp32 + expected.abs() * 2f32.powi(-7),
    }
}

/// |a - b|, with NaN on either side infinitely far (so a NaN result cannot
/// hide behind `f32::max`, which drops NaN).
pub fn abs_diff(a: f32, b: f32) -> f32 {
    let d = (a - b).abs();
    if d.is_nan() {
        f32::INFINITY
    } else {
        d
    }
}

/// Whether `got` is within [`tolerance`] of `expected` for storage `E`.
///
/// NaN matches only NaN. An infinity matches itself or, one `E` ulp away, the
/// largest finite `E` of the same sign (a result rounded to either side of
/// the overflow boundary); any other finite value is infinitely far from it.
pub fn close_as<E: Element>(got: f32, expected: f32, channels: usize) -> bool {
    if got.is_nan() || expected.is_nan() {
        return got.is_nan() && expected.is_nan();
    }
    if got.is_infinite() || expected.is_infinite() {
        let max = match E::STORAGE {
            Storage::F32 => f32::MAX,
            Storage::F16 => 65504.0,
            Storage::BF16 => f32::from_bits(0x7f7f_0000),
        };
        let (finite, infinite) = if got.is_infinite() {
            (expected, got)
        } else {
            (got, expected)
        };
        return got == expected || (finite.abs() == max && finite.signum() == infinite.signum());
    }
    (got - expected).abs() <= tolerance::<E>(channels, expected)
}

/// Asserts `got` matches `expected` element by element ([`close_as`]).
pub fn assert_close_as<E: Element>(got: &[E], expected: &[E], channels: usize, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: lengths differ");
    for (i, (g, e)) in got.iter().zip(expected).enumerate() {
        let (g, e) = (g.to_f32(), e.to_f32());
        assert!(
            close_as::<E>(g, e, channels),
            "{what}: element {i}: got {g}, expected {e} (|diff| {} > tolerance {})",
            (g - e).abs(),
            tolerance::<E>(channels, e)
        );
    }
}

/// Asserts `got` matches `expected` element by element within `fp32_tolerance`.
pub fn assert_close(got: &[f32], expected: &[f32], channels: usize, what: &str) {
    assert_close_as::<f32>(got, expected, channels, what)
}

/// A blob of a converter fixture: its ncnn name, PyTorch's batch-1 NCHW
/// shape, and its values as an ncnn `[w, h, c]` tensor.
#[derive(Debug, Clone)]
pub struct FixtureBlob {
    pub name: String,
    pub nchw: Vec<i32>,
    pub tensor: Tensor,
}

/// A file of raw little-endian fp32 values.
pub fn read_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(bytes.len() % 4, 0, "{}", path.display());
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// A fixture manifest's `BLOB FILE 1 C H W` fields, FILE read from `dir`.
pub fn fixture_blob(dir: &std::path::Path, fields: &[&str]) -> FixtureBlob {
    let nchw: Vec<i32> = fields[2..].iter().map(|f| f.parse().unwrap()).collect();
    assert_eq!(
        (nchw.len(), nchw[0]),
        (4, 1),
        "batch-1 NCHW expected: {fields:?}"
    );
    let data = read_f32(&dir.join(fields[1]));
    assert_eq!(
        data.len() as i32,
        nchw.iter().product::<i32>(),
        "{}",
        fields[1]
    );
    // Batch 1: NCHW bytes are ncnn's unpadded w,h,c layout.
    let tensor = Tensor {
        shape: vec![nchw[3], nchw[2], nchw[1]],
        data,
    };
    FixtureBlob {
        name: fields[0].to_string(),
        nchw,
        tensor,
    }
}
