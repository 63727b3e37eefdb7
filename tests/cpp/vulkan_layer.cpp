// The layer on Vulkan, called as ncnn's own Vulkan layer tests call layers
// (tests/testutil.h in ncnn): load_param/load_model, create_pipeline and
// upload_model on a device, forward_inplace(VkMat&, VkCompute&) on blobs
// copied to the device byte for byte, results copied back and checked against
// a double-precision computation on the same (storage-rounded) input.
//
//   vulkan_layer info     the device ncnn picks (exit 3: no Vulkan device)
//   vulkan_layer shapes   channels 1-513, maps 1x1 to 38x38, dims 1-4, every
//                         eps mode, channel_shared, elempack 1/4/8, fp32,
//                         fp16 storage and fp16 packed
//   vulkan_layer edges    huge, tiny, zero, NaN and infinite values (fp32)
//   vulkan_layer net      a net mixing CPU and GPU layers against the same
//                         net on the CPU, also from 4 threads at once
//   vulkan_layer errors   bad input: a return code and one log line each
//
// Prints one line per case and "<mode> ok" when all pass. Built and run by
// tests/vulkan.rs.

#include "ncnn_l2norm/l2norm.h"
#include "l2norm_cpu_only.h"

#include "command.h"
#include "gpu.h"
#include "layer_type.h"
#include "modelbin.h"
#include "net.h"
#include "paramdict.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

static float uniform(unsigned int& state)
{
    state = state * 1664525u + 1013904223u;
    return (state >> 8) * (1.f / 16777216.f) * 4.f - 2.f;
}

// 0 fp32, 1 fp16 storage, 2 fp16 packed (ncnn's two ways of keeping fp16
// blobs), 3 bf16 packed (ncnn 20261020's bf16 blobs on Vulkan).
static const char* storage_name(int storage)
{
    return storage == 0 ? "fp32" : storage == 1 ? "fp16-storage" : storage == 2 ? "fp16-packed" : "bf16-packed";
}

// Sets Option::use_bf16_packed where this ncnn has it (20261020 does);
// returns whether it could.
template<typename O>
static auto set_bf16_packed(O& opt, bool on, int) -> decltype((void)(opt.use_bf16_packed = on), true)
{
    opt.use_bf16_packed = on;
    return true;
}
template<typename O>
static bool set_bf16_packed(O&, bool on, long)
{
    return !on;
}

struct Device
{
    ncnn::VulkanDevice* vkdev;
    ncnn::VkAllocator* blob_allocator;
    ncnn::VkAllocator* staging_allocator;

    Device()
    {
        vkdev = ncnn::get_gpu_device(ncnn::get_default_gpu_index());
        blob_allocator = vkdev->acquire_blob_allocator();
        staging_allocator = vkdev->acquire_staging_allocator();
    }
    ~Device()
    {
        vkdev->reclaim_blob_allocator(blob_allocator);
        vkdev->reclaim_staging_allocator(staging_allocator);
    }

    ncnn::Option option(int storage) const
    {
        ncnn::Option opt;
        opt.num_threads = 1;
        opt.use_vulkan_compute = true;
        opt.use_fp16_storage = storage == 1;
        opt.use_fp16_packed = storage == 2;
        opt.use_fp16_arithmetic = false;
        opt.use_bf16_storage = false;
        set_bf16_packed(opt, storage == 3, 0);
        opt.blob_vkallocator = blob_allocator;
        opt.workspace_vkallocator = blob_allocator;
        opt.staging_vkallocator = staging_allocator;
        return opt;
    }
};

struct Params
{
    int channels;
    float eps;
    int eps_mode;
    int channel_shared;
};

// The layer set up on the device for p, or 0 (with the reason printed).
static ncnn_l2norm::L2Norm* make_layer(const Device& dev, const Params& p, const ncnn::Mat& weights, const ncnn::Option& opt)
{
    ncnn_l2norm::L2Norm* layer = new ncnn_l2norm::L2Norm;
    layer->vkdev = dev.vkdev;
    ncnn::ParamDict pd;
    pd.set(0, p.channels);
    pd.set(1, p.eps);
    pd.set(2, p.eps_mode);
    pd.set(3, p.channel_shared);
    ncnn::Mat wa[1] = {weights};
    if (layer->load_param(pd) != 0 || layer->load_model(ncnn::ModelBinFromMatArray(wa)) != 0 || layer->create_pipeline(opt) != 0)
    {
        printf("layer setup failed\n");
        delete layer;
        return 0;
    }
    ncnn::VkTransfer upload(dev.vkdev);
    if (layer->upload_model(upload, opt) != 0 || upload.submit_and_wait() != 0)
    {
        printf("upload_model failed\n");
        layer->destroy_pipeline(opt);
        delete layer;
        return 0;
    }
    return layer;
}

