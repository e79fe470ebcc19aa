"""Controls and baselines for patching: the same sweep on unrelated prompts, and ablation methods
side by side.

A cell that moves the metric when patched on IOI prompts may matter for IOI, or may matter on every
input: MLP0 rewrites every token's embedding, the last layers write every prediction. A sweep alone
cannot tell these apart; the same sweep on prompts unrelated to the task can (the "control task"
logic of Hewitt & Liang 2019 applied to patching; Heimersheim & Nanda 2024 discuss why patching
effects need such baselines). `activation_patching` runs it by default (``control=False`` skips it):

1. *Control prompts*: one window of news text per task pair (the Lee corpus shipped with gensim,
   real prose that names no task entity), exactly as many tokens as the task prompt, drawn with
   the seed. When every task prompt starts with the same special token (a BOS), so does every
   control. A model without a tokenizer gets random token ids instead.
2. *Control corruption*: control pair i changes exactly the positions where task pair i's clean
   and corrupt prompts differ, taking the tokens at those positions from another control window;
   the control perturbs as many tokens, at the same places, as the task.
3. *Control answers*: the clean control prompt's most likely next token is the answer; the
   corrupt control prompt's most likely next token is the wrong answer. Of `CANDIDATES` windows
   tried per pair, the first whose corruption changes the model's top prediction is kept, so the
   logit difference is positive on the clean control and negative on the corrupt one, as on the
   task (when no candidate changes it, the first is kept, with the clean prompt's second choice as
   the wrong answer).
4. The control runs the identical sweep: components, direction, per, metric, source, method.
5. `ControlComparison` puts the two side by side in units of each set's own gap (each effect
   divided by |mean(clean − corrupt)| of its set, or by |mean clean metric| for ablations). Per
   cell, a two-sample permutation test asks whether the task effect exceeds the control effect
   (in the direction of the task's mean; Holm over cells). A significant task cell is
   *task-specific* when it does; it is *general* when its control effect survives correction as
   well and the task effect does not exceed it: a component that matters on every input (the
   final position in the last layers always does), not a finding about the task.

`compare_ablations` runs one noising sweep per ablation method (zero, mean, resample) on the same
cells, with their rank agreement: the choice of ablation is itself a result (Zhang & Nanda 2024,
"Towards Best Practices of Activation Patching").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.provenance import write_json
from interplab.techniques._grid import PatchingError, TokenPairs

if TYPE_CHECKING:
    from interplab.techniques._grid import GridResult, PairsLike, Per
    from interplab.techniques.metrics import Metric, MetricName
    from interplab.techniques.patching import PatchingResult


CANDIDATES = 8
"""Control windows tried per task pair, so that most control pairs change the model's prediction."""


def control_pairs(model: Model, like: TokenPairs, seed: int = 0) -> TokenPairs:
    """Returns control pairs shaped like ``like``: unrelated text, corrupted at the same positions,
    with answers the model itself predicts (steps 1-3 of the module docstring)."""
    n, length = like.clean.shape
    g = torch.Generator().manual_seed(seed)
    windows = _windows(model, n * CANDIDATES + 1, length, g)
    k = (windows.shape[0] - 1) // n  # candidates per pair (fewer when the corpus is short)
    first = like.clean[:, 0]
    special = set() if model.tokenizer is None else set(model.tokenizer.all_special_ids)
    if bool((first == first[0]).all()) and int(first[0]) in special:
        windows[:, 0] = first[0]
    # Candidate c of pair i is window i*k + c, corrupted with the tokens of the next window.
    index = torch.arange(n * k)
    clean = windows[index].view(n, k, length)
    donor = windows[index + 1].view(n, k, length)
    differs = (like.clean != like.corrupt)[:, None].expand(n, k, length)
    if like.mask is not None:
        keep = like.mask.bool()[:, None].expand(n, k, length)
        clean = torch.where(keep, clean, like.clean[:, None])
        differs = differs & keep
    corrupt = torch.where(differs, donor, clean)
    still_same = (corrupt == clean) & differs  # the donor had the same token there
    corrupt[still_same] = (corrupt[still_same] + 1) % model.dims.d_vocab
    top_clean, top_corrupt = _top2(model, clean, corrupt, like, k)
    # The first candidate whose corruption changes the model's top prediction (else the first).
    changed = top_clean[..., 0] != top_corrupt
    pick = torch.where(changed.any(1), changed.float().argmax(1), 0)
    rows = torch.arange(n)
    answer = top_clean[rows, pick, 0]
    wrong = top_corrupt[rows, pick]
    wrong = torch.where(wrong == answer, top_clean[rows, pick, 1], wrong)
    return TokenPairs(clean[rows, pick], corrupt[rows, pick], answer, wrong, like.mask)


