"""Per-layer transcoders for every layer of the embedded model, from one harvesting stream.

    python -m interplab.techniques.graphs.recipe quick     # the demo/test set, minutes
    python -m interplab.techniques.graphs.recipe full      # the documented recipe, ~1-2 hours

1. Corpus: the mixed corpus when installed (`interplab.data.mix`), else the wiki text, in
   128-token windows; the last windows are held out.
2. One harvest feeds all ``2 × n_layers`` sites (``L{l}.mlp.in`` and ``L{l}.mlp_out`` for every
   layer) from each forward pass, into float16 shards (resumable): the forward pass is what
   costs on a CPU, so it runs once and the transcoders train ``epochs`` passes over the shards.
3. Train one TopK transcoder per layer, ``mlp.in -> mlp_out`` (``expansion × d_model``
   latents, k active), all in one `dictionaries.train` run (checkpointed, resumable).
4. Write them as a circuit-tracer transcoder set (``set/config.yaml`` + ``layer_<i>``), then
   measure each layer's FVE of ``mlp_out`` on held-out windows, the replacement and completeness
   scores of the graph of ``prompt``, and the times, into ``recipe.json``.

Everything lands under ``cache_root()/transcoders/<name>``; the shards and the training
checkpoint are deleted once the set is written (the full recipe's are ~35 GB at float16).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from interplab.configs import Config, ConfigError, positive
from interplab.core.model import Model, load
from interplab.data.cache import cache_root
from interplab.data.corpus import TokenizedCorpus, tokenize_corpus
from interplab.dictionaries import (
    DictionaryConfig,
    EvalConfig,
    HarvestConfig,
    ModelSource,
    TrainConfig,
    fraction_of_variance_explained,
    harvest,
    holdout,
    save_dictionary,
    train,
)
from interplab.provenance import write_text
from interplab.sites import Site
from interplab.techniques.graphs.replacement import TranscoderSet, transcoder_set


@dataclass(frozen=True)
class TranscoderRecipe(Config):
    """What the recipe decides; `RECIPES` holds the named ones."""

    name: str = "full"
    model: str = "smollm2-135m"
    corpus: str = "mix"
    architecture: str = "topk"
    expansion: int = 8
    k: int = 32
    harvest_tokens: int = 500_000
    epochs: int = 2
    batch_tokens: int = 4096
    lr: float | None = 2e-3
    block_windows: int = 64
    eval_windows: int = 16
    prompt: str = "The capital of France is"
    seed: int = 0

    def check(self) -> None:
        for name in ("expansion", "k", "harvest_tokens", "epochs", "batch_tokens"):
            positive(name, getattr(self, name))


RECIPES: dict[str, TranscoderRecipe] = {
    "full": TranscoderRecipe(),
    "quick": TranscoderRecipe(
        name="quick",
        expansion=2,
        k=16,
        harvest_tokens=24_000,
        epochs=4,
        batch_tokens=1024,
        lr=3e-3,
        block_windows=16,
    ),
}


def folder(recipe: TranscoderRecipe | str) -> Path:
    """Returns where ``recipe`` writes (``cache_root()/transcoders/<name>``)."""
    name = recipe if isinstance(recipe, str) else recipe.name
    return cache_root() / "transcoders" / name


def cached(model: Model, recipe: TranscoderRecipe | str = "quick") -> TranscoderSet | None:
    """Returns the recipe's finished transcoder set, or None if it has not been trained."""
    root = folder(recipe)
    if not (root / "recipe.json").is_file():
        return None
    return transcoder_set(root / "set", model, name=f"interplab-{root.name}")


def quick_set(model: Model, *, progress: bool = True) -> TranscoderSet:
    """Returns the quick set, training it first (minutes) if it is not cached."""
    found = cached(model, "quick")
    if found is not None:
        return found
    run(RECIPES["quick"], model=model, progress=progress)
    found = cached(model, "quick")
    assert found is not None
    return found


