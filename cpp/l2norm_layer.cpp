// The L2Norm ncnn layer: reads params and weights, describes each Mat to the
// Rust kernel (src/bridge.rs) and maps its status to ncnn return codes.
// With an ncnn built with Vulkan, also the layer on the GPU (the section
// after forward_one): pipelines from cpp/shaders/l2norm.comp, compiled by
// ncnn's shader compiler, and one dispatch per forward (docs/vulkan.md).

#include "ncnn_l2norm/l2norm.h"
#include "ncnn_l2norm/l2norm_c.h"

#include "ncnn-l2norm/src/bridge.rs.h"

#include "cpu.h" // ncnn::cpu_support_arm_asimdhp

#if NCNN_VULKAN
#include "command.h"
#include "gpu.h"
#include "pipeline.h"

// cpp/shaders/l2norm.comp as l2norm_comp_data / l2norm_comp_size (build/cpp.rs writes it).
#include "l2norm_comp.h"
#endif // NCNN_VULKAN

#include <stdint.h>
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

// ncnn releases from 20261020 on have batched Mats (Mat::n, Mat::batch);
// older ones do not. These overloads pick the member when it exists.
template<typename M>
static auto batch_count(const M& m, int) -> decltype((int)m.n)
{
    return m.n;
}
template<typename M>
static int batch_count(const M&, long)
{
    return 1;
}
template<typename M>
static auto batch_item(M& m, int b, int) -> decltype(m.batch(b))
{
    return m.batch(b);
}
template<typename M>
static M batch_item(M& m, int, long)
{
    return m; // only reached with batch_count 1
}

// What Rust checks of a Mat or VkMat: its fields, dims 0 when it is empty.
template<typename M>
static bridge::MatShape describe_fields(const M& m, bool empty, int storage)
{
    bridge::MatShape shape;
    shape.dims = empty ? 0 : m.dims;
    shape.w = m.w;
    shape.h = m.h;
    shape.d = m.d;
    shape.c = m.c;
    shape.elempack = m.elempack;
    shape.elemsize = m.elemsize;
    shape.cstep = m.cstep;
    shape.storage = storage;
    shape.n = batch_count(m, 0);
    return shape;
}

static bridge::MatShape describe(const ncnn::Mat& m, int storage)
{
    // A Mat without data is empty, whatever its fields say.
    return describe_fields(m, !m.data, storage);
}

// The weights as fp32 values, only when the Mat is a 1-D fp32 vector: Rust
// checks the same description (check_weights) before reading them, so a Mat
// of another kind is reported, never read past its end.
static rust::Slice<const float> weights_of(const ncnn::Mat& scale_data)
{
    if (scale_data.data == 0 || scale_data.dims != 1 || scale_data.elemsize != 4 || scale_data.elempack != 1 || scale_data.w < 0)
        return rust::Slice<const float>();
    return rust::Slice<const float>((const float*)scale_data.data, (size_t)scale_data.w);
}

