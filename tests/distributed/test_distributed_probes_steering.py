"""Probes per (dataset, layers) and steering per coefficient chunk as tasks on a backend: merged
results equal the local techniques' bit for bit, on the local backend and on a real Ray cluster;
a rerun with the same checkpoint computes nothing; bad input is refused before any task runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from factories_probes import VOWELS, char_llama
from typer.testing import CliRunner

from interplab.cli import app
from interplab.configs import ConfigError
from interplab.data import LabelledDataset
from interplab.distributed import DistributedError, LocalBackend
from interplab.distributed.probes import linear_probes
from interplab.distributed.steering import steer, steer_vectors
from interplab.errors import UserError
from interplab.results.probes import ProbeError
from interplab.results.steering import SteeringResult
from interplab.techniques.probes import linear_probe
from interplab.techniques.steering import SteeringError, steering_vector
from interplab.techniques.steering import steer as local_steer

FACTORY = "factories_probes:char_llama"
PROBE: dict[str, Any] = {"folds": 4, "n_resamples": 200, "n_controls": 2}
STEER: dict[str, Any] = {"behaviour": VOWELS, "n_random": 2, "max_new_tokens": 4}
COEFS = (0.0, 2.0, 4.0)
PROMPTS = ["abc", "xyz"]


@pytest.fixture(autouse=True)
def _no_recording(monkeypatch):
    monkeypatch.setenv("INTERPLAB_RECORD", "0")  # the comparisons need no store


@pytest.fixture(scope="module")
def model():
    return char_llama()


@pytest.fixture(scope="module")
def datasets() -> list[LabelledDataset]:
    """Two binary datasets: the last letter (no groups) and the first letter (groups of 4)."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("cdefghijk"), size=rng.integers(2, 6))) for _ in range(40)]
    last = LabelledDataset(
        "last-letter",
        tuple(w + ("a" if i % 2 else "b") for i, w in enumerate(words)),
        tuple(i % 2 for i in range(40)),
        tuple("" for _ in words),
        ("b", "a"),
    )
    first = LabelledDataset(
        "first-letter",
        tuple(("a" if i % 3 else "b") + w for i, w in enumerate(words)),
        tuple(int(i % 3 > 0) for i in range(40)),
        tuple(f"g{i // 4}" for i in range(40)),
        ("b", "a"),
    )
    return [last, first]


@pytest.fixture(scope="module")
def vector(model):
    return steering_vector(model, ["happy day", "sunny"], ["rainy day", "gloom"], layers=[1])


class _Counting(LocalBackend):
    """The local backend, counting the tasks it is handed."""

    def __init__(self, model):
        super().__init__(model)
        self.ran = 0

    def map(self, job, shared, tasks, done):
        self.ran += len(tasks)
        super().map(job, shared, tasks, done)


def _fields(result: Any) -> dict[str, Any]:
    """Every stored field (arrays as exact float lists), without the creation time."""
    d = result.to_dict()
    d["provenance"].pop("created")
    return d


def _steer_reference(model, vector, chunks) -> SteeringResult:
    """The local `steer` run on each chunk of coefficients, joined along the coefficients (the
    no-steering and prompt baselines from the first chunk): what the distributed sweep computes."""
    parts = [local_steer(model, PROMPTS, vector, coefficients=c, **STEER) for c in chunks]
    first = parts[0]

    def cat(name):
        return np.concatenate([getattr(p, name) for p in parts], axis=1)

    return SteeringResult(
        **{
            **{f: getattr(first, f) for f in first.__dataclass_fields__},
            "coefficients": [c for p in parts for c in p.coefficients],
            "steered_scores": cat("steered_scores"),
            "random_scores": cat("random_scores"),
            "steered_perplexity": cat("steered_perplexity"),
            "random_perplexity": cat("random_perplexity"),
            "steered_texts": [[t for p in parts for t in p.steered_texts[i]] for i in range(2)],
            "random_texts": [[t for p in parts for t in p.random_texts[i]] for i in range(2)],
        }
    )


def _assert_steering_equal(got: SteeringResult, ref: SteeringResult) -> None:
    for name in SteeringResult.__dataclass_fields__:
        a, b = getattr(got, name), getattr(ref, name)
        if isinstance(a, np.ndarray):
            assert np.array_equal(a, b, equal_nan=True), name
        elif name not in ("provenance", "vector_provenance"):
            assert a == b, name


