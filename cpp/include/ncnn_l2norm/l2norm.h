// ncnn-l2norm: SSD's channel-wise L2Norm as an ncnn custom layer.
//
// Link libncnn_l2norm.a (built by `cargo build --release`) before libncnn,
// then register the layer on each Net before load_param:
//
//     ncnn::Net net;
//     ncnn_l2norm::register_l2norm(net);          // type "L2Norm"
//     net.load_param("ssd.param");
//
// Params (ncnn `id=value`): 0=channels (int), 1=eps (float, 1e-10),
// 2=eps_mode (int: 0 add, 1 caffe, 2 F.normalize, 3 tensorflow),
// 3=channel_shared (int, 0), 10=weight shape (int array, as pnnx moduleop
// writes it; supplies channels). A param of another type fails load_param.
// Weights: raw fp32 in the .bin (a 1-D fp32 Mat from a ModelBin).
//
// With an ncnn built with NCNN_VULKAN=ON the layer also runs on the GPU
// (support_vulkan): a net with opt.use_vulkan_compute keeps the blob on the
// device around it. The shader is cpp/shaders/l2norm.comp, compiled at
// create_pipeline by ncnn's own compiler; see docs/vulkan.md. With
// NCNN_VULKAN off (ncnn's platform.h says so) those parts compile out.
#pragma once

#include "layer.h"
#include "net.h"

#include <string>

namespace ncnn_l2norm {

class L2Norm : public ncnn::Layer
{
public:
    L2Norm();

    virtual int load_param(const ncnn::ParamDict& pd);

    virtual int load_model(const ncnn::ModelBin& mb);

    // A batched Mat (ncnn 20261020+, n > 1) is normalised item by item.
    virtual int forward_inplace(ncnn::Mat& bottom_top_blob, const ncnn::Option& opt) const;

#if NCNN_VULKAN
    // Vulkan: the pipelines for elempack 1, 4 and 8, for fp32 blobs and for
    // the 16-bit blobs opt asks for (a net without use_vulkan_compute
    // creates none).
    virtual int create_pipeline(const ncnn::Option& opt);
    virtual int destroy_pipeline(const ncnn::Option& opt);
    // The fp32 weights to the device, once.
    virtual int upload_model(ncnn::VkTransfer& cmd, const ncnn::Option& opt);
    // One dispatch on cmd (more only past 65535 workgroups); never waits.
    virtual int forward_inplace(ncnn::VkMat& bottom_top_blob, ncnn::VkCompute& cmd, const ncnn::Option& opt) const;
#endif // NCNN_VULKAN

private:
    int forward_one(ncnn::Mat& bottom_top_blob, const ncnn::Option& opt) const;


public:
    // param
    int channels; // input channels, resolved from 0= or 10=
    float eps;
    int eps_mode;
    int channel_shared;
    int weight_count; // fp32 weights load_model reads (channels, or 1 if shared)

    // model
    ncnn::Mat scale_data; // fp32, channels values (1 if channel_shared)

#if NCNN_VULKAN
    ncnn::VkMat scale_data_gpu; // the same fp32 values on the device
    // [0]: fp32 blobs; [1]: 16-bit blobs (fp16 or bf16, as create_pipeline's
    // options say; 0 when they enable neither). Per elempack 1, 4, 8.
    ncnn::Pipeline* pipeline_pack1[2];
    ncnn::Pipeline* pipeline_pack4[2];
    ncnn::Pipeline* pipeline_pack8[2];
#endif // NCNN_VULKAN
};

// ncnn layer factory functions, for Net::register_custom_layer.
ncnn::Layer* l2norm_layer_creator(void* userdata);
void l2norm_layer_destroyer(ncnn::Layer* layer, void* userdata);

// Registers L2Norm on `net` under `type` (copied; need not outlive the net).
// Returns 0, or ncnn's error code. A built-in type name ("Normalize") is
// allowed and replaces ncnn's layer in this net; that is logged once.
int register_l2norm(ncnn::Net& net, const char* type = "L2Norm");

// The kernel's code path on this CPU: "avx512f+bf16" (AVX-512 with
// AVX512_BF16, which changes only bf16 storage), "avx512f", "avx2+fma+f16c",
// "sse2", "neon+fhm", "neon" or "portable"
// (NCNN_L2NORM_ISA=portable|sse2|avx2|avx512|avx512+bf16|neon|neon+fhm caps it).
std::string kernel_isa();

} // namespace ncnn_l2norm
