"""Power of a one-sample / paired t-test, the minimum detectable effect, and the n it needs.

Effect sizes are standardised (Cohen's d: the mean effect divided by the standard deviation of
the per-example values, or of the per-example differences in a paired design). The sign-flip
test used by `summarize` has, for roughly normal data, about the power of this t-test, so these
numbers tell a researcher before a run whether it can find what it is looking for.

Algorithm:

1. Under an effect d with n examples, the t statistic follows a noncentral t distribution with
   df = n - 1 and noncentrality d sqrt(n) (Cohen 1988, ch. 2).
2. Power is the probability that it lands beyond the critical value t_{1 - alpha/2, df}
   (two-sided: both tails) or t_{1 - alpha, df} (one-sided), under that noncentral t.
3. The minimum detectable effect for n solves power(d) = target for d > 0 (Brent's method on a
   bracket grown until it holds the root); the required n is the smallest integer n >= 2 whose
   power reaches the target (exponential then binary search, power being increasing in n).

Reference: J. Cohen, "Statistical Power Analysis for the Behavioral Sciences", 2nd ed. (1988).
"""

from __future__ import annotations

import math
from typing import Literal, cast, get_args

from scipy.optimize import brentq
from scipy.stats import nct
from scipy.stats import t as t_dist

from interplab.stats._validate import StatsInputError, check_alpha, check_choice

PowerAlternative = Literal["two-sided", "greater", "less"]
POWER_ALTERNATIVES: tuple[str, ...] = get_args(PowerAlternative)

# Beyond this many examples the question is moot for interpretability experiments; stopping here
# keeps the search finite when the effect is vanishingly small.
_MAX_N = 10**9


def t_test_power(
    effect_size: float,
    n: int,
    *,
    alpha: float = 0.05,
    alternative: PowerAlternative = "two-sided",
) -> float:
    """Return the probability that a one-sample/paired t-test on n examples detects `effect_size`.

    `effect_size` is signed: "greater" detects positive effects and "less" negative ones.
    """
    check_alpha(alpha)
    check_choice(alternative, "alternative", POWER_ALTERNATIVES)
    _check_n(n)
    df = n - 1
    noncentrality = float(effect_size) * math.sqrt(n)
    if alternative == "two-sided":
        critical = float(t_dist.ppf(1.0 - alpha / 2.0, df))
        return _upper_tail(critical, df, noncentrality) + _upper_tail(critical, df, -noncentrality)
    critical = float(t_dist.ppf(1.0 - alpha, df))
    if alternative == "greater":
        return _upper_tail(critical, df, noncentrality)
    return _upper_tail(critical, df, -noncentrality)


def min_detectable_effect(
    n: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: PowerAlternative = "two-sided",
) -> float:
    """Return the smallest |Cohen's d| that n examples detect with the given power (d > 0).

    For alternative="less" the effect is read in the negative direction: the answer is the
    magnitude of the smallest detectable negative effect.
    """
    _check_target(alpha, power)
    _check_n(n)
    sign = -1.0 if alternative == "less" else 1.0

    def shortfall(d: float) -> float:
        return t_test_power(sign * d, n, alpha=alpha, alternative=alternative) - power

    high = 1.0
    while shortfall(high) < 0.0:
        high *= 2.0
    return float(cast(float, brentq(shortfall, 0.0, high, xtol=1e-12)))


def required_n(
    effect_size: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: PowerAlternative = "two-sided",
) -> int:
    """Return the fewest examples (at least 2) for which a t-test detects |effect_size|."""
    _check_target(alpha, power)
    if not math.isfinite(effect_size) or effect_size == 0:
        raise StatsInputError(
            f"effect_size must be a finite nonzero Cohen's d (e.g. 0.5), got {effect_size!r}; "
            "no sample size detects a zero effect."
        )
    magnitude = abs(float(effect_size)) * (-1.0 if alternative == "less" else 1.0)

    def enough(n: int) -> bool:
        return t_test_power(magnitude, n, alpha=alpha, alternative=alternative) >= power

    low, high = 2, 2
    while not enough(high):
        if high >= _MAX_N:
            raise StatsInputError(
                f"effect_size {effect_size!r} needs more than {_MAX_N:,} examples for "
                f"{power:.0%} power at alpha={alpha:g}."
            )
        low, high = high, min(high * 2, _MAX_N)
    while low < high:
        middle = (low + high) // 2
        if enough(middle):
            high = middle
        else:
            low = middle + 1
    return high


def underpowered_warning(
    n: int,
    effect_size: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: PowerAlternative = "two-sided",
) -> str | None:
    """Return a plain-English warning when n examples are too few to detect `effect_size`, else None."""
    _check_target(alpha, power)
    magnitude = abs(float(effect_size))
    direction = -1.0 if alternative == "less" else 1.0
    achieved = t_test_power(direction * magnitude, n, alpha=alpha, alternative=alternative)
    if achieved >= power:
        return None
    needed = required_n(magnitude, alpha=alpha, power=power, alternative=alternative)
    detectable = min_detectable_effect(n, alpha=alpha, power=power, alternative=alternative)
    return (
        f"underpowered: n={n} gives {achieved:.0%} power to detect d={magnitude:.2g} at "
        f"alpha={alpha:.2g} ({alternative}); about {needed:,} examples are needed for "
        f"{power:.0%} power, and n={n} reliably detects only d >= {detectable:.2g}."
    )


def _upper_tail(critical: float, df: int, noncentrality: float) -> float:
    """Return P(T > critical) for a noncentral t; P(T < -c; nc) is P(T > c; -nc) by symmetry."""
    tail = float(nct.sf(critical, df, noncentrality))
    # scipy's noncentral t returns NaN far in a tail (probabilities below ~1e-30); that tail
    # then contributes nothing a power calculation can see.
    return 0.0 if math.isnan(tail) else tail


def _check_n(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise StatsInputError(f"n must be an int of at least 2 examples for a t-test, got {n!r}.")


def _check_target(alpha: float, power: float) -> None:
    check_alpha(alpha)
    if not (isinstance(power, int | float) and alpha < float(power) < 1.0):
        raise StatsInputError(
            f"power must lie strictly between alpha ({alpha:g}) and 1 (e.g. 0.8), got {power!r}."
        )
