"""Activation shards on disk: harvest once, train many times, resume an interrupted harvest.

1. `harvest` computes the blocks of epoch 0 of a `ModelSource` (the first ``max_tokens`` worth)
   and writes each site of each block as one ``.npy`` file (float32 or float16), through a
   temporary file renamed into place.
2. After every block the manifest (model, corpus, sites, widths, dtype, grouping, and per block
   its token count and file sizes) is replaced atomically, so a folder always describes exactly
   the blocks it holds; an interrupted harvest resumes after the last finished block, and a
   folder made by a different model, corpus or grouping is refused rather than mixed.
3. A full disk (``ENOSPC``) or any other write error stops with one message naming the file;
   the blocks already listed stay valid.
4. `ShardSource` reads the blocks back memory-mapped. Each epoch visits them in an order seeded by
   ``(seed, epoch)``, and the trainer shuffles tokens within a block, so the shards behave like
   the live source with a shuffling buffer of one block. File sizes are checked against the
   manifest and unreadable files are named, so a truncated shard is an error, not garbage.

`harvest_identity`, `open_harvest`, `write_block` and `write_manifest` are the steps of
`harvest`, public so that `interplab.distributed.harvest` writes the same folder from workers.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from interplab.data.cache import atomic_write
from interplab.dictionaries.harvest import HarvestError, ModelSource, check_finite
from interplab.progress import progress_bar
from interplab.provenance import write_json
from interplab.sites import Site

ShardDtype = Literal["float32", "float16"]
MANIFEST = "manifest.json"
_VERSION = 1


def harvest(
    source: ModelSource,
    folder: str | Path,
    *,
    max_tokens: int | None = None,
    dtype: ShardDtype = "float32",
    progress: bool = True,
) -> ShardSource:
    """Writes the blocks of ``source`` (up to ``max_tokens`` tokens) under ``folder`` and returns
    them as a `ShardSource`; an unfinished harvest in ``folder`` is resumed."""
    root = Path(folder)
    identity = harvest_identity(source, max_tokens=max_tokens, dtype=dtype)
    manifest = open_harvest(root, identity)
    n_blocks = int(identity["n_blocks"])
    done = len(manifest["blocks"])
    with progress_bar(n_blocks, f"harvesting {root.name}", progress) as advance:
        advance(done)
        for index in range(done, n_blocks):
            manifest["blocks"].append(write_block(root, index, source.block(0, index), dtype))
            write_manifest(root, manifest)
            advance(1)
    return ShardSource(root)


def harvest_identity(
    source: ModelSource, *, max_tokens: int | None = None, dtype: ShardDtype = "float32"
) -> dict[str, Any]:
    """Returns what a harvest folder's manifest says besides its blocks: the source's
    fingerprint, the widths, the dtype and ``n_blocks``, the blocks of epoch 0 to write."""
    if dtype not in ("float32", "float16"):
        raise HarvestError(f"shard dtype must be 'float32' or 'float16', got {dtype!r}")
    per_block = source.config.block_windows * source.tokens_per_window
    n_blocks = source.n_blocks
    if max_tokens is not None:
        n_blocks = min(n_blocks, max(1, -(-max_tokens // per_block)))
    return {
        "version": _VERSION,
        **source.fingerprint(),
        "widths": {str(s): w for s, w in source.widths.items()},
        "dtype": dtype,
        "n_blocks": n_blocks,
    }


def write_block(
    root: Path, index: int, acts: dict[Site, Tensor], dtype: ShardDtype
) -> dict[str, Any]:
    """Writes block ``index`` (one ``.npy`` per site, each atomically) under ``root`` and returns
    its manifest entry: index, token count, and each site's file and size."""
    files = {}
    for site, x in acts.items():
        path = root / f"block{index:05d}" / f"{_file_name(site)}.npy"
        _write_array(path, x.numpy().astype(dtype, copy=False))
        files[str(site)] = {"file": str(path.relative_to(root)), "bytes": path.stat().st_size}
    tokens = next(iter(acts.values())).shape[0]
    return {"index": index, "tokens": int(tokens), "files": files}


