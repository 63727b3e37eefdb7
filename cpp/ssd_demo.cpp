// SSD object detection with ncnn and the L2Norm layer, in the style of ncnn's
// examples/squeezenetssd.cpp.
//
// Runs ncnn-models/ssd_shapes.param (a small VGG-SSD trained on synthetic
// shapes, whose conv4_3 source goes through L2Norm) on a PNG/JPEG, prints the
// detections and the inference time, and writes an annotated PNG.
//
//     ssd-demo [options] [image] [annotated.png]
//
// With --eval LISTFILE it instead runs every image named in LISTFILE (one path
// a line) and prints machine-readable detections, in coordinates normalised
// to [0, 1]: this is what ncnn-models/train/evaluate.py and tests/ssd.rs read.
//
// With --gpu the whole net, L2Norm included, runs on ncnn's Vulkan device 0
// (an ncnn built with NCNN_VULKAN=ON; docs/vulkan.md).
//
// Built into the crate and started by `cargo run --release --bin ssd-demo`;
// compile with -DSSD_DEMO_STANDALONE for a plain C++ main().

#include "ncnn_l2norm/l2norm.h"

#include "benchmark.h"
#include "net.h"
#include "platform.h"

#if NCNN_VULKAN
#include "gpu.h"
#endif

#include <algorithm>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <vector>

// cv::imread / cv::imwrite come from ncnn's simpleocv; from_pixels_resize and
// draw_* from its pixel and drawing helpers (all on in a default ncnn build).
#if NCNN_SIMPLEOCV && NCNN_PIXEL && NCNN_PIXEL_DRAWING
#include "simpleocv.h"

// The model's input side and normalisation: (pixel - 127.5) / 127.5, RGB.
static const int kInputSize = 128;
static const char* kClassNames[] = {"background", "circle", "triangle", "square", "star", "cross"};
static const int kNumClasses = sizeof(kClassNames) / sizeof(kClassNames[0]);
// Box colours per class, 0xRRGGBB, drawn on BGR pixels (hence byte order B, G, R).
static const unsigned int kColours[] = {0x000000, 0x2060ff, 0x20c040, 0xff8020, 0xe020e0, 0x10d0d0};

struct Object
{
    int label;
    float prob;
    float x0, y0, x1, y1; // normalised to [0, 1]
};

static void usage()
{
    fprintf(stderr,
            "usage: ssd-demo [--models DIR] [--threads N] [--threshold T] [--no-packing] [--no-fp16-arithmetic]\n"
            "                [--gpu [--gpu-fp32]] [--runs N] [image.png|.jpg] [annotated.png]\n"
            "       ssd-demo [--models DIR] [--threads N] [--threshold T] [--no-packing] [--no-fp16-arithmetic]\n"
            "                [--gpu [--gpu-fp32]] --eval LISTFILE\n"
            "  image         default DIR/images/shapes_0.png\n"
            "  annotated.png default: --default-out PATH if given, else ssd-demo-out.png\n"
            "  --threshold   lowest score reported (default 0.5; 0 with --eval)\n"
            "  --runs        timed inference runs after one warm-up (default 10)\n"
            "  --eval        print normalised detections for each image path in LISTFILE\n"
            "  --no-fp16-arithmetic  compute in fp32 on CPUs with fp16 arithmetic (armv8.2+),\n"
            "                where ncnn's default is to compute in fp16\n"
            "  --gpu         run the net on Vulkan (ncnn built with NCNN_VULKAN=ON, a Vulkan device)\n"
            "  --gpu-fp32    with --gpu: fp32 blobs on the device (ncnn's default there is fp16)\n");
}

static bool parse_int(const char* s, int* out)
{
    char* end = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end != '\0' || v < 1 || v > 1024)
        return false;
    *out = (int)v;
    return true;
}

