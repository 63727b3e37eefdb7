// The layer called as ncnn's own layer tests call layers: forward_inplace on
// Mats in every elempack and in fp32, fp16 and bf16 storage, against a
// double-precision computation on the same (storage-rounded) input.
//
// Prints one line per case and "storage ok" when all pass.

#include "ncnn_l2norm/l2norm.h"

#include "layer.h"
#include "modelbin.h"
#include "paramdict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float uniform(unsigned int& state)
{
    state = state * 1664525u + 1013904223u;
    return (state >> 8) * (1.f / 16777216.f) * 4.f - 2.f;
}

// Returns the worst error in units of the storage's tolerance (<= 1 passes).
static double run_case(int w, int h, int c, int elempack, int storage, int threads)
{
    unsigned int state = (unsigned int)(w * 131 + h * 31 + c * 7 + elempack + storage * 1000);
    ncnn::Mat x(w, h, c);
    for (int q = 0; q < c; q++)
        for (int i = 0; i < w * h; i++)
            x.channel(q)[i] = uniform(state);
    ncnn::Mat weights(c);
    for (int q = 0; q < c; q++)
        weights[q] = 1.f + (q % 7) * 3.f;

    ncnn::Option opt;
    opt.num_threads = threads;
    opt.use_packing_layout = elempack > 1;
    opt.use_fp16_storage = storage == 1;
    opt.use_bf16_storage = storage == 2;

    // Round the input to the storage type first: the reference sees what the layer sees.
    ncnn::Mat stored = x.clone(); // the layer works in place; keep x intact
    if (storage == 1)
        ncnn::cast_float32_to_float16(x, stored, opt);
    if (storage == 2)
        ncnn::cast_float32_to_bfloat16(x, stored, opt);
    ncnn::Mat input = x;
    if (storage == 1)
        ncnn::cast_float16_to_float32(stored, input, opt);
    if (storage == 2)
        ncnn::cast_bfloat16_to_float32(stored, input, opt);

    ncnn::Mat packed;
    ncnn::convert_packing(stored, packed, elempack, opt);
    if (packed.elempack != elempack)
        return -1;

    ncnn_l2norm::L2Norm layer;
    ncnn::ParamDict pd;
    pd.set(0, c);
    if (layer.load_param(pd) != 0)
        return 1e9;
    ncnn::Mat wa[1] = {weights};
    if (layer.load_model(ncnn::ModelBinFromMatArray(wa)) != 0)
        return 1e9;
    if (layer.forward_inplace(packed, opt) != 0)
        return 1e9;

    ncnn::Mat unpacked, out;
    ncnn::convert_packing(packed, unpacked, 1, opt);
    out = unpacked;
    if (storage == 1)
        ncnn::cast_float16_to_float32(unpacked, out, opt);
    if (storage == 2)
        ncnn::cast_bfloat16_to_float32(unpacked, out, opt);

    // Tolerances as in tests/common/mod.rs: fp32 (C+8)*2^-24 relative, plus
    // one ulp of the storage type (fp16 2^-10, bf16 2^-7).
    const double fp32_rel = (c + 8) * ldexp(1.0, -24);
    const double ulp = storage == 0 ? 0 : storage == 1 ? ldexp(1.0, -10) : ldexp(1.0, -7);
    double worst = 0;
    for (int i = 0; i < w * h; i++)
    {
        double ss = 0;
        for (int q = 0; q < c; q++)
            ss += (double)input.channel(q)[i] * input.channel(q)[i];
        for (int q = 0; q < c; q++)
        {
            const double expected = weights[q] * input.channel(q)[i] / (sqrt(ss) + 1e-10);
            const double tol = (fp32_rel + ulp) * fabs(expected) + ldexp(1.0, -24);
            const double err = fabs(out.channel(q)[i] - expected) / tol;
            worst = err > worst ? err : worst;
        }
    }
    return worst;
}

int main()
{
    const char* names[] = {"fp32", "fp16", "bf16"};
    const int shapes[][3] = {{7, 5, 16}, {19, 19, 64}, {38, 38, 512}, {3, 1, 32}};
    const int packs[] = {1, 4, 8, 16};
    int failures = 0;
    for (int s = 0; s < 4; s++)
        for (int p = 0; p < 4; p++)
            for (int storage = 0; storage < 3; storage++)
                for (int threads = 1; threads <= 2; threads++)
                {
                    const int* sh = shapes[s];
                    const double worst = run_case(sh[0], sh[1], sh[2], packs[p], storage, threads);
                    const bool ok = worst >= 0 && worst <= 1;
                    printf("%dx%dx%d elempack %d %s threads %d: worst error %.3f of tolerance %s\n",
                           sh[2], sh[1], sh[0], packs[p], names[storage], threads, worst, ok ? "ok" : "FAIL");
                    failures += !ok;
                }
#if defined(__arm__) || defined(__aarch64__)
    // On ARM the layer declares fp16 storage where ncnn's own ARM layers do
    // (fp16 arithmetic, asimdhp): on ARMv8.0 their blobs stay fp32, and a
    // layer declaring fp16 there makes ncnn cast around it.
    {
        ncnn::Layer* relu = ncnn::create_layer("ReLU");
        ncnn_l2norm::L2Norm layer;
        const bool same = relu && relu->support_fp16_storage == layer.support_fp16_storage;
        printf("fp16 storage: declared %d, ncnn's ReLU %d: %s\n", (int)layer.support_fp16_storage,
               relu ? (int)relu->support_fp16_storage : -1, same ? "ok" : "FAIL");
        failures += !same;
        delete relu;
    }
#endif
    printf("%s\n", failures ? "FAILED" : "storage ok");
    return failures ? 1 : 0;
}
