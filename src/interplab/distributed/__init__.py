"""Scale-out: the same sweeps as tasks on a backend (this process, or a Ray cluster).

    backend.py    ModelSpec (how a worker loads the model), LocalBackend, RayBackend
    tasks.py      run_tasks: a sweep's tasks on a backend, each finished task checkpointed
    patching.py   activation patching cut into tasks of cells, merged bit for bit
    training.py   a grid of dictionaries, one training run per task

Nothing below this package imports it; the techniques expose the split and merge points it needs
(`interplab.techniques.patching.cells`). Ray is optional: ``pip install 'interplab[ray]'``.
"""

from interplab.distributed.backend import (
    Backend,
    DistributedError,
    LocalBackend,
    ModelSpec,
    RayBackend,
    make_backend,
)
from interplab.distributed.patching import activation_patching
from interplab.distributed.tasks import TaskRun, run_tasks
from interplab.distributed.training import GridRun, train_grid

__all__ = [
    "Backend",
    "DistributedError",
    "GridRun",
    "LocalBackend",
    "ModelSpec",
    "RayBackend",
    "TaskRun",
    "activation_patching",
    "make_backend",
    "run_tasks",
    "train_grid",
]
