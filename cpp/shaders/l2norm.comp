// L2Norm on Vulkan: one dispatch normalises a tile of positions.
//
// Compiled at run time by ncnn's own compiler (ncnn::compile_spirv_module),
// which puts ncnn's storage macros (sfp, sfpvec4, buffer_ld1/4, afp...) in
// front of this text, so one source serves fp32, fp16 (storage or packed)
// and bf16 blobs. cpp/l2norm_layer.cpp embeds it (build/cpp.rs turns it into
// a C array) and compiles two variants: L2NORM_PACK4 0 (elempack 1, one
// scalar per element) and 1 (elempack 4, or 8 as two vec4 per element).
//
// A workgroup is LX positions by LY channel slices. For each position:
//   1. its LY threads each sum the squares (and take the largest |x|) of
//      every LY-th channel group, and the partial sums meet in shared memory;
//   2. every thread of the position adds the LY partials in the same order,
//      so all of them hold the same sum, and forms the factor
//      k = 1 / denominator(sum, eps) of the layer's eps mode;
//   3. the same threads read their channel groups again and write
//      x * (k * weight[c]) in place.
// The tile is read twice and written once: no workspace, no second dispatch.
//
// All arithmetic is fp32, whatever the storage and NCNN_fp16_arithmetic: a
// sum of 512 squares overflows fp16 once |x| passes 11, and the op is bound
// by memory, not arithmetic. Results are rounded once to the storage type.
//
// Huge and tiny values (the CPU path's guarantee, docs/numerics.md). The
// fp32 sum of squares overflows once |x| passes about 1.8e19 and loses
// squares below 2^-126 (GPUs may flush denormals to zero). A position whose
// sum or factor cannot be trusted, i.e. with a finite nonzero largest |x| m
// and
//   sum > FLT_MAX (overflow), sum < C * 2^-101 (underflow may have cost it
//   more than 2^-25 of itself even with every square below 2^-126 flushed),
//   or a factor outside [2^-126, FLT_MAX] (Caffe's sum + eps overflowing,
//   eps above 2^126),
// is summed again with its values scaled by 2^-e, e the exponent of m, so
// the largest scaled value lies in [0.5, 1) and the scaled sum in
// [0.25, C]: nothing overflows, and the squares lost to underflow are below
// 2^-126 of a sum of at least 0.25. The factor is then formed for the scaled
// values (eps scaled the same way) and the output is (x * 2^-e) * (k_s * w).
// Where eps scaled overflows, the exact result is below 2^-128 * |w| and 0
// is written. The rescan runs only when a position of the tile needs it
// (one flag in shared memory keeps the barrier in uniform control flow).
// NaN propagates (a NaN sum gives a NaN factor); an infinite value gives an
// infinite sum, a factor of 0, NaN for that channel and 0 for the others,
// as PyTorch and the CPU path do, where the device keeps infinities and
// NaN (Vulkan leaves that to the implementation unless
// VK_KHR_shader_float_controls says so; lavapipe does).

#version 450

layout (constant_id = 0) const int eps_mode = 0; // 0 add, 1 caffe, 2 F.normalize, 3 tensorflow
layout (constant_id = 1) const float eps = 0.f;
layout (constant_id = 2) const int channel_shared = 0;
layout (constant_id = 3) const int vec4s_per_element = 1; // elempack 4: 1, elempack 8: 2 (L2NORM_PACK4 only)
layout (constant_id = 4) const int LX = 32; // positions per workgroup (the local size's x)
layout (constant_id = 5) const int LY = 4; // channel slices per workgroup (the local size's y)

#if L2NORM_PACK4
layout (binding = 0) buffer blob { sfpvec4 blob_data[]; };
#else
layout (binding = 0) buffer blob { sfp blob_data[]; };
#endif
// fp32 weights, one per channel (or one when channel_shared), never cast.
layout (binding = 1) readonly buffer weight_blob { float weight_data[]; };

layout (push_constant) uniform parameter
{
    int slices; // channel groups (elempack 1 and 4), twice that for elempack 8
    int positions; // positions per channel group
    int group_stride; // elements between channel groups (cstep, or w for dims 2)
    int first_tile; // workgroups before this dispatch (maps of more than 65535 tiles take several)
} p;

// Stores an fp32 result. Into 16-bit storage through ncnn's macros (one
// rounding); into fp32 storage as it is, whatever afp is.
#if NCNN_fp16_storage || NCNN_fp16_packed || NCNN_bf16_storage || NCNN_bf16_packed
#define l2norm_st1(buf, i, v) buffer_st1(buf, i, afp(v))
#define l2norm_st4(buf, i, v) buffer_st4(buf, i, afpvec4(v))
#else
#define l2norm_st1(buf, i, v) { buf[i] = (v); }
#define l2norm_st4(buf, i, v) { buf[i] = (v); }
#endif

// Room for a workgroup of up to 256 invocations (the layer uses LX * LY = 128,
// Vulkan's guaranteed minimum of maxComputeWorkGroupInvocations).
shared float sh_sum[256];
shared float sh_max[256];
shared uint sh_rescan;

// 2^k for -126 <= k <= 127, exactly.
float pow2(int k)
{
    return uintBitsToFloat(uint(k + 127) << 23);
}

