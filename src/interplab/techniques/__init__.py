"""Techniques: pure functions over a Model that return result objects (one file each)."""

from interplab.techniques._grid import PatchingError
from interplab.techniques.activations import Activations, gather_activations
from interplab.techniques.attribution import (
    AttributionResult,
    Comparison,
    attribution_patching,
    compare_with_activation_patching,
)
from interplab.techniques.controls import (
    AblationComparison,
    ControlComparison,
    compare_ablations,
    control_pairs,
)
from interplab.techniques.directions import (
    AblationConfig,
    AblationResult,
    ProbeDirections,
    ablate_direction,
    ablation_interventions,
    compare_ablation,
    direction_components,
    load_directions,
    norm_matched_random_direction,
    norm_matched_random_directions,
    orthogonalized_model,
)
from interplab.techniques.dla import DLAResult, direct_logit_attribution
from interplab.techniques.lens import LensResult, logit_lens
from interplab.techniques.metrics import Metric, MetricError
from interplab.techniques.patching import PatchingResult, activation_patching
from interplab.techniques.path_patching import PathPatchingResult, path_patching
from interplab.techniques.probes import (
    ProbeConfig,
    ProbeResult,
    fit_probes,
    linear_probe,
    probe_activations,
    probe_transfer,
    stratified_folds,
    subsample,
    transfer_activations,
)
from interplab.techniques.steering import (
    HAPPINESS,
    Behaviour,
    SteerConfig,
    SteeringResult,
    SteeringVector,
    SteeringVectorConfig,
    happiness_score,
    happiness_vector,
    steer,
    steering_interventions,
    steering_vector,
)
from interplab.techniques.top_examples import (
    Samples,
    TopExamplesConfig,
    TopExamplesResult,
    top_examples,
)
from interplab.techniques.tracing import (
    TracingError,
    TracingResult,
    causal_tracing,
    factual_subjects,
)

__all__ = [
    "HAPPINESS",
    "AblationComparison",
    "AblationConfig",
    "AblationResult",
    "Activations",
    "AttributionResult",
    "Behaviour",
    "Comparison",
    "ControlComparison",
    "DLAResult",
    "LensResult",
    "Metric",
    "MetricError",
    "PatchingError",
    "PatchingResult",
    "PathPatchingResult",
    "ProbeConfig",
    "ProbeDirections",
    "ProbeResult",
    "Samples",
    "SteerConfig",
    "SteeringResult",
    "SteeringVector",
    "SteeringVectorConfig",
    "TopExamplesConfig",
    "TopExamplesResult",
    "TracingError",
    "TracingResult",
    "ablate_direction",
    "ablation_interventions",
    "activation_patching",
    "attribution_patching",
    "causal_tracing",
    "compare_ablation",
    "compare_ablations",
    "compare_with_activation_patching",
    "control_pairs",
    "direct_logit_attribution",
    "direction_components",
    "factual_subjects",
    "fit_probes",
    "gather_activations",
    "happiness_score",
    "happiness_vector",
    "linear_probe",
    "load_directions",
    "logit_lens",
    "norm_matched_random_direction",
    "norm_matched_random_directions",
    "orthogonalized_model",
    "path_patching",
    "probe_activations",
    "probe_transfer",
    "steer",
    "steering_interventions",
    "steering_vector",
    "stratified_folds",
    "subsample",
    "top_examples",
    "transfer_activations",
]