// Runs the layer on the device over `stored` (a CPU Mat already in the
// storage type and packing wanted), copied to the device and back byte for
// byte. Returns the forward's code (or -1000 when a transfer failed).
static int run_on_device(const Device& dev, const ncnn_l2norm::L2Norm& layer, const ncnn::Mat& stored, ncnn::Mat& result, const ncnn::Option& opt)
{
    // One command buffer: up, the layer, down, as ncnn's layer tests do.
    ncnn::VkCompute cmd(dev.vkdev);
    ncnn::VkMat blob;
    cmd.record_clone(stored, blob, opt);
    const int ret = layer.forward_inplace(blob, cmd, opt);
    if (ret != 0)
        return ret;
    cmd.record_clone(blob, result, opt);
    if (cmd.submit_and_wait() != 0)
        return -1000;
    return 0;
}

// The channel of value i (0 <= i < channels * positions) in an unpacked Mat
// of `dims`: channels are w for dims 1, h for dims 2, c for dims 3 and 4.
static float* value_at(ncnn::Mat& m, int channel, int position)
{
    if (m.dims == 1)
        return (float*)m.data + channel;
    if (m.dims == 2)
        return m.row(channel) + position;
    return (float*)m.channel(channel).data + position;
}

static int channels_of(const ncnn::Mat& m)
{
    return m.dims == 1 ? m.w : m.dims == 2 ? m.h : m.c;
}

static int positions_of(const ncnn::Mat& m)
{
    return m.dims == 1 ? 1 : m.dims == 2 ? m.w : m.w * m.h * m.d;
}

static double inv_norm(double ss, double eps, int mode)
{
    double d;
    if (mode == 0)
        d = sqrt(ss) + eps;
    else if (mode == 1)
        d = sqrt(ss + eps);
    else if (mode == 2)
        d = (isnan(ss) || sqrt(ss) >= eps) ? sqrt(ss) : eps;
    else
        d = sqrt((isnan(ss) || ss >= eps) ? ss : eps);
    return 1.0 / d;
}

// The worst error of `out` against the f64 reference computed from `input`
// (both unpacked fp32 Mats), in units of the tolerance (<= 1 passes; a NaN
// where NaN is not expected, or the reverse, counts as 1e9).
//
// Tolerance: (C + 16) * 2^-24 * |expected|. The CPU tests allow (C + 8):
// the fp32 sum of C squares (about C * 2^-24 relative, halved by the square
// root), the reciprocal and two products. On Vulkan a square root may be off
// by up to 3 ulp and a division by 2.5 ulp (Vulkan's precision rules for
// SPIR-V), so 8 more. fp16 blobs add one unit in fp16's last place,
// 2^-10 * |expected|: the layer rounds its fp32 result once, the reference
// is not rounded; bf16 blobs one unit in bf16's, 2^-7 * |expected| (ncnn's
// bf16 store rounds half up, not to even: still within one unit). Absolute
// part: 2^-126 * max|w| for fp32 and bf16 (Vulkan lets a device flush
// denormals, so a result below the smallest normal float may be 0) and
// 2^-24 * max|w| for fp16 (its subnormal spacing).
static double worst_error(const ncnn::Mat& input, const ncnn::Mat& out, const float* weights, const Params& p, int storage)
{
    ncnn::Mat in = input;
    ncnn::Mat o = out;
    const int C = channels_of(in);
    const int P = positions_of(in);
    float wmax = 0.f;
    for (int c = 0; c < (p.channel_shared ? 1 : C); c++)
        wmax = fabsf(weights[c]) > wmax ? fabsf(weights[c]) : wmax;
    const double unit = storage == 0 ? 0.0 : storage == 3 ? ldexp(1.0, -7) : ldexp(1.0, -10);
    const double rel = (C + 16) * ldexp(1.0, -24) + unit;
    const double abs_tol = (storage == 1 || storage == 2 ? ldexp(1.0, -24) : ldexp(1.0, -126)) * wmax;
    double worst = 0;
    for (int i = 0; i < P; i++)
    {
        double ss = 0;
        for (int c = 0; c < C; c++)
        {
            const double v = *value_at(in, c, i);
            ss += v * v;
        }
        const double inv = inv_norm(ss, p.eps, p.eps_mode);
        for (int c = 0; c < C; c++)
        {
            const double w = p.channel_shared ? weights[0] : weights[c];
            const double expected = w * *value_at(in, c, i) * inv;
            const double got = *value_at(o, c, i);
            double err;
            if (isnan(expected) || isnan(got))
                err = isnan(expected) && isnan(got) ? 0 : 1e9;
            else if (isinf(expected) || isinf(got))
                err = expected == got ? 0 : 1e9;
            else
                err = fabs(got - expected) / (rel * fabs(expected) + abs_tol);
            if (err > worst)
                worst = err;
        }
    }
    return worst;
}

