"""Held-out check of verified patching's screens on the head grid.

The screens' defaults (``screen`` 0.1, ``group_screen`` 0.5, ``grouped_screen`` 0.3) were set on
the 16 IOI pairs of `bench_atp.py`. This script runs the exact head sweep (the truth) and verified
patching with its defaults on IOI pairs it was not tuned on (the second half of `ioi_prompts`:
three other templates, other lengths), and reports every head whose exact |mean effect| exceeds
5% of the clean-corrupt gap and whether it ran exactly.

    .venv/bin/python bench/check_verified_heldout.py --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--first", type=int, default=16, help="first prompt of the held-out pairs")
    ap.add_argument("--count", type=int, default=16)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import interplab as ip
    from interplab.data import ContrastPair
    from interplab.demo import ioi_prompts
    from interplab.techniques.patching import activation_patching, verified_patching

    model = ip.load("smollm2-135m")
    prompts, io, s = ioi_prompts()
    idx = range(args.first, args.first + args.count)
    pairs = [ContrastPair(prompts[i], prompts[i ^ 1], io[i], s[i]) for i in idx]
    kw = dict(components=("attn.z",), per="all", control=False, progress=False)
    t0 = time.perf_counter()
    with torch.inference_mode():
        truth = activation_patching(model, pairs, **kw)
    t_truth = time.perf_counter() - t0
    t0 = time.perf_counter()
    ver = verified_patching(model, pairs, **kw)
    t_ver = time.perf_counter() - t0
    exact_mean = truth.effect("attn.z").mean(0)
    big = np.abs(exact_mean) > ver.tolerance
    ran = ver.exact("attn.z")
    score = ver.scores["attn.z"]
    disc = ver.group_discrepancy["attn.z"]
    print(f"pairs {args.first}..{args.first + args.count - 1}; tolerance {ver.tolerance:.3f}")
    print(f"truth (exact sweep) {t_truth:.1f} s; verified {t_ver:.1f} s; {ver.describe_bound()}")
    print(f"heads above the tolerance: {int(big.sum())}; ran exactly: {int((big & ran).sum())}")
    for layer, head in zip(*np.nonzero(big), strict=True):
        print(
            f"  L{layer}.H{head}: exact {exact_mean[layer, head]:+.3f}, AtP* score "
            f"{score[layer, head] / ver.tolerance:.2f} x tol, layer discrepancy "
            f"{disc[layer] / ver.tolerance:.2f} x tol, ran exactly: {bool(ran[layer, head])}"
        )
    left = ~ran
    worst = float(np.abs(exact_mean[left]).max()) if left.any() else 0.0
    print(f"bound {ver.bound:.3f}; true largest |mean effect| of an estimated head {worst:.3f}")
    print("layers whose group failed:", np.flatnonzero(disc > ver.group_screen * ver.tolerance))


if __name__ == "__main__":
    main()
