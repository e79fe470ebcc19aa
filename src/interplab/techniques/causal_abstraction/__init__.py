"""Causal abstraction: interchange interventions and distributed alignment search (DAS).

    from interplab.techniques.causal_abstraction import (
        counterfactual_dataset, das, interchange, ioi_position)
    data = counterfactual_dataset(model, ioi_position(), ["io_first"], n=256)
    result = das(model, data, "L14.resid_post", k=1)      # held-out IIA vs random and control
    result.subspace.to_json("io_first.json")              # steer, ablate or patch with it

See `causal_model` (writing a high-level model), `interchange` and `das` for the algorithms.
"""

from interplab.results.causal_abstraction import (
    CONDITIONS,
    AbstractionError,
    DASConfig,
    DASResult,
    IIARow,
    InterchangeConfig,
    InterchangeResult,
    Subspace,
    principal_cosines,
)
from interplab.techniques.causal_abstraction.adapters import (
    subspace_ablation_interventions,
    subspace_direction,
    subspace_from_basis,
    subspace_patch,
    subspace_steering_vector,
)
from interplab.techniques.causal_abstraction.causal_model import (
    AbstractionTask,
    CausalModel,
    load_task,
)
from interplab.techniques.causal_abstraction.das import das
from interplab.techniques.causal_abstraction.dataset import (
    CounterfactualDataset,
    counterfactual_dataset,
)
from interplab.techniques.causal_abstraction.interchange import interchange
from interplab.techniques.causal_abstraction.rotation import random_basis
from interplab.techniques.causal_abstraction.tasks import ioi_position

__all__ = [
    "CONDITIONS",
    "AbstractionError",
    "AbstractionTask",
    "CausalModel",
    "CounterfactualDataset",
    "DASConfig",
    "DASResult",
    "IIARow",
    "InterchangeConfig",
    "InterchangeResult",
    "Subspace",
    "counterfactual_dataset",
    "das",
    "interchange",
    "ioi_position",
    "load_task",
    "principal_cosines",
    "random_basis",
    "subspace_ablation_interventions",
    "subspace_direction",
    "subspace_from_basis",
    "subspace_patch",
    "subspace_steering_vector",
]