// `x` rounded to the storage type (what the layer sees), and that in the
// storage type and `elempack`, ready to be copied to the device.
static bool prepare(const ncnn::Mat& x, int storage, int elempack, ncnn::Mat& input, ncnn::Mat& stored, const ncnn::Option& cpu_opt)
{
    ncnn::Mat typed = x;
    input = x;
    if (storage == 1 || storage == 2)
    {
        ncnn::cast_float32_to_float16(x, typed, cpu_opt);
        ncnn::cast_float16_to_float32(typed, input, cpu_opt);
    }
    if (storage == 3)
    {
        ncnn::cast_float32_to_bfloat16(x, typed, cpu_opt);
        ncnn::cast_bfloat16_to_float32(typed, input, cpu_opt);
    }
    ncnn::convert_packing(typed, stored, elempack, cpu_opt);
    return stored.elempack == elempack;
}

// The device's result unpacked to fp32.
static ncnn::Mat unpack(const ncnn::Mat& result, int storage, const ncnn::Option& cpu_opt)
{
    ncnn::Mat unpacked;
    ncnn::convert_packing(result, unpacked, 1, cpu_opt);
    if (storage == 0)
        return unpacked;
    ncnn::Mat out;
    if (storage == 3)
        ncnn::cast_bfloat16_to_float32(unpacked, out, cpu_opt);
    else
        ncnn::cast_float16_to_float32(unpacked, out, cpu_opt);
    return out;
}

static ncnn::Mat make_shape(int dims, int C, int w, int h, int d)
{
    if (dims == 1)
        return ncnn::Mat(C);
    if (dims == 2)
        return ncnn::Mat(w, C);
    if (dims == 3)
        return ncnn::Mat(w, h, C);
    return ncnn::Mat(w, h, d, C);
}

