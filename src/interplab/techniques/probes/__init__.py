"""Linear probes with a control task: configs, folds, fitting, and the cross-validated probe.

    from interplab.techniques.probes import linear_probe
    result = linear_probe(model, truth_dataset(), layers=[6, 12, 18])
    viz.save(result, "probe.png")

See `interplab.techniques.probes.probe` for the algorithm.
"""

from interplab.results.directions import ProbeDirections
from interplab.results.probes import (
    PROBE_KINDS,
    ProbeConfig,
    ProbeError,
    ProbeKind,
    ProbeLayer,
    ProbeResult,
)
from interplab.techniques.probes.fit import fit_probes
from interplab.techniques.probes.folds import drop_shared_groups, stratified_folds, subsample
from interplab.techniques.probes.probe import (
    LayerFits,
    fit_layers,
    linear_probe,
    probe_activations,
    probe_result,
    probe_transfer,
    transfer_activations,
)

__all__ = [
    "PROBE_KINDS",
    "LayerFits",
    "ProbeConfig",
    "ProbeDirections",
    "ProbeError",
    "ProbeKind",
    "ProbeLayer",
    "ProbeResult",
    "drop_shared_groups",
    "fit_layers",
    "fit_probes",
    "linear_probe",
    "probe_activations",
    "probe_result",
    "probe_transfer",
    "stratified_folds",
    "subsample",
    "transfer_activations",
]
