// A small ncnn app using the L2Norm layer: conv -> L2Norm -> conv.
//
// Runs ncnn-models/conv_l2norm_conv.param on a deterministic 3x38x38 input,
// checks that every position of the L2Norm output has the channel norm its
// weights (all 20, mmdetection's init) imply, and times the net.
//
// Built into the crate and started by `cargo run --release --bin l2norm-demo`;
// compile with -DL2NORM_DEMO_STANDALONE for a plain C++ main().

#include "ncnn_l2norm/l2norm.h"

#include "benchmark.h"
#include "net.h"

#include <algorithm>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

static void usage()
{
    fprintf(stderr, "usage: l2norm-demo [--models DIR] [--threads N] [--runs N]\n");
}

extern "C" int l2norm_demo_main(int argc, char** argv)
{
    std::string models = "ncnn-models";
    int threads = 2;
    int runs = 20;
    for (int i = 1; i < argc; i++)
    {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--models") == 0 && has_value)
            models = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && has_value)
            threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && has_value)
            runs = atoi(argv[++i]);
        else
        {
            usage();
            return 2;
        }
    }
    if (threads < 1 || runs < 1)
    {
        usage();
        return 2;
    }

    ncnn::Net net;
    net.opt.num_threads = threads;
    ncnn_l2norm::register_l2norm(net);

    const std::string param = models + "/conv_l2norm_conv.param";
    const std::string bin = models + "/conv_l2norm_conv.bin";
    if (net.load_param(param.c_str()) != 0 || net.load_model(bin.c_str()) != 0)
    {
        fprintf(stderr, "l2norm-demo: cannot load %s / %s\n", param.c_str(), bin.c_str());
        return 1;
    }

    // A smooth, deterministic image-like input.
    ncnn::Mat in(38, 38, 3);
    for (int q = 0; q < in.c; q++)
    {
        float* p = in.channel(q);
        for (int y = 0; y < in.h; y++)
            for (int x = 0; x < in.w; x++)
                p[y * in.w + x] = sinf(0.3f * x + 1.1f * q) * cosf(0.2f * y - 0.7f * q);
    }

    ncnn::Mat stored, out;
    std::vector<double> times;
    for (int r = 0; r < runs; r++)
    {
        const double t0 = ncnn::get_current_time();
        ncnn::Extractor ex = net.create_extractor();
        ex.input("data", in);
        // "norm" as the layer wrote it (type 1: not converted), to see its storage.
        if (ex.extract("norm", stored, 1) != 0 || ex.extract("out", out) != 0)
        {
            fprintf(stderr, "l2norm-demo: forward failed\n");
            return 1;
        }
        times.push_back(ncnn::get_current_time() - t0);
    }
    std::sort(times.begin(), times.end());

    // ncnn stores blobs in fp16 where it uses fp16 storage (its default on
    // ARM): each value is then rounded to 11 significant bits, so a norm of
    // 20 comes out within 20 * 2^-11 (~0.01) of 20; in fp32, within 1e-3.
    const bool fp16 = stored.elembits() == 16;
    ncnn::Mat norm = stored;
    if (fp16 && net.opt.use_bf16_storage)
        ncnn::cast_bfloat16_to_float32(stored, norm);
    else if (fp16)
        ncnn::cast_float16_to_float32(stored, norm);
    const double tolerance = fp16 ? 20.0 / 2048 + 1e-3 : 1e-3;

    // All weights are 20, so every position of the L2Norm output has norm 20.
    ncnn::Mat flat;
    ncnn::convert_packing(norm, flat, 1);
    double lo = 1e30, hi = 0;
    for (int i = 0; i < flat.w * flat.h; i++)
    {
        double ss = 0;
        for (int q = 0; q < flat.c; q++)
        {
            const float v = flat.channel(q)[i];
            ss += (double)v * v;
        }
        lo = std::min(lo, sqrt(ss));
        hi = std::max(hi, sqrt(ss));
    }

    ncnn::Mat out_flat;
    ncnn::convert_packing(out, out_flat, 1);
    double checksum = 0;
    for (int q = 0; q < out_flat.c; q++)
        for (int i = 0; i < out_flat.w * out_flat.h; i++)
            checksum += out_flat.channel(q)[i];

    printf("ncnn-l2norm demo: Input 3x38x38 -> Convolution 3x3 -> L2Norm -> Convolution 1x1\n");
    printf("L2Norm output: %d x %d x %d (elempack %d, %s), per-position channel norm %.5f .. %.5f (expected 20)\n",
           flat.c, flat.h, flat.w, norm.elempack, fp16 ? "fp16" : "fp32", lo, hi);
    printf("net output: %d x %d x %d, sum %.6f\n", out_flat.c, out_flat.h, out_flat.w, checksum);
    printf("inference: %.3f ms median of %d runs, %d threads\n", times[times.size() / 2], runs, threads);

    if (fabs(lo - 20.0) > tolerance || fabs(hi - 20.0) > tolerance)
    {
        fprintf(stderr, "l2norm-demo: L2Norm output norms are off\n");
        return 1;
    }
    return 0;
}

#ifdef L2NORM_DEMO_STANDALONE
int main(int argc, char** argv)
{
    return l2norm_demo_main(argc, argv);
}
#endif // L2NORM_DEMO_STANDALONE
