"""Power helpers: monotonicity, round trips, the warning text, errors."""

from __future__ import annotations

import pytest

from interplab.stats import min_detectable_effect, required_n, t_test_power, underpowered_warning


def test_power_grows_with_n_and_effect() -> None:
    assert t_test_power(0.3, 20) < t_test_power(0.3, 80) < t_test_power(0.6, 80)
    assert t_test_power(0.0, 30) == pytest.approx(0.05, rel=1e-6)


def test_required_n_and_mde_are_consistent() -> None:
    n = required_n(0.5)
    assert t_test_power(0.5, n) >= 0.8 > t_test_power(0.5, n - 1)
    assert min_detectable_effect(n) <= 0.5 < min_detectable_effect(n - 1)


def test_less_alternative_reads_effects_in_the_negative_direction() -> None:
    assert required_n(0.5, alternative="less") == required_n(0.5, alternative="greater")
    assert t_test_power(-0.5, 30, alternative="less") == pytest.approx(
        t_test_power(0.5, 30, alternative="greater")
    )


def test_warning_names_the_power_and_the_needed_n() -> None:
    text = underpowered_warning(20, 0.3)
    assert text is not None and "n=20" in text and "90 examples" in text
    assert underpowered_warning(500, 0.3) is None


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: required_n(0.0), "nonzero"),
        (lambda: min_detectable_effect(1), "at least 2"),
        (lambda: min_detectable_effect(10, power=0.01), "strictly between alpha"),
        (lambda: t_test_power(0.5, 10, alternative="both"), "valid choices"),
    ],
)
def test_invalid_input_says_what_was_wrong(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
