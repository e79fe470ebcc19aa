"""CLI group ``sae``: harvest, train, eval, encode, patch, diagnose, features and convert sparse
dictionaries.

Every command that loads a model takes --model/--device/--dtype and checks its output paths
before loading anything; each calls `interplab.dictionaries` and prints what it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import (
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    check_outputs,
    check_writable,
    console,
    err,
    load_model,
    write_outputs,
)

if TYPE_CHECKING:
    from interplab.core.model import Model
    from interplab.data.corpus import TokenizedCorpus

sae_app = typer.Typer(help="Sparse dictionaries: SAEs and transcoders.", no_args_is_help=True)

CorpusOpt = Annotated[str, typer.Option(help="mix, wiki, lee, all, or a .jsonl/.txt file")]
WindowOpt = Annotated[int, typer.Option(help="tokens per corpus window")]


def register(app: typer.Typer) -> None:
    """Adds the ``sae`` group to ``app``."""
    app.add_typer(sae_app, name="sae")


def _corpus(model: Model, corpus: str, window: int) -> TokenizedCorpus:
    from interplab.data.corpus import tokenize_corpus

    if corpus == "mix":
        from interplab.data.mix import mix_corpus

        return tokenize_corpus(mix_corpus().path, model.tokenizer, window)
    return tokenize_corpus(corpus, model.tokenizer, window)


def _folder(path: Path) -> None:
    """Checks, before compute, that files can be written inside ``path``."""
    check_writable(path / ".probe")


@sae_app.command()
def harvest(
    site: Annotated[list[str], typer.Option(help="a site to harvest (repeat for several)")],
    out: Annotated[Path, typer.Option(help="the shards folder (an unfinished one is resumed)")],
    corpus: CorpusOpt = "mix",
    max_tokens: Annotated[int | None, typer.Option(help="stop after this many tokens")] = None,
    shard_dtype: Annotated[str, typer.Option(help="float32 or float16")] = "float16",
    window: WindowOpt = 128,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Stream a corpus through the model once and write the sites' activations as shards."""
    from interplab.dictionaries import ModelSource
    from interplab.dictionaries import harvest as harvest_to

    _folder(out)
    m = load_model(model, device, dtype)
    source = ModelSource(m, _corpus(m, corpus, window), site)
    shards = harvest_to(source, out, max_tokens=max_tokens, dtype=shard_dtype)  # type: ignore[arg-type]
    console.print(f"{shards.tokens:,} tokens of {', '.join(map(str, shards.sites))} in {out}")