# --- probes ---------------------------------------------------------------------------------


def test_probes_on_the_local_backend_equal_linear_probe_per_dataset(model, datasets):
    got = linear_probes(model, datasets, backend="local", progress=False, **PROBE)
    assert list(got) == ["last-letter", "first-letter"]
    for ds in datasets:
        ref = linear_probe(model, ds, **PROBE)
        assert _fields(got[ds.name]) == _fields(ref)  # every array, interval and the config


def test_probes_cut_by_layer_equal_linear_probe_at_those_layers(model, datasets):
    backend = _Counting(model)
    got = linear_probes(
        model, {"a": datasets[0]}, backend=backend, layers_per_task=1, progress=False, **PROBE
    )["a"]
    assert backend.ran == 2 and got.layers == [0, 1]
    for layer in (0, 1):
        ref = linear_probe(model, datasets[0], layers=[layer], **PROBE)
        assert np.array_equal(got.scores[:, [layer]], ref.scores)
        assert np.array_equal(got.control_scores[..., [layer]], ref.control_scores)
        assert np.array_equal(got.directions.directions[[layer]], ref.directions.directions)
        assert np.array_equal(got.directions.biases[[layer]], ref.directions.biases)


def test_probes_rerun_with_the_checkpoint_computes_nothing(model, datasets, tmp_path):
    first, again = _Counting(model), _Counting(model)
    a = linear_probes(model, datasets, backend=first, checkpoint=tmp_path, progress=False, **PROBE)
    b = linear_probes(model, datasets, backend=again, checkpoint=tmp_path, progress=False, **PROBE)
    assert (first.ran, again.ran) == (2, 0)
    for name in a:
        assert _fields(a[name]) == _fields(b[name])


def test_probes_refuse_bad_input(model, datasets):
    with pytest.raises(ProbeError, match=r"layers \[5\] are not in the model"):
        linear_probes(model, datasets, layers=[0, 5], progress=False)
    with pytest.raises(DistributedError, match="workers must be at least 1"):
        linear_probes(model, datasets, workers=0, progress=False)
    with pytest.raises(ProbeError, match="no datasets"):
        linear_probes(model, [], progress=False)
    with pytest.raises(ProbeError, match="two datasets are named"):
        linear_probes(model, [datasets[0], datasets[0]], progress=False)
    with pytest.raises(ProbeError, match="layers_per_task"):
        linear_probes(model, datasets, layers_per_task=0, progress=False)
    three = LabelledDataset("three", ("a", "b", "c"), (0, 1, 2), ("", "", ""), ("x", "y", "z"))
    with pytest.raises(ProbeError, match="binary"):
        linear_probes(model, [datasets[0], three], progress=False)


# --- steering -------------------------------------------------------------------------------


def test_steering_on_the_local_backend_equals_the_local_sweep(model, vector):
    one_task = steer(model, PROMPTS, vector, coefficients=COEFS, tasks=1, progress=False, **STEER)
    ref = local_steer(model, PROMPTS, vector, coefficients=COEFS, **STEER)
    assert _fields(one_task) == _fields(ref)  # one task: the local sweep itself
    backend = _Counting(model)
    per_coef = steer(model, PROMPTS, vector, coefficients=COEFS, backend=backend,
                     progress=False, **STEER)  # fmt: skip
    assert backend.ran == 3  # one task per coefficient
    _assert_steering_equal(per_coef, _steer_reference(model, vector, [[c] for c in COEFS]))
    assert per_coef.provenance.config == ref.provenance.config
    # Smaller batches may move the last float bits (not here, on the tiny Llama); never more.
    np.testing.assert_allclose(per_coef.steered_scores, ref.steered_scores, rtol=1e-5)
    np.testing.assert_allclose(per_coef.steered_perplexity, ref.steered_perplexity, rtol=1e-4)


def test_steering_several_vectors_in_one_sweep(model, vector):
    v0 = steering_vector(model, ["happy day", "sunny"], ["rainy day", "gloom"], layers=[0])
    got = steer_vectors(model, PROMPTS, {"L0": v0, "L1": vector}, coefficients=COEFS, tasks=2,
                        progress=False, **STEER)  # fmt: skip
    assert list(got) == ["L0", "L1"]
    _assert_steering_equal(got["L0"], _steer_reference(model, v0, [[0.0, 2.0], [4.0]]))
    _assert_steering_equal(got["L1"], _steer_reference(model, vector, [[0.0, 2.0], [4.0]]))


