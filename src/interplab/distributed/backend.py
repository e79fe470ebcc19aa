"""Backends: where the tasks of a sweep run, behind one small interface.

1. A `ModelSpec` says how a worker gets the model: by name (`interplab.load(name, dtype,
   device)`) or by an importable factory ``"module:function"`` (tiny test models have no name).
   A worker checks that the weights it loaded hash to the driver's (``weights_sha256``).
2. A job is an importable function ``job(model, shared, task) -> result``; ``shared`` (the
   inputs every task reads) is sent once, each task carries only its own piece (its cells).
3. `LocalBackend` runs the tasks in this process on the driver's model. `RayBackend` starts
   ``workers`` Ray actors that load the model once each, puts ``shared`` into the object store
   once, keeps two tasks queued per actor, and hands each result to ``done`` as it arrives.
4. Faults: an actor whose process dies is restarted by Ray (it loads the model again) and its
   tasks are retried, up to ``retries`` times. Ctrl-C (any exception) in the driver cancels the
   queued tasks and kills the actors before it propagates, so no task outlives the driver.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from interplab.errors import UserError

Done = Callable[[int, Any], None]
INSTALL = "pip install 'interplab[ray]'"


class DistributedError(UserError):
    """A backend cannot be set up, or a worker disagrees with the driver."""


@dataclass(frozen=True)
class ModelSpec:
    """How a worker loads the model: ``name`` for `interplab.load`, or ``factory``, an importable
    ``"module:function"`` returning a Model; ``weights_sha256`` is checked after loading."""

    name: str | None = None
    factory: str | None = None
    dtype: str = "float32"
    device: str = "cpu"
    weights_sha256: str | None = None

    def __post_init__(self) -> None:
        if (self.name is None) == (self.factory is None):
            raise DistributedError("a ModelSpec takes exactly one of name= or factory=")
        if self.factory is not None and ":" not in self.factory:
            raise DistributedError(
                f"factory must be an importable 'module:function', got {self.factory!r}"
            )

    @classmethod
    def of(cls, model: Any, factory: str | None = None, device: str | None = None) -> ModelSpec:
        """Returns the spec that reloads ``model`` (by its name unless ``factory`` is given)."""
        info = model.info
        return cls(
            name=None if factory else info.name,
            factory=factory,
            dtype=info.dtype,
            device=device or info.device,
            weights_sha256=info.weights_sha256,
        )

    def load(self) -> Any:
        """Returns the model, checked against ``weights_sha256``."""
        if self.factory is not None:
            model = resolve(self.factory)()
        else:
            from interplab.core.model import load

            assert self.name is not None
            model = load(self.name, dtype=self.dtype, device=self.device)
        got = model.info.weights_sha256
        if self.weights_sha256 is not None and got != self.weights_sha256:
            raise DistributedError(
                f"the worker's model {model.info.name} has weights {got[:12]}, the driver's "
                f"{self.weights_sha256[:12]}: every node must load the same weights"
            )
        return model


def resolve(path: str) -> Callable[..., Any]:
    """Returns the function named by ``"module:function"``."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise DistributedError(f"cannot import {path!r}: {e}") from None


ECHO = "interplab.distributed.backend:echo"


def echo(model: Any, shared: Any, task: Any) -> Any:
    """The no-op job: returns its task. ``map(ECHO, ...)`` checks that the workers answer and
    measures a backend's per-task overhead (`bench/bench_distributed.py`)."""
    del model, shared
    return task


class Backend(Protocol):
    """Runs ``job(model, shared, task)`` for every task, calling ``done(i, result)`` for each."""

    name: str

    def map(self, job: str, shared: Any, tasks: Sequence[Any], done: Done) -> None: ...

    def close(self) -> None: ...


class LocalBackend:
    """Runs every task here, one after another, on the driver's own model."""

    name = "local"

    def __init__(self, model: Any = None) -> None:
        self.model = model

    def map(self, job: str, shared: Any, tasks: Sequence[Any], done: Done) -> None:
        fn = resolve(job)
        for i, task in enumerate(tasks):
            done(i, fn(self.model, shared, task))

    def close(self) -> None:
        pass


def ray_module() -> Any:
    """Returns the ``ray`` module, or raises saying how to install it."""
    try:
        import ray
    except ImportError:
        raise DistributedError(
            f"backend='ray' needs Ray, which is not installed: {INSTALL}"
        ) from None
    return ray


class _Worker:
    """One Ray actor: loads the model once, then runs tasks (wrapped by `ray.remote` lazily)."""

    def __init__(self, spec: ModelSpec | None, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.model = None if spec is None else spec.load()
        self.loads = 1
        self.shared: dict[str, Any] = {}

    def info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "loads": self.loads}

    def run(self, job: str, shared: list[Any], task: Any) -> Any:
        ray = ray_module()
        key = shared[0].hex()
        if key not in self.shared:  # the shared inputs arrive once per actor, not per task
            self.shared = {key: ray.get(shared[0])}
        return resolve(job)(self.model, self.shared[key], task)


