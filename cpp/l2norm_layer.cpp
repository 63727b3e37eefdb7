// The L2Norm ncnn layer: reads params and weights, describes each Mat to the
// Rust kernel (src/bridge.rs) and maps its status to ncnn return codes.

#include "ncnn_l2norm/l2norm.h"
#include "ncnn_l2norm/l2norm_c.h"

#include "ncnn-l2norm/src/bridge.rs.h"

#include <stdio.h>

#include <mutex>
#include <set>
#include <string>

namespace ncnn_l2norm {

// Logs one line naming the layer: "L2Norm conv4_3_norm: <what is wrong>".
static void log_error(const ncnn::Layer* layer, const char* message)
{
#if NCNN_STRING
    if (!layer->name.empty())
    {
        NCNN_LOGE("L2Norm %s: %s", layer->name.c_str(), message);
        return;
    }
#endif // NCNN_STRING
    (void)layer;
    NCNN_LOGE("L2Norm: %s", message);
}

static bridge::LayerParams bridge_params(const L2Norm& layer)
{
    bridge::LayerParams p;
    p.channels = layer.channels;
    p.eps = layer.eps;
    p.eps_mode = layer.eps_mode;
    p.channel_shared = layer.channel_shared;
    return p;
}

static rust::Slice<const float> weights_of(const ncnn::Mat& scale_data)
{
    if (scale_data.empty())
        return rust::Slice<const float>();
    return rust::Slice<const float>((const float*)scale_data.data, (size_t)scale_data.w);
}

// 0 fp32, 1 fp16, 2 bf16, -1 unknown. A 2-byte element is fp16 or bf16 as
// the options say; with both on, it is what ncnn's Net would have cast to:
// fp16 on ARM and RISC-V (their fp16 paths come first), bf16 elsewhere.
static int storage_of(const ncnn::Mat& m, const ncnn::Option& opt)
{
    const size_t elembits = m.elempack > 0 ? m.elemsize * 8 / m.elempack : 0;
    if (elembits != 16)
        return 0; // fp32, or a size Rust reports as unsupported
#if defined(__arm__) || defined(__aarch64__) || defined(__riscv)
    if (opt.use_fp16_storage)
        return 1;
    if (opt.use_bf16_storage)
        return 2;
#else
    if (opt.use_bf16_storage)
        return 2;
    if (opt.use_fp16_storage)
        return 1;
#endif
    return -1;
}

L2Norm::L2Norm()
{
    one_blob_only = true;
    support_inplace = true;
    // The kernel reads any elempack and fp32/fp16/bf16 directly, so ncnn
    // hands over its blobs without unpacking or casting them.
    support_packing = true;
    support_fp16_storage = true;
    support_bf16_storage = true;

    channels = 0;
    eps = 1e-10f;
    eps_mode = 0;
    channel_shared = 0;
    weight_count = 0;
}

int L2Norm::load_param(const ncnn::ParamDict& pd)
{
    bridge::LayerParams p;
    p.channels = pd.get(0, 0);
    p.eps = pd.get(1, 1e-10f);
    p.eps_mode = pd.get(2, 0);
    p.channel_shared = pd.get(3, 0);

    ncnn::Mat shape = pd.get(10, ncnn::Mat());
    const int* shape_data = (const int*)shape.data;
    for (int i = 0; i < shape.w; i++) // ParamDict arrays are 1-D
        p.weight_shape.push_back(shape_data[i]);

    bridge::ParamsCheck check = bridge::check_params(p);
    if (check.status.code != 0)
    {
        log_error(this, check.status.message.c_str());
        return check.status.code;
    }

    channels = check.channels;
    eps = p.eps;
    eps_mode = p.eps_mode;
    channel_shared = p.channel_shared;
    weight_count = check.weight_count;
    return 0;
}

int L2Norm::load_model(const ncnn::ModelBin& mb)
{
    if (weight_count <= 0)
    {
        log_error(this, "load_model before a successful load_param");
        return -1;
    }

    scale_data = mb.load(weight_count, 1);
    if (scale_data.empty())
    {
        char message[128];
        snprintf(message, sizeof(message), "weights missing: the .bin ended before %d fp32 weights could be read", weight_count);
        log_error(this, message);
        return -100;
    }

    // A ModelBin over a Mat array hands back whatever Mat it holds.
    bridge::Status status = bridge::check_weights(bridge_params(*this), weights_of(scale_data));
    if (status.code != 0)
    {
        log_error(this, status.message.c_str());
        scale_data.release();
        return status.code;
    }
    return 0;
}

int L2Norm::forward_inplace(ncnn::Mat& bottom_top_blob, const ncnn::Option& opt) const
{
    bridge::MatShape shape;
    shape.dims = bottom_top_blob.dims;
    shape.w = bottom_top_blob.w;
    shape.h = bottom_top_blob.h;
    shape.d = bottom_top_blob.d;
    shape.c = bottom_top_blob.c;
    shape.elempack = bottom_top_blob.elempack;
    shape.elemsize = bottom_top_blob.elemsize;
    shape.cstep = bottom_top_blob.cstep;
    shape.storage = storage_of(bottom_top_blob, opt);
    if (bottom_top_blob.data == 0)
        shape.dims = 0; // an empty Mat, reported as such

    const bridge::LayerParams params = bridge_params(*this);
    const rust::Slice<const float> weights = weights_of(scale_data);

    bridge::ForwardPlan plan = bridge::plan_forward(shape, params, weights, opt.num_threads);
    if (plan.status.code != 0)
    {
        log_error(this, plan.status.message.c_str());
        return plan.status.code;
    }

    uint8_t* data = (uint8_t*)bottom_top_blob.data;
    const int chunks = plan.chunks; // 1 <= chunks <= max(1, opt.num_threads)
    int failed = 0;

    if (chunks == 1)
    {
        // Small blobs: no parallel region to open.
        failed = bridge::forward_chunk(shape, data, params, weights, 0, 1) != 0;
    }
    else
    {
        // Chunks own disjoint positions; ncnn's OpenMP threads run them.
        #pragma omp parallel for num_threads(chunks) reduction(| : failed)
        for (int i = 0; i < chunks; i++)
        {
            failed |= bridge::forward_chunk(shape, data, params, weights, i, chunks) != 0;
        }
    }

    if (failed)
    {
        log_error(this, "internal error in the kernel");
        return -1;
    }
    return 0;
}

ncnn::Layer* l2norm_layer_creator(void* /*userdata*/)
{
    return new L2Norm;
}

void l2norm_layer_destroyer(ncnn::Layer* layer, void* /*userdata*/)
{
    delete layer;
}

// ncnn keeps the type pointer it is given, so names live here for the
// process's lifetime; a set keeps one copy of each.
static const char* interned_type_name(const char* type)
{
    static std::mutex lock;
    static std::set<std::string>* names = new std::set<std::string>;
    std::lock_guard<std::mutex> guard(lock);
    return names->insert(type).first->c_str();
}

int register_l2norm(ncnn::Net& net, const char* type)
{
    if (type == 0 || type[0] == '\0')
    {
        NCNN_LOGE("L2Norm: register_l2norm needs a non-empty type name");
        return -1;
    }
    return net.register_custom_layer(interned_type_name(type), l2norm_layer_creator, l2norm_layer_destroyer);
}

std::string kernel_isa()
{
    const rust::Str isa = bridge::kernel_isa();
    return std::string(isa.data(), isa.size());
}

} // namespace ncnn_l2norm

extern "C" int ncnn_l2norm_register(ncnn_net_t net, const char* type)
{
    if (net == 0 || net->pthis == 0)
    {
        NCNN_LOGE("L2Norm: ncnn_l2norm_register got a null net");
        return -1;
    }
    return ncnn_l2norm::register_l2norm(*(ncnn::Net*)net->pthis, type ? type : "L2Norm");
}
