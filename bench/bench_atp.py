"""Benchmark: AtP* and verified patching on the 16-pair IOI grids, beside TransformerLens's exact
patching and our own exact sweep (the truth).

The pairs, model and TL bridge are bench_patching.py's (the first 16 IOI prompts, one template,
14 tokens; each corrupted by swapping the names; denoising; logit difference). Two grids:
resid_pre layer × position (30 × 14 = 420 cells) and attn.z layer × head over all positions
(30 × 9 = 270 cells). In one run:

1. HF forward of the 16 clean prompts: the unit.
2. The exact sweep of each grid on our fast path, once: the truth every other row is scored on.
3. TransformerLens exact patching (`get_act_patch_resid_pre`, `get_act_patch_attn_head_out_all_pos`
   on the bridge), timed on ``--tl-cells`` evenly spread cells per grid and scaled to the grid
   (one full forward per cell whatever the cell).
4. Verified patching (`verified_patching`, defaults: AtP* with the QK fix; every cell that could
   exceed 5% of the clean-corrupt gap given AtP*'s error on a 5% random sample runs exactly; 95%): time, cells run exactly, and whether every cell whose exact |mean effect|
   exceeds 5% of the clean-corrupt gap ran exactly; the bound against the true largest estimated
   cell.
5. AtP* (QK fix; GradDrop timed once, it costs L/2 backwards), plain attribution patching: time
   in HF forwards; Spearman of each with the exact sweep (signed means, and |AtP*| scores
   against |exact|).

Timed rows run round-robin (`timing.interleaved_times`); the first call of each is the warm-up.

    .venv/bin/python bench/bench_atp.py --threads 2 --repeats 3 --tl-cells 15
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from peers import load_model, tl_bridge, tl_patch_resid_pre
from timing import Timing, interleaved_times, median_time


def tl_patch_heads(bridge, clean, corrupt, metric, index_df):
    """Returns TL's [layer, head] attention-output sweep over all positions on ``index_df`` cells."""
    from transformer_lens import patching

    names = [f"blocks.{i}.attn.hook_z" for i in range(bridge.cfg.n_layers)]
    _, cache = bridge.run_with_cache(clean, names_filter=names)
    return patching.get_act_patch_attn_head_out_all_pos(
        bridge, corrupt, cache, metric, index_df=index_df, index_axis_names=None
    )


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tl-cells", type=int, default=15)
    ap.add_argument("--tl-repeats", type=int, default=2)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import pandas as pd

    from interplab.data import ContrastPair
    from interplab.demo import ioi_prompts
    from interplab.techniques.patching import (
        TokenPairs,
        activation_patching,
        atp_star,
        attribution_patching,
        verified_patching,
    )

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    started = time.perf_counter()
    loaded = load_model()
    model = loaded.interplab_model
    prompts, io, s = ioi_prompts()
    pairs = [ContrastPair(prompts[i], prompts[i ^ 1], io[i], s[i]) for i in range(16)]
    clean = model.tokenize([p.clean for p in pairs]).ids
    corrupt = model.tokenize([p.corrupt for p in pairs]).ids
    answer = torch.tensor([model.token_id(p.answer) for p in pairs])
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pairs])
    tp = TokenPairs(clean, corrupt, answer, wrong)
    L, T, H = model.dims.n_layers, clean.shape[1], model.dims.n_heads
    grids = {"resid_pre": ("position", L * T), "attn.z": ("all", L * H)}
    rows = torch.arange(16)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1]
        return (last[rows, answer] - last[rows, wrong]).mean()

    print(f"16 prompts x {T} tokens; threads {torch.get_num_threads()}; load before {load_before}")
    fwd = median_time(lambda: model.hf(clean), warmup=1, repeats=5)

    # 2. the truth
    truth, truth_s = {}, {}
    for comp, (per, _) in grids.items():
        t0 = time.perf_counter()
        with torch.inference_mode():
            truth[comp] = activation_patching(
                model, tp, components=(comp,), per=per, method="fast", control=False,
                progress=False,
            )  # fmt: skip
        truth_s[comp] = time.perf_counter() - t0
    gap = float(abs(truth["resid_pre"].clean.mean() - truth["resid_pre"].corrupt.mean()))

    # 4-5. results (first calls double as warm-up), then interleaved timings
    results = {}

    def runner(name, fn):
        def call():
            results[name] = fn()

        return call

    fns = {}
    for comp, (per, _) in grids.items():
        fns[f"verified {comp}"] = runner(
            f"verified {comp}",
            lambda c=comp, p=per: verified_patching(
                model, tp, components=(c,), per=p, control=False, progress=False
            ),
        )
        fns[f"AtP* {comp}"] = runner(
            f"AtP* {comp}",
            lambda c=comp, p=per: atp_star(
                model, tp, components=(c,), per=p, graddrop=False, control=False, progress=False
            ),
        )
        fns[f"plain AtP {comp}"] = runner(
            f"plain AtP {comp}",
            lambda c=comp, p=per: attribution_patching(
                model, tp, components=(c,), per=p, control=False
            ),
        )
    fns["HF forward"] = lambda: model.hf(clean)
    timings = interleaved_times(fns, warmup=1, repeats=args.repeats, inference_mode=False)
    gd_time, gd = {}, {}
    for comp, (per, _) in grids.items():
        t0 = time.perf_counter()
        gd[comp] = atp_star(
            model, tp, components=(comp,), per=per, graddrop=True, control=False, progress=False
        )
        gd_time[comp] = time.perf_counter() - t0

    # 3. TransformerLens, on a subset of cells
    bridge = tl_bridge(loaded.hf, loaded.tokenizer)
    tl, tl_gap = {}, {}
    for comp, (_, n_cells) in grids.items():
        width = T if comp == "resid_pre" else H
        step = max(1, n_cells // args.tl_cells)
        cells = [(c // width, c % width) for c in range(0, n_cells, step)][: args.tl_cells]
        cols = ["layer", "pos"] if comp == "resid_pre" else ["layer", "head"]
        index_df = pd.DataFrame(cells, columns=cols)
        fn = tl_patch_resid_pre if comp == "resid_pre" else tl_patch_heads
        runs = []
        with torch.inference_mode():
            values = fn(bridge, clean, corrupt, metric, index_df=index_df)
            for _ in range(args.tl_repeats):
                t0 = time.perf_counter()
                fn(bridge, clean, corrupt, metric, index_df=index_df)
                runs.append((time.perf_counter() - t0) * n_cells / len(cells))
        tl[comp] = Timing.of(runs)
        mean = truth[comp].patched().mean(0)
        tl_gap[comp] = max(
            abs(float(values[i]) - float(mean[a, b])) for i, (a, b) in enumerate(cells)
        )

    load_after = Path("/proc/loadavg").read_text().split()[:3]
    h = timings["HF forward"].median
    print(
        f"load average before {load_before}, after {load_after}; HF forward {h:.3f} s "
        f"(alone: {fwd.median:.3f}); total {time.perf_counter() - started:.0f} s"
    )
    print("| grid | row | median s | runs | x HF forward | TL / row |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for comp in grids:
        t = tl[comp].median
        print(
            f"| {comp} | TL exact (scaled from {args.tl_cells} cells) | {t:.1f} | {len(tl[comp].runs)} | {t / h:.0f} | 1.0 |"
        )
        print(
            f"| {comp} | interplab exact fast sweep (truth, once) | {truth_s[comp]:.1f} | 1 | {truth_s[comp] / h:.1f} | {t / truth_s[comp]:.1f} |"
        )
        for row in (f"verified {comp}", f"AtP* {comp}", f"plain AtP {comp}"):
            r = timings[row]
            label = row.replace(comp, "").strip()
            label = "AtP* (QK fix, no GradDrop)" if label == "AtP*" else label
            print(
                f"| {comp} | {label} | {r.median:.2f} | {len(r.runs)} | {r.median / h:.2f} | {t / r.median:.1f} |"
            )
        print(
            f"| {comp} | AtP* with GradDrop (once) | {gd_time[comp]:.2f} | 1 | {gd_time[comp] / h:.2f} | {t / gd_time[comp]:.1f} |"
        )
    print()
    print(
        "| grid | cells | exact (verified + sampled) | cells > 5% of gap | of those run exactly | tolerance | bound (95%) | true max estimated | TL-vs-truth max diff |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for comp, (_, n_cells) in grids.items():
        v = results[f"verified {comp}"]
        exact_mean = truth[comp].effect(comp).mean(0)
        big = np.abs(exact_mean) > 0.05 * gap
        ran = v.exact(comp)
        left = ~ran
        worst = float(np.abs(exact_mean[left]).max()) if left.any() else 0.0
        diff = float(np.abs(v.effect(comp).mean(0)[ran] - exact_mean[ran]).max())
        print(
            f"| {comp} | {n_cells} | {v.n_exact} ({v.n_verified} + {v.n_sampled}) | {int(big.sum())} | "
            f"{int((big & ran).sum())} | {v.tolerance:.3f} | {v.bound:.3f} | {worst:.3f} | {tl_gap[comp]:.1e} |"
        )
        print(f"  verified vs exact sweep on its exact cells: max |diff| {diff:.1e}; gap {gap:.3f}")
    print()
    print("| grid | Spearman with the exact sweep | signed mean | \\|score\\| vs \\|exact\\| |")
    print("| --- | --- | ---: | ---: |")
    for comp in grids:
        exact_mean = truth[comp].effect(comp).mean(0)
        plain = results[f"plain AtP {comp}"].effect(comp).mean(0)
        star = results[f"AtP* {comp}"].effect(comp).mean(0)
        print(
            f"| {comp} | plain attribution | {spearman(plain, exact_mean):.3f} | {spearman(np.abs(plain), np.abs(exact_mean)):.3f} |"
        )
        print(
            f"| {comp} | AtP* (QK fix) | {spearman(star, exact_mean):.3f} | {spearman(np.abs(star), np.abs(exact_mean)):.3f} |"
        )
        score = gd[comp].score(comp).mean(0)
        print(
            f"| {comp} | AtP* + GradDrop (score is a magnitude) | | {spearman(score, np.abs(exact_mean)):.3f} |"
        )


if __name__ == "__main__":
    main()