class RayBackend:
    """Runs tasks on ``workers`` Ray actors that each load the model once.

    ``address`` is a running cluster (``ray start --head`` prints it; ``"auto"`` finds one on
    this machine); None starts a private local one with ``workers`` CPUs, shut down on `close`.
    """

    name = "ray"

    def __init__(
        self,
        spec: ModelSpec | None,
        *,
        address: str | None = None,
        workers: int = 2,
        threads: int = 1,
        gpus_per_worker: float = 0.0,
        retries: int = 3,
        poll_s: float = 0.2,
        start_timeout_s: float = 300.0,
    ) -> None:
        if workers < 1:
            raise DistributedError(f"workers must be at least 1, got {workers}")
        if threads < 1:
            raise DistributedError(f"threads must be at least 1, got {threads}")
        self.ray = ray_module()
        self.spec, self.workers, self.threads = spec, workers, threads
        self.gpus, self.retries, self.poll_s = gpus_per_worker, retries, poll_s
        self._owns_cluster = False
        if not self.ray.is_initialized():
            kwargs: dict[str, Any] = {"log_to_driver": False, "include_dashboard": False}
            if address is None:  # "local": a private cluster, even where `ray start` runs one
                address, kwargs["num_cpus"] = "local", workers
                self._owns_cluster = True
            try:
                self.ray.init(address=address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as e:
                raise DistributedError(
                    f"cannot reach a Ray cluster at {address!r}: {e}; start one with "
                    "'ray start --head' and pass the address it prints"
                ) from None
        remote = self.ray.remote(
            num_cpus=1, num_gpus=gpus_per_worker, max_restarts=retries, max_task_retries=retries
        )(_Worker)
        self.actors = [remote.remote(spec, threads) for _ in range(workers)]
        self.retried = 0
        try:  # every actor loads the model now; a cluster without room says so
            self.ray.get([a.info.remote() for a in self.actors], timeout=start_timeout_s)
        except self.ray.exceptions.GetTimeoutError:
            free = self.ray.available_resources()
            self.close()
            raise DistributedError(
                f"{workers} workers did not start within {start_timeout_s:.0f} s; the cluster "
                f"has {free.get('CPU', 0):g} free CPUs and {free.get('GPU', 0):g} free GPUs "
                f"(each worker takes 1 CPU and {gpus_per_worker:g} GPU)"
            ) from None

    def worker_info(self) -> list[dict[str, Any]]:
        """Returns each actor's process id and how many times it has loaded the model."""
        return self.ray.get([a.info.remote() for a in self.actors])

    def map(self, job: str, shared: Any, tasks: Sequence[Any], done: Done) -> None:
        ray = self.ray
        ref = ray.put(shared)
        queue = list(range(len(tasks)))[::-1]
        attempts = [0] * len(tasks)
        inflight: dict[Any, tuple[int, Any]] = {}

        def submit(actor: Any) -> None:
            if queue:
                i = queue.pop()
                inflight[actor.run.remote(job, [ref], tasks[i])] = (i, actor)

        try:
            for _ in range(2):
                for actor in self.actors:
                    submit(actor)
            while inflight:
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                for r in ready:
                    i, actor = inflight.pop(r)
                    try:
                        result = ray.get(r)
                    except ray.exceptions.RayActorError as e:
                        attempts[i] += 1
                        if attempts[i] > self.retries:
                            raise DistributedError(
                                f"task {i} failed on {attempts[i]} workers, the last with: {e}"
                            ) from None
                        self.retried += 1
                        queue.append(i)
                        time.sleep(self.poll_s)
                        submit(actor)
                        continue
                    done(i, result)
                    submit(actor)
        except BaseException:
            self._abort(list(inflight))
            raise

    def _abort(self, pending: list[Any]) -> None:
        """Cancels the queued tasks and kills the actors (they hold the running ones)."""
        for r in pending:
            with contextlib.suppress(Exception):
                self.ray.cancel(r)
        for a in self.actors:
            self.ray.kill(a, no_restart=True)
        self.actors = []

    def close(self) -> None:
        """Kills the actors, and shuts down the local cluster this backend started."""
        for a in self.actors:
            self.ray.kill(a, no_restart=True)
        self.actors = []
        if self._owns_cluster:
            self.ray.shutdown()
            self._owns_cluster = False


def make_backend(
    backend: str | Backend,
    model: Any,
    *,
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    model_factory: str | None = None,
    gpus_per_worker: float = 0.0,
) -> tuple[Backend, bool]:
    """Returns the backend for ``backend`` ("local" or "ray", or a Backend to use as is) and
    whether the caller owns it (must close it)."""
    if not isinstance(backend, str):
        return backend, False
    if backend == "local":
        return LocalBackend(model), True
    if backend == "ray":
        spec = None
        if model is not None:
            device = "cuda" if gpus_per_worker > 0 else "cpu"
            spec = ModelSpec.of(model, model_factory, device)
        backend_obj = RayBackend(
            spec, address=address, workers=workers, threads=threads,
            gpus_per_worker=gpus_per_worker,
        )  # fmt: skip
        return backend_obj, True
    raise DistributedError(f"unknown backend {backend!r}; valid: 'local', 'ray'")


__all__ = [
    "ECHO",
    "INSTALL",
    "Backend",
    "DistributedError",
    "LocalBackend",
    "ModelSpec",
    "RayBackend",
    "echo",
    "make_backend",
    "ray_module",
    "resolve",
]