// Runs the detector on one BGR image. Returns 0 or ncnn's error code.
static int detect(const ncnn::Net& net, const cv::Mat& bgr, float threshold, std::vector<Object>& objects)
{
    ncnn::Mat in = ncnn::Mat::from_pixels_resize(bgr.data, ncnn::Mat::PIXEL_BGR2RGB, bgr.cols, bgr.rows, kInputSize, kInputSize);
    const float mean_vals[3] = {127.5f, 127.5f, 127.5f};
    const float norm_vals[3] = {1.f / 127.5f, 1.f / 127.5f, 1.f / 127.5f};
    in.substract_mean_normalize(mean_vals, norm_vals);

    ncnn::Extractor ex = net.create_extractor();
    ex.input("data", in);
    ncnn::Mat out;
    int ret = ex.extract("detection_out", out);
    if (ret != 0)
        return ret;

    // Rows of [label, score, xmin, ymin, xmax, ymax]; an empty Mat when nothing was found.
    objects.clear();
    for (int i = 0; i < out.h; i++)
    {
        const float* v = out.row(i);
        Object obj = {(int)v[0], v[1], v[2], v[3], v[4], v[5]};
        if (obj.prob >= threshold && obj.label > 0 && obj.label < kNumClasses)
            objects.push_back(obj);
    }
    return 0;
}

static int clampi(float v, int lo, int hi)
{
    return std::min(std::max((int)(v + 0.5f), lo), hi);
}

// Enlarges small images (so labels stay legible), then draws boxes and labels.
static cv::Mat annotate(const cv::Mat& bgr, const std::vector<Object>& objects)
{
    const int scale = std::max(1, 512 / std::max(bgr.cols, bgr.rows));
    cv::Mat image;
    if (scale == 1)
        image = bgr.clone();
    else
        cv::resize(bgr, image, cv::Size(bgr.cols * scale, bgr.rows * scale));

    const int w = image.cols, h = image.rows;
    const int font = scale > 1 ? 12 : 8;
    // Lowest score first, so the most confident labels end up on top.
    for (size_t i = objects.size(); i-- > 0;)
    {
        const Object& o = objects[i];
        const unsigned int c = kColours[o.label];
        const unsigned int colour = ((c & 0xff) << 16) | (c & 0xff00) | ((c >> 16) & 0xff); // to BGR bytes
        const int x0 = clampi(o.x0 * w, 0, w - 1), y0 = clampi(o.y0 * h, 0, h - 1);
        const int x1 = clampi(o.x1 * w, 0, w - 1), y1 = clampi(o.y1 * h, 0, h - 1);
        ncnn::draw_rectangle_c3(image.data, w, h, x0, y0, x1 - x0, y1 - y0, colour, scale > 1 ? 2 : 1);

        char text[64];
        snprintf(text, sizeof(text), "%s %.2f", kClassNames[o.label], o.prob);
        int tw = 0, th = 0;
        ncnn::get_text_drawing_size(text, font, &tw, &th);
        const int tx = std::min(std::max(x0, 0), std::max(w - tw, 0));
        const int ty = y0 - th - 2 >= 0 ? y0 - th - 2 : std::min(y0 + 2, std::max(h - th, 0));
        ncnn::draw_rectangle_c3(image.data, w, h, tx, ty, tw, th + 2, colour, -1);
        ncnn::draw_text_c3(image.data, w, h, text, tx, ty + 1, font, 0xffffff);
    }
    return image;
}

static int run_eval(const ncnn::Net& net, const char* list_path, float threshold)
{
    FILE* fp = fopen(list_path, "rb");
    if (!fp)
    {
        fprintf(stderr, "ssd-demo: cannot open list file %s\n", list_path);
        return 1;
    }
    int count = 0;
    double total_ms = 0;
    char line[4096];
    std::vector<Object> objects;
    while (fgets(line, sizeof(line), fp))
    {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '\0')
            continue;
        cv::Mat bgr = cv::imread(line, 1);
        if (bgr.empty())
        {
            fprintf(stderr, "ssd-demo: cannot read image %s\n", line);
            fclose(fp);
            return 1;
        }
        const double t0 = ncnn::get_current_time();
        int ret = detect(net, bgr, threshold, objects);
        total_ms += ncnn::get_current_time() - t0;
        if (ret != 0)
        {
            fprintf(stderr, "ssd-demo: inference failed on %s (%d)\n", line, ret);
            fclose(fp);
            return 1;
        }
        printf("image %s %d %d\n", line, bgr.cols, bgr.rows);
        for (size_t i = 0; i < objects.size(); i++)
        {
            const Object& o = objects[i];
            printf("det %d %s %.6f %.6f %.6f %.6f %.6f\n", o.label, kClassNames[o.label], o.prob, o.x0, o.y0, o.x1, o.y1);
        }
        count++;
    }
    fclose(fp);
    printf("eval: %d images, %.3f ms mean inference\n", count, count ? total_ms / count : 0.0);
    return 0;
}

