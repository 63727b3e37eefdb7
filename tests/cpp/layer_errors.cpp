// Bad input to the L2Norm layer, called directly as ncnn calls it. For each
// case: prints "=== NAME" to stderr (so the harness can find the layer's log
// line after it) and "NAME RET" to stdout.

#include "ncnn_l2norm/l2norm.h"

#include "datareader.h"
#include "modelbin.h"
#include "net.h"
#include "paramdict.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <string>

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

// A ParamDict holding 0=16 plus whatever `edit` sets: entries of the wrong
// type, as a .param line can make them (ncnn's getters would return the
// default for each, silently).
static void typed_param_case(const char* name, void (*edit)(ncnn::ParamDict&))
{
    ncnn::ParamDict pd;
    pd.set(0, 16);
    edit(pd);
    begin(name);
    ncnn_l2norm::L2Norm layer;
    report(name, layer.load_param(pd));
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

// load_model with a ModelBin that hands back `weights` as it is.
static int load_weights(ncnn_l2norm::L2Norm& layer, const ncnn::Mat& weights)
{
    ncnn::Mat mats[1] = {weights};
    return layer.load_model(ncnn::ModelBinFromMatArray(mats));
}

static void weight_case(const char* name, const ncnn::Mat& weights)
{
    ncnn_l2norm::L2Norm layer;
    load_params(layer, good);
    begin(name);
    report(name, load_weights(layer, weights));
}

// ncnn 20261020 and later have batched Mats; these pick Mat::create with a
// batch count where Mat::n exists. (Older releases have a create() these
// arguments also fit, as w, h, d, c, elemsize, elempack: hence the m.n.)
template<typename M>
static auto create_batched(M& m, int w, int h, int c, int n, int) -> decltype((void)m.n, m.create(w, h, c, (size_t)4u, 1, n))
{
    return m.create(w, h, c, (size_t)4u, 1, n);
}
template<typename M>
static void create_batched(M&, int, int, int, int, long)
{
}
template<typename M>
static auto batch_of(M& m, int b, int) -> decltype(m.batch(b))
{
    return m.batch(b);
}
template<typename M>
static M batch_of(M& m, int, long)
{
    return m;
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
    p = good, p.eps = -1e-30f;
    param_case("tiny_negative_eps", p);
    p = good, p.shape_len = 4, p.shape[0] = 1, p.shape[1] = 8, p.shape[2] = 1, p.shape[3] = 1;
    param_case("shape_disagrees", p);
    p = good, p.channels = 0, p.shape_len = 2, p.shape[0] = 3, p.shape[1] = 16;
    param_case("bad_shape", p);

    {
        begin("missing_channels");
        ncnn_l2norm::L2Norm layer;
        report("missing_channels", layer.load_param(ncnn::ParamDict()));
    }

    // Params of the wrong type: each must fail load_param, naming what it got.
    typed_param_case("eps_string", [](ncnn::ParamDict& pd) { pd.set(1, std::string("nan")); });
    typed_param_case("eps_mode_float", [](ncnn::ParamDict& pd) { pd.set(2, 1.f); });
    typed_param_case("channel_shared_float", [](ncnn::ParamDict& pd) { pd.set(3, 1.f); });
    typed_param_case("channels_float", [](ncnn::ParamDict& pd) { pd.set(0, 8.f); });
    typed_param_case("channels_array", [](ncnn::ParamDict& pd) { pd.set(0, ncnn::Mat(2)); });
    typed_param_case("weight_shape_scalar", [](ncnn::ParamDict& pd) { pd.set(10, 16); });
    typed_param_case("weight_shape_string", [](ncnn::ParamDict& pd) { pd.set(10, std::string("1,16")); });

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

    // Weights of another kind than 1-D fp32: refused before anything reads
    // them. The fp16 ones end at a page whose successor is unmapped, so
    // reading them as 16 fp32 values would fault.
    {
        const size_t page = (size_t)sysconf(_SC_PAGESIZE);
        unsigned char* pages = (unsigned char*)mmap(0, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        mprotect(pages + page, page, PROT_NONE);
        unsigned short* halves = (unsigned short*)(pages + page - 16 * 2);
        for (int i = 0; i < 16; i++)
            halves[i] = 0x3c00; // 1.0 in fp16
        ncnn::Mat fp16_weights(16, (void*)halves, (size_t)2u);

        ncnn_l2norm::L2Norm layer;
        load_params(layer, good);
        begin("fp16_weights");
        int ret = load_weights(layer, fp16_weights);
        if (ret == 0)
        {
            // Accepted: the forward reads 16 fp32 weights from 32 bytes.
            ncnn::Mat m(5, 5, 16);
            m.fill(1.f);
            ncnn::Option opt;
            opt.num_threads = 1;
            layer.forward_inplace(m, opt);
        }
        report("fp16_weights", ret);
        munmap(pages, 2 * page);
    }
    weight_case("int8_weights", ncnn::Mat(16, (size_t)1u));
    weight_case("packed_weights", ncnn::Mat(4, (size_t)16u, 4));
    weight_case("2d_weights", ncnn::Mat(16, 1));
    {
        // A caller who swaps the weights after load_model gets the same check.
        ncnn_l2norm::L2Norm layer;
        make_layer(layer);
        layer.scale_data = ncnn::Mat(16, (size_t)2u);
        ncnn::Mat m(5, 5, 16);
        m.fill(1.f);
        ncnn::Option opt;
        begin("weights_swapped_before_forward");
        report("weights_swapped_before_forward", layer.forward_inplace(m, opt));
    }

    forward_case("channel_mismatch", ncnn::Mat(5, 5, 8));
    // An int8 blob as ncnn packs it (8 channels of 1 byte per element).
    forward_case("int8_packed_input", ncnn::Mat(5, 5, 2, (size_t)8u, 8));
    forward_case("empty_input", ncnn::Mat());
    {
        ncnn::Mat m(5, 5, 16);
        m.dims = 5; // no ncnn Mat has this; the layer must refuse it
        forward_case("unsupported_dims", m);
    }
    forward_case("16bit_without_storage_option", ncnn::Mat(5, 5, 16, (size_t)2u));
    forward_case("3_byte_elements", ncnn::Mat(5, 5, 16, (size_t)3u));

    {
        // A batched Mat (ncnn 20261020+): every item is normalised, not only
        // the first. Reports 0 when both items come out right.
        ncnn::Mat m;
        create_batched(m, 5, 5, 16, 2, 0);
        if (m.empty())
        {
            printf("skipped: batched_input: this ncnn has no batched Mats\n");
            begin("batched_input");
            report("batched_input", 0);
        }
        else
        {
            ncnn::Mat item0 = batch_of(m, 0, 0), item1 = batch_of(m, 1, 0);
            item0.fill(2.f);
            item1.fill(3.f);
            ncnn_l2norm::L2Norm layer;
            make_layer(layer);
            ncnn::Option opt;
            opt.num_threads = 2;
            begin("batched_input");
            int ret = layer.forward_inplace(m, opt);
            int wrong = 0;
            for (int b = 0; b < 2; b++)
            {
                ncnn::Mat item = batch_of(m, b, 0);
                for (int q = 0; q < 16; q++)
                    for (int i = 0; i < 25; i++)
                        wrong += fabsf(item.channel(q)[i] - 0.25f) > 1e-6f;
            }
            report("batched_input", ret != 0 ? ret : wrong != 0);
        }
    }
    {
        begin("register_over_builtin");
        ncnn::Net net;
        report("register_over_builtin", ncnn_l2norm::register_l2norm(net, "Normalize"));
    }
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
