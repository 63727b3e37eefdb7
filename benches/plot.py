#!/usr/bin/env python3
"""Chart of a `cargo bench` run: ours vs ncnn Normalize vs the pnnx op chain vs
the one-pass floor, per tensor (fp32, 1 thread), at elempack 1 and 16.

    pip install matplotlib==3.11.2
    python3 benches/plot.py target/l2norm-bench.tsv benches/l2norm-bench.png "run date"
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    tsv, png = sys.argv[1], sys.argv[2]
    title = sys.argv[3] if len(sys.argv) > 3 else ""
    lines = [l for l in open(tsv) if not l.startswith("#")]  # the CPU line
    rows = [r for r in csv.DictReader(lines, delimiter="\t") if r["tensor"] != "net"]
    series = [("ours_ms", "L2Norm (ours)", "#1b7837"), ("normalize_ms", "ncnn Normalize", "#2166ac"),
              ("chain_ms", "pnnx op chain", "#b2182b"), ("floor_ms", "floor: one pass x *= k", "#888888")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    for ax, pack in zip(axes, ("1", "16")):
        sel = [r for r in rows if r["elempack"] == pack and r["threads"] == "1" and r["storage"] == "fp32"]
        tensors = [r["tensor"] for r in sel]
        width = 0.2
        for i, (key, label, colour) in enumerate(series):
            xs = [t + (i - 1.5) * width for t in range(len(sel))]
            ys = [float(r[key]) for r in sel]
            ax.bar(xs, [y if y > 0 else 0 for y in ys], width, label=label, color=colour)
        ax.set_xticks(range(len(sel)))
        ax.set_xticklabels(tensors, rotation=15)
        ax.set_yscale("log")
        ax.set_title("fp32, 1 thread, elempack %s" % pack)
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("median ms (log scale; lower is better)")
    axes[0].legend(loc="upper left", fontsize=8)
    fig.suptitle("L2Norm vs its peers, one run of cargo bench %s" % title)
    fig.tight_layout()
    fig.savefig(png, dpi=100)


if __name__ == "__main__":
    main()
