"""Harvesting over corpus shards: the blocks of a harvest computed by workers, written into the
same folder, file for file, as the local `interplab.dictionaries.harvest` writes.

1. The driver opens the folder as the local harvest does (`shards.harvest_identity` and
   `open_harvest`: the same manifest; a folder with finished blocks continues after them, a
   folder of another harvest is refused) and lists each missing block's windows
   (`ModelSource.window_ids`: block ``i`` of epoch 0 samples windows from the whole corpus).
2. The missing blocks are cut into ``tasks`` contiguous runs; a task carries its block numbers,
   their window ids and the rows of just those windows, not the corpus.
3. A worker computes each block as `ModelSource.activations` does, in the same forwards (the
   same batches of sorted window ids, the same outlier mask per forward), and writes the block's
   files into the folder with `shards.write_block` (each through a temporary file renamed into
   place), returning the manifest entries. Workers that do not share the driver's filesystem
   (``write="driver"``) return the activations instead and the driver writes them.
4. The driver checks each file against its entry, appends the entries in block order and
   replaces the manifest: the folder equals the local harvest's byte for byte (tested, with the
   same thread count), and `ShardSource` reads it for training the same way. Finished tasks are
   checkpointed (`run_tasks`), so a restarted harvest computes only the missing blocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import Tensor

from interplab.dictionaries.harvest import HarvestConfig, ModelSource
from interplab.dictionaries.shards import (
    ShardDtype,
    ShardSource,
    harvest_identity,
    open_harvest,
    write_block,
    write_manifest,
)
from interplab.distributed.backend import Backend, DistributedError, make_backend
from interplab.distributed.tasks import run_tasks
from interplab.sites import Site

JOB = "interplab.distributed.harvest:harvest_blocks"
Writer = Literal["workers", "driver"]


@dataclass(frozen=True)
class HarvestJob:
    """What every task of a harvest shares: the sites, the grouping, the shard dtype, and the
    folder the workers write into (None: they return the activations to the driver)."""

    sites: tuple[Site, ...]
    config: HarvestConfig
    dtype: ShardDtype
    folder: str | None


@dataclass(frozen=True)
class BlockTask:
    """Blocks ``indices``, block ``i``'s windows being ``windows[i]`` (corpus window ids), and
    ``rows``: the token ids of every window the task reads, in ascending id order."""

    indices: tuple[int, ...]
    windows: tuple[np.ndarray, ...]
    rows: np.ndarray


def harvest_blocks(model: Any, shared: HarvestJob, task: BlockTask) -> dict[str, Any]:
    """The task a worker runs: its blocks' manifest entries (their files written into the
    folder), or with no folder their activations ``{site: [tokens, width]}``."""
    ids = np.unique(np.concatenate(task.windows))
    source = ModelSource(model, task.rows, shared.sites, shared.config)
    entries: list[dict[str, Any]] = []
    acts: list[dict[str, Tensor]] = []
    for index, windows in zip(task.indices, task.windows, strict=True):
        # Row positions rise with the window ids, so each forward's sorted batch is the same.
        block = source.activations(np.searchsorted(ids, windows), f"block {index} of epoch 0")
        if shared.folder is None:
            acts.append({str(s): x for s, x in block.items()})
        else:
            entries.append(write_block(Path(shared.folder), index, block, shared.dtype))
    return {"entries": entries, "acts": acts}


def harvest(
    source: ModelSource,
    folder: str | Path,
    *,
    max_tokens: int | None = None,
    dtype: ShardDtype = "float32",
    write: Writer = "workers",
    backend: str | Backend = "local",
    address: str | None = None,
    workers: int = 2,
    threads: int = 1,
    tasks: int | None = None,
    model_factory: str | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = True,
) -> ShardSource:
    """Returns `interplab.dictionaries.harvest`'s shards, with the blocks computed as tasks on
    ``backend`` (``"local"``, ``"ray"`` with ``workers`` actors at ``address``, or a `Backend`).
    ``write="workers"`` has the workers write their blocks into ``folder``, which they must see
    at the same path (a shared filesystem); ``"driver"`` sends the activations back to be written
    here. ``tasks`` (default: four per worker) sets how many runs of blocks; ``checkpoint`` keeps
    finished tasks, so a restarted harvest computes only the missing blocks."""
    if write not in ("workers", "driver"):
        raise DistributedError(f"write must be 'workers' or 'driver', got {write!r}")
    if tasks is not None and tasks < 1:
        raise DistributedError(f"tasks must be at least 1, got {tasks}")
    root = Path(folder).resolve()
    identity = harvest_identity(source, max_tokens=max_tokens, dtype=dtype)
    manifest = open_harvest(root, identity)
    done, n_blocks = len(manifest["blocks"]), int(identity["n_blocks"])
    if done < n_blocks:
        runner, owned = make_backend(
            backend, source.model, address=address, workers=workers, threads=threads,
            model_factory=model_factory,
        )  # fmt: skip
        try:
            n_tasks = tasks or 4 * (workers if runner.name == "ray" else 1)
            runs = _runs(done, n_blocks, n_tasks)
            job = HarvestJob(
                source.sites, source.config, dtype, str(root) if write == "workers" else None
            )
            fingerprint = {
                "job": JOB,
                "harvest": identity,
                "folder": str(root),
                "write": write,
                "tasks": [list(r) for r in runs],
            }
            run = run_tasks(
                runner, JOB, job, [_task(source, r) for r in runs], fingerprint=fingerprint,
                checkpoint=checkpoint, progress=progress,
                label=f"harvesting {root.name} ({runner.name}, {len(runs)} tasks)",
            )  # fmt: skip
        finally:
            if owned:
                runner.close()
        for r, out in zip(runs, run.results, strict=True):
            manifest["blocks"] += _entries(root, r, out, dtype)
        write_manifest(root, manifest)
    return ShardSource(root)


def _runs(done: int, n_blocks: int, n_tasks: int) -> list[range]:
    """Returns the blocks ``done .. n_blocks - 1`` cut into at most ``n_tasks`` contiguous runs."""
    rest = n_blocks - done
    n = min(n_tasks, rest)
    cuts = [done + rest * i // n for i in range(n + 1)]
    return [range(cuts[i], cuts[i + 1]) for i in range(n)]


def _task(source: ModelSource, blocks: range) -> BlockTask:
    windows = tuple(np.asarray(source.window_ids(0, i)) for i in blocks)
    ids = np.unique(np.concatenate(windows))
    return BlockTask(tuple(blocks), windows, np.asarray(source.windows[ids]))


def _entries(root: Path, blocks: range, out: dict[str, Any], dtype: ShardDtype) -> list[dict]:
    """Returns the manifest entries of one task's blocks, writing them here if the worker sent
    activations, and checking that every file the entries name is there at its size."""
    if out["acts"]:
        entries = [
            write_block(root, i, {Site.parse(s): x for s, x in acts.items()}, dtype)
            for i, acts in zip(blocks, out["acts"], strict=True)
        ]
    else:
        entries = list(out["entries"])
    for entry in entries:
        for info in entry["files"].values():
            path = root / info["file"]
            size = path.stat().st_size if path.is_file() else None
            if size != int(info["bytes"]):
                raise DistributedError(
                    f"block {entry['index']}: {path} is {'missing' if size is None else 'changed'}"
                    " on the driver; workers that do not share the driver's filesystem need "
                    "write='driver' (if the folder was deleted, delete the checkpoint too)"
                )
    return entries


__all__ = ["JOB", "BlockTask", "HarvestJob", "harvest", "harvest_blocks"]
