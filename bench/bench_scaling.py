"""Cost curves: time and peak memory of each technique against tokens, layers and cells, on this
machine, with the fitted log-log exponent and an extrapolation to 2B and 9B models.

Every point runs in a fresh subprocess (``--point``) so its peak memory is its own: the child
loads the embedded model (SmolLM2-135M; for the layers axis its first k layers, the real weights
of a shorter model), touches every weight (safetensors are memory-mapped: untouched pages would
count as the technique's), measures the resident memory, runs the technique once to warm up and
``--repeats`` times timed, and prints the median seconds and the peak resident memory above the
loaded model (sampled every 2 ms by a thread). Inputs are seeded random tokens; the corrupt side
of a pair differs at position 1, so every later position carries an effect.

Techniques and axes (batch 4 throughout):

- capture: one forward capturing every layer's resid_post; tokens per prompt T, layers k.
- patching: the exact resid_pre layer × position sweep (fast path); cells = k × T, grown by T
  and by k.
- AtP*: attribution patching with the QK fix on the resid_pre grid; tokens T, layers k.

The fit is least squares of log(seconds) on log(x) over the points of one axis; the exponent is
the slope. ``docs/scaling.md`` holds a run and the extrapolation built from it.

    .venv/bin/python bench/bench_scaling.py --threads 2 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

BATCH = 4
AXES = {
    ("capture", "tokens"): [32, 64, 128, 256, 512],
    ("capture", "layers"): [4, 8, 15, 30],
    ("patching", "tokens"): [4, 8, 16, 24],
    ("patching", "layers"): [4, 8, 15, 30],
    ("AtP*", "tokens"): [32, 64, 128, 256, 512],
    ("AtP*", "layers"): [4, 8, 15, 30],
}
FIXED = {"capture": 64, "patching": 12, "AtP*": 64}  # T on the layers axis


def rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def truncated(model, k: int):
    """Returns the model with only its first ``k`` layers (the real weights)."""
    import copy

    from interplab.core.model import Model
    from interplab.models.registry import adapter_for

    if k >= model.dims.n_layers:
        return model
    hf = copy.deepcopy(model.hf)
    hf.model.layers = hf.model.layers[:k]
    hf.config.num_hidden_layers = k
    if getattr(hf.config, "layer_types", None):
        hf.config.layer_types = hf.config.layer_types[:k]
    return Model(hf, model.tokenizer, adapter_for(hf.config), model.info)


def point(technique: str, tokens: int, layers: int, repeats: int, threads: int) -> dict:
    import torch

    import interplab as ip
    from interplab.sites import Site
    from interplab.techniques.patching import TokenPairs, activation_patching, atp_star

    torch.set_num_threads(threads)
    model = truncated(ip.load(), layers)
    vocab = model.hf.config.vocab_size
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(1000, vocab, (BATCH, tokens), generator=g)
    corrupt = clean.clone()
    corrupt[:, 1] = torch.randint(1000, vocab, (BATCH,), generator=g)
    tp = TokenPairs(clean, corrupt, torch.arange(BATCH) + 10, torch.arange(BATCH) + 20)
    sites = [Site(layer, "resid_post") for layer in range(layers)]
    if technique == "capture":

        def fn() -> object:
            with torch.inference_mode():
                return model.run(clean, capture=sites).cache
    elif technique == "patching":

        def fn() -> object:
            with torch.inference_mode():
                return activation_patching(
                    model, tp, method="fast", control=False, progress=False, record=False
                )
    else:

        def fn() -> object:
            return atp_star(model, tp, control=False, progress=False, record=False)

    for p in model.hf.parameters():  # page in memory-mapped weights before the baseline
        p.data.sum()
    base = rss_mb()
    peak = [base]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_mb())
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fn()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    stop.set()
    watcher.join()
    return {"seconds": statistics.median(runs), "runs": runs, "peak_mb": peak[0] - base}


def fit(xs: list[float], ys: list[float]) -> float:
    """Returns the slope of log(y) on log(x)."""
    lx, ly = np.log(np.asarray(xs, float)), np.log(np.asarray(ys, float))
    return float(np.polyfit(lx, ly, 1)[0])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--point", nargs=3, metavar=("TECHNIQUE", "TOKENS", "LAYERS"))
    ap.add_argument("--json", type=Path, default=None, help="write every point here")
    args = ap.parse_args()
    if args.point:
        technique, tokens, layers = args.point
        out = point(technique, int(tokens), int(layers), args.repeats, args.threads)
        print("POINT " + json.dumps(out))
        return
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"load average before: {load}; batch {BATCH}; threads {args.threads}")
    rows = []
    for (technique, axis), values in AXES.items():
        for v in values:
            tokens, layers = (v, 30) if axis == "tokens" else (FIXED[technique], v)
            cmd = [sys.executable, __file__, "--point", technique, str(tokens), str(layers),
                   "--repeats", str(args.repeats), "--threads", str(args.threads)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            got = json.loads(out.split("POINT ", 1)[1])
            cells = layers * tokens if technique == "patching" else None
            rows.append({"technique": technique, "axis": axis, "tokens": tokens,
                         "layers": layers, "cells": cells, **got})  # fmt: skip
            print(
                f"{technique:8s} {axis:6s} T={tokens:4d} k={layers:2d} "
                f"{got['seconds']:8.3f} s  peak +{got['peak_mb']:7.1f} MB",
                flush=True,
            )
    print(f"\nload average after: {' '.join(Path('/proc/loadavg').read_text().split()[:3])}")
    print("\n| technique | axis | points | time exponent | memory exponent | largest point |")
    print("| --- | --- | --- | ---: | ---: | --- |")
    for technique, axis in AXES:
        pts = [r for r in rows if r["technique"] == technique and r["axis"] == axis]
        xs = [r["tokens"] if axis == "tokens" else r["layers"] for r in pts]
        t_exp = fit(xs, [r["seconds"] for r in pts])
        mem = [max(r["peak_mb"], 1e-3) for r in pts]
        m_exp = fit(xs, mem) if all(m > 1 for m in mem) else math.nan
        last = pts[-1]
        print(
            f"| {technique} | {axis} ({xs[0]}–{xs[-1]}) | {len(pts)} | {t_exp:.2f} | "
            f"{m_exp:.2f} | {last['seconds']:.2f} s, +{last['peak_mb']:.0f} MB |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
