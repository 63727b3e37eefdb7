#!/usr/bin/env python3
"""Writes the small hand-made test models of ncnn-models/ (stdlib only, fixed seed).

    python3 ncnn-models/make_test_models.py

l2norm_only      Input -> L2Norm(16), weights 1..16 / 4 (distinct per channel)
conv_l2norm_conv Input 3x38x38 -> Convolution 3x3 (32) -> L2Norm(32, weights 20,
                 mmdetection's init) -> Convolution 1x1 (8)
"""
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def floats(values):
    return struct.pack("<%df" % len(values), *values)


def tagged(values):
    # ModelBin::load(n, 0): a 4-byte tag (0 = raw fp32) then the values.
    return struct.pack("<I", 0) + floats(values)


def write(name, param, weights):
    with open(os.path.join(HERE, name + ".param"), "w") as f:
        f.write(param)
    with open(os.path.join(HERE, name + ".bin"), "wb") as f:
        f.write(weights)


def main():
    rng = random.Random(20261129)

    write(
        "l2norm_only",
        "7767517\n"
        "2 2\n"
        "Input            data                     0 1 data\n"
        "L2Norm           norm                     1 1 data out 0=16 1=1.000000e-10\n",
        floats([(c + 1) / 4.0 for c in range(16)]),
    )

    conv1 = [rng.gauss(0.0, 0.3) for _ in range(32 * 3 * 3 * 3)]
    bias1 = [rng.gauss(0.0, 0.1) for _ in range(32)]
    scale = [20.0] * 32
    conv2 = [rng.gauss(0.0, 0.2) for _ in range(8 * 32)]
    bias2 = [rng.gauss(0.0, 0.1) for _ in range(8)]
    write(
        "conv_l2norm_conv",
        "7767517\n"
        "4 4\n"
        "Input            data                     0 1 data 0=38 1=38 2=3\n"
        "Convolution      conv1                    1 1 data conv1 0=32 1=3 4=1 5=1 6=864\n"
        "L2Norm           norm                     1 1 conv1 norm 0=32 1=1.000000e-10\n"
        "Convolution      conv2                    1 1 norm out 0=8 1=1 5=1 6=256\n",
        tagged(conv1) + floats(bias1) + floats(scale) + tagged(conv2) + floats(bias2),
    )


if __name__ == "__main__":
    main()