static int run_shapes(const Device& dev)
{
    struct Shape
    {
        int dims, C, w, h, d;
    };
    const Shape shapes[] = {
        {3, 1, 7, 5, 1}, {3, 3, 1, 1, 1}, {3, 3, 7, 5, 1}, {3, 17, 38, 38, 1}, {3, 512, 38, 38, 1},
        {3, 513, 7, 5, 1}, {3, 512, 1, 1, 1}, {3, 16, 7, 5, 1}, {3, 24, 33, 1, 1},
        {1, 3, 1, 1, 1}, {1, 512, 1, 1, 1}, {1, 17, 1, 1, 1},
        {2, 17, 13, 1, 1}, {2, 512, 5, 1, 1}, {2, 8, 1, 1, 1},
        {4, 16, 3, 5, 2}, {4, 513, 2, 3, 3}, {4, 8, 1, 1, 1},
        // 2,102,500 positions: 65,704 workgroups of 32, more than one
        // dispatch may hold (65,535), so the layer records two.
        {3, 4, 1450, 1450, 1},
    };
    const int nshapes = sizeof(shapes) / sizeof(shapes[0]);
    const float eps_of_mode[] = {1e-10f, 1e-3f, 1e-12f, 1e-6f};
    const bool fp16_storage = dev.vkdev->info.support_fp16_storage();
    if (!fp16_storage)
        printf("skipped: fp16 storage (the device has no 16-bit storage buffers)\n");
    ncnn::Option probe;
    const bool bf16_packed = set_bf16_packed(probe, true, 0);
    if (!bf16_packed)
        printf("skipped: bf16 blobs (this ncnn has no Option::use_bf16_packed)\n");
    // How this ncnn keeps an elempack-1 blob under use_fp16_packed alone:
    // 16-bit (1.0.20261020) or fp32 (1.0.20250503, whose shaders then read
    // it as fp32); the test makes blobs as ncnn's own upload does.
    bool fp16_packed_pack1 = true;
    {
        const ncnn::Option opt = dev.option(2);
        ncnn::VkCompute cmd(dev.vkdev);
        ncnn::VkMat probe_blob;
        cmd.record_upload(ncnn::Mat(4, 4, 1), probe_blob, opt);
        cmd.submit_and_wait();
        fp16_packed_pack1 = probe_blob.elemsize == 2;
        if (!fp16_packed_pack1)
            printf("skipped: fp16-packed elempack-1 blobs (this ncnn keeps them in fp32: elemsize %d; those cases run as fp32)\n", (int)probe_blob.elemsize);
    }

    ncnn::Option cpu_opt;
    cpu_opt.num_threads = 1;
    int failures = 0;
    int cases = 0;
    for (int s = 0; s < nshapes; s++)
    {
        const Shape& sh = shapes[s];
        ncnn::Mat x = make_shape(sh.dims, sh.C, sh.w, sh.h, sh.d);
        unsigned int state = (unsigned int)(sh.C * 7919 + sh.w * 131 + sh.h * 31 + sh.dims);
        for (int c = 0; c < sh.C; c++)
            for (int i = 0; i < positions_of(x); i++)
                *value_at(x, c, i) = uniform(state);
        for (int mode = 0; mode < 4; mode++)
        {
            const int shared = (s + mode) % 3 == 0;
            const Params p = {sh.C, eps_of_mode[mode], mode, shared};
            ncnn::Mat weights(shared ? 1 : sh.C);
            for (int c = 0; c < weights.w; c++)
                weights[c] = shared ? 20.f : 1.f + (c % 7) * 3.f;
            for (int storage = 0; storage < 4; storage++)
            {
                if ((storage == 1 && !fp16_storage) || (storage == 3 && !bf16_packed))
                    continue;
                const ncnn::Option opt = dev.option(storage);
                ncnn_l2norm::L2Norm* layer = make_layer(dev, p, weights, opt);
                if (!layer)
                    return 1;
                const int packs[] = {1, 4, 8};
                for (int k = 0; k < 3; k++)
                {
                    const int elempack = packs[k];
                    if (sh.C % elempack != 0)
                        continue;
                    // fp16-packed elempack-1 blobs in fp32 where this ncnn keeps them so.
                    const int blob_storage = storage == 2 && elempack == 1 && !fp16_packed_pack1 ? 0 : storage;
                    ncnn::Mat input, stored, result;
                    if (!prepare(x, blob_storage, elempack, input, stored, cpu_opt))
                    {
                        printf("cannot pack %d channels by %d\n", sh.C, elempack);
                        failures++;
                        continue;
                    }
                    const int ret = run_on_device(dev, *layer, stored, result, opt);
                    const double worst = ret == 0 ? worst_error(input, unpack(result, blob_storage, cpu_opt), weights, p, blob_storage) : 1e9;
                    const bool ok = ret == 0 && worst <= 1;
                    printf("dims %d C %d w %d h %d d %d eps_mode %d eps %g shared %d elempack %d %s: %s, worst error %.3f of tolerance %s\n",
                           sh.dims, sh.C, sh.w, sh.h, sh.d, mode, p.eps, shared, elempack, storage_name(storage),
                           ret == 0 ? "ran" : "FAILED TO RUN", worst, ok ? "ok" : "FAIL");
                    failures += !ok;
                    cases++;
                }
                layer->destroy_pipeline(opt);
                delete layer;
            }
        }
    }
    printf("%d cases\n", cases);
    printf("%s\n", failures ? "FAILED" : "shapes ok");
    return failures ? 1 : 0;
}

