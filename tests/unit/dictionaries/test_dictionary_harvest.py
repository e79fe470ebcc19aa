"""Harvesting: blocks from the model, shards on disk, resume, and every damaged-input error."""

import errno
import json

import numpy as np
import pytest
import torch

from interplab.dictionaries import (
    DictionaryConfig,
    HarvestConfig,
    HarvestError,
    ModelSource,
    ShardSource,
    TrainConfig,
    harvest,
    train,
)
from interplab.dictionaries.shards import MANIFEST
from interplab.sites import Site

from helpers import tiny_model

SITES = [Site(0, "mlp.in"), Site(0, "mlp_out"), Site(1, "resid_pre")]


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


def windows(n: int = 24, length: int = 10) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, length)).astype(np.uint32)


def source(model, **kw) -> ModelSource:
    return ModelSource(
        model, windows(), SITES, HarvestConfig(block_windows=8, batch_windows=3, **kw)
    )


def test_blocks_hold_every_site_without_the_first_positions(model):
    src = source(model)
    assert src.n_blocks == 3 and src.widths == {s: 64 for s in SITES}
    block = src.block(0, 1)
    order = src.window_ids(0, 1)
    order = np.concatenate([np.sort(order[i : i + 3]) for i in range(0, 8, 3)])  # per forward
    ids = torch.from_numpy(windows()[order].astype(np.int64))
    run = model.run(ids, capture=SITES)
    for s in SITES:
        assert block[s].shape == (8 * 9, 64)
        assert torch.equal(block[s], run.cache[s][:, 1:].reshape(-1, 64))


def test_epochs_visit_every_window_once_in_a_new_order(model):
    src = source(model)
    for epoch in (0, 1):
        seen = np.concatenate([src.window_ids(epoch, i) for i in range(src.n_blocks)])
        assert sorted(seen.tolist()) == list(range(24))
    assert not np.array_equal(src.window_ids(0, 0), src.window_ids(1, 0))


def test_shards_hold_the_same_blocks_and_resume(model, tmp_path):
    src = source(model)
    calls = []
    original = src.block

    def counting(epoch, index):
        calls.append(index)
        if index == 2 and len(calls) == 3:
            raise KeyboardInterrupt
        return original(epoch, index)

    src.block = counting  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        harvest(src, tmp_path, progress=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert [b["index"] for b in manifest["blocks"]] == [0, 1]
    shards = harvest(src, tmp_path, progress=False)  # resumes at block 2
    assert calls == [0, 1, 2, 2]
    assert shards.n_blocks == 3 and shards.tokens == 24 * 9
    read_back = {
        tuple(shards._read(Site(1, "resid_pre"), b).sum(0).tolist()) for b in shards.blocks
    }
    direct = {tuple(original(0, i)[Site(1, "resid_pre")].sum(0).tolist()) for i in range(3)}
    assert read_back == direct


def test_a_harvest_of_other_data_is_not_mixed_in(model, tmp_path):
    harvest(source(model), tmp_path, progress=False, max_tokens=50)
    with pytest.raises(HarvestError, match=r"different harvest.*dtype"):
        harvest(source(model), tmp_path, progress=False, dtype="float16", max_tokens=50)


def test_a_full_disk_names_the_file_and_keeps_finished_blocks(model, tmp_path, monkeypatch):
    import interplab.dictionaries.shards as shards

    real = np.save
    count = {"n": 0}

    def full(f, array):
        count["n"] += 1
        if count["n"] == 5:  # block 1's second site
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f, array)

    monkeypatch.setattr(shards.np, "save", full)
    with pytest.raises(
        HarvestError, match=r"disk is full while writing .*block00001.*L0_mlp_out\.npy"
    ):
        harvest(source(model), tmp_path, progress=False)
    manifest = json.loads((tmp_path / MANIFEST).read_text())
    assert len(manifest["blocks"]) == 1
    assert not list(tmp_path.rglob("*.tmp"))
    monkeypatch.setattr(shards.np, "save", real)
    assert harvest(source(model), tmp_path, progress=False).n_blocks == 3


def test_a_truncated_shard_is_named(model, tmp_path):
    harvest(source(model), tmp_path, progress=False)
    victim = tmp_path / "block00001" / "L1_resid_pre.npy"
    victim.write_bytes(victim.read_bytes()[:100])
    shards = ShardSource(tmp_path)
    with pytest.raises(HarvestError, match=r"block00001/L1_resid_pre\.npy has 100 bytes"):
        for i in range(shards.n_blocks):
            shards.block(0, i)


def test_float16_shards_train_like_the_live_source(model, tmp_path):
    shards = harvest(source(model), tmp_path, progress=False, dtype="float16")
    assert shards.block(0, 0)[SITES[0]].dtype == torch.float32
    cfg = {
        "tc": DictionaryConfig(
            "topk",
            d_in=64,
            d_sae=128,
            k=4,
            kind="transcoder",
            d_out=64,
            site=SITES[0],
            target=SITES[1],
        )
    }
    run = train(
        shards, cfg, TrainConfig(total_tokens=400, batch_tokens=64, log_every=2), progress=False
    )
    assert np.isfinite(run.curves["tc"].fve).all()


def test_sites_without_vectors_are_refused(model):
    with pytest.raises(HarvestError, match="attention patterns"):
        ModelSource(model, windows(), ["L0.attn.pattern"])


def test_outlier_tokens_are_dropped_at_every_site_alike(model):
    from interplab.dictionaries.harvest import outliers

    x = torch.ones(6, 4)
    x[2] *= 100
    y = torch.ones(6, 4)
    y[4] *= 100
    assert outliers([x, y], 10.0).tolist() == [False, False, True, False, True, False]
    assert not outliers([x], None).any()
    strict = ModelSource(
        model, windows(), SITES, HarvestConfig(block_windows=8, batch_windows=3, outlier_ratio=1.05)
    )
    kept = strict.block(0, 0)
    n = {s: v.shape[0] for s, v in kept.items()}
    assert len(set(n.values())) == 1 and next(iter(n.values())) < 8 * 9
