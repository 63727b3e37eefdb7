// One Net shared by 8 threads, each forward with its own Extractor: every
// output must be bit-identical to a single-threaded run (forward is const and
// keeps no state). Two models: the conv -> L2Norm -> conv test model (small,
// packed blobs), and a lone 512-channel L2Norm on a 512x38x38 blob (2.9 MB,
// large enough that the layer splits it over ncnn's OpenMP threads). Each
// runs on a Net with opt.num_threads 1 and on one with 4 (more threads than
// this machine's cores), against the 1-thread Net's single-threaded outputs.
//
// usage: concurrency MODELS_DIR FORWARDS_PER_THREAD

#include "ncnn_l2norm/l2norm.h"

#include "net.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <thread>
#include <vector>

static ncnn::Mat input(int channels, int variant)
{
    ncnn::Mat in(38, 38, channels);
    for (int q = 0; q < in.c; q++)
        for (int i = 0; i < 38 * 38; i++)
            in.channel(q)[i] = sinf(0.1f * i + q + variant) * (1 + variant % 3);
    return in;
}

// Loads model `m` (0: conv_l2norm_conv from MODELS_DIR, 1: the lone
// 512-channel L2Norm, weights from `wide_weights`) into `net`.
static bool load(ncnn::Net& net, int m, const std::string& models, const std::vector<float>& wide_weights)
{
    ncnn_l2norm::register_l2norm(net);
    if (m == 0)
        return net.load_param((models + "/conv_l2norm_conv.param").c_str()) == 0
               && net.load_model((models + "/conv_l2norm_conv.bin").c_str()) == 0;
    const char* param = "7767517\n2 2\nInput data 0 1 data\nL2Norm norm 1 1 data out 0=512 1=1e-10\n";
    return net.load_param_mem(param) == 0
           && net.load_model((const unsigned char*)wide_weights.data()) == (int)(wide_weights.size() * sizeof(float));
}

static bool run(ncnn::Net& net, const ncnn::Mat& in, ncnn::Mat& out)
{
    ncnn::Extractor ex = net.create_extractor();
    ex.input("data", in);
    return ex.extract("out", out) == 0;
}

static bool same_bits(const ncnn::Mat& a, const ncnn::Mat& b)
{
    if (a.w != b.w || a.h != b.h || a.c != b.c || a.elemsize != b.elemsize)
        return false;
    for (int q = 0; q < a.c; q++)
        if (memcmp(a.channel(q), b.channel(q), a.w * a.h * a.elemsize) != 0)
            return false;
    return true;
}

int main(int argc, char** argv)
{
    if (argc != 3)
        return fprintf(stderr, "usage: concurrency MODELS_DIR FORWARDS_PER_THREAD\n"), 2;
    const std::string models = argv[1];
    const int forwards = atoi(argv[2]);
    std::vector<float> wide_weights(512);
    for (int c = 0; c < 512; c++)
        wide_weights[c] = 1.0f + 0.01f * c;

    int bad = 0;
    for (int m = 0; m < 2; m++)
    {
        const int channels = m == 0 ? 3 : 512;
        ncnn::Net nets[2];
        for (int n = 0; n < 2; n++)
        {
            nets[n].opt.num_threads = n == 0 ? 1 : 4;
            if (!load(nets[n], m, models, wide_weights))
                return fprintf(stderr, "cannot load model %d\n", m), 1;
        }

        // Single-threaded references for four different inputs.
        const int variants = 4;
        std::vector<ncnn::Mat> inputs, expected(variants);
        for (int v = 0; v < variants; v++)
        {
            inputs.push_back(input(channels, v));
            if (!run(nets[0], inputs[v], expected[v]))
                return fprintf(stderr, "reference forward failed\n"), 1;
        }

        for (int n = 0; n < 2; n++)
        {
            const int threads = 8;
            std::vector<int> mismatches(threads, 0), failures(threads, 0);
            std::vector<std::thread> pool;
            for (int t = 0; t < threads; t++)
            {
                pool.push_back(std::thread([&, t] {
                    for (int i = 0; i < forwards; i++)
                    {
                        const int v = (t + i) % variants;
                        ncnn::Mat out;
                        if (!run(nets[n], inputs[v], out))
                            failures[t]++;
                        else if (!same_bits(out, expected[v]))
                            mismatches[t]++;
                    }
                }));
            }
            for (size_t t = 0; t < pool.size(); t++)
                pool[t].join();

            int all_mismatches = 0, all_failures = 0;
            for (int t = 0; t < threads; t++)
                all_mismatches += mismatches[t], all_failures += failures[t];
            printf("%s, num_threads %d: one Net, %d threads x %d forwards: %d mismatches, %d failures\n",
                   m == 0 ? "conv_l2norm_conv" : "L2Norm 512x38x38", nets[n].opt.num_threads,
                   threads, forwards, all_mismatches, all_failures);
            bad += all_mismatches + all_failures;
        }
    }
    return bad ? 1 : 0;
}
