"""Ablation methods side by side: the choice of ablation is itself a result.

Zhang & Nanda 2024 ("Towards Best Practices of Activation Patching") show that zero, mean and
resample ablation can rank the same cells differently. `compare_ablations`:

1. runs one noising sweep of `activation_patching` per method (``source="zero"|"mean"|
   "resample"``) on the same pairs and cells, without controls;
2. for every pair of methods, computes the Spearman rank correlation of their mean effects per
   component, so a reader sees how far a conclusion depends on the method.
"""

from __future__ import annotations

from collections.abc import Sequence

from interplab.core.model import Model
from interplab.results.patching import PatchingError, Per
from interplab.results.patching_compare import AblationComparison
from interplab.store import recorded
from interplab.techniques.metrics import Metric, MetricName
from interplab.techniques.patching.grid import PairsLike

ABLATIONS = ("zero", "mean", "resample")


def check_methods(methods: Sequence[str]) -> None:
    """Raises unless ``methods`` are two or more distinct ablation methods."""
    bad = [m for m in methods if m not in ABLATIONS]
    if bad or len(set(methods)) < 2:
        raise PatchingError(f"methods must be two or more of {ABLATIONS}, got {tuple(methods)}")


@recorded("ablation_comparison", inputs="pairs")
def compare_ablations(
    model: Model,
    pairs: PairsLike,
    *,
    components: Sequence[str] | str = ("resid_pre",),
    per: Per = "position",
    metric: MetricName | Metric = "logit_diff",
    methods: Sequence[str] = ABLATIONS,
    seed: int = 0,
    batch_budget_mb: float = 512.0,
    progress: bool = True,
) -> AblationComparison:
    """Returns one noising sweep per ablation method on the same cells, with the Spearman rank
    correlation of their mean effects for every pair of methods."""
    from scipy.stats import spearmanr

    from interplab.techniques.patching.activation import activation_patching

    check_methods(methods)
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


__all__ = ["ABLATIONS", "check_methods", "compare_ablations"]