// 1 / denominator for a sum of squares s and an eps already scaled like it:
// eps1 for the modes that compare it with the norm, eps2 (eps1 squared's
// scale) for those that add it to the sum.
float inv_denominator(float s, float eps1, float eps2)
{
    float d;
    if (eps_mode == 0)
        d = sqrt(s) + eps1;
    else if (eps_mode == 1)
        d = sqrt(s + eps2);
    else if (eps_mode == 2)
        d = isnan(s) ? s : max(sqrt(s), eps1);
    else
        d = isnan(s) ? s : sqrt(max(s, eps2));
    return 1.f / d;
}

// The element index of channel slice j at position gp, and its first channel.
int element_index(int j, int gp)
{
#if L2NORM_PACK4
    const int group = j / vec4s_per_element;
    const int part = j - group * vec4s_per_element;
    return (group * p.group_stride + gp) * vec4s_per_element + part;
#else
    return j * p.group_stride + gp;
#endif
}

void main()
{
    const int lx = int(gl_LocalInvocationID.x);
    const int ly = int(gl_LocalInvocationID.y);
    const int gp = (int(gl_WorkGroupID.x) + p.first_tile) * LX + lx;
    const bool in_range = gp < p.positions;
    const int slot = ly * LX + lx;

    if (lx == 0 && ly == 0)
        sh_rescan = 0u;

    // 1. partial sums of squares and the largest |x| over this thread's slices
    float sum = 0.f;
    float m = 0.f;
    if (in_range)
    {
        for (int j = ly; j < p.slices; j += LY)
        {
#if L2NORM_PACK4
            const vec4 v = vec4(buffer_ld4(blob_data, element_index(j, gp)));
            sum += dot(v, v);
            const vec4 a = abs(v);
            m = max(m, max(max(a.x, a.y), max(a.z, a.w)));
#else
            const float v = float(buffer_ld1(blob_data, element_index(j, gp)));
            sum += v * v;
            m = max(m, abs(v));
#endif
        }
    }
    sh_sum[slot] = sum;
    sh_max[slot] = m;
    memoryBarrierShared();
    barrier();

    // 2. the position's sum (the same order in every thread) and factor
    sum = 0.f;
    m = 0.f;
    for (int y = 0; y < LY; y++)
    {
        sum += sh_sum[y * LX + lx];
        m = max(m, sh_max[y * LX + lx]);
    }
    float k = inv_denominator(sum, eps, eps);
    const float FLT_MAX = uintBitsToFloat(0x7f7fffffu);
#if L2NORM_PACK4
    const float channels = float(p.slices * 4);
#else
    const float channels = float(p.slices);
#endif
    const float low = channels * pow2(-101);
    const bool trusted = sum >= low && sum <= FLT_MAX && k >= pow2(-126) && k <= FLT_MAX;
    const bool rescan = in_range && m > 0.f && m <= FLT_MAX && !trusted;
    // scale = s1 * s2 = 2^-e, in two normal factors (e runs from -149 to 128)
    float s1 = 1.f;
    float s2 = 1.f;
    if (rescan)
    {
        const int e = int((floatBitsToUint(m) >> 23) & 0xffu) - 126; // m * 2^-e in [0.5, 1) for normal m
        s1 = pow2(-(e / 2));
        s2 = pow2(-(e - e / 2));
        if (ly == 0)
            atomicOr(sh_rescan, 1u);
    }
    memoryBarrierShared();
    barrier();

    if (sh_rescan != 0u) // the same in every invocation: the barrier below is in uniform control flow
    {
        float scaled = 0.f;
        if (rescan)
        {
            for (int j = ly; j < p.slices; j += LY)
            {
#if L2NORM_PACK4
                const vec4 v = (vec4(buffer_ld4(blob_data, element_index(j, gp))) * s1) * s2;
                scaled += dot(v, v);
#else
                const float v = (float(buffer_ld1(blob_data, element_index(j, gp))) * s1) * s2;
                scaled += v * v;
#endif
            }
        }
        sh_sum[slot] = scaled;
        memoryBarrierShared();
        barrier();
        if (rescan)
        {
            scaled = 0.f;
            for (int y = 0; y < LY; y++)
                scaled += sh_sum[y * LX + lx];
            // eps at the values' scale: eps * 2^-e and eps * 2^-2e
            const float eps1 = (eps * s1) * s2;
            const float eps2 = ((eps1 * s1) * s2);
            if ((eps_mode == 1 || eps_mode == 3) && !(eps2 <= pow2(100)))
            {
                // eps swamps the sum (by 2^100 / C at least): the denominator
                // is sqrt(eps), at the values' scale (inf: a result below 2^-128)
                k = 1.f / ((sqrt(eps) * s1) * s2);
            }
            else
            {
                k = inv_denominator(scaled, eps1, eps2);
            }
        }
    }

    if (!in_range)
        return;

    // 3. scale the tile in place
    for (int j = ly; j < p.slices; j += LY)
    {
        const int i = element_index(j, gp);
#if L2NORM_PACK4
        const int c = j * 4;
        const vec4 w = channel_shared == 1 ? vec4(weight_data[0]) : vec4(weight_data[c], weight_data[c + 1], weight_data[c + 2], weight_data[c + 3]);
        const vec4 v = (vec4(buffer_ld4(blob_data, i)) * s1) * s2;
        const vec4 r = v * (k * w);
        l2norm_st4(blob_data, i, r);
#else
        const float w = channel_shared == 1 ? weight_data[0] : weight_data[j];
        const float v = (float(buffer_ld1(blob_data, i)) * s1) * s2;
        const float r = v * (k * w);
        l2norm_st1(blob_data, i, r);
#endif
    }
}
