// L2Norm without its Vulkan support: in a GPU net ncnn runs it on the CPU,
// moving the blob down and up around it (the fallback). Registered with
// net.register_custom_layer(type, cpu_only_creator, cpu_only_destroyer).
// Shared by tests/cpp/vulkan_layer.cpp and benches/vulkan_bench.cpp.

#ifndef NCNN_L2NORM_TESTS_L2NORM_CPU_ONLY_H
#define NCNN_L2NORM_TESTS_L2NORM_CPU_ONLY_H

#include "ncnn_l2norm/l2norm.h"

class L2NormCpuOnly : public ncnn_l2norm::L2Norm
{
public:
    L2NormCpuOnly()
    {
        support_vulkan = false;
    }
};

static ncnn::Layer* cpu_only_creator(void*)
{
    return new L2NormCpuOnly;
}

static void cpu_only_destroyer(ncnn::Layer* layer, void*)
{
    delete layer;
}

#endif // NCNN_L2NORM_TESTS_L2NORM_CPU_ONLY_H
