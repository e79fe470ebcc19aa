"""Statistics for interpretability results: intervals, tests, effect sizes, corrections, power.

Pure numpy/scipy (no torch), so the dashboard can summarise stored results. Every function takes
per-example values shaped `[n_examples, *cells]` and is vectorised over the cells of a sweep.

    from interplab.stats import summarize
    summary = summarize(per_example_metric)          # [n] or [n, layers, positions]
    print(summary.describe())
"""

from interplab.stats.auroc import AurocResult, auroc, auroc_ci
from interplab.stats.bootstrap import (
    BOOTSTRAP_METHODS,
    BootstrapMethod,
    BootstrapResult,
    bootstrap_ci,
)
from interplab.stats.effect_size import (
    DESIGNS,
    Design,
    cliffs_delta,
    cohens_d,
    hedges_g,
    rank_biserial,
)
from interplab.stats.multiple import (
    CORRECTION_METHODS,
    Correction,
    CorrectionMethod,
    benjamini_hochberg,
    correct_pvalues,
    holm,
)
from interplab.stats.permutation import (
    ALTERNATIVES,
    Alternative,
    PermutationResult,
    sign_flip_test,
    two_sample_permutation_test,
)
from interplab.stats.power import (
    PowerAlternative,
    min_detectable_effect,
    required_n,
    t_test_power,
    underpowered_warning,
)
from interplab.stats.proportion import (
    PROPORTION_METHODS,
    ProportionCI,
    ProportionMethod,
    binary_outcomes_ci,
    clopper_pearson,
    proportion_ci,
)
from interplab.stats.summary import (
    EXPLORATORY_THRESHOLD,
    SUMMARY_CORRECTIONS,
    Summary,
    SummaryCorrection,
    summarize,
)

__all__ = [
    "ALTERNATIVES",
    "BOOTSTRAP_METHODS",
    "CORRECTION_METHODS",
    "DESIGNS",
    "EXPLORATORY_THRESHOLD",
    "PROPORTION_METHODS",
    "SUMMARY_CORRECTIONS",
    "Alternative",
    "AurocResult",
    "BootstrapMethod",
    "BootstrapResult",
    "Correction",
    "CorrectionMethod",
    "Design",
    "PermutationResult",
    "PowerAlternative",
    "ProportionCI",
    "ProportionMethod",
    "Summary",
    "SummaryCorrection",
    "auroc",
    "auroc_ci",
    "benjamini_hochberg",
    "binary_outcomes_ci",
    "bootstrap_ci",
    "cliffs_delta",
    "clopper_pearson",
    "cohens_d",
    "correct_pvalues",
    "hedges_g",
    "holm",
    "min_detectable_effect",
    "proportion_ci",
    "rank_biserial",
    "required_n",
    "sign_flip_test",
    "summarize",
    "t_test_power",
    "two_sample_permutation_test",
    "underpowered_warning",
]
