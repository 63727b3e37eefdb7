// A C++ app using ncnn-l2norm the way README tells C++ users to: our header,
// libncnn_l2norm.a, their libncnn. Checks the layer against a naive double
// computation, under the default and a custom type name.
//
// usage: consumer MODELS_DIR

#include "ncnn_l2norm/l2norm.h"

#include "net.h"

#include <math.h>
#include <stdio.h>
#include <string>

static int run(const std::string& models, const char* type, bool packing, int threads)
{
    ncnn::Net net;
    net.opt.use_packing_layout = packing;
    net.opt.num_threads = threads;
    if (ncnn_l2norm::register_l2norm(net, type) != 0)
        return fprintf(stderr, "register failed\n"), 1;

    // l2norm_only.param says "L2Norm"; rewrite the type for a custom name.
    std::string param =
        std::string("7767517\n2 2\nInput data 0 1 data\n") + type + " norm 1 1 data out 0=16 1=1e-10\n";
    if (net.load_param_mem(param.c_str()) != 0)
        return fprintf(stderr, "load_param failed\n"), 1;
    if (net.load_model((models + "/l2norm_only.bin").c_str()) != 0)
        return fprintf(stderr, "load_model failed\n"), 1;

    ncnn::Mat in(13, 11, 16);
    for (int q = 0; q < in.c; q++)
        for (int i = 0; i < in.w * in.h; i++)
            in.channel(q)[i] = sinf(0.37f * i + q) * (q + 1);

    ncnn::Extractor ex = net.create_extractor();
    ex.input("data", in);
    ncnn::Mat out;
    if (ex.extract("out", out) != 0)
        return fprintf(stderr, "extract failed\n"), 1;
    if (out.w != 13 || out.h != 11 || out.c != 16 || out.elempack != 1)
        return fprintf(stderr, "unexpected output shape\n"), 1;

    // The blob as the layer produced it: packed when packing is on (x86: 4,
    // 8 or 16 lanes), so the layer ran on packed memory without a repack.
    ncnn::Mat raw;
    ex.extract("out", raw, 1);
    if ((raw.elempack > 1) != packing)
        return fprintf(stderr, "packing=%d but the layer's blob has elempack %d\n", packing, raw.elempack), 1;

    double worst = 0;
    for (int i = 0; i < in.w * in.h; i++)
    {
        double ss = 0;
        for (int q = 0; q < in.c; q++)
            ss += (double)in.channel(q)[i] * in.channel(q)[i];
        for (int q = 0; q < in.c; q++)
        {
            const double expected = (q + 1) / 4.0 * in.channel(q)[i] / (sqrt(ss) + 1e-10);
            const double err = fabs(out.channel(q)[i] - expected) / (fabs(expected) + 1e-30);
            worst = err > worst ? err : worst;
        }
    }
    // Where ncnn hands the layer fp16 blobs (its default on ARM), the input is
    // rounded to fp16 before the layer and the output after it: within three
    // fp16 roundings (2^-11 each: a value, its norm, the result) of fp32.
    const bool fp16 = raw.elembits() == 16;
    const double tolerance = fp16 ? 3.0 / 2048 + 2e-6 : 2e-6;
    printf("%s packing=%d (elempack %d, %s) threads=%d: worst relative error %.3g\n", type, packing, raw.elempack,
           fp16 ? "fp16" : "fp32", threads, worst);
    return worst < tolerance ? 0 : 1;
}

int main(int argc, char** argv)
{
    if (argc != 2)
        return fprintf(stderr, "usage: consumer MODELS_DIR\n"), 2;
    printf("kernel path: %s\n", ncnn_l2norm::kernel_isa().c_str());
    int failures = 0;
    const char* types[] = {"L2Norm", "my.detector.L2Norm"};
    for (int t = 0; t < 2; t++)
        for (int packing = 0; packing < 2; packing++)
            for (int threads = 1; threads <= 2; threads++)
                failures += run(argv[1], types[t], packing, threads);
    printf("%s\n", failures ? "FAILED" : "consumer ok");
    return failures ? 1 : 0;
}
