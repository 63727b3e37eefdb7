// `cargo bench --bench vulkan`: L2Norm on Vulkan inside a net, next to ncnn's
// own Normalize on Vulkan and to the CPU fallback (our layer without its
// Vulkan support: ncnn downloads the blob, runs the layer on the CPU and
// uploads the result), on SSD's L2Norm tensors, all in the same run.
//
// Each net is Input -> one layer -> output, run with use_vulkan_compute on
// ncnn's default Vulkan device. The input is uploaded once, in the layout
// and storage the net uses; a sample is one extract into a VkMat and the
// submit that waits for it, so what is timed is the device work of that net
// (for the fallback also the two transfers and the CPU layer). A fourth net,
// Input -> Noop, times what every net pays besides its layer (the clone ncnn
// makes of the input blob before an in-place layer, the submit and wait);
// the "layer" columns subtract it.
//
//   vulkan_bench [--quick] [--storage fp32|fp16]
//
// Prints a markdown table naming the device. Exit 3 when ncnn has no device.

#include "ncnn_l2norm/l2norm.h"
#include "../tests/cpp/l2norm_cpu_only.h"

#include "benchmark.h"
#include "command.h"
#include "gpu.h"
#include "net.h"

#include <algorithm>
#include <stdio.h>
#include <string.h>
#include <string>
#include <vector>