class ShardSource:
    """Blocks read back from a harvest folder (memory-mapped, float32 on the way out)."""

    def __init__(self, folder: str | Path, *, seed: int = 0) -> None:
        self.folder = Path(folder)
        path = self.folder / MANIFEST
        try:
            self.manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise HarvestError(f"{self.folder} holds no harvest ({MANIFEST} is missing)") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HarvestError(f"{path} is not a harvest manifest: {e}") from None
        self.sites = tuple(Site.parse(s) for s in self.manifest["sites"])
        self.widths = {Site.parse(s): int(w) for s, w in self.manifest["widths"].items()}
        self.blocks: list[dict[str, Any]] = self.manifest["blocks"]
        self.n_blocks = len(self.blocks)
        self.seed = seed
        if self.n_blocks == 0:
            raise HarvestError(f"the harvest in {self.folder} has no finished block yet")

    @property
    def tokens(self) -> int:
        """Tokens per epoch."""
        return sum(int(b["tokens"]) for b in self.blocks)

    def block(self, epoch: int, index: int) -> dict[Site, Tensor]:
        """Returns ``{site: [tokens, width]}`` float32 of the ``index``-th block of ``epoch``."""
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)
        entry = self.blocks[int(order[index])]
        out = {}
        for site in self.sites:
            out[site] = self._read(site, entry)
            check_finite(site, out[site], f"{self.folder / entry['files'][str(site)]['file']}")
        return out

    def _read(self, site: Site, entry: dict[str, Any]) -> Tensor:
        info = entry["files"][str(site)]
        path = self.folder / info["file"]
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise HarvestError(
                f"shard {path} is missing; harvest again into {self.folder}"
            ) from None
        if size != int(info["bytes"]):
            raise HarvestError(
                f"shard {path} has {size} bytes, the manifest says {info['bytes']}: the file is "
                "truncated or was replaced; delete the folder and harvest again"
            )
        try:
            array = np.load(path, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            raise HarvestError(f"shard {path} cannot be read ({e}); harvest again") from None
        expected = (int(entry["tokens"]), self.widths[site])
        if tuple(array.shape) != expected:
            raise HarvestError(f"shard {path} has shape {array.shape}, expected {expected}")
        return torch.from_numpy(np.array(array, dtype=np.float32))  # a writable copy

    def fingerprint(self) -> dict[str, Any]:
        identity = {k: v for k, v in self.manifest.items() if k != "blocks"}
        return {"source": "shards", **identity, "blocks": self.n_blocks, "seed": self.seed}


def _file_name(site: Site) -> str:
    return str(site).replace(".", "_")


def open_harvest(root: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """Returns the manifest to continue (its ``blocks`` are those finished): the folder's own if
    it matches ``identity`` (refused if it does not), else a new empty one, written now."""
    path = root / MANIFEST
    if path.exists():
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HarvestError(f"{path} is not a harvest manifest: {e}") from None
        mine = {k: v for k, v in manifest.items() if k != "blocks"}
        if mine != identity:
            changed = sorted(k for k in set(mine) | set(identity) if mine.get(k) != identity.get(k))
            raise HarvestError(
                f"{root} holds a different harvest (differs in: {', '.join(changed)}); use "
                "another folder or delete this one"
            )
        return manifest
    manifest = {**identity, "blocks": []}
    write_manifest(root, manifest)
    return manifest


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Replaces the folder's manifest atomically (it lists exactly the blocks written)."""
    path = root / MANIFEST
    try:
        write_json(path, manifest)
    except OSError as e:
        raise _write_error(path, e) from None


def _write_array(path: Path, array: np.ndarray) -> None:
    try:
        atomic_write(path, lambda f: np.save(f, array))
    except OSError as e:
        raise _write_error(path, e) from None


def _write_error(path: Path, e: OSError) -> HarvestError:
    if e.errno == errno.ENOSPC:
        return HarvestError(
            f"the disk is full while writing {path}; the blocks already listed in the manifest "
            "are kept: free some space and run the harvest again to resume"
        )
    return HarvestError(f"cannot write {path}: {e.strerror or e}")


__all__ = [
    "MANIFEST",
    "ShardDtype",
    "ShardSource",
    "harvest",
    "harvest_identity",
    "open_harvest",
    "write_block",
    "write_manifest",
]
