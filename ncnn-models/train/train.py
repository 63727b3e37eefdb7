"""Train the shapes SSD on one CPU thread.

    python3 train.py [--epochs 8] [--images 12000] [--out ssd_shapes.pt]

Generates (and caches under target/) the training set from shapes.TRAIN_SEED,
trains with random flips / transposes, SSD multibox loss (IoU >= 0.5 matching,
3:1 hard negative mining), AdamW with warmup + cosine decay, then reports
PyTorch mAP@0.5 on held-out images and saves the checkpoint.
"""

import argparse
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import metrics
import shapes
import ssd

torch.set_num_threads(1)  # this machine's other core is for builds
HERE = os.path.dirname(os.path.abspath(__file__))
CACHE = os.path.join(HERE, "..", "..", "target", "ssd-shapes-cache")


def dataset(seed, count):
    """Images and boxes for one seed, generated once and cached as .npz."""
    path = os.path.join(CACHE, f"shapes-{seed}-{count}.npz")
    if os.path.exists(path):
        z = np.load(path, allow_pickle=True)
        return z["images"], list(z["boxes"])
    t0 = time.time()
    images, boxes = shapes.make_set(seed, count)
    print(f"generated {count} images (seed {seed}) in {time.time() - t0:.0f} s", flush=True)
    os.makedirs(CACHE, exist_ok=True)
    np.savez(path, images=images, boxes=np.array(boxes, dtype=object))
    return images, boxes


def augment(images, targets, rng):
    """Per image: optional horizontal flip, vertical flip and transpose (all classes
    are symmetric under these). images: N x 3 x S x S; targets: (n, 5) label + box in [0,1]."""
    out_t = []
    for b in range(images.shape[0]):
        t = targets[b].clone()
        if rng.uniform() < 0.5:
            images[b] = images[b].flip(2)
            t[:, [1, 3]] = 1 - t[:, [3, 1]]
        if rng.uniform() < 0.5:
            images[b] = images[b].flip(1)
            t[:, [2, 4]] = 1 - t[:, [4, 2]]
        if rng.uniform() < 0.5:
            images[b] = images[b].transpose(1, 2).clone()
            t = t[:, [0, 2, 1, 4, 3]]
        out_t.append(t)
    return images, out_t


def multibox_loss(loc, conf, targets, priors):
    """SSD loss: smooth L1 on matched priors, cross entropy with 3:1 hard negatives."""
    n, p = conf.shape[:2]
    loc_t = torch.zeros(n, p, 4)
    lab_t = torch.zeros(n, p, dtype=torch.long)
    for b, t in enumerate(targets):
        if len(t) == 0:
            continue
        overlaps = ssd.iou_matrix(t[:, 1:], priors)  # G x P
        best_iou, best_gt = overlaps.max(0)
        best_prior = overlaps.argmax(1)
        best_iou[best_prior] = 2.0  # every GT keeps its best prior
        best_gt[best_prior] = torch.arange(len(t))
        labels = t[best_gt, 0].long()
        labels[best_iou < 0.5] = 0
        lab_t[b] = labels
        loc_t[b] = ssd.encode(t[best_gt, 1:], priors)
    pos = lab_t > 0
    num_pos = pos.sum().clamp(min=1).float()
    loc_loss = F.smooth_l1_loss(loc[pos], loc_t[pos], reduction="sum")
    ce = F.cross_entropy(conf.reshape(-1, ssd.NUM_CLASSES), lab_t.reshape(-1), reduction="none").view(n, p)
    mining = ce.detach().clone()
    mining[pos] = 0
    rank = mining.argsort(1, descending=True).argsort(1)
    neg = rank < (3 * pos.sum(1, keepdim=True)).clamp(min=8, max=p - 1)
    conf_loss = ce[pos | neg].sum()
    return loc_loss / num_pos, conf_loss / num_pos


def to_targets(boxes):
    s = float(shapes.IMAGE_SIZE)
    return [torch.tensor([[b[0], b[1] / s, b[2] / s, b[3] / s, b[4] / s] for b in bs], dtype=torch.float32).view(-1, 5)
            for bs in boxes]


def evaluate_torch(model, images, boxes, priors):
    """PyTorch mAP@0.5 with the ncnn-exact post-processing."""
    s = shapes.IMAGE_SIZE
    dets = [[(d[0], d[1], d[2] * s, d[3] * s, d[4] * s, d[5] * s) for d in ssd.detect(model, im, priors)] for im in images]
    return metrics.mean_ap(dets, boxes, len(shapes.CLASSES))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--images", type=int, default=12000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--out", default=os.path.join(HERE, "ssd_shapes.pt"))
    args = ap.parse_args()

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    images, boxes = dataset(shapes.TRAIN_SEED, args.images)
    val_images, val_boxes = dataset(shapes.HELDOUT_SEED, 200)
    targets = to_targets(boxes)
    priors = torch.from_numpy(ssd.all_priors())

    model = ssd.SSD()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=5e-4)
    steps_per_epoch = len(images) // args.batch
    total = steps_per_epoch * args.epochs
    warmup = 200
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total)))

    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(images))
        sums = np.zeros(2)
        for k in range(steps_per_epoch):
            idx = order[k * args.batch:(k + 1) * args.batch]
            x = ssd.preprocess(images[idx].reshape(-1, shapes.IMAGE_SIZE, 3))  # 1 x 3 x (B*S) x S
            x = x.view(3, len(idx), shapes.IMAGE_SIZE, shapes.IMAGE_SIZE).permute(1, 0, 2, 3).contiguous()
            x, t = augment(x, [targets[i] for i in idx], rng)
            loc, conf = model(x)
            l_loc, l_conf = multibox_loss(loc, conf, t, priors)
            opt.zero_grad()
            (l_loc + l_conf).backward()
            opt.step()
            sched.step()
            step += 1
            sums += [l_loc.item(), l_conf.item()]
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{total} loc {sums[0] / (k + 1):.3f} conf {sums[1] / (k + 1):.3f} "
                      f"lr {sched.get_last_lr()[0]:.2e} {time.time() - t0:.0f} s", flush=True)
        model.eval()
        torch.save(model.state_dict(), args.out)
        if epoch % 3 == 2 or epoch == args.epochs - 1:
            aps, m = evaluate_torch(ssd.fold_batchnorm(model), val_images, val_boxes, ssd.all_priors())
            print(f"epoch {epoch}: held-out PyTorch mAP@0.5 {m:.4f} per class "
                  + " ".join(f"{c}={a:.3f}" for c, a in zip(shapes.CLASSES, aps)), flush=True)
    print(f"training took {time.time() - t0:.0f} s ({total} steps of {args.batch}); saved {args.out}", flush=True)


if __name__ == "__main__":
    main()