// Median milliseconds of `samples` runs of the one-layer net `layer_line`
// (after two warm-ups) on the input tensor c x h x w.
static double time_net(const std::string& layer_line, int c, int h, int w, bool fp16, int samples, int threads, bool* ok)
{
    ncnn::Net net;
    net.opt.use_vulkan_compute = true;
    net.opt.num_threads = threads;
    if (!fp16)
    {
        net.opt.use_fp16_packed = false;
        net.opt.use_fp16_storage = false;
        net.opt.use_fp16_arithmetic = false;
    }
    ncnn_l2norm::register_l2norm(net);
    net.register_custom_layer("L2NormCpu", cpu_only_creator, cpu_only_destroyer);

    char input_line[128];
    snprintf(input_line, sizeof(input_line), "Input data 0 1 data 0=%d 1=%d 2=%d\n", w, h, c);
    const std::string param = "7767517\n2 2\n" + std::string(input_line) + layer_line + "\n";
    // Every layer but Noop reads c fp32 weights.
    std::vector<float> weights(c, 20.f);
    const size_t weight_bytes = layer_line.compare(0, 4, "Noop") == 0 ? 0 : weights.size() * sizeof(float);
    if (net.load_param_mem(param.c_str()) != 0 || net.load_model((const unsigned char*)weights.data()) != weight_bytes)
    {
        fprintf(stderr, "vulkan_bench: cannot load the net with %s\n", layer_line.c_str());
        *ok = false;
        return 0;
    }

    ncnn::Mat in(w, h, c);
    for (int q = 0; q < c; q++)
    {
        float* p = in.channel(q);
        for (int i = 0; i < w * h; i++)
            p[i] = (float)((q * 7 + i * 13) % 97) / 48.f - 1.f;
    }
    const ncnn::VulkanDevice* vkdev = net.vulkan_device();
    ncnn::VkAllocator* blob_allocator = vkdev->acquire_blob_allocator();
    ncnn::VkAllocator* staging_allocator = vkdev->acquire_staging_allocator();
    ncnn::VkMat in_gpu;
    {
        ncnn::Option opt = net.opt;
        opt.blob_vkallocator = blob_allocator;
        opt.staging_vkallocator = staging_allocator;
        ncnn::VkCompute cmd(vkdev);
        cmd.record_upload(in, in_gpu, opt);
        cmd.submit_and_wait();
    }

    std::vector<double> times;
    for (int r = 0; r < samples + 2; r++)
    {
        ncnn::Extractor ex = net.create_extractor();
        // Extracting into a VkMat uses the caller's device allocators.
        ex.set_blob_vkallocator(blob_allocator);
        ex.set_workspace_vkallocator(blob_allocator);
        ex.set_staging_vkallocator(staging_allocator);
        ncnn::VkCompute cmd(vkdev);
        const double t0 = ncnn::get_current_time();
        ex.input("data", in_gpu);
        ncnn::VkMat out;
        if (ex.extract("out", out, cmd) != 0 || cmd.submit_and_wait() != 0)
        {
            fprintf(stderr, "vulkan_bench: the net with %s failed\n", layer_line.c_str());
            *ok = false;
            break;
        }
        const double t1 = ncnn::get_current_time();
        if (r >= 2)
            times.push_back(t1 - t0);
    }
    in_gpu.release();
    vkdev->reclaim_blob_allocator(blob_allocator);
    vkdev->reclaim_staging_allocator(staging_allocator);
    if (times.empty())
        return 0;
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

int main(int argc, char** argv)
{
    bool quick = false;
    bool fp16 = false;
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--storage") == 0 && i + 1 < argc)
            fp16 = strcmp(argv[++i], "fp16") == 0;
    }
    if (ncnn::get_gpu_count() == 0)
    {
        printf("no Vulkan device\n");
        return 3;
    }
    const ncnn::GpuInfo& info = ncnn::get_gpu_info(ncnn::get_default_gpu_index());
    if (fp16 && !info.support_fp16_packed())
    {
        printf("the device has no fp16 blobs\n");
        return 3;
    }
    const int samples = quick ? 5 : 15;
    const int threads = 1; // the CPU fallback's layer: one thread, as the CPU tables
    printf("device: %s (Vulkan device %d of %d), %s blobs, median of %d samples, CPU fallback on %d thread\n\n",
           info.device_name(), ncnn::get_default_gpu_index(), ncnn::get_gpu_count(), fp16 ? "fp16" : "fp32", samples, threads);
    printf("| tensor (c x h x w) | Noop net ms | ours ms | Normalize ms | CPU fallback ms | ours layer ms | Normalize layer ms | fallback layer ms | ours/Normalize | ours/fallback |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|\n");
    const int tensors[][3] = {{512, 38, 38}, {1024, 19, 19}, {512, 64, 64}, {256, 150, 150}};
    int failures = 0;
    for (int t = 0; t < 4; t++)
    {
        const int c = tensors[t][0], h = tensors[t][1], w = tensors[t][2];
        char ours[128], normalize[128], fallback[128];
        snprintf(ours, sizeof(ours), "L2Norm norm 1 1 data out 0=%d 1=1e-10", c);
        snprintf(normalize, sizeof(normalize), "Normalize norm 1 1 data out 0=0 1=0 2=1e-10 3=%d 4=1", c);
        snprintf(fallback, sizeof(fallback), "L2NormCpu norm 1 1 data out 0=%d 1=1e-10", c);
        bool ok = true;
        // Interleaved, so the four nets meet the same machine state.
        std::vector<double> noop_t, ours_t, norm_t, fb_t;
        for (int round = 0; round < 3; round++)
        {
            noop_t.push_back(time_net("Noop norm 1 1 data out", c, h, w, fp16, samples, threads, &ok));
            ours_t.push_back(time_net(ours, c, h, w, fp16, samples, threads, &ok));
            norm_t.push_back(time_net(normalize, c, h, w, fp16, samples, threads, &ok));
            fb_t.push_back(time_net(fallback, c, h, w, fp16, samples, threads, &ok));
        }
        if (!ok)
        {
            printf("| %d x %d x %d | failed |\n", c, h, w);
            failures++;
            continue;
        }
        // The median of the three rounds' medians.
        std::sort(noop_t.begin(), noop_t.end());
        std::sort(ours_t.begin(), ours_t.end());
        std::sort(norm_t.begin(), norm_t.end());
        std::sort(fb_t.begin(), fb_t.end());
        const double n0 = noop_t[1], a = ours_t[1], b = norm_t[1], f = fb_t[1];
        printf("| %d x %d x %d | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.3f | %.2f | %.2f |\n", c, h, w, n0, a, b, f,
               a - n0, b - n0, f - n0, (a - n0) / (b - n0), (a - n0) / (f - n0));
        fflush(stdout);
    }
    return failures ? 1 : 0;
}