def test_steering_rerun_with_the_checkpoint_computes_nothing(model, vector, tmp_path):
    first, again = _Counting(model), _Counting(model)
    kw = {"coefficients": COEFS, "checkpoint": tmp_path, "progress": False}
    a = steer(model, PROMPTS, vector, backend=first, **kw, **STEER)
    b = steer(model, PROMPTS, vector, backend=again, **kw, **STEER)
    assert (first.ran, again.ran) == (3, 0)
    _assert_steering_equal(b, a)


def test_steering_refuses_bad_input(model, vector):
    with pytest.raises(DistributedError, match="workers must be at least 1"):
        steer(model, PROMPTS, vector, workers=0, progress=False)
    with pytest.raises(SteeringError, match="tasks must be at least 1"):
        steer(model, PROMPTS, vector, tasks=0, progress=False)
    with pytest.raises(SteeringError, match="at least one prompt"):
        steer(model, [], vector, progress=False)
    with pytest.raises(SteeringError, match="no steering vectors"):
        steer_vectors(model, PROMPTS, {}, progress=False)
    with pytest.raises(ConfigError, match="finite"):
        steer(model, PROMPTS, vector, coefficients=[1.0, float("nan")], progress=False)  # fmt: skip


# --- Ray ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_workers(cluster, model):
    """Two actors on the shared cluster, each loading the char Llama from its factory."""
    pytest.importorskip("ray")
    from interplab.distributed import ModelSpec, RayBackend

    backend = RayBackend(ModelSpec.of(model, FACTORY), address=cluster, workers=2)
    yield backend
    backend.close()


@pytest.mark.ray
def test_probes_on_ray_equal_linear_probe(ray_workers, model, datasets):
    whole = linear_probes(model, datasets, backend=ray_workers, progress=False, **PROBE)
    for ds in datasets:
        assert _fields(whole[ds.name]) == _fields(linear_probe(model, ds, **PROBE))
    cut = linear_probes(model, datasets, backend=ray_workers, layers_per_task=1, progress=False,
                        **PROBE)  # fmt: skip
    local = linear_probes(model, datasets, layers_per_task=1, progress=False, **PROBE)
    for ds in datasets:
        assert _fields(cut[ds.name]) == _fields(local[ds.name])


@pytest.mark.ray
def test_steering_on_ray_equals_the_local_sweep(ray_workers, model, vector):
    got = steer(
        model, PROMPTS, vector, coefficients=COEFS, backend=ray_workers, progress=False, **STEER
    )
    _assert_steering_equal(got, _steer_reference(model, vector, [[c] for c in COEFS]))


# --- CLI ------------------------------------------------------------------------------------


def test_probe_command_refuses_a_bad_backend_before_the_model_loads():
    result = CliRunner().invoke(app, ["probe", "--backend", "slurm", "--model", "no-such-model"])
    assert result.exit_code == 2, result.output
    assert "--backend is local or ray, not 'slurm'" in " ".join(result.output.split())


def test_layers_per_task_needs_the_ray_backend():
    result = CliRunner().invoke(app, ["probe", "--layers-per-task", "1"], catch_exceptions=True)
    assert isinstance(result.exception, UserError), result.output
    assert "add --backend ray" in str(result.exception)


def test_probe_command_hands_the_backend_to_the_distributed_probes(model, datasets, monkeypatch):
    import interplab.commands.probes as command
    import interplab.distributed.probes as distributed

    seen: dict[str, Any] = {}

    def fake(m, named, **kw):  # the same sweep, on this process
        seen.update(kw)
        return linear_probes(m, named, config=kw["config"], progress=False)

    monkeypatch.setattr(command, "load_model", lambda *a: model)
    monkeypatch.setattr(command, "_dataset", lambda name, seed: datasets[0])
    monkeypatch.setattr(distributed, "linear_probes", fake)
    args = ["probe", "--backend", "ray", "--address", "10.0.0.5:6379", "--workers", "3",
            "--layers-per-task", "1", "--folds", "4"]  # fmt: skip
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (seen["backend"], seen["address"], seen["workers"]) == ("ray", "10.0.0.5:6379", 3)
    assert seen["layers_per_task"] == 1 and seen["config"].folds == 4
