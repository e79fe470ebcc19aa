"""Attribution-graph time and peak memory against prompt length (interplab; circuit-tracer when
its venv exists).

    python bench/bench_graphs.py [--lengths 8 16 32 64] [--runs 5] [--transcoders shared]

Each (tool, length) runs in a fresh subprocess (peak RSS is per process): one warm-up graph, then
``--runs`` timed graphs (median reported), pruning included, the intervention check off (circuit-
tracer has none), same transcoders, ``batch_size=128``. Rows also give the ratio to one plain HF
forward of the same tokens. circuit-tracer runs from ``/work/venvs/circuit-tracer`` (it cannot
share this venv: transformers<=4.57.3) on the JumpReLU set ``bench/graphs_reference.py ours``
writes, and interplab reads that same set (``--transcoders shared``, the default), so both sides
have the same features; without that venv or set, the table has our rows only (on the quick set)
and says so.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

CT_PYTHON = Path("/work/venvs/circuit-tracer/bin/python")
TEXT = (
    "The capital of France is Paris, and the capital of Germany is Berlin. Rivers run through "
    "both cities, and millions of people visit their museums every year to see paintings, "
    "sculptures and old maps of the countries around them, which change over the centuries."
)


def _ids(tokenizer, n: int) -> list[int]:
    ids = tokenizer(TEXT * 4, add_special_tokens=True)["input_ids"]
    return ids[:n]


def run_ours(n: int, runs: int, transcoders: str) -> dict:
    import torch

    import interplab as ip
    from interplab.techniques.graphs import attribution_graph, recipe, transcoder_set

    model = ip.load()
    tcs = recipe.quick_set(model) if transcoders == "quick" else transcoder_set(transcoders, model)
    ids = torch.tensor([_ids(model.tokenizer, n)])
    prompt = model.tokenizer.decode(ids[0])
    from interplab.results.graphs import GraphConfig

    cfg = GraphConfig(check_features=0, batch_size=128)
    attribution_graph(model, tcs, prompt, config=cfg, progress=False, record=False)  # warm-up
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        attribution_graph(model, tcs, prompt, config=cfg, progress=False, record=False)
        times.append(time.perf_counter() - t)
    with torch.no_grad():
        t = time.perf_counter()
        for _ in range(runs):
            model.forward(ids)
        forward = (time.perf_counter() - t) / runs
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "tool": "interplab",
        "n": n,
        "seconds": statistics.median(times),
        "forward": forward,
        "peak_mb": peak,
    }


def run_circuit_tracer(n: int, runs: int, folder: Path) -> dict:
    import torch
    from circuit_tracer import ReplacementModel, attribute  # type: ignore[import-not-found]
    from circuit_tracer.graph import prune_graph  # type: ignore[import-not-found]
    from circuit_tracer.transcoder.single_layer_transcoder import (  # type: ignore[import-not-found]
        load_transcoder_set,
    )

    inputs = json.loads((folder / "inputs.json").read_text())
    paths = {i: str(folder / "set" / f"layer_{i}.safetensors") for i in range(inputs["n_layers"])}
    tcs = load_transcoder_set(
        paths,
        scan="bench",
        feature_input_hook="mlp.hook_in",
        feature_output_hook="hook_mlp_out",
        device=torch.device("cpu"),
    )
    from graphs_reference import _v4_folder  # the transformers-4 view of the converted model

    model = ReplacementModel.from_pretrained_and_transcoders(
        str(_v4_folder(Path(inputs["model_dir"]), folder)), tcs, backend="nnsight",
        device=torch.device("cpu"), dtype=torch.float32,
    )  # fmt: skip
    ids = torch.tensor(_ids(model.tokenizer, n))

    def once():
        graph = attribute(ids, model, max_n_logits=10, desired_logit_prob=0.95, batch_size=128)
        prune_graph(graph, 0.8, 0.98)

    once()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        once()
        times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"tool": "circuit-tracer", "n": n, "seconds": statistics.median(times), "peak_mb": peak}


def main() -> int:
    parser = argparse.ArgumentParser(description="attribution graph benchmark")
    parser.add_argument("--lengths", type=int, nargs="+", default=[8, 16, 32, 64])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--transcoders",
        default="shared",
        help="shared (the JumpReLU set circuit-tracer reads, when present; else quick), quick, "
        "or a folder",
    )
    parser.add_argument("--ct-folder", type=Path, default=Path("/tmp/graphref"))
    parser.add_argument("--child", choices=["ours", "circuit-tracer"])
    parser.add_argument("--n", type=int)
    args = parser.parse_args()
    if args.child == "ours":
        print(json.dumps(run_ours(args.n, args.runs, args.transcoders)))
        return 0
    if args.child == "circuit-tracer":
        print(json.dumps(run_circuit_tracer(args.n, args.runs, args.ct_folder)))
        return 0
    with_ct = CT_PYTHON.is_file() and (args.ct_folder / "inputs.json").is_file()
    if not with_ct:
        print(
            f"circuit-tracer rows left out: need {CT_PYTHON} and {args.ct_folder}/inputs.json "
            "(python bench/graphs_reference.py ours)"
        )
    if args.transcoders == "shared":
        args.transcoders = str(args.ct_folder / "set") if with_ct else "quick"
    print(f"transcoders: {args.transcoders}")
    rows = []
    for n in args.lengths:
        tools = [(sys.executable, "ours")] + (
            [(str(CT_PYTHON), "circuit-tracer")] if with_ct else []
        )
        for python, child in tools:
            cmd = [
                python,
                __file__,
                "--child",
                child,
                "--n",
                str(n),
                "--runs",
                str(args.runs),
                "--transcoders",
                args.transcoders,
                "--ct-folder",
                str(args.ct_folder),
            ]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)  # each row as it lands: a long run can stop
    print(f"{'tool':<16}{'tokens':>7}{'seconds':>10}{'x forward':>11}{'peak MB':>9}{'vs ours':>9}")
    ours = {r["n"]: r for r in rows if r["tool"] == "interplab"}
    for r in rows:
        fwd = ours[r["n"]]["forward"]
        ratio = r["seconds"] / ours[r["n"]]["seconds"]
        print(
            f"{r['tool']:<16}{r['n']:>7}{r['seconds']:>10.2f}{r['seconds'] / fwd:>11.0f}"
            f"{r['peak_mb']:>9.0f}{ratio:>9.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
