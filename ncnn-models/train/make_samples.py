"""Bundled sample images, their ground truth, and PyTorch goldens.

    python3 make_samples.py [--checkpoint ssd_shapes.pt] [--count 4]

Writes ../images/shapes_<i>.png and ../images/ground_truth.txt from
shapes.SAMPLE_SEED, and ../golden/detections.txt: the PyTorch model's
detections (BatchNorm folded, i.e. exactly the exported net, followed by the
ncnn-exact decode + NMS of ssd.detection_output) on each bundled image.

Samples are the first `count` images of the seed on which the PyTorch model,
at score >= 0.5, finds every object (same class, IoU >= 0.5) and nothing else;
images it skips are reported (they are what the demo test could not pass).
"""

import argparse
import os

import numpy as np
import torch
from PIL import Image

import export_ncnn
import metrics
import shapes
import ssd

HERE = os.path.dirname(os.path.abspath(__file__))
SHOWN = 0.5  # the demo's default threshold


def clean(dets, boxes):
    """True when dets above SHOWN and the boxes match one to one (class, IoU >= 0.5)."""
    s = shapes.IMAGE_SIZE
    shown = [(d[0], [v * s for v in d[2:6]]) for d in dets if d[1] >= SHOWN]
    if len(shown) != len(boxes):
        return False
    left = list(boxes)
    for label, box in shown:
        hit = [g for g in left if g[0] == label and metrics.iou(box, g[1:]) >= 0.5]
        if not hit:
            return False
        left.remove(hit[0])
    return True


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "ssd_shapes.pt"))
    ap.add_argument("--count", type=int, default=4)
    args = ap.parse_args()

    model = export_ncnn.load_plain_model(args.checkpoint)
    priors = ssd.all_priors()
    images_dir = os.path.join(HERE, "..", "images")
    golden_dir = os.path.join(HERE, "..", "golden")
    os.makedirs(images_dir, exist_ok=True)
    os.makedirs(golden_dir, exist_ok=True)

    rng = np.random.default_rng(shapes.SAMPLE_SEED)
    gt_lines = ["# image label class x0 y0 x1 y1  (pixels; shapes.py, seed %d)" % shapes.SAMPLE_SEED]
    golden_lines = ["# image label class score x0 y0 x1 y1  (normalised; PyTorch, ncnn-exact decode + NMS)"]
    kept, index = 0, 0
    while kept < args.count:
        image, boxes = shapes.make_image(rng)
        dets = ssd.detect(model, image, priors)
        index += 1
        if not clean(dets, boxes):
            print(f"seed image {index - 1}: skipped (the model misses or adds an object at score >= {SHOWN})")
            continue
        name = f"shapes_{kept}.png"
        Image.fromarray(image).save(os.path.join(images_dir, name))
        gt_lines += [f"{name} {b[0]} {shapes.CLASSES[b[0] - 1]} {b[1]:.3f} {b[2]:.3f} {b[3]:.3f} {b[4]:.3f}" for b in boxes]
        golden_lines += [f"{name} {d[0]} {shapes.CLASSES[d[0] - 1]} {d[1]:.7f} {d[2]:.7f} {d[3]:.7f} {d[4]:.7f} {d[5]:.7f}"
                         for d in dets]
        print(f"seed image {index - 1} -> {name}: {len(boxes)} objects, {len(dets)} detections >= {ssd.CONFIDENCE_THRESHOLD}")
        kept += 1
    with open(os.path.join(images_dir, "ground_truth.txt"), "w") as fp:
        fp.write("\n".join(gt_lines) + "\n")
    with open(os.path.join(golden_dir, "detections.txt"), "w") as fp:
        fp.write("\n".join(golden_lines) + "\n")


if __name__ == "__main__":
    main()
