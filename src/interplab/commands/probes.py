"""CLI: ``probe`` (cross-validated linear probes with a control task) and ``ablate-direction``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from interplab.commands._options import (
    AddressOpt,
    BackendOpt,
    DeviceOpt,
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    PlotOpt,
    WorkersOpt,
    check_outputs,
    check_writable,
    console,
    err,
    load_model,
    write_outputs,
)
from interplab.errors import UserError

if TYPE_CHECKING:
    from interplab.data import LabelledDataset


def _dataset(name: str, seed: int) -> LabelledDataset:
    from interplab.data import load_labelled, sentiment_dataset, truth_dataset

    if name == "truth":
        return truth_dataset(seed=seed)
    if name == "sentiment":
        return sentiment_dataset()
    if not Path(name).is_file():
        raise UserError(f"--dataset must be 'truth', 'sentiment' or a CSV/JSONL file; got {name!r}")
    return load_labelled(name)


def _position(text: str) -> str | int:
    stripped = text.strip()
    return int(stripped) if stripped.lstrip("-").isdigit() else text


def probe(
    dataset: Annotated[
        str, typer.Option(help="truth, sentiment, or a CSV/JSONL file (text, label[, group])")
    ] = "truth",
    position: Annotated[
        str, typer.Option(help="last, mean, an offset such as -2, or a token such as ' is'")
    ] = "last",
    kind: Annotated[str, typer.Option("--probe", help="logistic or diffmean")] = "logistic",
    folds: Annotated[int, typer.Option(help="cross-validation folds (grouped when groups)")] = 5,
    n: Annotated[
        int, typer.Option("--n", help="subsample about n examples (whole groups); 0: all")
    ] = 0,
    seed: Annotated[int, typer.Option(help="seed for the data, folds, control and bootstrap")] = 0,
    c: Annotated[float, typer.Option(help="inverse L2 strength of the logistic probe")] = 0.01,
    save_directions: Annotated[
        Path | None,
        typer.Option(help="write the all-data probe directions here (.safetensors or .npz)"),
    ] = None,
    backend: BackendOpt = "local",
    address: AddressOpt = None,
    workers: WorkersOpt = 2,
    layers_per_task: Annotated[
        int,
        typer.Option(
            min=0,
            help="with --backend ray: layers per task (0: all in one task, equal to the local "
            "probe bit for bit; fewer fit each chunk alone)",
        ),
    ] = 0,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Linear probes at every layer: held-out accuracy with CIs, a shuffled-label control task,
    and selectivity (accuracy minus control)."""
    from interplab.results.probes import ProbeConfig
    from interplab.techniques.probes import linear_probe, subsample

    config = ProbeConfig(
        probe=kind,  # type: ignore[arg-type]  (the config lists the valid kinds)
        position=_position(position),
        folds=folds,
        c=c,
        seed=seed,
    )
    figure = check_outputs(json_path, plot)
    if layers_per_task and backend != "ray":
        raise UserError("--layers-per-task cuts the work for --backend ray; add --backend ray")
    if save_directions is not None:
        if save_directions.suffix not in (".safetensors", ".npz"):
            raise UserError(
                f"--save-directions must end in .safetensors or .npz, got {save_directions.name!r}"
            )
        check_writable(save_directions)
    if n < 0:
        raise UserError(f"--n must be >= 0 (0: every example), got {n}")
    data = _dataset(dataset, seed)
    if n:
        data = subsample(data, n, seed=seed)
    m = load_model(model, device, dtype)
    if backend == "ray":
        from interplab.distributed.probes import linear_probes

        result = linear_probes(
            m, {data.name: data}, config=config, backend="ray", address=address,
            workers=workers, layers_per_task=layers_per_task or None,
        )[data.name]  # fmt: skip
    else:
        with err.status(f"probing {len(data)} examples at {m.dims.n_layers} layers"):
            result = linear_probe(m, data, config=config)
    groups = f", {result.n_groups} groups" if result.n_groups else ""
    table = Table(title=f"{kind} probe, {result.dataset} (n={result.n}{groups}), 95% CIs")
    for col in ("layer", "accuracy", "AUROC", "control", "selectivity"):
        table.add_column(col, justify="right")
    for a in result.table():
        table.add_row(
            str(a.layer) + (" *" if a.layer == result.best_layer else ""),
            f"{a.accuracy:.3f} [{a.accuracy_low:.3f}, {a.accuracy_high:.3f}]",
            f"{a.auroc:.3f}",
            f"{a.control:.3f} [{a.control_low:.3f}, {a.control_high:.3f}]",
            f"{a.selectivity:+.3f} [{a.selectivity_low:+.3f}, {a.selectivity_high:+.3f}]",
        )
    console.print(table)
    console.print(result.describe())
    console.print("selectivity by layer: " + result.describe_summary(seed=seed))
    if save_directions is not None:
        console.print(f"wrote {result.save_directions(save_directions)}")
    write_outputs(result, json_path, figure)


