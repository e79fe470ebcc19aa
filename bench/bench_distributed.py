"""Benchmark: the Ray backend's overhead and speed-up on a real patching sweep.

The sweep: activation patching of the embedded model (SmolLM2-135M) on ``--pairs`` IOI pairs
(the first of `interplab.demo.ioi_prompts()`, names swapped for the corrupt side), resid_pre
layer × position, denoising, logit difference, the exact fast path, no control. Rows, timed
round-robin (`timing.interleaved_times`, one warm-up call each, then ``--repeats``):

1. HF forward of the clean prompts (the unit the other benchmarks use).
2. local, 1 thread: `interplab.distributed.activation_patching(backend="local")`, the tasks run
   one after another in this process.
3. local, 2 threads: the same with two torch threads (what a user gets without Ray).
4. Ray, 1 worker: one actor with one thread; the issue's target is ≤ 1.15× row 2.
5. Ray, 2 workers: two actors of one thread each; speed-up over row 2 and row 3, efficiency =
   speed-up over row 2 / 2.

Every Ray sweep's effects are checked equal to the local 1-thread sweep's bit for bit. Also:
the per-task overhead (``--echo-tasks`` no-op tasks, `backend.ECHO`, through one worker), the time
to start the local cluster and to start the actors (each loads the model once), and how many
sweeps it takes for two workers to pay for their start.

The cluster is started here with three logical CPUs, so the 1- and 2-worker backends exist side by
side and their rows can interleave; idle actors use no CPU.

    .venv/bin/python bench/bench_distributed.py --pairs 8 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from peers import load_model
from timing import Timing, interleaved_times


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--echo-tasks", type=int, default=200)
    args = ap.parse_args()

    import ray

    from interplab.data import ContrastPair
    from interplab.demo import ioi_prompts
    from interplab.distributed import ModelSpec, RayBackend, activation_patching
    from interplab.distributed.backend import ECHO
    from interplab.techniques.patching import PatchingConfig, TokenPairs

    print(f"load average before: {loadavg()}; {os.cpu_count()} CPUs")
    torch.set_num_threads(1)
    model = load_model().interplab_model
    prompts, io, s = ioi_prompts()
    n = args.pairs
    pairs = [ContrastPair(prompts[i], prompts[i ^ 1], io[i], s[i]) for i in range(n)]
    clean = model.tokenize([p.clean for p in pairs]).ids
    corrupt = model.tokenize([p.corrupt for p in pairs]).ids
    answer = torch.tensor([model.token_id(p.answer) for p in pairs])
    wrong = torch.tensor([model.token_id(p.wrong_answer) for p in pairs])
    tp = TokenPairs(clean, corrupt, answer, wrong)
    cfg = PatchingConfig(components=("resid_pre",), method="fast", control=False)
    cells = model.dims.n_layers * clean.shape[1]
    print(f"{n} pairs x {clean.shape[1]} tokens, resid_pre {cells} cells")

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=3, include_dashboard=False, log_to_driver=False)
    cluster_s = time.perf_counter() - t0
    spec = ModelSpec.of(model)
    t0 = time.perf_counter()
    one = RayBackend(spec, workers=1, threads=1)
    start_one = time.perf_counter() - t0
    t0 = time.perf_counter()
    two = RayBackend(spec, workers=2, threads=1)
    start_two = time.perf_counter() - t0

    results: dict[str, object] = {}

    def sweep(name: str, backend: object, threads: int = 1):
        def call() -> None:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                results[name] = activation_patching(
                    model,
                    tp,
                    config=cfg,
                    backend=backend,
                    progress=False,
                    record=False,  # type: ignore[arg-type]
                )
            finally:
                torch.set_num_threads(before)

        return call

    fns = {
        "HF forward": lambda: model.hf(clean),
        "local, 1 thread": sweep("local, 1 thread", "local"),
        "local, 2 threads": sweep("local, 2 threads", "local", threads=2),
        "Ray, 1 worker": sweep("Ray, 1 worker", one),
        "Ray, 2 workers": sweep("Ray, 2 workers", two),
    }
    try:
        timings = interleaved_times(fns, warmup=args.warmup, repeats=args.repeats)
        ref = results["local, 1 thread"].effects["resid_pre"]  # type: ignore[attr-defined]
        equal = {
            name: bool(np.array_equal(results[name].effects["resid_pre"], ref))  # type: ignore[attr-defined]
            for name in ("Ray, 1 worker", "Ray, 2 workers", "local, 2 threads")
        }
        echo_runs = []
        for _ in range(3):
            got: list[object] = []
            t0 = time.perf_counter()
            one.map(ECHO, None, list(range(args.echo_tasks)), lambda i, r, got=got: got.append(r))
            echo_runs.append((time.perf_counter() - t0) / args.echo_tasks)
            assert sorted(got) == list(range(args.echo_tasks))  # type: ignore[type-var]
        echo = Timing.of(echo_runs)
    finally:
        one.close()
        two.close()
        ray.shutdown()

    hf = timings["HF forward"].median
    local1 = timings["local, 1 thread"].median
    local2 = timings["local, 2 threads"].median
    print(f"\nload average after: {loadavg()}")
    print("\n| row | median s | IQR s | runs | x HF forward | ÷ local 1 thread | equal to local |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for name, t in timings.items():
        eq = "" if name not in equal else ("bit for bit" if equal[name] else "**differs**")
        print(
            f"| {name} | {t.median:.3f} | {t.iqr:.3f} | {len(t.runs)} | {t.median / hf:.1f} | "
            f"{t.median / local1:.3f} | {eq} |"
        )
    ray1, ray2 = timings["Ray, 1 worker"].median, timings["Ray, 2 workers"].median
    speed1, speed2 = local1 / ray2, local2 / ray2
    print(
        f"\nRay overhead, 1 worker vs local (1 thread each): {ray1 / local1:.3f}x (target <= 1.15)"
    )
    print(
        f"2 workers: speed-up {speed1:.2f}x over local 1 thread (efficiency {speed1 / 2:.0%}), "
        f"{speed2:.2f}x over local 2 threads"
    )
    print(
        f"per-task overhead (no-op task, 1 worker, {args.echo_tasks} tasks x 3): "
        f"{echo.median * 1e3:.2f} ms (IQR {echo.iqr * 1e3:.2f})"
    )
    print(
        f"start: local cluster {cluster_s:.1f} s; 1 actor loading the model {start_one:.1f} s; "
        f"2 actors {start_two:.1f} s"
    )
    saved = local1 - ray2
    if saved > 0:
        print(
            f"two workers save {saved:.2f} s per sweep over local 1 thread: their start "
            f"({cluster_s + start_two:.1f} s with the cluster) pays off after "
            f"{(cluster_s + start_two) / saved:.1f} sweeps"
        )
    else:
        print("two workers save no time per sweep on this machine")


if __name__ == "__main__":
    main()
