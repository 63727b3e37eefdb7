// L2Norm against its peers, measured side by side in one run:
//   ours      ncnn_l2norm::L2Norm::forward_inplace on a Mat, as ncnn calls it
//   Normalize ncnn's own Normalize (channel mode, eps_mode 1 = F.normalize)
//   chain     the op chain pnnx emits for the PyTorch module, through a Net
//   floor     one in-place pass x *= k over the same bytes
// plus whole nets (input -> conv -> X -> conv) with each of the three.
//
// usage: l2norm_bench [--quick] [--only CxHxW] [TSV_OUT]
//        l2norm_bench --pair NAME A.param A.bin B.param B.bin W H C OUT...
// Prints a markdown table; writes the same rows as TSV for benches/plot.py.
// --pair times two models (a converter's output and the same model after
// `ncnn-l2norm fuse`) on one W x H x C input, extracting blobs OUT...

#include "ncnn_l2norm/l2norm.h"

#include "benchmark.h"
#include "cpu.h"
#include "datareader.h"
#include "layer.h"
#include "modelbin.h"
#include "net.h"
#include "paramdict.h"

#if defined(__x86_64__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

static const char* storage_names[] = {"fp32", "fp16", "bf16"};

static float uniform(unsigned int& state)
{
    state = state * 1664525u + 1013904223u;
    return (state >> 8) * (1.f / 16777216.f) * 2.f - 1.f;
}

static double median(std::vector<double> v)
{
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// ------------------------------------------------------------------ floor

#if defined(__x86_64__)
__attribute__((target("avx512f"))) static void scale_fp32(float* p, size_t n, float k)
{
    const __m512 kv = _mm512_set1_ps(k);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(p + i, _mm512_mul_ps(_mm512_loadu_ps(p + i), kv));
    for (; i < n; i++)
        p[i] *= k;
}

__attribute__((target("avx512f"))) static void scale_fp16(unsigned short* p, size_t n, float k)
{
    const __m512 kv = _mm512_set1_ps(k);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
    {
        __m512 v = _mm512_mul_ps(_mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(p + i))), kv);
        _mm256_storeu_si256((__m256i*)(p + i), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
    for (; i < n; i++)
        p[i] = ncnn::float32_to_float16(ncnn::float16_to_float32(p[i]) * k);
}

__attribute__((target("avx512f"))) static void scale_bf16(unsigned short* p, size_t n, float k)
{
    const __m512 kv = _mm512_set1_ps(k);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
    {
        __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)(p + i)));
        __m512 v = _mm512_mul_ps(_mm512_castsi512_ps(_mm512_slli_epi32(h, 16)), kv);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_castps_si512(v), _mm512_set1_epi32(0x8000)), 16);
        _mm256_storeu_si256((__m256i*)(p + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; i++)
        p[i] = ncnn::float32_to_bfloat16(ncnn::bfloat16_to_float32(p[i]) * k);
}
#elif defined(__aarch64__)
// NEON, eight lanes a step; fp16 converted by the hardware (fcvtl/fcvtn, every
// ARMv8.0 CPU), bf16 rounded half up like the AVX-512 loop.
static void scale_fp32(float* p, size_t n, float k)
{
    const float32x4_t kv = vdupq_n_f32(k);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
    {
        vst1q_f32(p + i, vmulq_f32(vld1q_f32(p + i), kv));
        vst1q_f32(p + i + 4, vmulq_f32(vld1q_f32(p + i + 4), kv));
    }
    for (; i < n; i++)
        p[i] *= k;
}

static void scale_fp16(unsigned short* p, size_t n, float k)
{
    const float32x4_t kv = vdupq_n_f32(k);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
    {
        float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(p + i));
        float32x4_t lo = vmulq_f32(vcvt_f32_f16(vget_low_f16(h)), kv);
        float32x4_t hi = vmulq_f32(vcvt_high_f32_f16(h), kv);
        vst1q_u16(p + i, vreinterpretq_u16_f16(vcvt_high_f16_f32(vcvt_f16_f32(lo), hi)));
    }
    for (; i < n; i++)
        p[i] = ncnn::float32_to_float16(ncnn::float16_to_float32(p[i]) * k);
}

