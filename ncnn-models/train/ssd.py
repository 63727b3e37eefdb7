"""A scaled-down VGG-SSD with mmdetection's L2Norm, plus ncnn-exact priors,
box decoding and detection output (numpy ports of ncnn's PriorBox and
DetectionOutput layers, so PyTorch and ncnn detections agree)."""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from shapes import CLASSES, IMAGE_SIZE

NUM_CLASSES = len(CLASSES) + 1  # with background (label 0)
MEAN, NORM = 127.5, 1.0 / 127.5  # input = (pixel - MEAN) * NORM, RGB order

# Detection sources: (blob name, feature map side, PriorBox min_size, max_size).
SOURCES = [
    ("conv4_3_norm", 16, 14.0, 28.0),
    ("fc7", 8, 28.0, 48.0),
    ("conv6_2", 4, 48.0, 76.0),
    ("conv7_2", 2, 76.0, 108.0),
]
ASPECT_RATIOS = [2.0]  # with flip: 1:1 min, 1:1 sqrt(min*max), 2:1, 1:2
PRIORS_PER_CELL = 2 + 2 * len(ASPECT_RATIOS)
VARIANCES = [0.1, 0.1, 0.2, 0.2]
PRIOR_OFFSET = 0.5

# DetectionOutput settings, written into the .param as well.
NMS_THRESHOLD = 0.45
NMS_TOP_K = 200
KEEP_TOP_K = 100
CONFIDENCE_THRESHOLD = 0.01


class L2Norm(nn.Module):
    """Channel-wise L2 normalisation with a learned per-channel scale (mmdetection's)."""

    def __init__(self, n_dims, scale=20.0, eps=1e-10):
        super().__init__()
        self.n_dims = n_dims
        self.weight = nn.Parameter(torch.full((n_dims,), float(scale)))
        self.eps = eps

    def forward(self, x):
        x_float = x.float()
        norm = x_float.pow(2).sum(1, keepdim=True).sqrt() + self.eps
        return (self.weight[None, :, None, None].float().expand_as(x_float) * x_float / norm).type_as(x)