def run(
    recipe: TranscoderRecipe, *, model: Model | None = None, progress: bool = True
) -> dict[str, object]:
    """Runs ``recipe`` (steps 1-4) and returns what it wrote to ``recipe.json``."""
    from interplab.techniques.graphs.build import attribution_graph

    root = folder(recipe)
    started = time.monotonic()
    model = model if model is not None else load(recipe.model)
    corpus = _corpus(model, recipe.corpus)
    n_layers, d = model.dims.n_layers, model.dims.d_model
    held = EvalConfig(n_batches=1, batch_windows=recipe.eval_windows)
    sites = [Site(layer, c) for layer in range(n_layers) for c in ("mlp.in", "mlp_out")]
    source = ModelSource(
        model,
        holdout(corpus, held),
        sites,
        HarvestConfig(block_windows=recipe.block_windows, seed=recipe.seed),
    )
    shards = harvest(
        source, root / "harvest", max_tokens=recipe.harvest_tokens, dtype="float16",
        progress=progress,
    )  # fmt: skip
    t_harvest = time.monotonic() - started
    _say(f"harvested {shards.tokens:,} tokens at {len(sites)} sites in {t_harvest:.0f} s")
    configs = {
        f"layer_{layer}": DictionaryConfig(
            recipe.architecture,  # type: ignore[arg-type]
            d_in=d,
            d_sae=recipe.expansion * d,
            k=recipe.k,
            kind="transcoder",
            d_out=d,
            site=Site(layer, "mlp.in"),
            target=Site(layer, "mlp_out"),
        )
        for layer in range(n_layers)
    }
    trained = train(
        shards,
        configs,
        TrainConfig(
            total_tokens=recipe.epochs * shards.tokens,
            batch_tokens=recipe.batch_tokens,
            lr=recipe.lr,
            dead_after_tokens=min(1_000_000, shards.tokens),
            seed=recipe.seed,
        ),
        out=root / "train",
        progress=progress,
    )
    t_train = time.monotonic() - started - t_harvest
    by_layer = {layer: trained.dictionaries[f"layer_{layer}"] for layer in range(n_layers)}
    save_dictionary(by_layer, root / "set", "circuit_tracer", model_name=model.info.name)
    fve, l0 = _held_out(model, by_layer, corpus.windows[-recipe.eval_windows :])
    tcs = transcoder_set(root / "set", model, name=f"interplab-{recipe.name}")
    graph = attribution_graph(
        model, tcs, recipe.prompt, progress=progress, check_features=0, record=False
    )
    summary: dict[str, object] = {
        "recipe": recipe.to_dict(),
        "harvest_tokens": shards.tokens,
        "held_out_tokens": int(recipe.eval_windows * (corpus.windows.shape[1] - 1)),
        "fve": fve,
        "l0": l0,
        "prompt": recipe.prompt,
        "replacement_score": graph.replacement_score,
        "completeness_score": graph.completeness_score,
        "seconds": {
            "harvest": round(t_harvest),
            "train": round(t_train),
            "total": round(time.monotonic() - started),
        },
        "threads": torch.get_num_threads(),
    }
    write_text(root / "recipe.json", json.dumps(summary, indent=1))
    shutil.rmtree(root / "harvest", ignore_errors=True)
    (root / "train" / "checkpoint.pt").unlink(missing_ok=True)  # optimiser state: GBs, done with
    _say(
        f"recipe {recipe.name}: mean FVE {sum(fve) / len(fve):.3f} (layers {min(fve):.3f}.."
        f"{max(fve):.3f}), replacement score {graph.replacement_score:.3f}, completeness "
        f"{graph.completeness_score:.3f}; {summary['seconds']} s; set in {root / 'set'}"
    )
    return summary


@torch.no_grad()
def _held_out(model: Model, by_layer: dict, windows) -> tuple[list[float], list[float]]:
    """Returns each layer's FVE of ``mlp_out`` and L0 on held-out windows (first token dropped)."""
    ids = torch.as_tensor(windows.astype("int64"))
    sites = [Site(layer, c) for layer in by_layer for c in ("mlp.in", "mlp_out")]
    cache = model.activations(ids, sites)
    fve, l0 = [], []
    for layer, d in sorted(by_layer.items()):
        x = cache[Site(layer, "mlp.in")][:, 1:].reshape(-1, d.d_in).float()
        y = cache[Site(layer, "mlp_out")][:, 1:].reshape(-1, d.d_out).float()
        f = d.encode(x)
        fve.append(round(fraction_of_variance_explained(y, d.decode(f)), 4))
        l0.append(round(float((f != 0).sum(1).float().mean()), 2))
    return fve, l0


def _corpus(model: Model, name: str) -> TokenizedCorpus:
    if name == "mix":
        from interplab.data.mix import available_sources, mix_corpus

        sources = available_sources()
        if sources:
            return tokenize_corpus(mix_corpus(sources).path, model.tokenizer, 128)
        name = "wiki"
    return tokenize_corpus(name, model.tokenizer, 128)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="per-layer transcoders for the embedded model")
    parser.add_argument("recipe", choices=sorted(RECIPES))
    for name in ("expansion", "k", "harvest_tokens", "epochs", "batch_tokens"):
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, help=f"override the recipe's {name}"
        )
    args = parser.parse_args(argv)
    changes = {
        name: getattr(args, name)
        for name in ("expansion", "k", "harvest_tokens", "epochs", "batch_tokens")
        if getattr(args, name) is not None
    }
    try:
        recipe = dataclasses.replace(RECIPES[args.recipe], **changes)
    except ConfigError as e:
        parser.error(str(e))
    run(recipe)
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["RECIPES", "TranscoderRecipe", "cached", "folder", "quick_set", "run"]