def ablate_direction(
    prompt: Annotated[list[str], typer.Argument(help="one or more prompts")],
    direction: Annotated[
        Path | None, typer.Option(help="probe directions saved by `probe --save-directions`")
    ] = None,
    layer: Annotated[
        int | None, typer.Option(help="which layer's direction of --direction to ablate")
    ] = None,
    random: Annotated[
        bool, typer.Option("--random", help="ablate a seeded random direction instead")
    ] = False,
    k: Annotated[int, typer.Option(help="top-k next tokens to show")] = 5,
    max_new_tokens: Annotated[int, typer.Option(help="greedy continuation length")] = 20,
    n_random: Annotated[
        int, typer.Option(help="norm-matched random directions in the baseline distribution")
    ] = 20,
    seed: Annotated[int, typer.Option(help="seed of the random directions")] = 0,
    model: ModelOpt = "smollm2-135m",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "float32",
    json_path: JsonOpt = None,
    plot: PlotOpt = None,
) -> None:
    """Directional ablation (Arditi et al. 2024): remove one direction from every residual write
    and compare next tokens and continuations with the baseline, and its KL divergence with a
    distribution of norm-matched random directions."""
    import numpy as np
    import torch

    from interplab.results.directions import AblationConfig, load_directions
    from interplab.techniques.directions import compare_ablation

    config = AblationConfig(k=k, max_new_tokens=max_new_tokens, n_random=n_random, seed=seed)
    if random == (direction is not None):
        raise UserError("give either --direction PATH with --layer, or --random")
    if random and layer is not None:
        raise UserError(
            "--layer picks one layer of the directions in --direction; --random ablates one "
            "random direction from every residual write, so it takes no --layer"
        )
    figure = check_outputs(json_path, plot)
    vec = None
    label = f"random direction (seed {seed + 1})"
    if direction is not None:
        saved = load_directions(direction)
        if layer is None:
            raise UserError(f"--direction needs --layer, one of {list(saved.layers)}")
        vec = torch.as_tensor(saved.direction(layer))
        label = f"{direction.name} layer {layer} ({saved.probe}, {saved.component})"
    m = load_model(model, device, dtype)
    if vec is None:
        g = torch.Generator().manual_seed(seed + 1)
        vec = torch.randn(m.dims.d_model, generator=g, dtype=torch.float64)
    with err.status(f"running baseline, ablated and {n_random} random-direction variants"):
        result = compare_ablation(m, prompt, vec, label=label, config=config)
    for i, p in enumerate(result.prompts):
        table = Table(title=f"{p!r}: ablating {label}")
        for col in ("variant", f"top-{k} next tokens", "greedy continuation", "KL vs baseline"):
            table.add_column(col)
        random_kl = result.random_kl[i]
        rows = (
            ("baseline", result.baseline_top, result.baseline_text, "-"),
            ("ablated", result.ablated_top, result.ablated_text, f"{result.kl[i]:.4f}"),
            (
                "random dir 1",
                result.random_top,
                result.random_text,
                f"{random_kl[0]:.4f} (median of {n_random}: {float(np.median(random_kl)):.4f})",
            ),
        )
        for name, top, text, kl in rows:
            tokens = ", ".join(f"{t!r} {q:.2f}" for t, q in top[i])
            table.add_row(name, tokens, repr(text[i]), kl)
        console.print(table)
    console.print(f"{label}: " + result.standing().describe())
    if result.n >= 2:
        console.print("KL(ablated) - mean KL(random directions): " + result.summary().describe())
    else:
        console.print("one prompt: give two or more for a CI of the KL difference")
    write_outputs(result, json_path, figure)


def register(app: typer.Typer) -> None:
    """Adds ``probe`` and ``ablate-direction`` to ``app``."""
    app.command("probe")(probe)
    app.command("ablate-direction")(ablate_direction)