// Edge values in fp32 storage, every eps mode, elempack 1 and 4: the device
// result against the f64 reference, NaN where it is NaN.
static int run_edges(const Device& dev)
{
    struct Edge
    {
        const char* name;
        float big; // the value most channels of the odd positions get
        float eps;
    };
    // Each case: 64 channels x 45 positions (two workgroups, the second
    // partial); odd positions get `big` in every channel (scaled by a
    // per-channel factor from 0.5 to 1), even positions ordinary values, so
    // the rescan runs next to ordinary positions of the same tile.
    const Edge edges[] = {
        {"huge 1e30 (the sum of squares overflows)", 1e30f, 1e-10f},
        {"near FLT_MAX", 3e38f, 1e-10f},
        {"2e19 (squares just overflow)", 2e19f, 1e-10f},
        {"tiny 1e-30 (squares underflow), eps 0", 1e-30f, 0.f},
        {"tiny 1e-25, eps 1e-40", 1e-25f, 1e-40f},
        {"ordinary values, eps 3e38", 1.f, 3e38f},
        {"huge 1e30, eps 3e38", 1e30f, 3e38f},
        {"huge 1e19, eps 1e38", 1e19f, 1e38f},
        {"all zero, eps 1e-10", 0.f, 1e-10f},
        {"all zero, eps 0 (0/0: NaN)", 0.f, 0.f},
    };
    const int C = 64;
    const int P = 45;
    ncnn::Option cpu_opt;
    cpu_opt.num_threads = 1;
    int failures = 0;
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++)
    {
        for (int special = 0; special < 3; special++) // 0 none, 1 a NaN, 2 an inf in position 2
        {
            if (special && e != 0)
                continue;
            ncnn::Mat x(P, 1, C);
            unsigned int state = 12345u + (unsigned int)e;
            for (int c = 0; c < C; c++)
                for (int i = 0; i < P; i++)
                    x.channel(c)[i] = (i % 2) ? edges[e].big * (0.5f + 0.5f * (float)((c * 37 + i) % 64) / 63.f) * (c % 2 ? -1.f : 1.f) : uniform(state);
            if (special == 1)
                x.channel(5)[2] = NAN;
            if (special == 2)
                x.channel(5)[2] = -INFINITY;
            for (int mode = 0; mode < 4; mode++)
            {
                const Params p = {C, edges[e].eps, mode, 0};
                ncnn::Mat weights(C);
                for (int c = 0; c < C; c++)
                    weights[c] = 1.f + (c % 7) * 3.f;
                const ncnn::Option opt = dev.option(0);
                ncnn_l2norm::L2Norm* layer = make_layer(dev, p, weights, opt);
                if (!layer)
                    return 1;
                for (int elempack = 1; elempack <= 4; elempack += 3)
                {
                    ncnn::Mat input, stored, result;
                    prepare(x, 0, elempack, input, stored, cpu_opt);
                    const int ret = run_on_device(dev, *layer, stored, result, opt);
                    const double worst = ret == 0 ? worst_error(input, unpack(result, 0, cpu_opt), weights, p, 0) : 1e9;
                    const bool ok = ret == 0 && worst <= 1;
                    printf("%s%s, eps_mode %d, elempack %d: worst error %.3f of tolerance %s\n", edges[e].name,
                           special == 1 ? ", a NaN at one position" : special == 2 ? ", an -inf at one position" : "",
                           mode, elempack, worst, ok ? "ok" : "FAIL");
                    failures += !ok;
                }
                layer->destroy_pipeline(opt);
                delete layer;
            }
        }
    }
    printf("%s\n", failures ? "FAILED" : "edges ok");
    return failures ? 1 : 0;
}

// Turns on Option::use_shader_pack8 (elempack 8 blobs on Vulkan) where this
// ncnn has it (1.0.20250503 does, 1.0.20261020 no longer); returns whether.
template<typename O>
static auto set_shader_pack8(O& opt, int) -> decltype((void)(opt.use_shader_pack8 = true), true)
{
    opt.use_shader_pack8 = true;
    return true;
}
template<typename O>
static bool set_shader_pack8(O&, long)
{
    return false;
}

// The largest |a - b| over the largest |b|; 1e9 for other shapes or NaN.
static double relative_difference(const ncnn::Mat& a, const ncnn::Mat& b)
{
    if (a.w != b.w || a.h != b.h || a.c != b.c)
        return 1e9;
    double scale = 0, worst = 0;
    for (int q = 0; q < b.c; q++)
        for (int i = 0; i < b.w * b.h; i++)
            scale = fabs(b.channel(q)[i]) > scale ? fabs(b.channel(q)[i]) : scale;
    for (int q = 0; q < b.c; q++)
        for (int i = 0; i < b.w * b.h; i++)
        {
            const double d = fabs(a.channel(q)[i] - b.channel(q)[i]) / scale;
            worst = d > worst || isnan(d) ? d : worst;
        }
    return isnan(worst) ? 1e9 : worst;
}

// Conv (GPU) -> L2Norm (GPU) -> ReLU (GPU) -> L2NormCpu (the CPU, between
// GPU layers) -> L2Norm (GPU, channel_shared, caffe eps) -> Conv (GPU), run
// with use_vulkan_compute (fp32 and ncnn's default fp16 blobs, packing on
// and off) against the same net on the CPU.
// A do-nothing layer without Vulkan support, flagged as L2NormCpuOnly is:
// the control for ncnn's own CPU fallback inside a GPU net.
class IdentityCpu : public ncnn::Layer
{
public:
    IdentityCpu()
    {
        one_blob_only = true;
        support_inplace = true;
        support_packing = true;
        support_fp16_storage = true;
        support_bf16_storage = true;
    }
    virtual int forward_inplace(ncnn::Mat&, const ncnn::Option&) const
    {
        return 0;
    }
};

static ncnn::Layer* identity_creator(void*)
{
    return new IdentityCpu;
}

static void identity_destroyer(ncnn::Layer* layer, void*)
{
    delete layer;
}

