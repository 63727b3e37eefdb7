// Nets shared by 8 threads, each forward with its own Extractor: every output
// must be bit-identical to a single-threaded run (forward is const and keeps
// no state). One Net with opt.num_threads 1 serves threads 0-3, another with
// 4 OpenMP threads (more than the cores) serves threads 4-7.
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

static ncnn::Mat input(int variant)
{
    ncnn::Mat in(38, 38, 3);
    for (int q = 0; q < in.c; q++)
        for (int i = 0; i < 38 * 38; i++)
            in.channel(q)[i] = sinf(0.1f * i + q + variant) * (1 + variant % 3);
    return in;
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

    ncnn::Net nets[2];
    for (int n = 0; n < 2; n++)
    {
        nets[n].opt.num_threads = n == 0 ? 1 : 4;
        ncnn_l2norm::register_l2norm(nets[n]);
        if (nets[n].load_param((models + "/conv_l2norm_conv.param").c_str()) != 0 || nets[n].load_model((models + "/conv_l2norm_conv.bin").c_str()) != 0)
            return fprintf(stderr, "cannot load the model\n"), 1;
    }

    // Single-threaded references for four different inputs.
    const int variants = 4;
    std::vector<ncnn::Mat> inputs, expected(variants);
    for (int v = 0; v < variants; v++)
    {
        inputs.push_back(input(v));
        if (!run(nets[0], inputs[v], expected[v]))
            return fprintf(stderr, "reference forward failed\n"), 1;
    }

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
                if (!run(nets[t < 4 ? 0 : 1], inputs[v], out))
                    failures[t]++;
                else if (!same_bits(out, expected[v]))
                    mismatches[t]++;
            }
        }));
    }
    for (size_t t = 0; t < pool.size(); t++)
        pool[t].join();

    int bad = 0;
    for (int t = 0; t < threads; t++)
        bad += mismatches[t] + failures[t];
    int all_mismatches = 0, all_failures = 0;
    for (int t = 0; t < threads; t++)
        all_mismatches += mismatches[t], all_failures += failures[t];
    printf("%d threads x %d forwards: %d mismatches, %d failures\n", threads, forwards, all_mismatches, all_failures);
    return bad ? 1 : 0;
}