static void scale_bf16(unsigned short* p, size_t n, float k)
{
    const float32x4_t kv = vdupq_n_f32(k);
    const uint32x4_t half = vdupq_n_u32(0x8000);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
    {
        uint16x8_t h = vld1q_u16(p + i);
        float32x4_t lo = vmulq_f32(vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)), kv);
        float32x4_t hi = vmulq_f32(vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)), kv);
        uint16x4_t rlo = vshrn_n_u32(vaddq_u32(vreinterpretq_u32_f32(lo), half), 16);
        vst1q_u16(p + i, vshrn_high_n_u32(rlo, vaddq_u32(vreinterpretq_u32_f32(hi), half), 16));
    }
    for (; i < n; i++)
        p[i] = ncnn::float32_to_bfloat16(ncnn::bfloat16_to_float32(p[i]) * k);
}
#else
// Plain loops for the compiler to vectorise.
static void scale_fp32(float* p, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        p[i] *= k;
}

static void scale_fp16(unsigned short* p, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = ncnn::float32_to_float16(ncnn::float16_to_float32(p[i]) * k);
}

static void scale_bf16(unsigned short* p, size_t n, float k)
{
    for (size_t i = 0; i < n; i++)
        p[i] = ncnn::float32_to_bfloat16(ncnn::bfloat16_to_float32(p[i]) * k);
}
#endif // __x86_64__

// x *= k over the whole Mat buffer, split across threads like the layers do.
static void floor_pass(ncnn::Mat& m, int storage, float k, int threads)
{
    const size_t total = m.cstep * m.c * m.elempack; // scalar elements
    const size_t per = (total / threads + 63) / 64 * 64;
    #pragma omp parallel for num_threads(threads)
    for (int t = 0; t < threads; t++)
    {
        const size_t begin = std::min(total, per * t);
        const size_t n = std::min(total, begin + per) - begin;
        if (storage == 0)
            scale_fp32((float*)m.data + begin, n, k);
        else if (storage == 1)
            scale_fp16((unsigned short*)m.data + begin, n, k);
        else
            scale_bf16((unsigned short*)m.data + begin, n, k);
    }
}

// ------------------------------------------------------------------ layers

static ncnn::Mat ones(int n)
{
    ncnn::Mat m(n);
    m.fill(1.f);
    return m;
}

static ncnn::Layer* make_l2norm(int c, const ncnn::Option& opt)
{
    ncnn::Layer* layer = ncnn_l2norm::l2norm_layer_creator(0);
    ncnn::ParamDict pd;
    pd.set(0, c);
    ncnn::Mat w[1] = {ones(c)};
    if (layer->load_param(pd) != 0 || layer->load_model(ncnn::ModelBinFromMatArray(w)) != 0 || layer->create_pipeline(opt) != 0)
    {
        fprintf(stderr, "cannot make L2Norm\n");
        exit(1);
    }
    return layer;
}

static ncnn::Layer* make_normalize(int c, const ncnn::Option& opt)
{
    ncnn::Layer* layer = ncnn::create_layer("Normalize");
    ncnn::ParamDict pd;
    pd.set(0, 0); // across_spatial
    pd.set(4, 1); // across_channel
    pd.set(1, 0); // channel_shared
    pd.set(2, 1e-10f);
    pd.set(3, c);
    pd.set(9, 1); // F.normalize: max(norm, eps)
    ncnn::Mat w[1] = {ones(c)};
    if (layer->load_param(pd) != 0 || layer->load_model(ncnn::ModelBinFromMatArray(w)) != 0 || layer->create_pipeline(opt) != 0)
    {
        fprintf(stderr, "cannot make Normalize\n");
        exit(1);
    }
    return layer;
}

// --------------------------------------------------------------------- nets

static void append_floats(std::vector<unsigned char>& bin, const std::vector<float>& v, bool tagged)
{
    if (tagged)
        bin.insert(bin.end(), 4, 0);
    const unsigned char* p = (const unsigned char*)v.data();
    bin.insert(bin.end(), p, p + v.size() * sizeof(float));
}

