"""Benchmark: a full resid_pre layer × position patching sweep, interplab vs TransformerLens 4.x.

16 IOI prompts (the first 16 of `interplab.demo.ioi_prompts()`: one template, so every prompt has
the same length; each prompt's corrupt partner is the same sentence with the names swapped),
denoising, logit difference at the last token. Rows:

1. HF forward: one plain forward of the 16 clean prompts (the floor's unit).
2. naive floor: cells × that forward, what any one-forward-per-cell sweep costs at best.
3. interplab fast: `activation_patching(..., method="fast")`, every cell.
4. TL bridge: `transformer_lens.patching.get_act_patch_resid_pre` on the bridge. One cell costs
   one full forward of the batch whatever the cell, so TL is timed on an evenly spread subset of
   cells (``--tl-cells``) and its per-cell time scaled to the whole grid; the table says so.
5. attribution, every site: `attribution_patching` over all six grid components, against (1).

    .venv/bin/python bench/bench_patching.py --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from peers import load_model, tl_bridge, tl_patch_resid_pre
from timing import Timing, interleaved_times, median_time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--tl-cells", type=int, default=30)
    ap.add_argument("--tl-repeats", type=int, default=3)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import pandas as pd

    from interplab.data import ContrastPair
    from interplab.demo import ioi_prompts
    from interplab.techniques.patching import (
        TokenPairs,
        activation_patching,
        attribution_patching,
    )

    loaded = load_model()
    model = loaded.interplab_model
    prompts, io, s = ioi_prompts()
    pairs = [ContrastPair(prompts[i], prompts[i ^ 1], io[i], s[i]) for i in range(16)]
    clean = model.tokenize([p.clean for p in pairs]).ids
    corrupt = model.tokenize([p.corrupt for p in pairs]).ids
    answer = torch.tensor([model.token_id(p.answer) for p in pairs])
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pairs])
    tp = TokenPairs(clean, corrupt, answer, wrong)
    n_layers, length = model.dims.n_layers, clean.shape[1]
    n_cells = n_layers * length
    rows = torch.arange(16)

    def metric(logits: torch.Tensor) -> torch.Tensor:
        last = logits[:, -1]
        return (last[rows, answer] - last[rows, wrong]).mean()

    print(f"16 prompts x {length} tokens, {n_cells} cells, threads {torch.get_num_threads()}")
    load_before = Path("/proc/loadavg").read_text().split()[:3]

    fwd = median_time(lambda: model.hf(clean), warmup=2, repeats=max(args.repeats, 5))
    fast_fn = lambda: activation_patching(model, tp, method="fast", progress=False, control=False)  # noqa: E731
    attr_sites = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out", "attn.z")
    attr_fn = lambda: attribution_patching(model, tp, components=attr_sites, control=False)  # noqa: E731
    timings = interleaved_times(
        {"interplab fast": fast_fn}, warmup=args.warmup, repeats=args.repeats
    )
    attr = interleaved_times(
        {"attribution": attr_fn, "HF forward": lambda: model.hf(clean)},
        warmup=1,
        repeats=args.repeats,
        inference_mode=False,
    )

    bridge = tl_bridge(loaded.hf, loaded.tokenizer)
    step = max(1, n_cells // args.tl_cells)
    cells = [(c // length, c % length) for c in range(0, n_cells, step)][: args.tl_cells]
    index_df = pd.DataFrame(cells, columns=["layer", "pos"])
    tl_runs = []
    with torch.inference_mode():
        tl_values = tl_patch_resid_pre(bridge, clean, corrupt, metric, index_df=index_df)
        for _ in range(args.tl_repeats):
            start = time.perf_counter()
            tl_patch_resid_pre(bridge, clean, corrupt, metric, index_df=index_df)
            tl_runs.append((time.perf_counter() - start) * n_cells / len(cells))
    tl = Timing.of(tl_runs)

    ours = activation_patching(model, tp, method="fast", progress=False, control=False)
    mean_effect = ours.patched().mean(0)
    gap = max(
        abs(float(tl_values[i]) - float(mean_effect[lay, pos]))
        for i, (lay, pos) in enumerate(cells)
    )
    load_after = Path("/proc/loadavg").read_text().split()[:3]

    naive = fwd.median * n_cells
    f = timings["interplab fast"].median
    print(f"load average before {load_before}, after {load_after}")
    print("| row | median s | IQR s | runs | x HF forward | TL / row |")
    print(
        f"| HF forward (16 x {length}) | {fwd.median:.3f} | {fwd.iqr:.3f} | {len(fwd.runs)} | 1.00 | |"
    )
    print(
        f"| naive floor ({n_cells} cells x forward) | {naive:.1f} | | | {n_cells} | {tl.median / naive:.2f} |"
    )
    print(
        f"| TL bridge get_act_patch_resid_pre (scaled from {len(cells)} cells) | {tl.median:.1f} | "
        f"{tl.iqr:.1f} | {len(tl.runs)} | {tl.median / fwd.median:.0f} | 1.00 |"
    )
    print(
        f"| interplab fast, all {n_cells} cells | {f:.2f} | {timings['interplab fast'].iqr:.2f} | "
        f"{len(timings['interplab fast'].runs)} | {f / fwd.median:.1f} | {tl.median / f:.1f} |"
    )
    a, h = attr["attribution"].median, attr["HF forward"].median
    print(
        f"| attribution, 6 components x 30 layers x pos | {a:.2f} | {attr['attribution'].iqr:.2f} | {args.repeats} | {a / h:.2f} | |"
    )
    print(f"max |TL - interplab| on the TL cells (mean logit diff): {gap:.2e}")
    print(
        f"fast runs: {[round(x, 2) for x in timings['interplab fast'].runs]}; TL runs: {[round(x, 1) for x in tl.runs]}"
    )
    print(f"median ratio TL / interplab fast: {tl.median / f:.1f}x; naive / fast: {naive / f:.1f}x")
    print(
        f"attribution / forward (interleaved): {a / h:.2f}x; forward s {statistics.median(attr['HF forward'].runs):.3f}"
    )


if __name__ == "__main__":
    main()
