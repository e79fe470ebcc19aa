"""Max-activating examples: throughput against a plain HF forward, and memory at two corpus sizes.

1. Corpus: Jane Austen's six novels plus gensim's wiki and Lee text (`interplab.data`), each
   tokenised once into 128-token windows (cached); together over 1.6M tokens.
2. Throughput: the same fixed `--batches` batches of 8 windows, timed round-robin
   (`timing.interleaved_times`, medians of `--repeats` runs): the plain HF forward
   (`hf(input_ids=ids).logits`), the top-examples pass over all 1536 neurons of L15.mlp.post plus
   three residual directions (stopping after block 15, the default), and the same pass with
   `stop_early=False` (the full forward, so its ratio shows the bookkeeping's own cost).
3. Memory: each corpus size runs in a fresh subprocess (`--memory-run N`), which reports its peak
   RSS (`resource.getrusage`, the whole process: model, torch, corpus pages) and the exact size of
   the streaming state in bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import interplab
from interplab.data import tokenize_corpus
from interplab.data.austen import austen_corpus_path
from interplab.techniques.top_examples import top_examples
from timing import interleaved_times, print_table

SITE = "L15.mlp.post"
WINDOW, BATCH = 128, 8


def corpus_windows(tokenizer) -> np.ndarray:
    parts = [
        tokenize_corpus(austen_corpus_path(), tokenizer, WINDOW, split="file").windows,
        tokenize_corpus("all", tokenizer, WINDOW).windows,
    ]
    return np.concatenate([np.asarray(p) for p in parts])


def directions(d_model: int) -> dict[str, tuple[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return {
        f"random_resid_{i}": ("L12.resid_post", torch.randn(d_model, generator=g)) for i in range(3)
    }


def run_pass(model, windows: np.ndarray, n_tokens: int, **kwargs):
    return top_examples(
        model,
        windows,
        site=SITE,
        directions=directions(model.dims.d_model),
        batch_size=BATCH,
        max_tokens=n_tokens,
        progress=False,
        **kwargs,
    )


def memory_run(n_tokens: int) -> None:
    model = interplab.load()
    windows = corpus_windows(model.tokenizer)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    result = run_pass(model, windows, n_tokens)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "tokens": result.n_tokens,
                "seconds": seconds,
                "peak_rss_mb_before_pass": before,
                "peak_rss_mb": peak,
                "state_bytes": result.state_bytes,
                "directions": result.n_directions,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--sizes", default="65536,262144", help="token counts for memory runs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--memory-run", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_run is not None:
        memory_run(args.memory_run)
        return
    print(f"load average before: {os.getloadavg()}")
    model = interplab.load()
    windows = corpus_windows(model.tokenizer)
    print(f"corpus: {windows.shape[0]:,} windows x {WINDOW} = {windows.size:,} tokens")
    subset = windows[: args.batches * BATCH]
    batches = [
        torch.from_numpy(subset[i : i + BATCH].astype(np.int64))
        for i in range(0, len(subset), BATCH)
    ]
    n_tokens = subset.size

    def hf_forward() -> None:
        for ids in batches:
            model.hf(input_ids=ids).logits  # noqa: B018

    timings = interleaved_times(
        {
            "HF forward": hf_forward,
            "top examples (stop after L15)": lambda: run_pass(model, subset, n_tokens),
            "top examples (full forward)": lambda: run_pass(
                model, subset, n_tokens, stop_early=False
            ),
        },
        warmup=args.warmup,
        repeats=args.repeats,
    )
    print_table(
        timings,
        floor="HF forward",
        title=f"{n_tokens:,} tokens ({args.batches} batches of {BATCH} x {WINDOW}), "
        f"1536 neurons of {SITE} + 3 directions",
    )
    for name, t in timings.items():
        print(f"{name}: {n_tokens / t.median:,.0f} tok/s (median), runs {t.runs}")
    print(f"load average after timing: {os.getloadavg()}")
    for size in (int(s) for s in args.sizes.split(",")):
        cmd = [sys.executable, str(Path(__file__)), "--memory-run", str(size)]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        print(f"memory run {size:,} tokens: {out.strip().splitlines()[-1]}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