// Sets up net for run: 0 the CPU; 1-2 GPU fp32, packing on/off; 3-4 GPU
// ncnn's default storage (fp16), packing on/off; 5-6 fp32 and fp16 with
// elempack 8 (use_shader_pack8). False where this ncnn cannot (5-6 without
// use_shader_pack8).
static bool configure(ncnn::Net& net, int run)
{
    net.opt.num_threads = 1;
    net.opt.use_vulkan_compute = run > 0;
    net.opt.use_packing_layout = run != 2 && run != 4;
    if (run == 1 || run == 2 || run == 5)
    {
        net.opt.use_fp16_packed = false;
        net.opt.use_fp16_storage = false;
        net.opt.use_fp16_arithmetic = false;
    }
    if (run >= 5 && !set_shader_pack8(net.opt, 0))
        return false;
    ncnn_l2norm::register_l2norm(net);
    net.register_custom_layer("L2NormCpu", cpu_only_creator, cpu_only_destroyer);
    net.register_custom_layer("IdentityCpu", identity_creator, identity_destroyer);
    return true;
}

static const char* run_name(int run)
{
    static const char* names[] = {"the CPU", "fp32 blobs, packing on", "fp32 blobs, packing off", "ncnn's default blobs, packing on",
                                  "ncnn's default blobs, packing off", "fp32 blobs, packing on, pack8", "ncnn's default blobs, packing on, pack8"};
    return names[run];
}

// Loads param/bin into net and extracts "out" for in; nonzero on failure.
static int load_and_extract(ncnn::Net& net, const char* param, const std::vector<float>& bin, const ncnn::Mat& in, ncnn::Mat& out)
{
    if (net.load_param_mem(param) != 0 || net.load_model((const unsigned char*)bin.data()) == 0)
        return -1;
    ncnn::Extractor ex = net.create_extractor();
    ex.input("data", in);
    return ex.extract("out", out);
}

