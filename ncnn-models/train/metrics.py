"""mAP@0.5, VOC style (all-point interpolated AP per class, greedy matching by score)."""

import numpy as np


def iou(a, b):
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def average_precision(detections, ground_truth, label, iou_thresh=0.5):
    """detections: per image, lists of (label, score, x0, y0, x1, y1);
    ground_truth: per image, lists of (label, x0, y0, x1, y1), same coordinates."""
    dets = [(d[1], i, d[2:6]) for i, ds in enumerate(detections) for d in ds if d[0] == label]
    dets.sort(key=lambda d: -d[0])
    gts = [[g[1:5] for g in gs if g[0] == label] for gs in ground_truth]
    used = [[False] * len(g) for g in gts]
    total = sum(len(g) for g in gts)
    if total == 0:
        return float("nan")
    tp = np.zeros(len(dets))
    for k, (_, i, box) in enumerate(dets):
        overlaps = [iou(box, g) for g in gts[i]]
        if overlaps:
            j = int(np.argmax(overlaps))
            if overlaps[j] >= iou_thresh and not used[i][j]:
                used[i][j] = True
                tp[k] = 1
    ctp = np.cumsum(tp)
    recall = ctp / total
    precision = ctp / np.arange(1, len(dets) + 1)
    # Area under the precision envelope.
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    for k in range(len(p) - 2, -1, -1):
        p[k] = max(p[k], p[k + 1])
    steps = np.where(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def mean_ap(detections, ground_truth, num_labels):
    """Per-class AP for labels 1..num_labels and their mean."""
    aps = [average_precision(detections, ground_truth, c) for c in range(1, num_labels + 1)]
    return aps, float(np.nanmean(aps))