@sae_app.command()
def train(
    out: Annotated[Path, typer.Option(help="checkpoints and trained dictionaries (resumed)")],
    site: Annotated[str, typer.Option(help="the site the dictionaries read")],
    shards: Annotated[Path | None, typer.Option(help="train from this harvest folder")] = None,
    corpus: Annotated[str | None, typer.Option(help="or harvest live from this corpus")] = None,
    target: Annotated[str | None, typer.Option(help="transcoders: the site they write")] = None,
    architecture: Annotated[
        str, typer.Option(help="standard, topk, batchtopk, jumprelu, matryoshka_batchtopk")
    ] = "topk",
    kind: Annotated[str, typer.Option(help="sae, transcoder or skip_transcoder")] = "sae",
    width: Annotated[
        list[int] | None, typer.Option(help="latents (repeat: one dictionary each; default 4608)")
    ] = None,
    k: Annotated[
        list[int] | None,
        typer.Option(help="active latents (repeat: one dictionary each; default 32)"),
    ] = None,
    tokens: Annotated[int, typer.Option(help="training tokens")] = 2_000_000,
    batch: Annotated[int, typer.Option(help="tokens per batch")] = 4096,
    lr: Annotated[
        float | None, typer.Option(help="Adam learning rate (default scales with width)")
    ] = None,
    seed: Annotated[int, typer.Option(help="initialisation and data order")] = 0,
    window: WindowOpt = 128,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Train one dictionary per (width, k) from one stream of activations."""
    from interplab.dictionaries import DictionaryConfig, ModelSource, ShardSource, TrainConfig
    from interplab.dictionaries import train as train_dictionaries
    from interplab.dictionaries.harvest import HarvestError
    from interplab.sites import Site

    if (shards is None) == (corpus is None):
        raise HarvestError("give exactly one of --shards (a harvest folder) or --corpus (live)")
    _folder(out)
    read = Site.parse(site)
    write = Site.parse(target) if target else None
    if shards is not None:
        source = ShardSource(shards, seed=seed)
    else:
        m = load_model(model, device, dtype)
        sites = [read] if write is None else [read, write]
        source = ModelSource(m, _corpus(m, corpus or "mix", window), sites)
    for s in (read, write):
        if s is not None and s not in source.widths:
            have = ", ".join(str(x) for x in source.sites)
            raise HarvestError(f"the activations hold no {s}; they hold: {have}")
    d_in = source.widths[read]
    d_out = None if write is None else source.widths[write]
    configs = {
        f"{architecture}-w{w}-k{kk}": DictionaryConfig(
            architecture,  # type: ignore[arg-type]
            d_in=d_in,
            d_sae=w,
            k=kk,
            kind=kind,  # type: ignore[arg-type]
            d_out=d_out,
            site=read,
            target=write,  # type: ignore[arg-type]
        )
        for w in width or [4608]
        for kk in k or [32]
    }
    run = train_dictionaries(
        source,
        configs,
        TrainConfig(total_tokens=tokens, batch_tokens=batch, lr=lr, seed=seed),
        out=out,
    )
    table = Table("dictionary", "FVE (last)", "L0", "dead")
    for name, curve in run.curves.items():
        table.add_row(
            name, f"{curve.fve[-1]:.4f}", f"{curve.l0[-1]:.1f}", f"{curve.dead_fraction[-1]:.1%}"
        )
        console.print(f"wrote {out / name}")
    console.print(table)


@sae_app.command("eval")
def evaluate_command(
    dictionary: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    corpus: CorpusOpt = "mix",
    layer: Annotated[int | None, typer.Option(help="the layer of a circuit-tracer set")] = None,
    site: Annotated[str | None, typer.Option(help="tie an SAE whose files name no site")] = None,
    batches: Annotated[int, typer.Option(help="evaluation batches (held-out windows)")] = 8,
    batch_windows: Annotated[int, typer.Option(help="windows per batch")] = 8,
    no_ce: Annotated[bool, typer.Option("--no-ce", help="skip CE loss recovered and KL")] = False,
    window: WindowOpt = 128,
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """FVE, MSE, L0, dead/dense latents, CE loss recovered and KL on held-out windows."""
    from interplab.dictionaries import EvalConfig, evaluate, load_dictionary

    plot = check_outputs(json_path, plot)
    d = load_dictionary(dictionary, layer=layer, site=site)
    m = load_model(model, device, dtype)
    config = EvalConfig(n_batches=batches, batch_windows=batch_windows, ce=not no_ce)
    result = evaluate(m, d, _corpus(m, corpus, window), name=dictionary.name, config=config)
    console.print(result.describe())
    write_outputs(result, json_path, plot)


@sae_app.command()
def encode(
    dictionary: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    prompt: Annotated[list[str], typer.Option(help="a prompt (repeat for several)")],
    site: Annotated[str | None, typer.Option(help="tie an SAE whose files name no site")] = None,
    layer: Annotated[int | None, typer.Option(help="the layer of a circuit-tracer set")] = None,
    top: Annotated[int, typer.Option(help="features kept per token")] = 5,
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Per-token feature activations of prompts (the strongest ``--top`` per token)."""
    from interplab.dictionaries import load_dictionary
    from interplab.dictionaries.features import encode_prompts

    plot = check_outputs(json_path, plot)
    d = load_dictionary(dictionary, layer=layer, site=site)
    m = load_model(model, device, dtype)
    result = encode_prompts(m, d, list(prompt), name=dictionary.name, top=top)
    for p, words, feats, acts in zip(
        result.prompts, result.tokens, result.features, result.activations, strict=True
    ):
        table = Table("token", "features (activation)", title=p[:70])
        for w, fs, vs in zip(words, feats, acts, strict=True):
            table.add_row(
                repr(w), ", ".join(f"f{f} ({v:.2f})" for f, v in zip(fs, vs, strict=True))
            )
        console.print(table)
    write_outputs(result, json_path, plot)


@sae_app.command()
def patch(
    dictionary: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    task: Annotated[
        str, typer.Option(help="ioi | factual | induction | a pairs CSV/JSONL")
    ] = "ioi",
    n: Annotated[
        int, typer.Option(help="pairs drawn (those of the commonest length are kept)")
    ] = 16,
    feature: Annotated[list[int] | None, typer.Option(help="a feature to patch (repeat)")] = None,
    top: Annotated[int, typer.Option(help="without --feature: features ranked first")] = 20,
    baseline: Annotated[int, typer.Option(help="random active features patched beside them")] = 5,
    method: Annotated[str, typer.Option(help="exact | attribution")] = "exact",
    per: Annotated[str, typer.Option(help="position | all")] = "position",
    site: Annotated[str | None, typer.Option(help="tie an SAE whose files name no site")] = None,
    layer: Annotated[int | None, typer.Option(help="the layer of a circuit-tracer set")] = None,
    seed: Annotated[int, typer.Option(help="seed for the pairs and the random features")] = 0,
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Patching of a dictionary's features (clean into corrupt), per position: the chosen
    features, or the ``--top`` by first-order estimate beside ``--baseline`` random ones."""
    from interplab.commands.patching import load_task
    from interplab.dictionaries import load_dictionary
    from interplab.dictionaries.attach import attach
    from interplab.techniques.patching import FeaturePatchingConfig, feature_patching

    config = FeaturePatchingConfig(
        per=per,  # type: ignore[arg-type]
        method=method,  # type: ignore[arg-type]
        top=top,
        baseline=baseline,
        seed=seed,
    )
    plot = check_outputs(json_path, plot)
    d = load_dictionary(dictionary, layer=layer, site=site)
    con, m, pairs = load_task(task, n, seed, model, device, dtype)
    name = "".join(c if c.isalnum() or c in "_-.:" else "_" for c in dictionary.name) or "sae"
    whole = attach(m, name, d)
    sites = [whole.with_feature(f) for f in feature] if feature else whole
    result = feature_patching(m, pairs, sites, config=config)
    table = Table("cell", "mean effect", "95% CI", "p (Holm)", title=result.describe()[:120])
    for cell, mean, lo, hi, p in result.top_cells(10):
        table.add_row(cell.label, f"{mean:+.3f}", f"[{lo:+.3f}, {hi:+.3f}]", f"{p:.3g}")
    con.print(table)
    if result.method == "exact":
        con.print(f"estimate vs exact, Spearman over cells: {result.rank_agreement():.2f}")
    write_outputs(result, json_path, plot)


@sae_app.command()
def diagnose(
    dictionary: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    corpus: CorpusOpt = "mix",
    windows: Annotated[
        int, typer.Option(help="held-out corpus windows encoded for splitting")
    ] = 32,
    cosine: Annotated[
        float, typer.Option(help="decoder cosine above which two features pair")
    ] = 0.7,
    words: Annotated[int, typer.Option(help="vocabulary words for the first-letter probes")] = 4000,
    site: Annotated[str | None, typer.Option(help="tie an SAE whose files name no site")] = None,
    layer: Annotated[int | None, typer.Option(help="the layer of a circuit-tracer set")] = None,
    window: WindowOpt = 128,
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Feature splitting (near-duplicate decoders: exclusive or co-firing) and first-letter
    absorption (Chanin et al. 2024)."""
    from interplab.dictionaries import load_dictionary
    from interplab.dictionaries.diagnostics import diagnose as run_diagnostics

    plot = check_outputs(json_path, plot)
    d = load_dictionary(dictionary, layer=layer, site=site)
    m = load_model(model, device, dtype)
    result = run_diagnostics(
        m,
        d,
        _corpus(m, corpus, window),
        name=dictionary.name,
        n_windows=windows,
        cosine=cosine,
        max_words=words,
    )
    console.print(result.describe())
    write_outputs(result, json_path, plot)


@sae_app.command()
def features(
    dictionary: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    out: Annotated[Path, typer.Option(help="folder for the HTML pages, their JSON and index.html")],
    corpus: CorpusOpt = "mix",
    feature: Annotated[list[int] | None, typer.Option(help="a feature to page (repeat)")] = None,
    n_best: Annotated[int, typer.Option(help="pages for the most frequent non-dense features")] = 8,
    n_random: Annotated[int, typer.Option(help="pages for random live features")] = 8,
    windows: Annotated[int, typer.Option(help="corpus windows read")] = 512,
    layer: Annotated[int | None, typer.Option(help="the layer of a circuit-tracer set")] = None,
    site: Annotated[str | None, typer.Option(help="tie an SAE whose files name no site")] = None,
    window: WindowOpt = 128,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
) -> None:
    """Feature pages (top, quantile and random examples, histogram, output tokens, neighbours)."""
    from interplab.dictionaries import load_dictionary
    from interplab.dictionaries.features import FeaturesConfig, feature_pages
    from interplab.viz.dictionaries import write_feature_pages

    _folder(out)
    d = load_dictionary(dictionary, layer=layer, site=site)
    m = load_model(model, device, dtype)
    study = feature_pages(
        m,
        d,
        _corpus(m, corpus, window),
        name=dictionary.name,
        features=feature,
        n_best=n_best,
        n_random=n_random,
        config=FeaturesConfig(n_windows=windows),
    )
    write_feature_pages(study.index, study.pages, out)
    console.print(f"wrote {len(study.pages)} feature pages and {out / 'index.html'}")


@sae_app.command()
def recipe(
    name: Annotated[
        str, typer.Argument(help="default (about an hour on 2 cores) or short")
    ] = "default",
    out: Annotated[Path | None, typer.Option(help="results folder (default: the cache)")] = None,
    corpus: Annotated[
        str | None, typer.Option(help="mix (default), wiki, lee, all or a file")
    ] = None,
) -> None:
    """Train, evaluate and page the default SAE (a TopK SAE at the middle residual layer)."""
    from dataclasses import replace

    from interplab import viz
    from interplab.dictionaries.config import DictionaryError
    from interplab.dictionaries.recipes import RECIPES, run
    from interplab.viz.dictionaries import write_feature_pages

    if name not in RECIPES:
        raise DictionaryError(f"unknown recipe {name!r}; recipes: {', '.join(sorted(RECIPES))}")
    if out is not None:
        _folder(out)
    chosen = RECIPES[name] if corpus is None else replace(RECIPES[name], corpus=corpus)
    result = run(chosen, out)
    written = [
        *viz.save(result.evaluation, result.folder / "eval.png"),
        *viz.save(result.curve, result.folder / "training.png"),
        *write_feature_pages(
            result.features.index, result.features.pages, result.folder / "features"
        ),
    ]
    console.print(
        f"wrote {len(written)} files under {result.folder}; pages: {result.folder / 'features' / 'index.html'}"
    )


@sae_app.command()
def convert(
    source: Annotated[Path, typer.Argument(help="a dictionary folder (any format)")],
    out: Annotated[Path, typer.Argument(help="the folder to write")],
    to: Annotated[
        str, typer.Option(help="interplab, saelens, sparsify or circuit_tracer")
    ] = "saelens",
    layer: Annotated[int | None, typer.Option(help="one layer of a circuit-tracer set")] = None,
    model_name: Annotated[str | None, typer.Option(help="model name recorded in the files")] = None,
) -> None:
    """Convert a dictionary (or a circuit-tracer set) between formats."""
    from interplab.dictionaries import FORMATS, detect, load_dictionary, save_dictionary
    from interplab.dictionaries.config import DictionaryFileError
    from interplab.dictionaries.formats import circuit_tracer

    if to not in FORMATS:
        raise DictionaryFileError(f"unknown format {to!r}; choose one of: {', '.join(FORMATS)}")
    _folder(out)
    if detect(source) == "circuit_tracer" and layer is None:
        layers = circuit_tracer.load_set(source)
        if to == "circuit_tracer":
            save_dictionary(layers, out, "circuit_tracer", model_name=model_name)  # type: ignore[arg-type]
        else:
            for i, d in layers.items():
                save_dictionary(d, out / f"layer_{i}", to, model_name=model_name)  # type: ignore[arg-type]
    else:
        save_dictionary(load_dictionary(source, layer=layer), out, to, model_name=model_name)  # type: ignore[arg-type]
    err.print(f"converted {source} ({detect(source)}) to {to}")
    console.print(f"wrote {out}")


__all__ = ["register", "sae_app"]