def conv(cin, cout, k=3, stride=1, pad=None, bn=True):
    """Conv (+ BatchNorm, folded into the conv at export) + ReLU."""
    pad = k // 2 if pad is None else pad
    layers = [nn.Conv2d(cin, cout, k, stride, pad, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


# Backbone and extras, in order: (name, kind, args). "pool" is 2x2 max, stride 2.
# Names follow VGG-SSD; the net's blob names in the .param are these names.
LAYERS = [
    ("conv1_1", "conv", (3, 16, 3, 1)),
    ("pool1", "pool", ()),
    ("conv2_1", "conv", (16, 32, 3, 1)),
    ("pool2", "pool", ()),
    ("conv3_1", "conv", (32, 48, 3, 1)),
    ("conv3_2", "conv", (48, 48, 3, 1)),
    ("pool3", "pool", ()),
    ("conv4_1", "conv", (48, 64, 3, 1)),
    ("conv4_3", "conv", (64, 64, 3, 1)),  # -> L2Norm -> source 0 (16x16)
    ("pool4", "pool", ()),
    ("conv5_1", "conv", (64, 128, 3, 1)),
    ("fc7", "conv", (128, 128, 1, 1)),  # source 1 (8x8)
    ("conv6_1", "conv", (128, 64, 1, 1)),
    ("conv6_2", "conv", (64, 128, 3, 2)),  # source 2 (4x4)
    ("conv7_1", "conv", (128, 64, 1, 1)),
    ("conv7_2", "conv", (64, 128, 3, 2)),  # source 3 (2x2)
]
SOURCE_LAYERS = ["conv4_3", "fc7", "conv6_2", "conv7_2"]  # conv4_3 goes through L2Norm


class SSD(nn.Module):
    def __init__(self, bn=True):
        super().__init__()
        self.body = nn.ModuleDict()
        for name, kind, args in LAYERS:
            if kind == "conv":
                cin, cout, k, s = args
                self.body[name] = conv(cin, cout, k, s, bn=bn)
        self.norm = L2Norm(64, 20.0, 1e-10)
        src_ch = [dict((n, a[1]) for n, k, a in LAYERS if k == "conv")[s] for s in SOURCE_LAYERS]
        self.loc = nn.ModuleList(nn.Conv2d(c, PRIORS_PER_CELL * 4, 3, 1, 1) for c in src_ch)
        self.conf = nn.ModuleList(nn.Conv2d(c, PRIORS_PER_CELL * NUM_CLASSES, 3, 1, 1) for c in src_ch)

    def forward(self, x):
        """x: N x 3 x H x W normalised. Returns loc (N, P, 4) and conf logits (N, P, C),
        priors ordered like ncnn's PriorBox (source, y, x, prior)."""
        sources = []
        for name, kind, _ in LAYERS:
            x = F.max_pool2d(x, 2, 2) if kind == "pool" else self.body[name](x)
            if name == "conv4_3":
                sources.append(self.norm(x))
            elif name in SOURCE_LAYERS:
                sources.append(x)
        n = x.shape[0]
        loc = torch.cat([l(s).permute(0, 2, 3, 1).reshape(n, -1) for l, s in zip(self.loc, sources)], 1)
        conf = torch.cat([c(s).permute(0, 2, 3, 1).reshape(n, -1) for c, s in zip(self.conf, sources)], 1)
        return loc.view(n, -1, 4), conf.view(n, -1, NUM_CLASSES)


def fold_batchnorm(model):
    """An equivalent SSD without BatchNorm (eval-mode BN folded into conv weight and bias)."""
    plain = SSD(bn=False)
    state = {}
    for name, kind, _ in LAYERS:
        if kind != "conv":
            continue
        c, bn = model.body[name][0], model.body[name][1]
        scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
        state[f"body.{name}.0.weight"] = c.weight.detach() * scale[:, None, None, None]
        state[f"body.{name}.0.bias"] = bn.bias.detach() - bn.running_mean * scale
    for k, v in model.state_dict().items():
        if k.startswith(("norm.", "loc.", "conf.")):
            state[k] = v
    plain.load_state_dict(state)
    return plain.eval()


# --------------------------------------------------------------- priors (ncnn)

def priorbox(feature, image=IMAGE_SIZE, min_size=14.0, max_size=28.0):
    """ncnn PriorBox (caffe style, flip=1, clip=0, offset 0.5) for a square
    feature map: (feature*feature*PRIORS_PER_CELL, 4) corner boxes in [0,1], float32."""
    f32 = np.float32
    step = f32(image) / f32(feature)
    out = []
    for i in range(feature):
        cy = f32(PRIOR_OFFSET) * step + f32(i) * step
        cx = f32(PRIOR_OFFSET) * step
        for _ in range(feature):
            sizes = [(f32(min_size), f32(min_size))]
            s = np.sqrt(f32(min_size) * f32(max_size), dtype=f32)
            sizes.append((s, s))
            for ar in ASPECT_RATIOS:
                r = np.sqrt(f32(ar), dtype=f32)
                bw, bh = f32(min_size) * r, f32(min_size) / r
                sizes += [(bw, bh), (bh, bw)]
            for bw, bh in sizes:
                out.append([(cx - bw * f32(0.5)) / f32(image), (cy - bh * f32(0.5)) / f32(image),
                            (cx + bw * f32(0.5)) / f32(image), (cy + bh * f32(0.5)) / f32(image)])
            cx = cx + step
    return np.array(out, dtype=f32)


def all_priors():
    return np.concatenate([priorbox(f, IMAGE_SIZE, lo, hi) for _, f, lo, hi in SOURCES])


# ---------------------------------------------------------- encode / decode

def encode(gt, priors):
    """SSD targets for matched GT corner boxes (P, 4) against corner priors (P, 4)."""
    pw, ph = priors[:, 2] - priors[:, 0], priors[:, 3] - priors[:, 1]
    pcx, pcy = (priors[:, 0] + priors[:, 2]) * 0.5, (priors[:, 1] + priors[:, 3]) * 0.5
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    gcx, gcy = (gt[:, 0] + gt[:, 2]) * 0.5, (gt[:, 1] + gt[:, 3]) * 0.5
    return torch.stack([(gcx - pcx) / (VARIANCES[0] * pw), (gcy - pcy) / (VARIANCES[1] * ph),
                        torch.log(gw / pw) / VARIANCES[2], torch.log(gh / ph) / VARIANCES[3]], 1)


def decode(loc, priors):
    """ncnn DetectionOutput's CENTER_SIZE decoding, float32 numpy, same operation order."""
    f32 = np.float32
    loc, pb = loc.astype(f32), priors.astype(f32)
    pw, ph = pb[:, 2] - pb[:, 0], pb[:, 3] - pb[:, 1]
    pcx, pcy = (pb[:, 0] + pb[:, 2]) * f32(0.5), (pb[:, 1] + pb[:, 3]) * f32(0.5)
    v = np.array(VARIANCES, f32)
    cx = v[0] * loc[:, 0] * pw + pcx
    cy = v[1] * loc[:, 1] * ph + pcy
    w = np.exp(v[2] * loc[:, 2]) * pw
    h = np.exp(v[3] * loc[:, 3]) * ph
    return np.stack([cx - w * f32(0.5), cy - h * f32(0.5), cx + w * f32(0.5), cy + h * f32(0.5)], 1)


def iou_matrix(a, b):
    """IoU of every box in a (N, 4) with every box in b (M, 4), torch."""
    lt = torch.max(a[:, None, :2], b[None, :, :2])
    rb = torch.min(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


# -------------------------------------------------- detection output (ncnn)

def _qsort_descent(items, scores, left, right):
    """ncnn's qsort_descent_inplace, step for step (its order on ties matters)."""
    i, j = left, right
    p = scores[(left + right) // 2]
    while i <= j:
        while scores[i] > p:
            i += 1
        while scores[j] < p:
            j -= 1
        if i <= j:
            items[i], items[j] = items[j], items[i]
            scores[i], scores[j] = scores[j], scores[i]
            i += 1
            j -= 1
    if left < j:
        _qsort_descent(items, scores, left, j)
    if i < right:
        _qsort_descent(items, scores, i, right)


def qsort_descent(items, scores):
    if items:
        _qsort_descent(items, scores, 0, len(scores) - 1)


def _overlap(a, b):
    """ncnn's intersection_area: 0 when apart, else the (possibly 0) product."""
    if a[0] > b[2] or a[2] < b[0] or a[1] > b[3] or a[3] < b[1]:
        return np.float32(0)
    return (min(a[2], b[2]) - max(a[0], b[0])) * (min(a[3], b[3]) - max(a[1], b[1]))


def detection_output(loc, prob, priors, conf_thresh=CONFIDENCE_THRESHOLD):
    """ncnn DetectionOutput on one image. loc (P, 4) raw offsets, prob (P, C)
    softmax, priors (P, 4). Returns [(label, score, x0, y0, x1, y1)], normalised."""
    boxes = decode(loc, priors)
    per_class = []
    for c in range(1, NUM_CLASSES):
        idx = [j for j in range(len(prob)) if prob[j, c] > np.float32(conf_thresh)]
        rects = [tuple(np.float32(v) for v in boxes[j]) + (c,) for j in idx]
        scores = [np.float32(prob[j, c]) for j in idx]
        qsort_descent(rects, scores)
        rects, scores = rects[:NMS_TOP_K], scores[:NMS_TOP_K]
        areas = [(r[2] - r[0]) * (r[3] - r[1]) for r in rects]
        picked = []
        for i, a in enumerate(rects):
            keep = True
            for j in picked:
                inter = _overlap(a, rects[j])
                if inter / (areas[i] + areas[j] - inter) > np.float32(NMS_THRESHOLD):
                    keep = False
            if keep:
                picked.append(i)
        per_class += [(rects[i], scores[i]) for i in picked]
    rects, scores = [r for r, _ in per_class], [s for _, s in per_class]
    qsort_descent(rects, scores)
    return [(r[4], float(s), *(float(v) for v in r[:4])) for r, s in zip(rects[:KEEP_TOP_K], scores[:KEEP_TOP_K])]


def preprocess(rgb_uint8):
    """H x W x 3 uint8 RGB -> 1 x 3 x H x W float32, as the demo feeds ncnn."""
    x = torch.from_numpy(np.array(rgb_uint8, dtype=np.float32)).permute(2, 0, 1)[None]
    return (x - MEAN) * NORM


@torch.no_grad()
def detect(model, rgb_uint8, priors, conf_thresh=CONFIDENCE_THRESHOLD):
    """Detections of one image through the PyTorch model and the ncnn-exact post-processing."""
    loc, conf = model(preprocess(rgb_uint8))
    prob = torch.softmax(conf[0], 1).numpy()
    return detection_output(loc[0].numpy(), prob, priors, conf_thresh)
