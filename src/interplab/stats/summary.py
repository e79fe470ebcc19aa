"""The summary every technique's result reports: mean, CI, p-value, correction, evidence flags.

`summarize` turns per-example values `[n_examples, *cells]` (a scalar metric is `[n_examples]`)
into a `Summary` that a result object can print, serialise and store.

Algorithm:

1. Bootstrap confidence interval of the mean per cell (BCa by default), resampling examples, or
   whole groups when `groups` is given (see `bootstrap.py`).
2. Two-sided sign-flip permutation test of each cell's mean against `null`, with the same unit
   of resampling (see `permutation.py`).
3. Correct the p-values across the tested cells (Holm by default, or Benjamini-Hochberg);
   `significant` marks cells whose adjusted p-value is at most `alpha`. `n_tests` says how many
   hypotheses the family held, so a reader can judge the correction.
4. Exploratory mode (the default) flags `weak_evidence`: cells with p <= alpha but p > 0.001.
   In exploratory work the space of hypotheses is vast, and findings reported at
   .005 < p < .05 replicate far less often than those at p <= .005 (Benjamini et al. 2018;
   Gordon et al. 2021), so a sweep needs a stricter bar than 0.05 before anyone builds on it.
5. Cohen's d per cell against `null`, the minimum effect n examples detect with 80% power at the
   per-cell level the correction demands (alpha / n_tests, Bonferroni as a conservative stand-in
   for Holm; 0.001 at most in exploratory mode), and notes when the design cannot succeed: too
   few resamples or sign patterns for any p-value to pass, or too few examples for
   `effect_of_interest`.

References: D. J. Benjamin et al., "Redefine statistical significance", Nat. Hum. Behav. 2 (2018)
6-10; B. Gordon et al., "Predicting replicability", Proc. R. Soc. B 288 (2021); and the
references of the modules used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np

from interplab.stats._validate import (
    StatsInputError,
    as_cell_block,
    check_alpha,
    check_choice,
    check_confidence,
    check_n_resamples,
    check_seed,
    paired_differences,
)
from interplab.stats.bootstrap import BOOTSTRAP_METHODS, BootstrapMethod, bootstrap_ci
from interplab.stats.effect_size import cohens_d
from interplab.stats.multiple import correct_pvalues
from interplab.stats.permutation import sign_flip_test
from interplab.stats.power import min_detectable_effect, underpowered_warning

SummaryCorrection = Literal["holm", "bh", "none"]
SUMMARY_CORRECTIONS: tuple[str, ...] = get_args(SummaryCorrection)

EXPLORATORY_THRESHOLD = 0.001
"""p-values above this count as weak evidence in exploratory analyses."""

_POWER = 0.8
_CELL_FIELDS = (
    "mean",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
    "weak_evidence",
    "effect_size",
)
_METHOD_LABELS = {"bca": "BCa", "percentile": "percentile"}
_CORRECTION_LABELS = {"holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no correction"}


@dataclass(frozen=True)
class Summary:
    """Per-cell evidence for a metric: arrays shaped like the cells (0-d for a scalar metric).

    Undefined cells (NaN for every example) are NaN in the float arrays and False in the masks,
    and are not counted in `n_tests`.
    """

    mean: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    p_adjusted: np.ndarray
    significant: np.ndarray
    weak_evidence: np.ndarray
    effect_size: np.ndarray
    n: int
    n_groups: int | None
    n_tests: int
    paired: bool
    confidence: float
    method: BootstrapMethod
    null: float
    correction: SummaryCorrection
    alpha: float
    exploratory: bool
    n_resamples: int
    exact_test: bool
    n_permutations: int
    seed: int
    min_detectable_effect: float
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        check_choice(self.method, "method", BOOTSTRAP_METHODS)
        check_choice(self.correction, "correction", SUMMARY_CORRECTIONS)
        check_confidence(self.confidence)
        check_alpha(self.alpha)
        shapes = {name: getattr(self, name).shape for name in _CELL_FIELDS}
        if len(set(shapes.values())) != 1:
            raise StatsInputError(
                f"per-cell arrays of a Summary must share one shape, got {shapes}."
            )

    @property
    def cell_shape(self) -> tuple[int, ...]:
        """The grid of cells; `()` for a scalar metric."""
        return tuple(self.mean.shape)

    def to_dict(self) -> dict[str, object]:
        """Return a JSON-safe dict: arrays as nested lists, NaN as None."""
        arrays = {name: _json_safe(getattr(self, name)) for name in _CELL_FIELDS}
        scalars = {
            "cell_shape": list(self.cell_shape),
            "n": self.n,
            "n_groups": self.n_groups,
            "n_tests": self.n_tests,
            "paired": self.paired,
            "confidence": self.confidence,
            "method": self.method,
            "null": self.null,
            "correction": self.correction,
            "alpha": self.alpha,
            "exploratory": self.exploratory,
            "exploratory_threshold": EXPLORATORY_THRESHOLD,
            "n_resamples": self.n_resamples,
            "exact_test": self.exact_test,
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "min_detectable_effect": _json_safe(np.asarray(self.min_detectable_effect)),
            "notes": list(self.notes),
        }
        return {**arrays, **scalars}

    def describe(self, names: Callable[[tuple[int, ...]], str] | None = None) -> str:
        """Return one or two plain-English sentences a write-up can quote; ``names`` turns a cell
        index into its name (a Site such as ``L29.resid_pre``) where the caller knows it."""
        quantity = "mean difference" if self.paired else "mean"
        if self.n == 1:
            return self._single_description(quantity, names)
        sample = f"n={self.n}" + (f" in {self.n_groups} groups" if self.n_groups else "")
        ci_label = f"{_percent(self.confidence)} {_METHOD_LABELS[self.method]} CI"
        test = (
            f"sign-flip, exact over {self.n_permutations:,} sign patterns"
            if self.exact_test
            else f"sign-flip, {self.n_permutations:,} resamples"
        )
        if self.cell_shape == ():
            verdict = self._scalar_verdict()
            text = (
                f"{quantity} {_number(self.mean)} ({ci_label} {_number(self.ci_low)} to "
                f"{_number(self.ci_high)}, {sample}), p={_p(self.p_value)} vs "
                f"{self.null:g} ({test}), Cohen's d {_number(self.effect_size)}; {verdict}."
            )
        else:
            text = self._grid_description(quantity, sample, ci_label, test, names)
        return " ".join([text, *self.notes])

    def _single_description(
        self, quantity: str, names: Callable[[tuple[int, ...]], str] | None
    ) -> str:
        if self.cell_shape == ():
            return f"{quantity} {_number(self.mean)} (n=1, no CI or test). {' '.join(self.notes)}"
        magnitude = np.where(np.isnan(self.mean), -np.inf, np.abs(self.mean))
        top = tuple(int(i) for i in np.unravel_index(int(np.argmax(magnitude)), self.cell_shape))
        where = names(top) if names is not None else f"cell {top}"
        return (
            f"{int(np.prod(self.cell_shape))} cells, n=1: largest |{quantity}| "
            f"{_number(self.mean[top])} at {where} (no CI or test). {' '.join(self.notes)}"
        )

    def _scalar_verdict(self) -> str:
        if not bool(self.significant):
            return f"not significant at {self.alpha:g}"
        if bool(self.weak_evidence):
            return (
                f"significant at {self.alpha:g} but weak evidence for an exploratory "
                f"analysis (p > {EXPLORATORY_THRESHOLD:g})"
            )
        return f"significant at {self.alpha:g}"

    def _grid_description(
        self,
        quantity: str,
        sample: str,
        ci_label: str,
        test: str,
        names: Callable[[tuple[int, ...]], str] | None = None,
    ) -> str:
        n_cells = int(np.prod(self.cell_shape))
        magnitude = np.where(np.isnan(self.mean), -np.inf, np.abs(self.mean))
        top = np.unravel_index(int(np.argmax(magnitude)), self.cell_shape)
        where = tuple(int(i) for i in top)
        grid = " x ".join(str(s) for s in self.cell_shape)
        undefined = n_cells - self.n_tests
        untested = f", {undefined} undefined (all-NaN) cells not tested" if undefined else ""
        survivors = int(self.significant.sum())
        weak = int((self.significant & self.weak_evidence).sum())
        weak_text = (
            f" ({weak} of them weak evidence, p > {EXPLORATORY_THRESHOLD:g})" if weak else ""
        )
        if self.correction == "none":
            family = f"{survivors} of {self.n_tests} cells have p <= {self.alpha:g} uncorrected"
        else:
            family = (
                f"{survivors} of {self.n_tests} cells survive "
                f"{_CORRECTION_LABELS[self.correction]} at {self.alpha:g}"
            )
        return (
            f"{n_cells} cells ({grid}), {sample} each{untested}: largest |{quantity}| "
            f"{_number(self.mean[top])} at {names(where) if names else f'cell {where}'} ({ci_label} {_number(self.ci_low[top])} "
            f"to {_number(self.ci_high[top])}), p={_p(self.p_value[top])} vs {self.null:g} "
            f"({test}); {family}{weak_text}; {self.n_tests} hypotheses tested."
        )


def _single_example(
    differences: np.ndarray,
    paired: bool,
    null: float,
    confidence: float,
    method: BootstrapMethod,
    correction: SummaryCorrection,
    alpha: float,
    exploratory: bool,
    n_resamples: int,
    seed: int,
) -> Summary:
    """Returns the summary of one example: its value, and no interval or test (n=1 has none)."""
    value = np.asarray(differences, dtype=np.float64)[0]
    nan = np.full(value.shape, np.nan)
    false = np.zeros(value.shape, dtype=bool)
    return Summary(
        mean=value,
        ci_low=nan,
        ci_high=nan.copy(),
        p_value=nan.copy(),
        p_adjusted=nan.copy(),
        significant=false,
        weak_evidence=false.copy(),
        effect_size=nan.copy(),
        n=1,
        n_groups=None,
        n_tests=0,
        paired=paired,
        confidence=float(confidence),
        method=method,
        null=float(null),
        correction=correction,
        alpha=float(alpha),
        exploratory=bool(exploratory),
        n_resamples=int(n_resamples),
        exact_test=False,
        n_permutations=0,
        seed=int(seed),
        min_detectable_effect=float("nan"),
        notes=(
            "n=1: one example has no confidence interval and no test; these are its values. "
            "Run more examples (at least a dozen) before drawing a conclusion.",
        ),
    )


def summarize(
    values: np.ndarray,
    *,
    baseline: np.ndarray | None = None,
    null: float = 0.0,
    confidence: float = 0.95,
    method: BootstrapMethod = "bca",
    n_resamples: int = 10_000,
    seed: int = 0,
    groups: np.ndarray | None = None,
    correction: SummaryCorrection = "holm",
    alpha: float = 0.05,
    exploratory: bool = True,
    effect_of_interest: float | None = None,
) -> Summary:
    """Return the mean, CI, p-value and corrected significance of every cell of `values`.

    `values` is `[n_examples, *cells]`; with `baseline` (same shape) the summary is of the paired
    differences `values - baseline`. `groups` gives one label per example (e.g. the prompt
    template) to resample and flip whole groups. `effect_of_interest` (a Cohen's d) adds a note
    when n is too small to detect it.
    """
    check_choice(method, "method", BOOTSTRAP_METHODS)
    check_choice(correction, "correction", SUMMARY_CORRECTIONS)
    check_confidence(confidence)
    check_alpha(alpha)
    check_n_resamples(n_resamples)
    check_seed(seed)
    differences = paired_differences(values, baseline)
    block = as_cell_block(differences, min_examples=1)
    if block.n == 1:
        return _single_example(
            differences,
            baseline is not None,
            null,
            confidence,
            method,
            correction,
            alpha,
            exploratory,
            n_resamples,
            seed,
        )

    interval = bootstrap_ci(
        differences,
        confidence=confidence,
        method=method,
        n_resamples=n_resamples,
        seed=seed,
        groups=groups,
    )
    test = sign_flip_test(differences, null=null, n_resamples=n_resamples, seed=seed, groups=groups)
    p_value = test.p_value
    tested = ~np.isnan(p_value)
    if correction == "none":
        p_adjusted = p_value.copy()
        significant = tested & (np.nan_to_num(p_value, nan=1.0) <= alpha)
        n_tests = int(tested.sum())
    else:
        family = correct_pvalues(p_value, method=correction, alpha=alpha)
        p_adjusted, significant, n_tests = family.p_adjusted, family.reject, family.n_tests
    passes = tested & (np.nan_to_num(p_value, nan=1.0) <= alpha)
    weak = passes & (p_value > EXPLORATORY_THRESHOLD) if exploratory else np.zeros_like(passes)

    units = block.n if interval.n_groups is None else interval.n_groups
    per_test_alpha = alpha / n_tests if correction != "none" else alpha
    if exploratory:
        per_test_alpha = min(per_test_alpha, EXPLORATORY_THRESHOLD)
    detectable = min_detectable_effect(units, alpha=per_test_alpha, power=_POWER)
    notes = _design_notes(
        smallest_p=_smallest_p(test.exact, test.n_resamples),
        exact=test.exact,
        units=units,
        grouped=interval.n_groups is not None,
        n_tests=n_tests,
        correction=correction,
        alpha=alpha,
        exploratory=exploratory,
    )
    if effect_of_interest is not None:
        warning = underpowered_warning(
            units, effect_of_interest, alpha=per_test_alpha, power=_POWER
        )
        if warning is not None:
            notes.append(f"{warning[0].upper()}{warning[1:]}")

    return Summary(
        mean=interval.estimate,
        ci_low=interval.low,
        ci_high=interval.high,
        p_value=p_value,
        p_adjusted=p_adjusted,
        significant=significant,
        weak_evidence=weak,
        effect_size=cohens_d(differences, null=null),
        n=block.n,
        n_groups=interval.n_groups,
        n_tests=n_tests,
        paired=baseline is not None,
        confidence=float(confidence),
        method=method,
        null=float(null),
        correction=correction,
        alpha=float(alpha),
        exploratory=bool(exploratory),
        n_resamples=int(n_resamples),
        exact_test=test.exact,
        n_permutations=test.n_resamples,
        seed=int(seed),
        min_detectable_effect=detectable,
        notes=tuple(notes),
    )


def _smallest_p(exact: bool, count: int) -> float:
    """Return the smallest two-sided p-value the sign-flip test can report.

    Exact enumeration always finds the observed pattern and its mirror image; a random sample
    always counts the observed statistic itself (the +1).
    """
    return min(1.0, 2.0 / count if exact else 1.0 / (1.0 + count))


def _design_notes(
    *,
    smallest_p: float,
    exact: bool,
    units: int,
    grouped: bool,
    n_tests: int,
    correction: str,
    alpha: float,
    exploratory: bool,
) -> list[str]:
    """Return warnings about designs whose p-values cannot reach the bar they are held to."""
    notes: list[str] = []
    unit_name = "groups" if grouped else "examples"
    # Holm's first step compares the smallest p with alpha / m; BH and no correction, with alpha.
    bar = alpha / n_tests if correction == "holm" else alpha
    remedy = (
        f"add {unit_name} (with {units} there are only {2**units:,} sign patterns)"
        if exact
        else f"use n_resamples >= {math.ceil(1.0 / bar):,}"
    )
    if smallest_p > bar:
        notes.append(
            f"No cell can be significant: the smallest attainable p-value is {_p(smallest_p)}, "
            f"above the {_CORRECTION_LABELS[correction]} threshold {_p(bar)}; {remedy}."
        )
    elif exploratory and smallest_p > EXPLORATORY_THRESHOLD:
        notes.append(
            f"The smallest attainable p-value is {_p(smallest_p)}, above the exploratory bar "
            f"{EXPLORATORY_THRESHOLD:g}, so every passing cell counts as weak evidence."
        )
    return notes


def _json_safe(array: np.ndarray) -> object:
    """Return `array` as nested lists (a bare float or bool when 0-d) with None for NaN."""
    if array.dtype == bool:
        return array.tolist()
    as_list = array.astype(np.float64).tolist()
    return _replace_nan(as_list)


def _replace_nan(value: object) -> object:
    if isinstance(value, list):
        return [_replace_nan(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: float | np.ndarray) -> str:
    number = float(value)
    if math.isnan(number):
        return "nan"
    if math.isinf(number):
        return "infinite (no spread)" if number > 0 else "-infinite (no spread)"
    if number == 0:
        return "0"
    # Three significant figures, trailing zeros kept, so interval ends line up (1.50, not 1.5).
    return f"{number:#.3g}"


def _p(value: float | np.ndarray) -> str:
    return f"{float(value):.2g}"


def _percent(fraction: float) -> str:
    return f"{fraction * 100:g}%"