// Conv (GPU) -> L2Norm (GPU) -> ReLU (GPU) -> L2NormCpu (the CPU, between
// GPU layers) -> L2Norm (GPU, channel_shared, caffe eps) -> Conv (GPU), and
// the same without the CPU layer, run with use_vulkan_compute (fp32 and
// ncnn's default fp16 blobs, packing on and off, elempack 8 where ncnn has
// it) against the same nets on the CPU.
// Each GPU configuration first runs a control, Conv -> IdentityCpu -> ReLU:
// where ncnn's own CPU fallback is wrong (1.0.20250503 with packing, seen
// here, also with its BNLL layer), the mixed net cannot be right either, and
// that configuration is reported as skipped, not failed.
static int run_net()
{
    const char* param_text =
        "7767517\n"
        "7 7\n"
        "Input            data   0 1 data 0=19 1=19 2=16\n"
        "Convolution      conv1  1 1 data c1 0=64 1=3 4=1 5=1 6=9216\n"
        "L2Norm           norm1  1 1 c1 n1 0=64 1=1e-10\n"
        "ReLU             relu1  1 1 n1 r1\n"
        "L2NormCpu        norm2  1 1 r1 n2 0=64 2=2 1=1e-12\n"
        "L2Norm           norm3  1 1 n2 n3 0=64 1=1e-3 2=1 3=1\n"
        "Convolution      conv2  1 1 n3 out 0=8 1=1 5=1 6=512\n";
    // The same without the CPU layer: every layer on the GPU.
    const char* gpu_only_text =
        "7767517\n"
        "6 6\n"
        "Input            data   0 1 data 0=19 1=19 2=16\n"
        "Convolution      conv1  1 1 data c1 0=64 1=3 4=1 5=1 6=9216\n"
        "L2Norm           norm1  1 1 c1 n1 0=64 1=1e-10\n"
        "ReLU             relu1  1 1 n1 r1\n"
        "L2Norm           norm3  1 1 r1 n3 0=64 1=1e-3 2=1 3=1\n"
        "Convolution      conv2  1 1 n3 out 0=8 1=1 5=1 6=512\n";
    const char* control_text =
        "7767517\n"
        "4 4\n"
        "Input            data   0 1 data 0=19 1=19 2=16\n"
        "Convolution      conv1  1 1 data c1 0=64 1=3 4=1 5=1 6=9216\n"
        "IdentityCpu      id     1 1 c1 i1\n"
        "ReLU             relu1  1 1 i1 out\n";
    // Weights, in the .bin's order: conv1 (flag, 9216, bias 64), norm1 (64),
    // norm2 (64), norm3 (1), conv2 (flag, 512, bias 8). The control reads
    // conv1's.
    std::vector<float> bin;
    unsigned int state = 777u;
    const int counts[] = {-1, 9216, 64, 64, 64, 1, -1, 512, 8};
    for (size_t k = 0; k < sizeof(counts) / sizeof(counts[0]); k++)
    {
        if (counts[k] < 0)
        {
            bin.push_back(0.f); // the fp32 flag word (0) before a conv's weights
            continue;
        }
        for (int i = 0; i < counts[k]; i++)
            bin.push_back(k == 3 || k == 4 ? 1.f + (i % 5) : k == 5 ? 20.f : uniform(state) * 0.2f);
    }

    ncnn::Mat in(19, 19, 16);
    for (int i = 0; i < (int)in.total(); i++)
        in[i] = uniform(state);

    // The GPU-only net reads conv1, norm1, then norm3 and conv2 where the
    // mixed net has norm2's weights: its own .bin, without those.
    std::vector<float> gpu_only_bin(bin.begin(), bin.begin() + 1 + 9216 + 64 + 64);
    gpu_only_bin.insert(gpu_only_bin.end(), bin.begin() + 1 + 9216 + 64 + 64 + 64, bin.end());

    int failures = 0;
    ncnn::Mat reference, control_reference, gpu_only_reference;
    for (int run = 0; run < 7; run++)
    {
        // fp32 blobs: convolution sums in another order on the device, so
        // 1e-4 relative to the largest output; fp16 blobs round every blob
        // to 11 bits on the way (two convolutions, three norms): 2e-2.
        const bool fp32 = run <= 2 || run == 5;
        const double tol = fp32 ? 1e-4 : 2e-2;

        {
            ncnn::Net net;
            if (configure(net, run))
            {
                ncnn::Mat out;
                if (load_and_extract(net, gpu_only_text, gpu_only_bin, in, out) != 0)
                {
                    printf("GPU-only net (%s): cannot run\n", run_name(run));
                    return 1;
                }
                if (run == 0)
                {
                    gpu_only_reference = out.clone();
                }
                else
                {
                    const double worst = relative_difference(out, gpu_only_reference);
                    const bool ok = worst <= tol;
                    printf("GPU-only net (%s): largest difference from the CPU %.2e of the largest output (tolerance %.0e) %s\n",
                           run_name(run), worst, tol, ok ? "ok" : "FAIL");
                    failures += !ok;
                }
            }
        }

        ncnn::Mat control;
        {
            ncnn::Net net;
            if (!configure(net, run))
            {
                if (run == 5)
                    printf("skipped: elempack 8 through a net (this ncnn has no Option::use_shader_pack8; 1.0.20250503 has)\n");
                continue;
            }
            if (load_and_extract(net, control_text, bin, in, control) != 0)
            {
                printf("control net (%s): cannot run\n", run_name(run));
                return 1;
            }
        }
        if (run == 0)
        {
            control_reference = control.clone();
        }
        else
        {
            const double d = relative_difference(control, control_reference);
            if (d > tol)
            {
                printf("skipped: the mixed net on the GPU (%s): ncnn's own CPU fallback is wrong here (a do-nothing CPU layer between GPU layers changes the output by %.2e)\n",
                       run_name(run), d);
                continue;
            }
        }

        ncnn::Net net;
        configure(net, run);
        ncnn::Mat out;
        if (load_and_extract(net, param_text, bin, in, out) != 0)
        {
            printf("net (%s): cannot run\n", run_name(run));
            return 1;
        }
        if (run == 0)
        {
            reference = out.clone();
            continue;
        }
        // Which layers ncnn runs on the device.
        if (run == 1)
        {
            for (size_t i = 0; i < net.layers().size(); i++)
            {
                const ncnn::Layer* l = net.layers()[i];
                printf("  layer %-6s %-12s on %s\n", l->name.c_str(), l->type.c_str(), l->support_vulkan ? "the GPU" : "the CPU");
            }
        }
        const double worst = relative_difference(out, reference);
        const bool ok = worst <= tol;
        printf("net on the GPU (%s): largest difference from the CPU %.2e of the largest output (tolerance %.0e) %s\n",
               run_name(run), worst, tol, ok ? "ok" : "FAIL");
        failures += !ok;

        // One net, many extractors on many threads, as an app serving
        // requests runs it: the layer's Vulkan forward keeps no state.
        if (run == 1)
        {
            const int nthreads = 4;
            std::vector<double> worst_of(nthreads, 0.0);
            std::vector<std::thread> threads;
            for (int t = 0; t < nthreads; t++)
            {
                threads.push_back(std::thread([&net, &in, &reference, &worst_of, t]() {
                    for (int r = 0; r < 5; r++)
                    {
                        ncnn::Extractor ex = net.create_extractor();
                        ex.input("data", in);
                        ncnn::Mat o;
                        const double d = ex.extract("out", o) == 0 ? relative_difference(o, reference) : 1e9;
                        worst_of[t] = d > worst_of[t] || isnan(d) ? d : worst_of[t];
                    }
                }));
            }
            for (int t = 0; t < nthreads; t++)
                threads[t].join();
            const double w = *std::max_element(worst_of.begin(), worst_of.end());
            const bool tok = w <= tol;
            printf("net on the GPU (fp32 blobs), %d threads x 5 extractions on one net: largest difference from the CPU %.2e (tolerance %.0e) %s\n",
                   nthreads, w, tol, tok ? "ok" : "FAIL");
            failures += !tok;
        }
    }
    printf("%s\n", failures ? "FAILED" : "net ok");
    return failures ? 1 : 0;
}

