"""Benchmark: capture resid_post at all 30 layers of SmolLM2-135M, interplab against its peers.

1. Load SmolLM2-135M-Instruct (interplab's cached load when `interplab.load` exists, the GGUF
   otherwise) and take a batch of real news text (gensim's Lee corpus), 8 x 128 tokens.
2. Wrap a deep copy of the model in each peer: the TransformerLens 4.x bridge, nnsight 0.8.
3. Time, round-robin, after warm-up: the plain HF forward (the floor), the HF forward with eager
   attention (what the bridge runs), HF's `output_hidden_states`, interplab's capture, the
   bridge's `run_with_cache` with a names filter, and an nnsight trace saving every layer.
4. Check every capture against HF's own residuals (max abs difference) and print the table.

Run: `python bench/bench_capture.py` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from collections.abc import Callable

import torch

# Run as a script, so this folder is on sys.path.
import peers
from timing import Timing, interleaved_times, print_table

FLOOR = "HF forward"
TL_ROW = "TL bridge run_with_cache"
NNSIGHT_ROW = "nnsight trace + save"
IP_ROW = "interplab capture"


def main() -> None:
    args = _parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"load before: {_load()}  (machine: {os.cpu_count()} cores)")
    threads = "default" if args.threads is None else "set by --threads"
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads ({threads})")

    loaded = peers.load_model()
    print(f"model loaded via {loaded.source} in {loaded.seconds:.1f} s")
    if loaded.interplab_model is None:
        print(f"SKIP {IP_ROW}: interplab.load is not importable yet; timing the peers only")
    hf, tok = loaded.hf, loaded.tokenizer
    tokens = peers.corpus_tokens(tok, args.batch, args.pos)
    print(f"tokens: {tuple(tokens.shape)} from gensim lee_background.cor")

    setup: dict[str, float] = {}
    eager = peers.hf_eager(hf)
    hidden_model = copy.deepcopy(hf)  # output_hidden_states leaves 60 hooks behind; keep hf clean
    bridge = _timed(
        setup, "TL boot_transformers (hf_model=, incl. deep copy)", peers.tl_bridge, hf, tok
    )
    lm = _timed(setup, "nnsight TransformersModel (incl. deep copy)", peers.nnsight_model, hf, tok)

    captures: dict[str, Callable[[], object]] = {
        FLOOR: lambda: peers.hf_forward(hf, tokens),
        "HF forward, eager attention": lambda: peers.hf_forward(eager, tokens),
        "HF output_hidden_states": lambda: hidden_model(tokens, output_hidden_states=True),
        TL_ROW: lambda: peers.tl_capture_resid_post(bridge, tokens),
        NNSIGHT_ROW: lambda: peers.nnsight_capture_resid_post(lm, tokens),
    }
    ip_model = loaded.interplab_model
    if ip_model is not None and _interplab_works(ip_model, tokens):
        captures[IP_ROW] = lambda: peers.interplab_capture_resid_post(ip_model, tokens)

    print(f"timing {len(captures)} rows: {args.warmup} warm-up + {args.repeats} timed rounds")
    timings = interleaved_times(captures, warmup=args.warmup, repeats=args.repeats)
    print(f"load after: {_load()}")

    _print_exactness(hf, eager, bridge, lm, ip_model if IP_ROW in captures else None, tokens)
    print()
    for name, seconds in {f"model load ({loaded.source})": loaded.seconds, **setup}.items():
        print(f"{name}: {seconds:.2f} s")
    print_table(
        timings,
        floor=FLOOR,
        tl=TL_ROW,
        nnsight=NNSIGHT_ROW,
        title=f"resid_post x 30 layers, SmolLM2-135M, batch {args.batch} x {args.pos} tokens, CPU",
    )
    _print_runs(timings)


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--pos", type=int, default=128)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch.set_num_threads; default: leave torch's default (one per core)",
    )
    return parser.parse_args()


def _timed(setup: dict[str, float], name: str, fn: Callable, *args: object) -> object:
    start = time.perf_counter()
    result = fn(*args)
    setup[name] = time.perf_counter() - start
    return result


def _interplab_works(model: object, tokens: torch.Tensor) -> bool:
    """Returns whether interplab's capture runs; prints why not, so the peers still get timed."""
    try:
        with torch.inference_mode():
            peers.interplab_capture_resid_post(model, tokens[:1, :8])
    except Exception as error:  # the API is being built beside this script
        print(f"SKIP {IP_ROW}: capture failed: {type(error).__name__}: {error}")
        return False
    return True


def _print_exactness(
    hf: torch.nn.Module,
    eager: torch.nn.Module,
    bridge: object,
    lm: object,
    ip_model: object | None,
    tokens: torch.Tensor,
) -> None:
    """Prints each capture's max abs difference from HF's own residuals (sdpa and eager)."""
    reference_model = copy.deepcopy(hf)
    with torch.inference_mode():
        reference = peers.hf_resid_post(reference_model, tokens)
        reference_eager = peers.hf_resid_post(eager, tokens)
        got = {
            TL_ROW: peers.tl_capture_resid_post(bridge, tokens),
            NNSIGHT_ROW: peers.nnsight_capture_resid_post(lm, tokens),
        }
        if ip_model is not None:
            got[IP_ROW] = peers.interplab_capture_resid_post(ip_model, tokens)
    print("max |capture - HF| over 30 layers (HF: hidden_states, last layer by forward hook):")
    print(f"  HF eager attention vs HF sdpa: {_max_diff(reference_eager, reference):.3g}")
    for name, captured in got.items():
        print(
            f"  {name}: vs HF sdpa {_max_diff(captured, reference):.3g}, "
            f"vs HF eager {_max_diff(captured, reference_eager):.3g}"
        )


def _max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    if len(a) != len(b):
        raise ValueError(f"{len(a)} layers captured, {len(b)} expected")
    return max((x.float() - y.float()).abs().max().item() for x, y in zip(a, b, strict=True))


def _print_runs(timings: dict[str, Timing]) -> None:
    for name, timing in timings.items():
        print(f"{name}: runs " + ", ".join(f"{t:.3f}" for t in timing.runs))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f}"


if __name__ == "__main__":
    main()
