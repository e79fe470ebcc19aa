"""Sparse dictionaries: training throughput beside SAELens and sparsify, harvesting beside a forward.

1. Activations: ``--tokens`` tokens of SmolLM2's ``L15.resid_pre`` on the mixed corpus (or the
   wiki/news text), harvested once in memory, or the shards of ``--shards`` (e.g. the recipe's).
2. Training: the same activations, a TopK SAE of the same width and k, the same batch of tokens
   and Adam, no dead latents (so no AuxK anywhere), timed round-robin
   (`timing.interleaved_times`): interplab's `train` (everything it does per step: scaling,
   sparse kernels, decoder-row projection and renormalisation, live metrics), SAELens 6's
   ``TopKTrainingSAE.training_forward_pass`` + Adam, and sparsify's ``SparseCoder`` forward (FVU)
   + Adam with its decoder-gradient projection and renormalisation. Each call trains ``--steps``
   batches; the table reports tokens per second.
3. Harvesting: the same windows through a plain HF forward (the floor), through
   `Model.activations` (which stops after block 15), and through `ModelSource.activations`
   (the harvester: the same plus reshaping and the finiteness check).

    .venv/bin/python bench/bench_sae.py                       # ~5 minutes on 2 cores
    .venv/bin/python bench/bench_sae.py --steps 2 --repeats 1 --tokens 8192   # smoke run
"""

from __future__ import annotations

import argparse
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import torch

import interplab
from interplab.data import tokenize_corpus
from interplab.dictionaries import (
    DictionaryConfig,
    HarvestConfig,
    ModelSource,
    ShardSource,
    TensorSource,
    TrainConfig,
    train,
)
from interplab.sites import Site
from timing import interleaved_times, print_table

SITE = Site(15, "resid_pre")


