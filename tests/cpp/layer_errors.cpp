// Bad input to the L2Norm layer, called directly as ncnn calls it. For each
// case: prints "=== NAME" to stderr (so the harness can find the layer's log
// line after it) and "NAME RET" to stdout.

#include "ncnn_l2norm/l2norm.h"

#include "datareader.h"
#include "modelbin.h"
#include "net.h"
#include "paramdict.h"

#include <stdio.h>

static void report(const char* name, int ret)
{
    printf("%s %d\n", name, ret);
    fflush(stdout);
}

static void begin(const char* name)
{
    fprintf(stderr, "=== %s\n", name);
    fflush(stderr);
}

struct Params
{
    int channels, eps_mode, channel_shared;
    float eps;
    int shape_len;
    int shape[4];
};

static int load_params(ncnn_l2norm::L2Norm& layer, const Params& p)
{
    ncnn::ParamDict pd;
    pd.set(0, p.channels);
    pd.set(1, p.eps);
    pd.set(2, p.eps_mode);
    pd.set(3, p.channel_shared);
    if (p.shape_len > 0)
    {
        ncnn::Mat shape(p.shape_len);
        for (int i = 0; i < p.shape_len; i++)
            ((int*)shape)[i] = p.shape[i];
        pd.set(10, shape);
    }
    return layer.load_param(pd);
}

static const Params good = {16, 0, 0, 1e-10f, 0, {0, 0, 0, 0}};

static void param_case(const char* name, const Params& p)
{
    begin(name);
    ncnn_l2norm::L2Norm layer;
    report(name, load_params(layer, p));
}

// A layer loaded with 16 channels and 16 weights of 1.
static void make_layer(ncnn_l2norm::L2Norm& layer)
{
    load_params(layer, good);
    ncnn::Mat w(16);
    w.fill(1.f);
    ncnn::Mat weights[1] = {w};
    layer.load_model(ncnn::ModelBinFromMatArray(weights));
}

static void forward_case(const char* name, ncnn::Mat m, bool fp16 = false, bool bf16 = false)
{
    ncnn_l2norm::L2Norm layer;
    make_layer(layer);
    ncnn::Option opt;
    opt.num_threads = 2;
    opt.use_fp16_storage = fp16;
    opt.use_bf16_storage = bf16;
    begin(name);
    report(name, layer.forward_inplace(m, opt));
}

int main()
{
    Params p;
    p = good, p.channels = 0;
    param_case("zero_channels", p);
    p = good, p.channels = -4;
    param_case("negative_channels", p);
    p = good, p.channels = 100000000;
    param_case("absurd_channels", p);
    p = good, p.eps = -1.f;
    param_case("negative_eps", p);
    p = good, p.eps_mode = 9;
    param_case("bad_eps_mode", p);
    p = good, p.channel_shared = 5;
    param_case("bad_channel_shared", p);
    p = good, p.shape_len = 4, p.shape[0] = 1, p.shape[1] = 8, p.shape[2] = 1, p.shape[3] = 1;
    param_case("shape_disagrees", p);
    p = good, p.channels = 0, p.shape_len = 2, p.shape[0] = 3, p.shape[1] = 16;
    param_case("bad_shape", p);

    {
        begin("load_model_before_param");
        ncnn_l2norm::L2Norm layer;
        ncnn::Mat weights[1] = {ncnn::Mat(16)};
        report("load_model_before_param", layer.load_model(ncnn::ModelBinFromMatArray(weights)));
    }
    {
        ncnn_l2norm::L2Norm layer;
        load_params(layer, good);
        begin("truncated_bin");
        // A .bin file that ends after 10 of the 16 floats, read as ncnn reads
        // files (every release has this reader; the bounded memory one is new).
        unsigned char bytes[40] = {0};
        FILE* fp = fmemopen(bytes, sizeof(bytes), "rb");
        ncnn::DataReaderFromStdio dr(fp);
        report("truncated_bin", layer.load_model(ncnn::ModelBinFromDataReader(dr)));
        fclose(fp);
    }
    {
        ncnn_l2norm::L2Norm layer;
        load_params(layer, good);
        begin("weight_count_mismatch");
        ncnn::Mat weights[1] = {ncnn::Mat(7)};
        report("weight_count_mismatch", layer.load_model(ncnn::ModelBinFromMatArray(weights)));
    }

    forward_case("channel_mismatch", ncnn::Mat(5, 5, 8));
    forward_case("empty_input", ncnn::Mat());
    {
        ncnn::Mat m(5, 5, 16);
        m.dims = 5; // no ncnn Mat has this; the layer must refuse it
        forward_case("unsupported_dims", m);
    }
    forward_case("16bit_without_storage_option", ncnn::Mat(5, 5, 16, (size_t)2u));
    forward_case("3_byte_elements", ncnn::Mat(5, 5, 16, (size_t)3u));

    {
        begin("empty_type_name");
        ncnn::Net net;
        report("empty_type_name", ncnn_l2norm::register_l2norm(net, ""));
    }
    {
        // The good path, for contrast: no log line, 0.
        ncnn::Mat m(5, 5, 16);
        m.fill(2.f);
        forward_case("good_input", m);
    }
    return 0;
}