extern "C" int ssd_demo_main(int argc, char** argv)
{
    std::string models = "ncnn-models";
    std::string default_out = "ssd-demo-out.png";
    std::string eval_list;
    std::vector<std::string> positional;
    int threads = 0; // ncnn's default
    int runs = 10;
    float threshold = -1.f;
    bool packing = true;
    bool fp16_arithmetic = true; // ncnn's default; it takes effect on armv8.2+ CPUs only
    bool gpu = false;
    bool gpu_fp32 = false;
    for (int i = 1; i < argc; i++)
    {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--models") == 0 && has_value)
            models = argv[++i];
        else if (strcmp(argv[i], "--default-out") == 0 && has_value)
            default_out = argv[++i];
        else if (strcmp(argv[i], "--eval") == 0 && has_value)
            eval_list = argv[++i];
        else if (strcmp(argv[i], "--threads") == 0 && has_value)
        {
            if (!parse_int(argv[++i], &threads))
            {
                fprintf(stderr, "ssd-demo: --threads needs an integer from 1 to 1024\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--runs") == 0 && has_value)
        {
            if (!parse_int(argv[++i], &runs))
            {
                fprintf(stderr, "ssd-demo: --runs needs an integer from 1 to 1024\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--threshold") == 0 && has_value)
        {
            char* end = 0;
            threshold = strtof(argv[++i], &end);
            if (*end != '\0' || !(threshold >= 0.f && threshold <= 1.f))
            {
                fprintf(stderr, "ssd-demo: --threshold needs a number from 0 to 1\n");
                return 2;
            }
        }
        else if (strcmp(argv[i], "--no-packing") == 0)
            packing = false;
        else if (strcmp(argv[i], "--no-fp16-arithmetic") == 0)
            fp16_arithmetic = false;
        else if (strcmp(argv[i], "--gpu") == 0)
            gpu = true;
        else if (strcmp(argv[i], "--gpu-fp32") == 0)
            gpu_fp32 = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
        {
            usage();
            return 0;
        }
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
        {
            fprintf(stderr, "ssd-demo: unknown option or missing value: %s\n", argv[i]);
            usage();
            return 2;
        }
        else
            positional.push_back(argv[i]);
    }
    if (positional.size() > 2 || (!eval_list.empty() && !positional.empty()))
    {
        usage();
        return 2;
    }
    if (threshold < 0.f)
        threshold = eval_list.empty() ? 0.5f : 0.f;

    ncnn::Net net;
    if (threads > 0)
        net.opt.num_threads = threads;
    net.opt.use_packing_layout = packing;
    net.opt.use_fp16_arithmetic = fp16_arithmetic;
    if (gpu_fp32 && !gpu)
    {
        fprintf(stderr, "ssd-demo: --gpu-fp32 needs --gpu\n");
        return 2;
    }
    if (gpu)
    {
#if NCNN_VULKAN
        if (ncnn::get_gpu_count() == 0)
        {
            fprintf(stderr, "ssd-demo: --gpu: ncnn found no Vulkan device (install a driver, e.g. Debian's mesa-vulkan-drivers + libvulkan1)\n");
            return 1;
        }
        net.opt.use_vulkan_compute = true;
        if (gpu_fp32)
        {
            net.opt.use_fp16_packed = false;
            net.opt.use_fp16_storage = false;
            net.opt.use_fp16_arithmetic = false;
        }
        // stderr: --eval's stdout stays machine-readable.
        fprintf(stderr, "ssd-demo: on Vulkan device 0: %s (blobs: %s)\n", ncnn::get_gpu_info(0).device_name(), gpu_fp32 ? "fp32" : "ncnn's default, fp16 where the device has it");
#else
        fprintf(stderr, "ssd-demo: --gpu: this ncnn was built without Vulkan (NCNN_VULKAN=OFF); build with the vulkan configuration (docs/vulkan.md)\n");
        return 2;
#endif // NCNN_VULKAN
    }
    ncnn_l2norm::register_l2norm(net);

    const std::string param = models + "/ssd_shapes.param";
    const std::string bin = models + "/ssd_shapes.bin";
    if (net.load_param(param.c_str()) != 0 || net.load_model(bin.c_str()) != 0)
    {
        fprintf(stderr, "ssd-demo: cannot load model %s / %s\n", param.c_str(), bin.c_str());
        return 1;
    }

    if (!eval_list.empty())
        return run_eval(net, eval_list.c_str(), threshold);

    const std::string image_path = positional.size() > 0 ? positional[0] : models + "/images/shapes_0.png";
    const std::string out_path = positional.size() > 1 ? positional[1] : default_out;

    cv::Mat bgr = cv::imread(image_path, 1);
    if (bgr.empty())
    {
        fprintf(stderr, "ssd-demo: cannot read image %s (missing, or not an image ncnn's simpleocv decodes)\n", image_path.c_str());
        return 1;
    }

    // One warm-up run, then the median of `runs` timed runs.
    std::vector<Object> objects;
    std::vector<double> times;
    for (int r = 0; r <= runs; r++)
    {
        const double t0 = ncnn::get_current_time();
        int ret = detect(net, bgr, threshold, objects);
        if (ret != 0)
        {
            fprintf(stderr, "ssd-demo: inference failed (%d)\n", ret);
            return 1;
        }
        if (r > 0)
            times.push_back(ncnn::get_current_time() - t0);
    }
    std::sort(times.begin(), times.end());

    printf("ssd-demo: %s (%dx%d): %d detections with score >= %.2f\n", image_path.c_str(), bgr.cols, bgr.rows,
           (int)objects.size(), threshold);
    for (size_t i = 0; i < objects.size(); i++)
    {
        const Object& o = objects[i];
        printf("  %-8s %.4f  box %6.1f %6.1f %6.1f %6.1f\n", kClassNames[o.label], o.prob,
               o.x0 * bgr.cols, o.y0 * bgr.rows, o.x1 * bgr.cols, o.y1 * bgr.rows);
    }
    printf("inference: %.3f ms median of %d runs, %d threads, packing %s%s\n", times[times.size() / 2], runs,
           net.opt.num_threads, packing ? "on" : "off", gpu ? ", on Vulkan" : "");

    cv::Mat annotated = annotate(bgr, objects);
    if (!cv::imwrite(out_path, annotated))
    {
        fprintf(stderr, "ssd-demo: cannot write %s\n", out_path.c_str());
        return 1;
    }
    printf("annotated image: %s\n", out_path.c_str());
    return 0;
}

#else // NCNN_SIMPLEOCV && NCNN_PIXEL && NCNN_PIXEL_DRAWING

extern "C" int ssd_demo_main(int argc, char** argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "ssd-demo needs ncnn built with NCNN_SIMPLEOCV=ON (for cv::imread / cv::imwrite) and NCNN_PIXEL_DRAWING=ON;\n"
                    "this ncnn was built without them\n");
    return 1;
}

#endif // NCNN_SIMPLEOCV && NCNN_PIXEL && NCNN_PIXEL_DRAWING

#ifdef SSD_DEMO_STANDALONE
int main(int argc, char** argv)
{
    return ssd_demo_main(argc, argv);
}
#endif // SSD_DEMO_STANDALONE