// The normalisation of blob `in` into blob `out`, as L2Norm, Normalize or the
// pnnx chain; appends its layers and blobs to the counts and weights to bin.
static std::string norm_layers(int kind, int c, const char* in, const char* out, int& layers, int& blobs, std::vector<unsigned char>& bin)
{
    char buf[2048];
    if (kind == 0)
    {
        snprintf(buf, sizeof(buf), "L2Norm norm 1 1 %s %s 0=%d 1=1.000000e-10\n", in, out, c);
        layers += 1, blobs += 1;
    }
    else if (kind == 1)
    {
        snprintf(buf, sizeof(buf), "Normalize norm 1 1 %s %s 0=0 1=0 2=1.000000e-10 3=%d 4=1 9=1\n", in, out, c);
        layers += 1, blobs += 1;
    }
    else
    {
        snprintf(buf, sizeof(buf),
                 "Split n_split 1 2 %s n_x0 n_x1\n"
                 "UnaryOp n_sq 1 1 n_x0 n_sq 0=4\n"
                 "Reduction n_sum 1 1 n_sq n_ss 0=0 1=0 -23303=1,0 4=1 5=1\n"
                 "UnaryOp n_sqrt 1 1 n_ss n_norm 0=5\n"
                 "BinaryOp n_eps 1 1 n_norm n_normeps 0=0 1=1 2=1.000000e-10\n"
                 "BinaryOp n_div 2 1 n_x1 n_normeps n_xn 0=3\n"
                 "MemoryData n_weight 0 1 n_w 0=1 1=1 2=%d\n"
                 "BinaryOp n_mul 2 1 n_xn n_w %s 0=2\n",
                 in, c, out);
        layers += 8, blobs += 9;
    }
    // L2Norm, Normalize and the chain's MemoryData each hold c raw weights.
    append_floats(bin, std::vector<float>(c, 1.f), false);
    return buf;
}

struct NetModel
{
    std::string param;
    std::vector<unsigned char> bin;
};

// Input -> [conv 3x3 c->c, relu] -> norm -> [conv 3x3 c->16] when with_convs,
// else Input -> norm.
static NetModel make_net(int kind, int w, int h, int c, bool with_convs)
{
    NetModel m;
    int layers = 1, blobs = 1;
    char head[256];
    std::string body;
    unsigned int state = 7;
    if (with_convs)
    {
        char buf[256];
        snprintf(buf, sizeof(buf), "Convolution conv1 1 1 data conv1 0=%d 1=3 4=1 5=1 6=%d 9=1\n", c, c * c * 9);
        body += buf;
        layers += 1, blobs += 1;
        std::vector<float> wts(c * c * 9), bias(c);
        for (size_t i = 0; i < wts.size(); i++)
            wts[i] = uniform(state) * 0.05f;
        for (int i = 0; i < c; i++)
            bias[i] = uniform(state) * 0.1f;
        append_floats(m.bin, wts, true);
        append_floats(m.bin, bias, false);
        body += norm_layers(kind, c, "conv1", "normed", layers, blobs, m.bin);
        snprintf(buf, sizeof(buf), "Convolution conv2 1 1 normed out 0=16 1=3 4=1 5=1 6=%d\n", c * 16 * 9);
        body += buf;
        layers += 1, blobs += 1;
        std::vector<float> w2(c * 16 * 9), b2(16);
        for (size_t i = 0; i < w2.size(); i++)
            w2[i] = uniform(state) * 0.05f;
        append_floats(m.bin, w2, true);
        append_floats(m.bin, b2, false);
    }
    else
    {
        body += norm_layers(kind, c, "data", "out", layers, blobs, m.bin);
    }
    snprintf(head, sizeof(head), "7767517\n%d %d\nInput data 0 1 data 0=%d 1=%d 2=%d\n", layers, blobs, w, h, c);
    m.param = std::string(head) + body;
    return m;
}

struct LoadedNet
{
    NetModel model; // ncnn references weights loaded from memory: keep them
    ncnn::Net net;
    bool ok;
};

static void load_net(LoadedNet& ln, const NetModel& m, const ncnn::Option& opt)
{
    ln.model = m;
    ln.net.opt = opt;
    ncnn_l2norm::register_l2norm(ln.net);
    const unsigned char* mem = ln.model.bin.data();
    ncnn::DataReaderFromMemory dr(mem, ln.model.bin.size());
    ln.ok = ln.net.load_param_mem(ln.model.param.c_str()) == 0 && ln.net.load_model(dr) == 0;
}

static double time_net(ncnn::Net& net, const ncnn::Mat& in, int inner)
{
    const double t0 = ncnn::get_current_time();
    for (int i = 0; i < inner; i++)
    {
        ncnn::Extractor ex = net.create_extractor();
        ex.input("data", in);
        ncnn::Mat out;
        ex.extract("out", out, 1);
    }
    return (ncnn::get_current_time() - t0) / inner;
}

// ------------------------------------------------------------------- main

template<class F>
static double time_once(F f, int inner)
{
    const double t0 = ncnn::get_current_time();
    for (int i = 0; i < inner; i++)
        f();
    return (ncnn::get_current_time() - t0) / inner;
}