// One ParamDict entry with the type ncnn recorded for it; Rust decides
// whether that type is the one the param documents.
static bridge::ParamEntry param_entry(const ncnn::ParamDict& pd, int id)
{
    bridge::ParamEntry e;
    e.kind = pd.type(id);
    e.int_value = 0;
    e.float_value = 0.f;
    if (e.kind == 1 || e.kind == 2)
        e.int_value = pd.get(id, 0);
    if (e.kind == 3)
        e.float_value = pd.get(id, 0.f);
    if (e.kind == 7)
        e.text = pd.get(id, std::string());
    if (e.kind >= 4 && e.kind <= 6)
    {
        const ncnn::Mat v = pd.get(id, ncnn::Mat());
        if (v.data && v.elemsize == 4) // ParamDict arrays are 1-D 32-bit words
        {
            const uint32_t* words = (const uint32_t*)v.data;
            for (int i = 0; i < v.w; i++)
                e.words.push_back(words[i]);
        }
    }
    return e;
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

#if NCNN_VULKAN
// ncnn 1.0.20261020 has a flag of its own for packed blobs on Vulkan
// (support_vulkan_packing); in 1.0.20250503 support_packing, which the
// layer sets for the CPU anyway, covers both.
template<typename L>
static auto enable_vulkan_packing(L& layer, int) -> decltype((void)(layer.support_vulkan_packing = true))
{
    layer.support_vulkan_packing = true;
}
template<typename L>
static void enable_vulkan_packing(L&, long)
{
}
#endif // NCNN_VULKAN

L2Norm::L2Norm()
{
    one_blob_only = true;
    support_inplace = true;
    // The kernel reads any elempack and fp32/fp16/bf16 directly, so ncnn
    // hands over its blobs without unpacking or casting them.
    support_packing = true;
    support_bf16_storage = true;
#if defined(__arm__) || defined(__aarch64__)
    // As ncnn's own ARM layers (ReLU, Convolution) do: fp16 storage only
    // where the CPU has fp16 arithmetic. On ARMv8.0 (Cortex-A53/A72) those
    // layers keep blobs in fp32, and a layer declaring fp16 storage makes
    // ncnn cast the blob to fp16 before it and back after it.
    support_fp16_storage = ncnn::cpu_support_arm_asimdhp() != 0;
#else
    support_fp16_storage = true;
#endif

    channels = 0;
    eps = 1e-10f;
    eps_mode = 0;
    channel_shared = 0;
    weight_count = 0;

#if NCNN_VULKAN
    // The shader reads elempack 1, 4 and 8 in every storage ncnn's options
    // select (docs/vulkan.md).
    support_vulkan = true;
    enable_vulkan_packing(*this, 0);
    for (int i = 0; i < 2; i++)
    {
        pipeline_pack1[i] = 0;
        pipeline_pack4[i] = 0;
        pipeline_pack8[i] = 0;
    }
#endif // NCNN_VULKAN
}

int L2Norm::load_param(const ncnn::ParamDict& pd)
{
    bridge::ParamDictEntries entries;
    entries.channels = param_entry(pd, 0);
    entries.eps = param_entry(pd, 1);
    entries.eps_mode = param_entry(pd, 2);
    entries.channel_shared = param_entry(pd, 3);
    entries.weight_shape = param_entry(pd, 10);

    bridge::ParamsCheck check = bridge::check_params(entries);
    if (check.status.code != 0)
    {
        log_error(this, check.status.message.c_str());
        return check.status.code;
    }

    channels = check.params.channels;
    eps = check.params.eps;
    eps_mode = check.params.eps_mode;
    channel_shared = check.params.channel_shared;
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

    // A ModelBin over a Mat array hands back whatever Mat it holds: fp16,
    // int8, 2-D, batched. Only a 1-D fp32 Mat of weight_count values passes.
    bridge::Status status = bridge::check_weights(bridge_params(*this), describe(scale_data, 0));
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
    // A batched Mat (n > 1, ncnn 20261020 and later) is n Mats of one shape,
    // nstep apart: each is normalised on its own. Through a Net ncnn already
    // hands them over one at a time (support_batch is false); called
    // directly, the layer takes the whole batch.
    const int batches = batch_count(bottom_top_blob, 0);
    if (batches <= 1)
        return forward_one(bottom_top_blob, opt);
    for (int b = 0; b < batches; b++)
    {
        ncnn::Mat item = batch_item(bottom_top_blob, b, 0);
        const int ret = forward_one(item, opt);
        if (ret != 0)
            return ret;
    }
    return 0;
}

int L2Norm::forward_one(ncnn::Mat& bottom_top_blob, const ncnn::Option& opt) const
{
    const bridge::MatShape shape = describe(bottom_top_blob, storage_of(bottom_top_blob, opt));
    const bridge::LayerParams params = bridge_params(*this);
    const rust::Slice<const float> weights = weights_of(scale_data);

    bridge::ForwardPlan plan = bridge::plan_forward(shape, params, describe(scale_data, 0), weights, opt.num_threads);
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

#if NCNN_VULKAN
// ---- Vulkan -----------------------------------------------------------------

// ncnn 1.0.20261020 has bf16 blobs on Vulkan (Option::use_bf16_packed);
// 1.0.20250503 does not (but has elempack 8 there, use_shader_pack8).
template<typename O>
static auto bf16_packed(const O& opt, int) -> decltype((bool)opt.use_bf16_packed)
{
    return opt.use_bf16_packed;
}
template<typename O>
static bool bf16_packed(const O&, long)
{
    return false;
}
template<typename O>
static auto clear_bf16_packed(O& opt, int) -> decltype((void)(opt.use_bf16_packed = false))
{
    opt.use_bf16_packed = false;
}
template<typename O>
static void clear_bf16_packed(O&, long)
{
}

// The storage ncnn's shader compiler picks for opt, in its order
// (compile_spirv_module): 2 bf16, 1 fp16, 0 fp32.
static int vulkan_storage(const ncnn::Option& opt)
{
    if (opt.use_bf16_storage || bf16_packed(opt, 0))
        return 2;
    if (opt.use_fp16_storage || opt.use_fp16_packed)
        return 1;
    return 0;
}

static bridge::MatShape describe(const ncnn::VkMat& m, int storage)
{
    return describe_fields(m, m.empty(), storage);
}

// The workgroup: LOCAL_X positions by LOCAL_Y channel slices, 128
// invocations (Vulkan's guaranteed minimum of maxComputeWorkGroupInvocations).
static const int LOCAL_X = 32;
static const int LOCAL_Y = 4;
// Vulkan's guaranteed minimum of maxComputeWorkGroupCount[0].
static const int MAX_GROUPS_X = 65535;

// The shader with `#define L2NORM_PACK4 pack4` after its #version line,
// compiled for opt's storage by ncnn's compiler.
static int compile_l2norm_shader(int pack4, const ncnn::Option& opt, std::vector<uint32_t>& spirv)
{
    std::string source(l2norm_comp_data, l2norm_comp_size);
    const size_t version = source.find("#version");
    const size_t line_end = version == std::string::npos ? version : source.find('\n', version);
    if (line_end == std::string::npos)
        return -1;
    source.insert(line_end + 1, pack4 ? "#define L2NORM_PACK4 1\n" : "#define L2NORM_PACK4 0\n");
    return ncnn::compile_spirv_module(source.data(), (int)source.size(), opt, spirv);
}

static ncnn::Pipeline* create_l2norm_pipeline(const ncnn::VulkanDevice* vkdev, const std::vector<uint32_t>& spirv,
                                              const L2Norm& layer, int vec4s_per_element)
{
    std::vector<ncnn::vk_specialization_type> specializations(6);
    specializations[0].i = layer.eps_mode;
    specializations[1].f = layer.eps;
    specializations[2].i = layer.channel_shared;
    specializations[3].i = vec4s_per_element;
    specializations[4].i = LOCAL_X;
    specializations[5].i = LOCAL_Y;

    ncnn::Pipeline* pipeline = new ncnn::Pipeline(vkdev);
    pipeline->set_local_size_xyz(LOCAL_X, LOCAL_Y, 1);
    // The shader's shared arrays and loops assume exactly this local size;
    // ncnn rounds it up to a multiple of the subgroup size (128 already is
    // one for every subgroup size up to 128).
    if (pipeline->local_size_x() != (uint32_t)LOCAL_X || pipeline->local_size_y() != (uint32_t)LOCAL_Y || pipeline->local_size_z() != 1
            || pipeline->create(spirv.data(), spirv.size() * 4, specializations) != 0)
    {
        delete pipeline;
        return 0;
    }
    return pipeline;
}

int L2Norm::create_pipeline(const ncnn::Option& opt)
{
    // A net without use_vulkan_compute runs the layer on the CPU only and
    // gives it no device.
    if (!vkdev)
        return 0;

    // Pipelines for fp32 blobs always, and for 16-bit blobs when opt has
    // 16-bit storage: with fp16 on, ncnn still hands over fp32 blobs at
    // times (releases up to 1.0.20250503 keep elempack-1 blobs in fp32 under
    // use_fp16_packed without use_fp16_storage), so the blob's own value
    // size picks the pipeline in forward.
    ncnn::Option opt_fp32 = opt;
    opt_fp32.use_fp16_storage = false;
    opt_fp32.use_fp16_packed = false;
    opt_fp32.use_fp16_arithmetic = false;
    opt_fp32.use_bf16_storage = false;
    clear_bf16_packed(opt_fp32, 0);
    const int kinds = vulkan_storage(opt) != 0 ? 2 : 1;
    for (int k = 0; k < kinds; k++)
    {
        const ncnn::Option& opt_k = k == 0 ? opt_fp32 : opt;
        std::vector<uint32_t> spirv_pack1;
        std::vector<uint32_t> spirv_pack4;
        if (compile_l2norm_shader(0, opt_k, spirv_pack1) != 0 || compile_l2norm_shader(1, opt_k, spirv_pack4) != 0)
        {
            log_error(this, "cannot compile the Vulkan shader (cpp/shaders/l2norm.comp); ncnn logged why above");
            destroy_pipeline(opt);
            return -1;
        }
        pipeline_pack1[k] = create_l2norm_pipeline(vkdev, spirv_pack1, *this, 1);
        pipeline_pack4[k] = create_l2norm_pipeline(vkdev, spirv_pack4, *this, 1);
        pipeline_pack8[k] = create_l2norm_pipeline(vkdev, spirv_pack4, *this, 2);
        if (!pipeline_pack1[k] || !pipeline_pack4[k] || !pipeline_pack8[k])
        {
            log_error(this, "cannot create the Vulkan pipelines");
            destroy_pipeline(opt);
            return -1;
        }
    }
    return 0;
}

int L2Norm::destroy_pipeline(const ncnn::Option& /*opt*/)
{
    for (int k = 0; k < 2; k++)
    {
        delete pipeline_pack1[k];
        delete pipeline_pack4[k];
        delete pipeline_pack8[k];
        pipeline_pack1[k] = 0;
        pipeline_pack4[k] = 0;
        pipeline_pack8[k] = 0;
    }
    return 0;
}

int L2Norm::upload_model(ncnn::VkTransfer& cmd, const ncnn::Option& opt)
{
    if (weight_count <= 0 || weights_of(scale_data).size() != (size_t)weight_count)
    {
        log_error(this, "upload_model before a successful load_model");
        return -1;
    }
    // The weights stay fp32 on the device whatever the blobs' storage: an
    // option set without 16-bit storage makes record_upload copy them as they are.
    ncnn::Option opt_fp32 = opt;
    opt_fp32.use_fp16_storage = false;
    opt_fp32.use_fp16_packed = false;
    opt_fp32.use_bf16_storage = false;
    clear_bf16_packed(opt_fp32, 0);
    cmd.record_upload(scale_data, scale_data_gpu, opt_fp32);
    // scale_data stays on the host (channels floats): forward checks the
    // input against it as the CPU path does.
    return 0;
}

int L2Norm::forward_inplace(ncnn::VkMat& bottom_top_blob, ncnn::VkCompute& cmd, const ncnn::Option& opt) const
{
    // The same checks as on the CPU (empty, dims, channels, element size,
    // weights), on the VkMat's description; nothing is read from the device.
    const int storage = vulkan_storage(opt);
    // 16-bit values are fp16 or bf16 as the options say (-1: they say
    // neither, which the check reports as on the CPU).
    const bool bits16 = bottom_top_blob.elempack > 0 && bottom_top_blob.elemsize * 8 / bottom_top_blob.elempack == 16;
    const bridge::MatShape shape = describe(bottom_top_blob, bits16 ? (storage != 0 ? storage : -1) : 0);
    bridge::ForwardPlan plan = bridge::plan_forward(shape, bridge_params(*this), describe(scale_data, 0), weights_of(scale_data), 1);
    if (plan.status.code != 0)
    {
        log_error(this, plan.status.message.c_str());
        return plan.status.code;
    }
    if (shape.n > 1)
    {
        log_error(this, "a batched VkMat (n > 1) is not supported on Vulkan; through a Net ncnn hands the layer one item at a time");
        return -1;
    }

    const int elempack = bottom_top_blob.elempack;
    const int k = bits16 ? 1 : 0;
    const ncnn::Pipeline* pipeline = elempack == 1 ? pipeline_pack1[k] : elempack == 4 ? pipeline_pack4[k] : elempack == 8 ? pipeline_pack8[k] : 0;
    if (!pipeline || scale_data_gpu.empty())
    {
        char message[192];
        if (!pipeline_pack1[0] || scale_data_gpu.empty())
            snprintf(message, sizeof(message), "Vulkan forward before create_pipeline and upload_model on a Vulkan device");
        else if (elempack != 1 && elempack != 4 && elempack != 8)
            snprintf(message, sizeof(message), "input has elempack %d; on Vulkan L2Norm handles elempack 1, 4 and 8", elempack);
        else
            snprintf(message, sizeof(message), "input has 16-bit values but create_pipeline's options enabled no 16-bit storage (create_pipeline and forward got different options)");
        log_error(this, message);
        return -1;
    }

    // Channel slices (one element, or one vec4 of an elempack-8 element),
    // positions per slice and the distance between channel groups, as the
    // CPU path reads them: dims 1 one position, dims 2 h groups of w.
    const ncnn::VkMat& m = bottom_top_blob;
    int groups;
    int positions;
    int group_stride;
    if (m.dims == 1)
    {
        groups = m.w;
        positions = 1;
        group_stride = 1;
    }
    else if (m.dims == 2)
    {
        groups = m.h;
        positions = m.w;
        group_stride = m.w;
    }
    else
    {
        groups = m.c;
        positions = m.w * m.h * (m.dims == 4 ? m.d : 1);
        group_stride = (int)m.cstep;
    }
    const int slices = elempack == 8 ? groups * 2 : groups;
    // The shader indexes elements (vec4s for elempack 8) with 32-bit ints.
    if ((double)groups * (double)group_stride * (elempack == 8 ? 2 : 1) > 2147483647.0)
    {
        log_error(this, "input is too large for the Vulkan shader's 32-bit indices (more than 2^31 elements)");
        return -1;
    }

    std::vector<ncnn::VkMat> bindings(2);
    bindings[0] = bottom_top_blob;
    bindings[1] = scale_data_gpu;

    // One dispatch of ceil(positions / LOCAL_X) workgroups; a map of more
    // than 65535 * 32 positions is split into several.
    const int tiles = (positions + LOCAL_X - 1) / LOCAL_X;
    for (int first = 0; first < tiles; first += MAX_GROUPS_X)
    {
        const int count = tiles - first < MAX_GROUPS_X ? tiles - first : MAX_GROUPS_X;
        std::vector<ncnn::vk_constant_type> constants(4);
        constants[0].i = slices;
        constants[1].i = positions;
        constants[2].i = group_stride;
        constants[3].i = first;

        ncnn::VkMat dispatcher;
        dispatcher.w = count * LOCAL_X;
        dispatcher.h = LOCAL_Y;
        dispatcher.d = 1;
        dispatcher.c = 1;
        cmd.record_pipeline(pipeline, bindings, constants, dispatcher);
    }
    return 0;
}
#endif // NCNN_VULKAN

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
    const int ret = net.register_custom_layer(interned_type_name(type), l2norm_layer_creator, l2norm_layer_destroyer);
    // Allowed, because it is how a model whose Normalize lines are L2Norm's
    // math can opt in; said once, because it changes what that net runs.
    if (ret == 0 && ncnn::layer_to_index(type) >= 0)
        NCNN_LOGE("L2Norm: registered as \"%s\", which replaces ncnn's built-in %s layer in this net", type, type);
    return ret;
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
