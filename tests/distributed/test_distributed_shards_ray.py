"""Corpus-sharded jobs on a real local Ray cluster (two worker processes): top examples and a
harvest equal the local technique's, and a rerun on the same checkpoint computes nothing."""

from __future__ import annotations

import pytest

from helpers import tiny_model

ray = pytest.importorskip("ray")

from factories_shards import (  # noqa: E402
    Counting,
    assert_same_top_examples,
    corpus,
    folder_bytes,
    harvest_source,
    top_kwargs,
)

from interplab.dictionaries import harvest  # noqa: E402
from interplab.dictionaries.shards import MANIFEST  # noqa: E402
from interplab.distributed.harvest import harvest as sharded_harvest  # noqa: E402
from interplab.distributed.top_examples import top_examples as sharded_top_examples  # noqa: E402
from interplab.techniques.top_examples import top_examples  # noqa: E402

pytestmark = pytest.mark.ray


def test_top_examples_on_two_ray_workers_equal_the_local_pass(llama_workers, tmp_path):
    model = tiny_model("llama")
    ref = top_examples(model, corpus(), **top_kwargs())
    got = sharded_top_examples(
        model, corpus(), backend=llama_workers, checkpoint=tmp_path, **top_kwargs()
    )
    assert_same_top_examples(got, ref)
    assert len(list(tmp_path.glob("*/task-*.pt"))) == 5  # 8 asked, one per batch after the first
    assert {w["loads"] for w in llama_workers.worker_info()} == {1}
    rerun = Counting(model)  # the same shards (8 tasks), all in the checkpoint
    again = sharded_top_examples(
        model, corpus(), backend=rerun, tasks=8, checkpoint=tmp_path, **top_kwargs()
    )
    assert rerun.ran == 0
    assert_same_top_examples(again, ref)


def test_a_harvest_on_two_ray_workers_writes_the_local_folder(llama_workers, tmp_path):
    model = tiny_model("llama")
    harvest(harvest_source(model), tmp_path / "local", dtype="float16", progress=False)
    out, ckpt = tmp_path / "ray", tmp_path / "ckpt"
    got = sharded_harvest(
        harvest_source(model), out, dtype="float16", backend=llama_workers, tasks=8,
        checkpoint=ckpt, progress=False,
    )  # fmt: skip
    assert folder_bytes(out) == folder_bytes(tmp_path / "local") and got.n_blocks == 5
    (out / MANIFEST).unlink()  # as if the driver died after the workers wrote every block
    rerun = Counting(model)
    sharded_harvest(
        harvest_source(model), out, dtype="float16", backend=rerun, tasks=8, checkpoint=ckpt,
        progress=False,
    )  # fmt: skip
    assert rerun.ran == 0
    assert folder_bytes(out) == folder_bytes(tmp_path / "local")