static std::string cpu_model()
{
    FILE* fp = fopen("/proc/cpuinfo", "r");
    char line[512];
    std::string model = "unknown CPU";
    while (fp && fgets(line, sizeof(line), fp))
    {
        // x86 names the model; aarch64 Linux gives only the (first core's) part number
        // (0xd03 Cortex-A53, 0xd05 A55, 0xd08 A72, 0xd0b A76, ...).
        const bool name = strncmp(line, "model name", 10) == 0;
        if (name || strncmp(line, "CPU part", 8) == 0)
        {
            const char* colon = strchr(line, ':');
            model = colon ? colon + 2 : line;
            model.erase(model.find_last_not_of("\n ") + 1);
            if (!name)
                model = "CPU part " + model;
            break;
        }
    }
    if (fp)
        fclose(fp);
    return model;
}

static void fmt(char* out, double v)
{
    if (v < 0)
        strcpy(out, "-");
    else
        sprintf(out, "%.4f", v);
}

static void fmt_ratio(char* out, double a, double b)
{
    if (a < 0 || b < 0)
        strcpy(out, "-");
    else
        sprintf(out, "%.2f", a / b);
}

// Median ms of a forward through `net`, extracting every blob of `outs`.
static double time_model(ncnn::Net& net, const ncnn::Mat& in, const std::vector<std::string>& outs, int samples)
{
    std::vector<double> t;
    for (int k = 0; k < samples + 1; k++)
    {
        const double t0 = ncnn::get_current_time();
        ncnn::Extractor ex = net.create_extractor();
        ex.input("in0", in);
        for (size_t i = 0; i < outs.size(); i++)
        {
            ncnn::Mat out;
            if (ex.extract(outs[i].c_str(), out) != 0)
                return -1;
        }
        if (k > 0)
            t.push_back(ncnn::get_current_time() - t0);
    }
    return median(t);
}

static int pair_main(int argc, char** argv)
{
    if (argc < 11)
    {
        fprintf(stderr, "usage: l2norm_bench --pair NAME A.param A.bin B.param B.bin W H C OUT...\n");
        return 2;
    }
    const char* name = argv[2];
    const int w = atoi(argv[7]), h = atoi(argv[8]), c = atoi(argv[9]);
    std::vector<std::string> outs(argv + 10, argv + argc);
    ncnn::Mat in(w, h, c);
    unsigned int state = 5;
    for (int q = 0; q < c; q++)
        for (int i = 0; i < w * h; i++)
            in.channel(q)[i] = uniform(state);
    for (int threads = 1; threads <= 2; threads++)
    {
        double ms[2];
        for (int m = 0; m < 2; m++)
        {
            ncnn::Net net;
            net.opt.num_threads = threads;
            ncnn_l2norm::register_l2norm(net);
            if (net.load_param(argv[3 + 2 * m]) != 0 || net.load_model(argv[4 + 2 * m]) != 0)
            {
                fprintf(stderr, "cannot load %s\n", argv[3 + 2 * m]);
                return 1;
            }
            ms[m] = time_model(net, in, outs, 21);
        }
        printf("| %s | %dx%dx%d | %d | %.4f | %.4f | %.2f |\n", name, c, h, w, threads, ms[0], ms[1], ms[1] / ms[0]);
    }
    return 0;
}

// Ordinary inputs against inputs that take the kernel's exact path (huge
// values whose f32 sum of squares overflows): each sample normalises a fresh
// copy (the copy is not timed), since a forward leaves normalised values.
static void numerics_rows(int samples)
{
    printf("\nHuge inputs (fp32, 1 thread; each sample times one forward on a fresh copy):\n\n");
    printf("| tensor (c x h x w) | elempack | ordinary ms | 1 in 1000 positions huge ms | all positions huge ms | floor ms | ordinary/floor | all huge/ordinary |\n");
    printf("|---|---|---|---|---|---|---|---|\n");
    const int shapes[][3] = {{512, 38, 38}, {256, 150, 150}};
    for (int s = 0; s < 2; s++)
    {
        const int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2];
        ncnn::Mat data[3];
        for (int v = 0; v < 3; v++)
        {
            data[v].create(w, h, c);
            unsigned int state = 4321u + s;
            for (int q = 0; q < c; q++)
                for (int i = 0; i < w * h; i++)
                {
                    const bool huge = v == 2 || (v == 1 && i % 1000 == 7);
                    data[v].channel(q)[i] = uniform(state) * (huge ? 1e30f : 1.f);
                }
        }
        for (int elempack = 1; elempack <= 16; elempack += 15)
        {
            ncnn::Option opt;
            opt.num_threads = 1;
            opt.use_packing_layout = true;
            ncnn::Mat packed[3];
            for (int v = 0; v < 3; v++)
                ncnn::convert_packing(data[v], packed[v], elempack, opt);
            ncnn::Layer* l2 = make_l2norm(c, opt);
            std::vector<double> t[4];
            for (int k = 0; k < samples + 1; k++)
            {
                for (int v = 0; v < 4; v++)
                {
                    ncnn::Mat m = packed[v == 3 ? 0 : v].clone();
                    const double ms = v == 3 ? time_once([&] { floor_pass(m, 0, 1.f, 1); }, 1)
                                             : time_once([&] { l2->forward_inplace(m, opt); }, 1);
                    if (k > 0)
                        t[v].push_back(ms);
                }
            }
            const double a = median(t[0]), b = median(t[1]), cc = median(t[2]), f = median(t[3]);
            printf("| %d x %d x %d | %d | %.4f | %.4f | %.4f | %.4f | %.2f | %.2f |\n", c, h, w, elempack, a, b, cc, f, a / f, cc / a);
            fflush(stdout);
            delete l2;
        }
    }
}