// Bad input to the Vulkan forward: each case prints its code; the layer's
// NCNN_LOGE lines go to stderr, which tests/vulkan.rs counts.
static int run_errors(const Device& dev)
{
    const ncnn::Option opt = dev.option(0);
    const Params p = {16, 1e-10f, 0, 0};
    ncnn::Mat weights(16);
    weights.fill(1.f);
    ncnn_l2norm::L2Norm* layer = make_layer(dev, p, weights, opt);
    if (!layer)
        return 1;
    layer->name = "vk_norm";
    int failures = 0;

    struct Case
    {
        const char* name;
        int w, h, c, elempack;
        size_t elemsize;
        int expected;
    };
    const Case cases[] = {
        {"empty input", 0, 0, 0, 1, 4, -100},
        {"8 channels, the layer has 16", 5, 5, 8, 1, 4, -1},
        {"2-byte elements with fp32 options", 5, 5, 16, 1, 2, -1},
        {"elempack 16", 5, 5, 1, 16, 64, -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    {
        const Case& k = cases[i];
        ncnn::VkCompute cmd(dev.vkdev);
        ncnn::VkMat blob;
        if (k.w > 0)
            blob.create(k.w, k.h, k.c, k.elemsize, k.elempack, dev.blob_allocator);
        fprintf(stderr, "case: %s\n", k.name);
        fflush(stderr);
        const int ret = layer->forward_inplace(blob, cmd, opt);
        fflush(stderr);
        const bool ok = ret == k.expected;
        printf("%s: returned %d (expected %d) %s\n", k.name, ret, k.expected, ok ? "ok" : "FAIL");
        failures += !ok;
    }
    // fp16 blobs into pipelines created for fp32.
    {
        ncnn::Option opt16 = dev.option(2);
        ncnn::VkCompute cmd(dev.vkdev);
        ncnn::VkMat blob;
        blob.create(5, 5, 16, 2u, 1, dev.blob_allocator);
        fprintf(stderr, "case: fp16 blob, pipelines created for fp32\n");
        fflush(stderr);
        const int ret = layer->forward_inplace(blob, cmd, opt16);
        fflush(stderr);
        printf("fp16 blob, pipelines created for fp32: returned %d (expected -1) %s\n", ret, ret == -1 ? "ok" : "FAIL");
        failures += ret != -1;
    }
    layer->destroy_pipeline(opt);
    delete layer;
    printf("%s\n", failures ? "FAILED" : "errors ok");
    return failures ? 1 : 0;
}

int main(int argc, char** argv)
{
    const std::string mode = argc > 1 ? argv[1] : "";
    if (ncnn::get_gpu_count() == 0)
    {
        printf("no Vulkan device\n");
        return 3;
    }
    const ncnn::GpuInfo& info = ncnn::get_gpu_info(ncnn::get_default_gpu_index());
    printf("device: %s (Vulkan %u.%u, fp16 storage %d, fp16 packed %d, fp16 arithmetic %d)\n", info.device_name(),
           VK_VERSION_MAJOR(info.api_version()), VK_VERSION_MINOR(info.api_version()),
           info.support_fp16_storage(), info.support_fp16_packed(), info.support_fp16_arithmetic());
    int ret = 2;
    {
        Device dev;
        if (mode == "info")
            ret = 0;
        else if (mode == "shapes")
            ret = run_shapes(dev);
        else if (mode == "edges")
            ret = run_edges(dev);
        else if (mode == "errors")
            ret = run_errors(dev);
    }
    if (mode == "net")
        ret = run_net();
    if (ret == 2)
        fprintf(stderr, "usage: vulkan_layer info|shapes|edges|net|errors\n");
    return ret;
}