def run_control(
    technique: Any, model: Model, like: TokenPairs, pair_seed: int, **options: Any
) -> Any:
    """Returns ``technique`` (a grid sweep such as `activation_patching`) run with ``options`` on
    control pairs shaped like ``like`` (drawn with ``pair_seed``), without a control of its own."""
    return technique(model, control_pairs(model, like, pair_seed), control=False, **options)


def _windows(model: Model, count: int, length: int, g: torch.Generator) -> Tensor:
    """Returns up to ``count`` windows of ``length`` tokens (at least one per pair plus one)."""
    if model.tokenizer is None:
        return torch.randint(model.dims.d_vocab, (count, length), generator=g)
    from interplab.data.assets import lee_documents

    docs = [d for d in lee_documents() if len(d) > 40]
    rows = []
    for i in torch.randperm(len(docs), generator=g).tolist():
        ids = model.tokenizer(docs[i], add_special_tokens=False)["input_ids"]
        if len(ids) >= length:
            rows.append(torch.tensor(ids[:length]))
        if len(rows) == count:
            break
    needed = (count - 1) // CANDIDATES + 1
    if len(rows) < needed:
        raise PatchingError(
            f"the control corpus has only {len(rows)} documents of {length}+ tokens, {needed} "
            "needed; pass control=False or fewer pairs"
        )
    return torch.stack(rows)


def _top2(
    model: Model, clean: Tensor, corrupt: Tensor, like: TokenPairs, k: int
) -> tuple[Tensor, Tensor]:
    """Returns the clean candidates' two most likely next tokens ``[n, k, 2]`` and the corrupt
    candidates' most likely one ``[n, k]``, at each pair's answer position."""
    n, _, length = clean.shape
    last = (like.lengths - 1).repeat_interleave(k).to(model.device)
    mask = None if like.mask is None else like.mask.repeat_interleave(k, 0).to(model.device)
    rows = torch.arange(n * k, device=model.device)
    with torch.no_grad():
        out = []
        for ids in (clean, corrupt):
            logits = model.hf(
                input_ids=ids.reshape(n * k, length).to(model.device), attention_mask=mask
            )
            out.append(logits.logits[rows, last])
    top_clean = out[0].topk(2, -1).indices.cpu().view(n, k, 2)
    return top_clean, out[1].argmax(-1).cpu().view(n, k)


def gap(result: GridResult) -> float:
    """Returns the size of a sweep's effect scale: |mean(clean - corrupt)|, or |mean clean
    metric| for ablations (1.0 when that is zero)."""
    source = getattr(result, "source", "contrast")
    if source != "contrast":
        return abs(float(result.clean.mean())) or 1.0
    return abs(float(result.clean.mean() - result.corrupt.mean())) or 1.0


@dataclass(frozen=True)
class ControlComparison:
    """One component's cells on the task and on the control prompts, in units of each set's gap."""

    component: str
    labels: list[str]  # cell names, flattened grid order
    task_fraction: np.ndarray  # mean effect / task gap, per cell
    control_fraction: np.ndarray
    task_significant: np.ndarray
    control_significant: np.ndarray
    p_specific: np.ndarray  # Holm-adjusted p that the task effect exceeds the control's
    specific: np.ndarray  # task effect exceeds control effect (survives correction)
    general: np.ndarray  # control effect survives correction, task effect does not exceed it
    n_task: int
    n_control: int

    def describe(self, k: int = 5) -> str:
        """Returns what the control says, in a sentence or two."""
        found = int(self.task_significant.sum())
        shared = np.flatnonzero(self.general & self.task_significant)
        head = f"control prompts (n={self.n_control}, unrelated text, the same positions changed): "
        if found:
            specific = int((self.specific & self.task_significant).sum())
            head += (
                f"of the {found} significant task cells of {self.component}, {specific} are "
                f"task-specific (larger than on the control, Holm) and {len(shared)} matter as "
                "much on the control (general)"
            )
        else:
            head += f"no task cell of {self.component} survives correction (n={self.n_task})"
        show = shared if len(shared) else np.flatnonzero(self.control_significant)
        if not len(show):
            return head + "; no control cell survives correction either."
        worst = show[np.argsort(-np.abs(self.control_fraction[show]))][:k]
        cells = ", ".join(
            f"{self.labels[i]} ({self.task_fraction[i]:+.2f} task, "
            f"{self.control_fraction[i]:+.2f} control)"
            for i in worst
        )
        lead = ": " if len(shared) else "; the strongest significant control cells: "
        return f"{head}{lead}{cells}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "labels": self.labels,
            "task_fraction": self.task_fraction,
            "control_fraction": self.control_fraction,
            "task_significant": self.task_significant,
            "control_significant": self.control_significant,
            "p_specific": self.p_specific,
            "specific": self.specific,
            "general": self.general,
            "n_task": self.n_task,
            "n_control": self.n_control,
        }


