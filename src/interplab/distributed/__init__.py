"""Scale-out: the same sweeps as tasks on a backend (this process, or a Ray cluster).

    backend.py        ModelSpec (how a worker loads the model), LocalBackend, RayBackend
    tasks.py          run_tasks: a sweep's tasks on a backend, each finished task checkpointed
    patching.py       activation patching cut into tasks of cells, merged bit for bit
    path_patching.py  path patching cut along the local sweep's chunks of (example, sender) rows
    tracing.py        causal tracing cut into (prompt, position) columns; noise drawn once
    probes.py         linear probes per (dataset, layers)
    steering.py       steering coefficient sweeps, one or several vectors
    top_examples.py   top examples over contiguous corpus shards, states merged in corpus order
    harvest.py        activation harvesting over blocks of windows, the same shard folder
    training.py       a grid of dictionaries, one training run per task

Nothing below this package imports it; the techniques expose the split and merge points it needs
(`interplab.techniques.patching.cells`, `techniques.trace_cells`, `patching.path_sweep`,
`probes.fit_layers`, `top_examples.state.merge_states`, `dictionaries.shards.write_block`).
Ray is optional: ``pip install 'interplab[ray]'``.
"""

from interplab.distributed.backend import (
    ECHO,
    Backend,
    DistributedError,
    LocalBackend,
    ModelSpec,
    RayBackend,
    make_backend,
)
from interplab.distributed.harvest import harvest
from interplab.distributed.patching import activation_patching
from interplab.distributed.path_patching import path_patching
from interplab.distributed.probes import linear_probes
from interplab.distributed.steering import steer, steer_vectors
from interplab.distributed.tasks import TaskRun, run_tasks
from interplab.distributed.top_examples import top_examples
from interplab.distributed.tracing import causal_tracing
from interplab.distributed.training import GridRun, train_grid

__all__ = [
    "ECHO",
    "Backend",
    "DistributedError",
    "GridRun",
    "LocalBackend",
    "ModelSpec",
    "RayBackend",
    "TaskRun",
    "activation_patching",
    "causal_tracing",
    "harvest",
    "linear_probes",
    "make_backend",
    "path_patching",
    "run_tasks",
    "steer",
    "steer_vectors",
    "top_examples",
    "train_grid",
]
