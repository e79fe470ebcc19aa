"""Corpus-sharded jobs without Ray: top examples and harvesting cut into shards, merged (or
written) equal to the local technique's, resumed from a checkpoint, and bad input refused."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from factories_shards import (
    SITES,
    TOP,
    Counting,
    assert_same_top_examples,
    corpus,
    folder_bytes,
    harvest_source,
    top_kwargs,
)

from interplab.dictionaries import DictionaryConfig, HarvestError, TrainConfig, harvest, train
from interplab.distributed import DistributedError
from interplab.distributed.harvest import harvest as sharded_harvest
from interplab.distributed.top_examples import shard_bounds
from interplab.distributed.top_examples import top_examples as sharded_top_examples
from interplab.techniques.top_examples import TopExamplesConfig, TopExamplesError, top_examples
from interplab.techniques.top_examples.state import State, merge_states

from helpers import tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.mark.parametrize(
    ("n_windows", "tasks", "max_tokens"),
    [(21, 1, None), (21, 3, None), (21, 9, None), (21, 2, 200), (3, 4, None)],
)
def test_top_examples_over_shards_equal_the_local_pass(model, n_windows, tasks, max_tokens):
    cfg = TopExamplesConfig(**{**TOP.to_dict(), "max_tokens": max_tokens})
    ref = top_examples(model, corpus(n_windows), **top_kwargs(config=cfg))
    got = sharded_top_examples(model, corpus(n_windows), tasks=tasks, **top_kwargs(config=cfg))
    assert_same_top_examples(got, ref)


def test_shards_are_whole_contiguous_batches_after_the_drivers_first():
    assert shard_bounds(6, 2) == [(1, 3), (3, 6)]
    assert shard_bounds(6, 9) == [(1, 2), (2, 3), (3, 4), (4, 5), (5, 6)]
    bounds = shard_bounds(1000, 7)
    assert bounds[0][0] == 1 and bounds[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def test_a_restarted_top_examples_pass_streams_only_the_missing_shards(model, tmp_path):
    ref = top_examples(model, corpus(), **top_kwargs())
    first = Counting(model, stop_after=2)
    with pytest.raises(KeyboardInterrupt):
        sharded_top_examples(model, corpus(), backend=first, tasks=5, checkpoint=tmp_path, **top_kwargs())  # fmt: skip
    assert first.ran == 2 and len(list(tmp_path.glob("*/task-*.pt"))) == 2
    second = Counting(model)
    got = sharded_top_examples(model, corpus(), backend=second, tasks=5, checkpoint=tmp_path, **top_kwargs())  # fmt: skip
    assert second.ran == 3
    assert_same_top_examples(got, ref)
    third = Counting(model)
    again = sharded_top_examples(model, corpus(), backend=third, tasks=5, checkpoint=tmp_path, **top_kwargs())  # fmt: skip
    assert third.ran == 0
    assert_same_top_examples(again, ref)


def test_harvest_over_shards_writes_the_local_harvests_folder_byte_for_byte(model, tmp_path):
    local = harvest(harvest_source(model), tmp_path / "local", dtype="float16", progress=False)
    expected = folder_bytes(tmp_path / "local")
    assert local.n_blocks == 5 and len(expected) == 5 * 3 + 1
    for write in ("workers", "driver"):
        for tasks in (1, 3, 9):
            out = tmp_path / f"{write}-{tasks}"
            got = sharded_harvest(
                harvest_source(model), out, dtype="float16", write=write, tasks=tasks,
                progress=False,
            )  # fmt: skip
            assert folder_bytes(out) == expected, (write, tasks)
            assert got.manifest == local.manifest and got.tokens == local.tokens


def test_sharded_harvest_trains_the_same_dictionary_as_the_local_one(model, tmp_path):
    local = harvest(harvest_source(model), tmp_path / "local", progress=False)
    got = sharded_harvest(harvest_source(model), tmp_path / "sharded", tasks=2, progress=False)
    cfg = {"sae": DictionaryConfig("topk", d_in=64, d_sae=128, k=4, site=SITES[2])}
    train_cfg = TrainConfig(total_tokens=400, batch_tokens=64, log_every=2)
    a = train(local, cfg, train_cfg, progress=False).dictionaries["sae"].state_dict()
    b = train(got, cfg, train_cfg, progress=False).dictionaries["sae"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_restarted_harvest_computes_only_the_missing_blocks(model, tmp_path):
    harvest(harvest_source(model), tmp_path / "local", progress=False)
    out, ckpt = tmp_path / "sharded", tmp_path / "ckpt"
    first = Counting(model, stop_after=1)
    with pytest.raises(KeyboardInterrupt):
        sharded_harvest(harvest_source(model), out, backend=first, tasks=3, checkpoint=ckpt, progress=False)  # fmt: skip
    assert first.ran == 1
    second = Counting(model)
    sharded_harvest(harvest_source(model), out, backend=second, tasks=3, checkpoint=ckpt, progress=False)  # fmt: skip
    assert second.ran == 2
    assert folder_bytes(out) == folder_bytes(tmp_path / "local")
    third = Counting(model)  # a finished folder: nothing left to compute
    sharded_harvest(harvest_source(model), out, backend=third, tasks=3, checkpoint=ckpt, progress=False)  # fmt: skip
    assert third.ran == 0


def test_a_harvest_continues_a_locally_started_folder(model, tmp_path):
    harvest(harvest_source(model), tmp_path / "local", progress=False)
    interrupted = harvest_source(model)
    original = interrupted.block

    def stop_at_block_2(epoch, index):
        if index == 2:
            raise KeyboardInterrupt
        return original(epoch, index)

    interrupted.block = stop_at_block_2  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        harvest(interrupted, tmp_path / "mixed", progress=False)
    counting = Counting(model)
    sharded_harvest(harvest_source(model), tmp_path / "mixed", backend=counting, tasks=9, progress=False)  # fmt: skip
    assert counting.ran == 3  # blocks 2, 3 and 4: the local run wrote blocks 0 and 1
    assert folder_bytes(tmp_path / "mixed") == folder_bytes(tmp_path / "local")


def test_bad_input_is_refused_clearly(model, tmp_path):
    with pytest.raises(TopExamplesError, match=r"\[windows, tokens\]"):
        sharded_top_examples(model, np.arange(10), **top_kwargs())
    with pytest.raises(DistributedError, match="tasks must be at least 1"):
        sharded_top_examples(model, corpus(), tasks=0, **top_kwargs())
    with pytest.raises(DistributedError, match="valid: 'local', 'ray'"):
        sharded_top_examples(model, corpus(), backend="dask", **top_kwargs())
    with pytest.raises(DistributedError, match="write must be 'workers' or 'driver'"):
        sharded_harvest(harvest_source(model), tmp_path / "h", write="nfs", progress=False)  # type: ignore[arg-type]
    with pytest.raises(HarvestError, match="shard dtype"):
        sharded_harvest(harvest_source(model), tmp_path / "h", dtype="int8", progress=False)  # type: ignore[arg-type]
    harvest(harvest_source(model), tmp_path / "other", max_tokens=50, progress=False)
    with pytest.raises(HarvestError, match=r"different harvest.*n_blocks"):
        sharded_harvest(harvest_source(model), tmp_path / "other", progress=False)
    # A checkpoint whose files are gone (the folder deleted) is named, not trusted.
    ckpt = tmp_path / "ckpt"
    sharded_harvest(harvest_source(model), tmp_path / "gone", checkpoint=ckpt, progress=False)
    for p in sorted((tmp_path / "gone").rglob("*"), reverse=True):
        p.rmdir() if p.is_dir() else p.unlink()
    with pytest.raises(DistributedError, match="is missing on the driver"):
        sharded_harvest(harvest_source(model), tmp_path / "gone", checkpoint=ckpt, progress=False)


def test_states_with_other_histogram_edges_do_not_merge(model):
    a = State.new(2, 3, 2, 4, 1, 3)
    b = State.new(2, 3, 2, 4, 1, 3)
    a.edges, b.edges = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(TopExamplesError, match="same histogram edges"):
        merge_states([a, b])
    with pytest.raises(TopExamplesError, match="no states"):
        merge_states([])
