"""The default recipe: a TopK SAE on a middle residual layer of the embedded model, in about an
hour on two CPU cores, with its curve, evaluation and feature pages.

    interplab sae recipe default        # the full recipe, with figures and feature pages
    interplab sae recipe short          # a few minutes, same steps
    python -m interplab.dictionaries.recipes default    # the same, results as JSON only

(dictionaries sit below viz, so this module writes results; the ``sae recipe`` command draws.)

1. Corpus: the mixed ~11M-token corpus (`interplab.data.mix`, `make corpus`), or the gensim wiki
   and news text when it is not installed; tokenised into 128-token windows. The last windows
   are held out for evaluation (`evaluate.holdout`).
2. Harvest ``harvest_tokens`` tokens at ``L15.resid_pre`` (the forward stops there: half the
   model) into float16 shards, resumable, under ``out/harvest``. The forward pass is the cost that
   dominates on a CPU, so the SAE then trains for ``epochs`` passes over the shards, each in a
   new order.
3. Train (``out/train``, checkpointed and resumable): TopK, ``expansion`` x d_model latents, k
   active, batches of 1024 tokens at a learning rate of 3e-3 (on a CPU budget more, smaller
   steps beat the 4096-token batches of GPU recipes: on 390k tokens of the short recipe's
   activations, held-out FVE 0.55 at 4096 tokens and the width-scaled rate, 0.80 at 1024 and
   2e-3 with k=64). Every ``eval_every`` tokens the held-out FVE, CE loss recovered and dead fraction are
   measured, so the curve against training tokens is printed and saved (``training.json``).
4. Evaluate on the held-out windows (``eval.json``) and study the most frequent and random
   features (``features/*.json``; the command writes ``eval.png``, ``training.png`` and the
   HTML pages beside them).

Every step resumes from what is on disk, so an interrupted recipe continues where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from interplab.configs import Config, positive
from interplab.core.model import Model, load
from interplab.data.cache import cache_root
from interplab.data.corpus import TokenizedCorpus, tokenize_corpus
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryConfig
from interplab.dictionaries.evaluate import EvalConfig, evaluate, holdout
from interplab.dictionaries.features import FeaturesConfig, FeatureStudy, feature_pages
from interplab.dictionaries.harvest import HarvestConfig, ModelSource
from interplab.dictionaries.shards import harvest
from interplab.dictionaries.train import TrainConfig, TrainingRun, train
from interplab.errors import UserError
from interplab.results.dictionaries import DictionaryEval, TrainingCurve
from interplab.sites import Site


@dataclass(frozen=True)
class Recipe(Config):
    """Everything the recipe decides; `RECIPES` holds the named ones."""

    name: str = "default"
    model: str = "smollm2-135m"
    corpus: str = "mix"  # "mix", "wiki", "lee", "all" or a file
    layer: int | None = None  # None: the middle layer
    component: str = "resid_pre"
    architecture: str = "topk"
    expansion: int = 8
    k: int = 64
    harvest_tokens: int = 1_200_000
    epochs: int = 5
    batch_tokens: int = 1024  # small batches: more steps per token, what a CPU budget needs
    lr: float | None = 3e-3
    eval_every: int = 1_000_000
    eval_batches: int = 2
    final_eval_batches: int = 8
    feature_pages: int = 12
    seed: int = 0

    def check(self) -> None:
        for name in ("expansion", "k", "harvest_tokens", "epochs", "batch_tokens", "eval_every"):
            positive(name, getattr(self, name))


RECIPES: dict[str, Recipe] = {
    "default": Recipe(),
    "short": Recipe(
        name="short",
        harvest_tokens=120_000,
        epochs=3,
        eval_every=120_000,
        final_eval_batches=4,
        feature_pages=6,
    ),
    "demo": Recipe(
        name="demo",
        harvest_tokens=60_000,
        epochs=3,
        eval_every=60_000,
        final_eval_batches=4,
        feature_pages=6,
    ),
}


@dataclass(frozen=True)
class RecipeRun:
    """What a recipe produced: the dictionary (also on disk), its curve, evaluation and pages."""

    folder: Path
    name: str
    dictionary: Dictionary
    curve: TrainingCurve
    evaluation: DictionaryEval
    features: FeatureStudy


def run(recipe: Recipe, out: str | Path | None = None, *, progress: bool = True) -> RecipeRun:
    """Runs ``recipe`` into ``out`` (default ``$INTERPLAB_CACHE/sae/<name>``) and returns what it
    made; results are written as JSON (``eval.json``, ``train/<name>/training.json``,
    ``features/*.json``)."""
    root = Path(out) if out is not None else cache_root() / "sae" / recipe.name
    started = time.monotonic()
    model = load(recipe.model)
    corpus = corpus_for(model, recipe.corpus)
    layer = model.dims.n_layers // 2 if recipe.layer is None else recipe.layer
    site = Site(layer, recipe.component)  # type: ignore[arg-type]
    name = f"{recipe.architecture}-L{layer}-{recipe.component}"
    train_windows = holdout(corpus, EvalConfig(n_batches=recipe.final_eval_batches))
    source = ModelSource(model, train_windows, [site], HarvestConfig(seed=recipe.seed))
    shards = harvest(
        source,
        root / "harvest",
        max_tokens=recipe.harvest_tokens,
        dtype="float16",
        progress=progress,
    )
    _say(f"harvested {shards.tokens:,} tokens at {site} ({time.monotonic() - started:.0f} s)")
    d_model = model.dims.d_model
    config = DictionaryConfig(
        recipe.architecture,  # type: ignore[arg-type]
        d_in=d_model,
        d_sae=recipe.expansion * d_model,
        k=recipe.k,
        site=site,
    )
    quick = EvalConfig(n_batches=recipe.eval_batches)
    windows = corpus.windows

    def during(_: str, dictionary):
        r = evaluate(model, dictionary, windows, name=name, config=quick, progress=False)
        _say(
            f"  at {_now(started)}: held-out FVE {r.fve:.4f}, CE recovered {r.ce_recovered:.4f}, "
            f"silent on the evaluation tokens {r.dead_fraction:.1%}, L0 {r.l0:.1f}"
        )
        return {
            "fve": r.fve,
            "ce_recovered": r.ce_recovered,
            "dead_fraction": r.dead_fraction,
            "l0": r.l0,
        }

    trained: TrainingRun = train(
        shards,
        {name: config},
        TrainConfig(
            total_tokens=recipe.epochs * shards.tokens,
            batch_tokens=recipe.batch_tokens,
            lr=recipe.lr,
            dead_after_tokens=min(1_000_000, shards.tokens),
            seed=recipe.seed,
        ),
        out=root / "train",
        progress=progress,
        evaluate=during,
        eval_every_tokens=recipe.eval_every,
    )
    dictionary, curve = trained.dictionaries[name], trained.curves[name]
    final = evaluate(
        model,
        dictionary,
        windows,
        name=name,
        config=EvalConfig(n_batches=recipe.final_eval_batches),
        progress=progress,
    )
    final.to_json(root / "eval.json")
    study = feature_pages(
        model,
        dictionary,
        holdout(corpus, EvalConfig(n_batches=recipe.final_eval_batches)),
        name=name,
        n_best=recipe.feature_pages // 2,
        n_random=recipe.feature_pages - recipe.feature_pages // 2,
        config=FeaturesConfig(n_windows=256, seed=recipe.seed),
        progress=progress,
    )
    study.index.to_json(root / "features" / "index.json")
    for j, page in study.pages.items():
        page.to_json(root / "features" / f"f{j}.json")
    _say(final.describe())
    _say(curve_table(curve))
    _say(f"recipe {recipe.name} finished in {_now(started)}; results in {root}")
    return RecipeRun(root, name, dictionary, curve, final, study)


def cached(recipe: Recipe | str, out: str | Path | None = None) -> RecipeRun | None:
    """Returns the finished run of ``recipe`` read back from ``out`` (default: the cache), or
    None when it has not finished there (no ``eval.json`` or feature index yet)."""
    r = RECIPES[recipe] if isinstance(recipe, str) else recipe
    root = Path(out) if out is not None else cache_root() / "sae" / r.name
    done = [p.parent for p in sorted((root / "train").glob("*/training.json"))]
    index = root / "features" / "index.json"
    if len(done) != 1 or not (root / "eval.json").exists() or not index.exists():
        return None
    from interplab.dictionaries.formats import load_dictionary
    from interplab.results.dictionaries import FeatureIndex, FeaturePage

    pages = {
        int(p.stem[1:]): FeaturePage.from_json(p)
        for p in sorted((root / "features").glob("f*.json"))
    }
    return RecipeRun(
        root,
        done[0].name,
        load_dictionary(done[0]),
        TrainingCurve.from_json(done[0] / "training.json"),
        DictionaryEval.from_json(root / "eval.json"),
        FeatureStudy(FeatureIndex.from_json(index), pages),
    )


def curve_table(curve: TrainingCurve) -> str:
    """Returns the evaluation rows of a training curve as a text table."""
    lines = ["tokens        FVE     CE recovered  silent   L0   (silent: on the evaluation tokens)"]
    for row in curve.table():
        lines.append(
            f"{int(row['tokens']):>10,}  {row.get('fve', float('nan')):.4f}  "
            f"{row.get('ce_recovered', float('nan')):>12.4f}  {row.get('dead_fraction', float('nan')):>6.1%}"
            f"  {row.get('l0', float('nan')):5.1f}"
        )
    return "\n".join(lines)


def corpus_for(model: Model, name: str) -> TokenizedCorpus:
    """Returns the recipe's corpus tokenised into 128-token windows (``mix``: what is installed)."""
    if name == "mix":
        from interplab.data.mix import available_sources, missing_sources, mix_corpus

        if missing_sources():
            _say("the mixed corpus is not fully installed (make corpus); mixing what is there")
            return tokenize_corpus(mix_corpus(available_sources()).path, model.tokenizer, 128)
        return tokenize_corpus(mix_corpus().path, model.tokenizer, 128)
    return tokenize_corpus(name, model.tokenizer, 128)


def _now(started: float) -> str:
    return f"{time.monotonic() - started:.0f} s"


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> None:
    """``python -m interplab.dictionaries.recipes [default|short] [--out DIR] [--threads N]``."""
    parser = argparse.ArgumentParser(prog="python -m interplab.dictionaries.recipes")
    parser.add_argument("recipe", nargs="?", default="default", choices=sorted(RECIPES))
    parser.add_argument("--out", type=Path, default=None, help="results folder")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--corpus", default=None, help="mix, wiki, lee, all or a file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    recipe = RECIPES[args.recipe]
    if args.corpus:
        recipe = replace(recipe, corpus=args.corpus)
    try:
        run(recipe, args.out)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()


__all__ = ["RECIPES", "Recipe", "RecipeRun", "cached", "corpus_for", "curve_table", "main", "run"]
