"""mAP@0.5 of the ncnn model (with this crate's L2Norm layer) on held-out images.

    python3 evaluate.py [--count 500] [--torch]

Generates `count` images from shapes.HELDOUT_SEED (never used for training)
into target/ssd-shapes-eval/, builds and runs `ssd-demo --eval` on them (ncnn +
our L2Norm), and reports AP@0.5 per class and the mean. With --torch it also
evaluates the PyTorch model (ssd_shapes.pt) and reports how far the two
disagree. Needs numpy + Pillow (torch only with --torch).
"""

import argparse
import os
import subprocess
import sys

import numpy as np
from PIL import Image

import metrics
import shapes

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def parse_eval(text):
    """ssd-demo --eval output -> {path: [(label, score, x0, y0, x1, y1)]} (normalised)."""
    out, current = {}, None
    for line in text.splitlines():
        parts = line.split()
        if parts and parts[0] == "image":
            current = line[len("image "):].rsplit(" ", 2)[0]  # the path may hold spaces
            out[current] = []
        elif parts and parts[0] == "det":
            out[current].append((int(parts[1]), *map(float, parts[3:8])))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--torch", action="store_true", help="also evaluate the PyTorch checkpoint")
    args = ap.parse_args()

    work = os.path.join(ROOT, "target", "ssd-shapes-eval")
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(shapes.HELDOUT_SEED)
    paths, truth = [], []
    for i in range(args.count):
        image, boxes = shapes.make_image(rng)
        path = os.path.join(work, f"heldout_{i:04d}.png")
        Image.fromarray(image).save(path)
        paths.append(path)
        truth.append(boxes)
    list_path = os.path.join(work, "list.txt")
    with open(list_path, "w") as fp:
        fp.write("\n".join(paths) + "\n")

    subprocess.run(["cargo", "build", "--release", "--bin", "ssd-demo"], cwd=ROOT, check=True)
    demo = os.path.join(ROOT, "target", "release", "ssd-demo")
    run = subprocess.run([demo, "--eval", list_path, "--threads", str(args.threads)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"ssd-demo failed:\n{run.stderr}")
    found = parse_eval(run.stdout)
    s = shapes.IMAGE_SIZE
    ncnn_dets = [[(d[0], d[1], *(v * s for v in d[2:6])) for d in found[p]] for p in paths]

    objects = sum(len(b) for b in truth)
    print(f"held-out set: {args.count} images, {objects} objects (seed {shapes.HELDOUT_SEED})")
    print(run.stdout.strip().splitlines()[-1])
    aps, mean = metrics.mean_ap(ncnn_dets, truth, len(shapes.CLASSES))
    print("ncnn + L2Norm  AP@0.5: " + "  ".join(f"{c} {a:.4f}" for c, a in zip(shapes.CLASSES, aps)) + f"  mean {mean:.4f}")

    if args.torch:
        import torch
        import export_ncnn
        import ssd
        torch.set_num_threads(1)
        model = export_ncnn.load_plain_model(os.path.join(HERE, "ssd_shapes.pt"))
        priors = ssd.all_priors()
        torch_raw = [ssd.detect(model, np.asarray(Image.open(p).convert("RGB")), priors) for p in paths]
        torch_dets = [[(d[0], d[1], *(v * s for v in d[2:6])) for d in ds] for ds in torch_raw]
        aps_t, mean_t = metrics.mean_ap(torch_dets, truth, len(shapes.CLASSES))
        print("PyTorch        AP@0.5: " + "  ".join(f"{c} {a:.4f}" for c, a in zip(shapes.CLASSES, aps_t)) + f"  mean {mean_t:.4f}")
        # Same detections, in the same order, within float rounding?
        same = sum(len(a) == len(b) and all(x[0] == y[0] for x, y in zip(a, b)) for a, b in zip(torch_raw, (found[p] for p in paths)))
        diff = max((abs(u - v) for a, b in zip(torch_raw, (found[p] for p in paths)) if len(a) == len(b)
                    for x, y in zip(a, b) for u, v in zip(x[1:], y[1:])), default=0.0)
        print(f"ncnn vs PyTorch: identical detection lists on {same}/{len(paths)} images, max |diff| {diff:.2e}")


if __name__ == "__main__":
    main()
