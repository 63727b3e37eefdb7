"""Write the trained SSD as ncnn ssd_shapes.param / ssd_shapes.bin (no converter).

    python3 export_ncnn.py [--checkpoint ssd_shapes.pt] [--out-dir ..]

Structure as in ncnn's squeezenet_ssd / mobilenet_ssd examples: Convolution
(BatchNorm folded, ReLU fused with 9=1) and Pooling, L2Norm on conv4_3, and per
source loc/conf Convolution -> Permute -> Flatten plus PriorBox; Concat of
locs, confs and priors; conf Reshape -> Softmax -> Flatten; DetectionOutput.
Split layers are inserted wherever a blob has more than one consumer.
"""

import argparse
import os
import struct

import numpy as np
import torch

import ssd
from shapes import IMAGE_SIZE

HERE = os.path.dirname(os.path.abspath(__file__))


def f(v):
    return f"{v:e}"


class NcnnWriter:
    def __init__(self):
        self.layers = []  # [type, name, bottoms, tops, params]
        self.weights = bytearray()

    def layer(self, type_, name, bottoms, tops, params=""):
        self.layers.append([type_, name, list(bottoms), list(tops), params])

    def raw(self, array):
        self.weights += np.ascontiguousarray(array, dtype="<f4").tobytes()

    def conv(self, name, bottom, top, conv, relu):
        w, b = conv.weight.detach().numpy(), conv.bias.detach().numpy()
        cout, _, k, _ = w.shape
        params = (f"0={cout} 1={k} 2=1 3={conv.stride[0]} 4={conv.padding[0]} 5=1 6={w.size}"
                  + (" 9=1" if relu else ""))
        self.layer("Convolution", name, [bottom], [top], params)
        self.weights += struct.pack("<I", 0)  # ModelBin tag: raw fp32 follows
        self.raw(w)
        self.raw(b)

    def text(self):
        """The .param text, with Split layers for blobs consumed more than once."""
        consumers = {}
        for _, _, bottoms, _, _ in self.layers:
            for b in bottoms:
                consumers[b] = consumers.get(b, 0) + 1
        used = {b: 0 for b in consumers}
        out = []
        for type_, name, bottoms, tops, params in self.layers:
            renamed = []
            for b in bottoms:
                if consumers[b] > 1:
                    renamed.append(f"{b}_splitncnn_{used[b]}")
                    used[b] += 1
                else:
                    renamed.append(b)
            out.append([type_, name, renamed, tops, params])
            for t in tops:
                if consumers.get(t, 0) > 1:
                    n = consumers[t]
                    out.append(["Split", f"splitncnn_{t}", [t], [f"{t}_splitncnn_{i}" for i in range(n)], ""])
        blobs = {b for l in out for b in l[2] + l[3]}
        lines = ["7767517", f"{len(out)} {len(blobs)}"]
        for type_, name, bottoms, tops, params in out:
            lines.append(f"{type_:<16} {name:<24} {len(bottoms)} {len(tops)} {' '.join(bottoms + tops)} {params}".rstrip())
        return "\n".join(lines) + "\n"


def export(model, param_path, bin_path):
    w = NcnnWriter()
    w.layer("Input", "data", [], ["data"], f"0={IMAGE_SIZE} 1={IMAGE_SIZE} 2=3")
    blob = "data"
    for name, kind, _ in ssd.LAYERS:
        if kind == "pool":
            w.layer("Pooling", name, [blob], [name], "0=0 1=2 2=2")
        else:
            w.conv(name, blob, name, model.body[name][0], relu=True)
        blob = name
        if name == "conv4_3":
            c = model.norm.weight.numel()
            w.layer("L2Norm", "conv4_3_norm", ["conv4_3"], ["conv4_3_norm"], f"0={c} 1={f(model.norm.eps)}")
            w.raw(model.norm.weight.detach().numpy())  # raw fp32, no tag

    locs, confs, priors = [], [], []
    for i, (src, side, min_size, max_size) in enumerate(ssd.SOURCES):
        for head, convs, out in (("loc", model.loc, locs), ("conf", model.conf, confs)):
            base = f"{src}_mbox_{head}"
            w.conv(base, src, base, convs[i], relu=False)
            w.layer("Permute", f"{base}_perm", [base], [f"{base}_perm"], "0=3")
            w.layer("Flatten", f"{base}_flat", [f"{base}_perm"], [f"{base}_flat"])
            out.append(f"{base}_flat")
        ars = ",".join(f(a) for a in ssd.ASPECT_RATIOS)
        v = ssd.VARIANCES
        w.layer("PriorBox", f"{src}_mbox_priorbox", [src, "data"], [f"{src}_mbox_priorbox"],
                f"-23300=1,{f(min_size)} -23301=1,{f(max_size)} -23302={len(ssd.ASPECT_RATIOS)},{ars} "
                f"3={f(v[0])} 4={f(v[1])} 5={f(v[2])} 6={f(v[3])} 7=1 8=0 9=-233 10=-233 "
                f"11=-2.330000e+02 12=-2.330000e+02 13={f(ssd.PRIOR_OFFSET)}")
        priors.append(f"{src}_mbox_priorbox")

    w.layer("Concat", "mbox_loc", locs, ["mbox_loc"], "0=0")
    w.layer("Concat", "mbox_conf", confs, ["mbox_conf"], "0=0")
    w.layer("Concat", "mbox_priorbox", priors, ["mbox_priorbox"], "0=1")
    w.layer("Reshape", "mbox_conf_reshape", ["mbox_conf"], ["mbox_conf_reshape"], f"0={ssd.NUM_CLASSES} 1=-1")
    w.layer("Softmax", "mbox_conf_softmax", ["mbox_conf_reshape"], ["mbox_conf_softmax"], "0=1 1=1")
    w.layer("Flatten", "mbox_conf_flatten", ["mbox_conf_softmax"], ["mbox_conf_flatten"])
    w.layer("DetectionOutput", "detection_out", ["mbox_loc", "mbox_conf_flatten", "mbox_priorbox"], ["detection_out"],
            f"0={ssd.NUM_CLASSES} 1={f(ssd.NMS_THRESHOLD)} 2={ssd.NMS_TOP_K} 3={ssd.KEEP_TOP_K} "
            f"4={f(ssd.CONFIDENCE_THRESHOLD)}")

    with open(param_path, "w") as fp:
        fp.write(w.text())
    with open(bin_path, "wb") as fp:
        fp.write(w.weights)
    return len(w.weights)


def load_plain_model(checkpoint):
    """The checkpoint's SSD with BatchNorm folded into the convolutions (eval mode)."""
    model = ssd.SSD()
    model.load_state_dict(torch.load(checkpoint, map_location="cpu"))
    return ssd.fold_batchnorm(model.eval())


def main():
    torch.set_num_threads(1)
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=os.path.join(HERE, "ssd_shapes.pt"))
    ap.add_argument("--out-dir", default=os.path.join(HERE, ".."))
    args = ap.parse_args()
    model = load_plain_model(args.checkpoint)
    param = os.path.join(args.out_dir, "ssd_shapes.param")
    size = export(model, param, os.path.join(args.out_dir, "ssd_shapes.bin"))
    print(f"wrote {param} and ssd_shapes.bin ({size} bytes)")


if __name__ == "__main__":
    main()