def activations(model, args) -> torch.Tensor:
    if args.shards:
        shards = ShardSource(args.shards)
        parts, n = [], 0
        for i in range(shards.n_blocks):
            parts.append(shards.block(0, i)[SITE])
            n += parts[-1].shape[0]
            if n >= args.tokens:
                break
        return torch.cat(parts)[: args.tokens]
    windows = corpus(model)
    source = ModelSource(model, windows, [SITE], HarvestConfig(batch_windows=16))
    n = -(-args.tokens // source.tokens_per_window)
    return source.activations(np.arange(n))[SITE][: args.tokens]


def corpus(model) -> np.ndarray:
    try:
        from interplab.data.mix import mix_corpus

        return tokenize_corpus(mix_corpus().path, model.tokenizer, 128, progress=False).windows
    except interplab.errors.UserError:
        return tokenize_corpus("all", model.tokenizer, 128, progress=False).windows


def batches(x: torch.Tensor, batch: int, steps: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return [x[torch.randint(len(x), (batch,), generator=g)] for _ in range(steps)]


def ours(x: torch.Tensor, args):
    source = TensorSource({SITE: x}, block_tokens=len(x))
    config = {
        "sae": DictionaryConfig("topk", d_in=x.shape[1], d_sae=args.width, k=args.k, site=SITE)
    }
    train_config = TrainConfig(
        total_tokens=args.steps * args.batch,
        batch_tokens=args.batch,
        lr=args.lr,
        dead_after_tokens=10**12,
        log_every=10**9,
        warmup=0.0,
    )
    return lambda: train(source, config, train_config, progress=False)


class _Stand(types.ModuleType):
    def __getattr__(self, name: str) -> type:
        if name.startswith("__"):
            raise AttributeError(name)
        return type(name, (), {})


class _MissingTransformerLens(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """sae-lens 6.51 imports TransformerLens 3 modules that the pinned TransformerLens 4 moved;
    empty stand-ins let its SAE classes load (see tests/reference/dictionaries/conftest.py)."""

    def find_spec(self, fullname, path, target=None):
        if not fullname.startswith("transformer_lens."):
            return None
        for finder in sys.meta_path:
            if finder is not self:
                try:
                    if finder.find_spec(fullname, path, target) is not None:  # type: ignore[attr-defined]
                        return None
                except (ImportError, AttributeError, ValueError):
                    continue
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _Stand(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "transformer_lens.HookedTransformer":
            from transformer_lens.HookedRootModule import HookedRootModule

            module.HookedRootModule = HookedRootModule  # type: ignore[attr-defined]


def saelens(x: torch.Tensor, args):
    if importlib.util.find_spec("sae_lens") is None:
        return None
    finder = _MissingTransformerLens()
    sys.meta_path.append(finder)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sae_lens = importlib.import_module("sae_lens")
    finally:
        sys.meta_path.remove(finder)
    from sae_lens.saes.sae import TrainStepInput

    sae = sae_lens.TopKTrainingSAE(
        sae_lens.TopKTrainingSAEConfig(d_in=x.shape[1], d_sae=args.width, k=args.k)
    )
    opt = torch.optim.Adam(sae.parameters(), lr=args.lr)
    data = batches(x, args.batch, args.steps)
    dead = torch.zeros(args.width, dtype=torch.bool)

    def step() -> None:
        for i, b in enumerate(data):
            out = sae.training_forward_pass(
                TrainStepInput(
                    sae_in=b,
                    coefficients={},
                    dead_neuron_mask=dead,
                    n_training_steps=i,
                    is_logging_step=False,
                )
            )
            opt.zero_grad()
            out.loss.backward()
            opt.step()

    return step


def sparsify(x: torch.Tensor, args):
    if importlib.util.find_spec("sparsify") is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = importlib.import_module("sparsify")
    sae = module.SparseCoder(x.shape[1], module.SparseCoderConfig(k=args.k, num_latents=args.width))
    opt = torch.optim.Adam(sae.parameters(), lr=args.lr)
    data = batches(x, args.batch, args.steps)
    dead = torch.zeros(args.width, dtype=torch.bool)

    def step() -> None:
        for b in data:
            out = sae(b, dead_mask=dead)
            opt.zero_grad()
            out.fvu.backward()
            sae.remove_gradient_parallel_to_decoder_directions()
            opt.step()
            sae.set_decoder_norm_to_unit_norm()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32768, help="activations to harvest")
    parser.add_argument("--shards", type=Path, default=None, help="read activations from here")
    parser.add_argument("--width", type=int, default=4608)
    parser.add_argument("--k", type=int, default=32)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--steps", type=int, default=8, help="training batches per timed call")
    parser.add_argument("--windows", type=int, default=16, help="windows per harvesting call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}, torch threads {torch.get_num_threads()}")
    model = interplab.load()
    x = activations(model, args)
    print(f"activations: {tuple(x.shape)} at {SITE}")
    rows = {
        "interplab train": ours(x, args),
        "SAELens TopK": saelens(x, args),
        "sparsify TopK": sparsify(x, args),
    }
    rows = {k: v for k, v in rows.items() if v is not None}
    timings = interleaved_times(
        rows, warmup=args.warmup, repeats=args.repeats, inference_mode=False
    )
    tokens = args.steps * args.batch
    print_table(
        timings,
        floor="interplab train",
        title=f"training: TopK d_sae={args.width} k={args.k}, {args.steps} x {args.batch} tokens",
    )
    for name, t in timings.items():
        print(f"{name}: {tokens / t.median:,.0f} tok/s (median)")
    windows = corpus(model)[: args.windows]
    ids = torch.from_numpy(windows.astype(np.int64))
    source = ModelSource(model, windows, [SITE], HarvestConfig(batch_windows=args.windows))
    harvest = interleaved_times(
        {
            "HF forward": lambda: model.hf(input_ids=ids).logits,
            "Model.activations (stops after L15)": lambda: model.activations(ids, [SITE]),
            "ModelSource.activations": lambda: source.activations(np.arange(args.windows)),
        },
        warmup=args.warmup,
        repeats=args.repeats,
    )
    print_table(harvest, floor="HF forward", title=f"harvesting {ids.numel():,} tokens at {SITE}")
    for name, t in harvest.items():
        print(f"{name}: {ids.numel() / t.median:,.0f} tok/s (median)")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
