"""The patching family: which activations carry a behaviour, measured by swapping them.

    activation.py   activation patching: the exact effect of every cell (loop, packed, fast)
    attribution.py  attribution patching: the first-order estimate from one backward, and its
                    comparison with the exact effects
    atp.py          AtP*: attribution patching with the QK fix and GradDrop (heads, q/k/v,
                    neurons and residual cells)
    verified.py     verified patching: AtP* ranks, the top cells and a random sample run exactly,
                    with a bound on the rest (``activation_patching(method="verified")``)
    path.py         path patching: senders to the logits or to heads' q/k/v, through those paths
    controls.py     the same sweep on unrelated prompts (run by default)
    ablations.py    zero, mean and resample ablation side by side
    grid.py         inputs (aligned token pairs), cells and grid shapes
    fast.py         the exact fast runner on partial forwards (`Model.partial`)
    cells.py        an exact sweep's split and merge points (`interplab.distributed`)
    hooks.py        the hook paths: the one-cell reference loop and the packed sweep
    path_sweep.py   path patching's two sweeps
    config.py       each technique's frozen config

Results are plain data in `interplab.results.patching` (drawn by `interplab.viz.patching`).
"""

from interplab.results.patching import (
    AttributionResult,
    Cell,
    ControlComparison,
    Example,
    GridResult,
    PatchingError,
    PatchingResult,
    PathPatchingResult,
    TopCell,
)
from interplab.results.patching_compare import AblationComparison, Comparison, Miss
from interplab.results.patching_verified import AtPResult, VerifiedPatchingResult
from interplab.techniques.patching.ablations import compare_ablations
from interplab.techniques.patching.activation import FAST_TOLERANCE, activation_patching
from interplab.techniques.patching.atp import AtPConfig, atp_star
from interplab.techniques.patching.attribution import (
    attribution_patching,
    compare_with_activation_patching,
)
from interplab.techniques.patching.config import (
    AttributionConfig,
    PatchingConfig,
    PathPatchingConfig,
)
from interplab.techniques.patching.controls import compare_control, control_pairs, gap
from interplab.techniques.patching.features import FeaturePatchingConfig, feature_patching
from interplab.techniques.patching.grid import PairsLike, TokenPairs
from interplab.techniques.patching.path import SENDER_SETS, path_patching
from interplab.techniques.patching.verified import VerifiedConfig, verified_patching

__all__ = [
    "FAST_TOLERANCE",
    "SENDER_SETS",
    "AblationComparison",
    "AtPConfig",
    "AtPResult",
    "AttributionConfig",
    "AttributionResult",
    "Cell",
    "Comparison",
    "ControlComparison",
    "Example",
    "FeaturePatchingConfig",
    "GridResult",
    "Miss",
    "PairsLike",
    "PatchingConfig",
    "PatchingError",
    "PatchingResult",
    "PathPatchingConfig",
    "PathPatchingResult",
    "TokenPairs",
    "TopCell",
    "VerifiedConfig",
    "VerifiedPatchingResult",
    "activation_patching",
    "atp_star",
    "attribution_patching",
    "compare_ablations",
    "compare_control",
    "compare_with_activation_patching",
    "control_pairs",
    "feature_patching",
    "gap",
    "path_patching",
    "verified_patching",
]