def compare_control(
    task: GridResult, control: GridResult, component: str, *, seed: int = 0
) -> ControlComparison:
    """Returns the task and control sweeps of ``component`` side by side (step 5)."""
    from interplab.stats.multiple import correct_pvalues
    from interplab.stats.permutation import two_sample_permutation_test

    ts, cs = task.summary(component), control.summary(component)
    a = task.effect(component).reshape(task.n, -1) / gap(task)
    b = control.effect(component).reshape(control.n, -1) / gap(control)
    tf, cf = a.mean(0), b.mean(0)
    sign = np.where(tf < 0, -1.0, 1.0)
    test = two_sample_permutation_test(a * sign, b * sign, alternative="greater", seed=seed)
    p = np.where(np.isnan(test.p_value), 1.0, test.p_value)
    corrected = correct_pvalues(p, method="holm")
    t_sig = np.asarray(ts.significant).ravel()
    c_sig = np.asarray(cs.significant).ravel()
    specific = corrected.reject
    shape = ts.cell_shape
    labels = [
        task.cell_label(component, tuple(int(i) for i in np.unravel_index(f, shape)))
        for f in range(int(np.prod(shape)))
    ]
    return ControlComparison(
        component,
        labels,
        tf,
        cf,
        t_sig,
        c_sig,
        corrected.p_adjusted,
        specific,
        c_sig & ~specific,
        task.n,
        control.n,
    )


@dataclass(frozen=True)
class AblationComparison:
    """The same noising sweep under each ablation method, and how far they agree."""

    results: dict[str, PatchingResult]
    components: tuple[str, ...]
    agreement: dict[str, dict[str, float]] = field(default_factory=dict)  # "zero~mean" -> comp -> ρ

    def describe(self) -> str:
        """Returns each method's strongest cell and the methods' rank agreement."""
        lines = []
        for method, r in self.results.items():
            for c in self.components:
                top = r.top_cells(c, 1)[0]
                lines.append(
                    f"{method:>8} ablation, {c}: strongest cell {top['cell']} "
                    f"{top['mean']:+.3f} [{top['ci_low']:+.3f}, {top['ci_high']:+.3f}]"
                )
        for pair, by_comp in self.agreement.items():
            for c, rho in by_comp.items():
                lines.append(f"Spearman ρ of mean effects, {pair}, {c}: {rho:+.3f}")
        return "\n".join(lines)

    def figure(self, component: str | None = None) -> Any:
        """Returns the methods' heatmaps side by side on one colour scale."""
        from interplab.viz.patching import side_by_side_figure

        comp = component or self.components[0]
        return side_by_side_figure(
            {f"{m} ablation": r for m, r in self.results.items()}, comp, "ablation methods"
        )

    def heatmaps(self, component: str | None = None) -> list[Any]:
        comp = component or self.components[0]
        maps = []
        for method, r in self.results.items():
            m = r.heatmaps(comp)[0]
            maps.append(replace(m, title=f"{method} ablation: {m.title}"))
        return maps

    def save_plot(self, path: str | Path, component: str | None = None) -> list[Path]:
        from interplab.viz.interactive import save_plot

        comp = component or self.components[0]
        return save_plot(
            self.figure(comp), path, self.heatmaps(comp), f"ablation methods side by side: {comp}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "technique": "ablation_comparison",
            "components": list(self.components),
            "agreement": self.agreement,
            "results": {m: r.to_dict() for m, r in self.results.items()},
        }

    def to_json(self, path: str | Path) -> Path:
        """Writes every method's result and the agreement as JSON, atomically."""
        return write_json(path, self.to_dict())


def compare_ablations(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    methods: Sequence[str] = ("zero", "mean", "resample"),
    seed: int = 0,
    batch_budget_mb: float = 512.0,
    progress: bool = True,
) -> AblationComparison:
    """Returns one noising sweep per ablation method on the same cells, with the Spearman rank
    correlation of their mean effects for every pair of methods."""
    from scipy.stats import spearmanr

    from interplab.techniques.patching import activation_patching

    valid = ("zero", "mean", "resample")
    bad = [m for m in methods if m not in valid]
    if bad or len(set(methods)) < 2:
        raise PatchingError(f"methods must be two or more of {valid}, got {tuple(methods)}")
    results = {
        m: activation_patching(
            model,
            pairs,
            components=components,
            direction="noise",
            per=per,
            metric=metric,
            source=m,  # type: ignore[arg-type]
            seed=seed,
            batch_budget_mb=batch_budget_mb,
            progress=progress,
            control=False,
        )
        for m in methods
    }
    comps = next(iter(results.values())).components
    agreement: dict[str, dict[str, float]] = {}
    names = list(results)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            agreement[f"{a}~{b}"] = {
                c: float(
                    spearmanr(
                        results[a].effect(c).mean(0).ravel(), results[b].effect(c).mean(0).ravel()
                    ).statistic  # type: ignore[attr-defined]
                )
                for c in comps
            }
    return AblationComparison(results, comps, agreement)