int main(int argc, char** argv)
{
    if (argc > 1 && strcmp(argv[1], "--pair") == 0)
        return pair_main(argc, argv);
    bool quick = false;
    const char* tsv_path = 0;
    const char* only = 0;
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else
            tsv_path = argv[i];
    }
    FILE* tsv = tsv_path ? fopen(tsv_path, "w") : 0;
    if (tsv)
        fprintf(tsv, "tensor\telempack\tthreads\tstorage\tours_ms\tnormalize_ms\tchain_ms\tfloor_ms\n");

    printf("CPU: %s, %d cores; L2Norm kernel path: %s; ncnn %s\n\n", cpu_model().c_str(), ncnn::get_physical_big_cpu_count(), ncnn_l2norm::kernel_isa().c_str(), NCNN_VERSION_STRING);
    printf("| tensor (c x h x w) | elempack | threads | storage | ours ms | Normalize ms | chain ms | floor ms | ours/Normalize | ours/chain | ours/floor |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|\n");

    const int shapes[][3] = {{512, 38, 38}, {512, 64, 64}, {1024, 19, 19}, {256, 150, 150}, {64, 19, 19}};
    const int packs[] = {1, 4, 8, 16};
    const int samples = quick ? 5 : 21;

    for (int s = 0; s < 5; s++)
    {
        const int c = shapes[s][0], h = shapes[s][1], w = shapes[s][2];
        char name[64];
        snprintf(name, sizeof(name), "%dx%dx%d", c, h, w);
        if (only && strcmp(only, name) != 0)
            continue;
        ncnn::Mat base(w, h, c);
        unsigned int state = 1234u + s;
        for (int q = 0; q < c; q++)
            for (int i = 0; i < w * h; i++)
                base.channel(q)[i] = uniform(state);
        const double mbytes = (double)c * h * w * 4 / 1e6;
        const int inner = std::max(1, (int)(4.0 / mbytes)); // ~4 MB of traffic per sample

        for (int threads = 1; threads <= 2; threads++)
            for (int storage = 0; storage < 3; storage++)
            {
                ncnn::Option opt;
                opt.num_threads = threads;
                opt.use_packing_layout = true;
                opt.use_fp16_storage = storage == 1;
                opt.use_bf16_storage = storage == 2;
                opt.use_local_pool_allocator = true;

                ncnn::Mat stored = base;
                if (storage == 1)
                    ncnn::cast_float32_to_float16(base, stored, opt);
                if (storage == 2)
                    ncnn::cast_float32_to_bfloat16(base, stored, opt);

                // The chain through a Net: packed (ncnn's default) for every
                // elempack > 1 row, unpacked for elempack 1. fp16 storage does
                // not reach x86 layers through a Net, so it has no chain row.
                double chain_ms[2] = {-1, -1};
                if (storage != 1)
                {
                    for (int packing = 0; packing < 2; packing++)
                    {
                        ncnn::Option nopt = opt;
                        nopt.use_packing_layout = packing;
                        LoadedNet ln;
                        load_net(ln, make_net(2, w, h, c, false), nopt);
                        if (!ln.ok)
                            continue;
                        std::vector<double> t;
                        time_net(ln.net, base, 1);
                        for (int k = 0; k < samples; k++)
                            t.push_back(time_net(ln.net, base, inner));
                        chain_ms[packing] = median(t);
                    }
                }

                for (int p = 0; p < 4; p++)
                {
                    const int elempack = packs[p];
                    ncnn::Mat mine, theirs, flat;
                    ncnn::convert_packing(stored, mine, elempack, opt);
                    mine = mine.clone();
                    theirs = mine.clone();
                    flat = mine.clone();
                    if (mine.elempack != elempack)
                        continue;

                    ncnn::Layer* l2 = make_l2norm(c, opt);
                    ncnn::Layer* nz = make_normalize(c, opt);
                    // ncnn's Normalize has no fp16/bf16 storage.
                    const bool nz_ok = storage == 0 && (elempack == 1 || nz->support_packing);

                    std::vector<double> t_ours, t_norm, t_floor;
                    for (int k = 0; k < samples + 1; k++)
                    {
                        // Round robin, so the three see the same machine noise.
                        const double a = time_once([&] { l2->forward_inplace(mine, opt); }, inner);
                        const double b = nz_ok ? time_once([&] { nz->forward_inplace(theirs, opt); }, inner) : -1;
                        const double f = time_once([&] { floor_pass(flat, storage, 1.f, threads); }, inner);
                        if (k == 0)
                            continue; // warm-up
                        t_ours.push_back(a), t_norm.push_back(b), t_floor.push_back(f);
                    }
                    const double ours = median(t_ours), norm = nz_ok ? median(t_norm) : -1, fl = median(t_floor);
                    const double chain = chain_ms[elempack > 1 ? 1 : 0];

                    char so[32], sn[32], sc[32], sf[32], r1[32], r2[32], r3[32];
                    fmt(so, ours), fmt(sn, norm), fmt(sc, chain), fmt(sf, fl);
                    fmt_ratio(r1, ours, norm), fmt_ratio(r2, ours, chain), fmt_ratio(r3, ours, fl);
                    printf("| %d x %d x %d | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", c, h, w, elempack, threads, storage_names[storage], so, sn, sc, sf, r1, r2, r3);
                    fflush(stdout);
                    if (tsv)
                        fprintf(tsv, "%dx%dx%d\t%d\t%d\t%s\t%.5f\t%.5f\t%.5f\t%.5f\n", c, h, w, elempack, threads, storage_names[storage], ours, norm, chain, fl);

                    delete l2;
                    delete nz;
                }
            }
    }

    if (only && strcmp(only, "huge") == 0)
    {
        numerics_rows(samples);
        return 0;
    }

    // Whole nets with ncnn's defaults (packing on, fp32): SSD300's conv4_3
    // shape, 512 x 38 x 38, through conv 3x3 -> X -> conv 3x3 (16 outputs).
    printf("\nWhole net, Input 512x38x38 -> Convolution 3x3 512 -> X -> Convolution 3x3 16, default options:\n\n");
    printf("| threads | with L2Norm ms | with Normalize ms | with chain ms | L2Norm/Normalize | L2Norm/chain |\n|---|---|---|---|---|---|\n");
    ncnn::Mat in(38, 38, 512);
    unsigned int state = 99;
    for (int q = 0; q < 512; q++)
        for (int i = 0; i < 38 * 38; i++)
            in.channel(q)[i] = uniform(state);
    for (int threads = 1; threads <= 2; threads++)
    {
        ncnn::Option opt;
        opt.num_threads = threads;
        LoadedNet nets[3];
        for (int kind = 0; kind < 3; kind++)
        {
            load_net(nets[kind], make_net(kind, 38, 38, 512, true), opt);
            if (!nets[kind].ok)
            {
                fprintf(stderr, "net %d failed to load\n", kind);
                return 1;
            }
            time_net(nets[kind].net, in, 1);
        }
        std::vector<double> t[3];
        for (int k = 0; k < (quick ? 3 : 11); k++)
            for (int kind = 0; kind < 3; kind++)
                t[kind].push_back(time_net(nets[kind].net, in, 1));
        const double a = median(t[0]), b = median(t[1]), c = median(t[2]);
        printf("| %d | %.3f | %.3f | %.3f | %.3f | %.3f |\n", threads, a, b, c, a / b, a / c);
        if (tsv)
            fprintf(tsv, "net\t-\t%d\tfp32\t%.5f\t%.5f\t%.5f\t-1\n", threads, a, b, c);
    }
    if (!only)
        numerics_rows(samples);
    if (tsv)
        fclose(tsv);
    return 0;
}
