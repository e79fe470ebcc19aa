"""Every recorded technique re-runs from its stored call with every number identical (tiny random
Llama, one character per token), and a call that could not be stored says why."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from char_tokenizer import CharTokenizer

from interplab.core.interventions import Add
from interplab.store import StoreError
from interplab.techniques import (
    Behaviour,
    attribution_patching,
    causal_tracing,
    compare_ablation,
    compare_ablations,
    direct_logit_attribution,
    linear_probe,
    logit_lens,
    path_patching,
    steer,
    steering_vector,
    top_examples,
)
from interplab.techniques.patching import activation_patching

from helpers import last_letter_dataset, random_direction, tiny_model, token_pairs


def vowels(model, texts):
    """A behaviour score: the share of vowels in each continuation."""
    return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


VOWELS = Behaviour("vowels", vowels, "Vowels: ", "share of vowels")


@pytest.fixture(scope="module")
def model():
    m = tiny_model("llama")
    m.tokenizer = CharTokenizer()
    return m


RUNS = {
    "logit_lens": lambda m: logit_lens(m, ["hello there", "a cat sat"], target="x", k=3),
    "direct_logit_attribution": lambda m: direct_logit_attribution(
        m, ["hello there", "a cat sat"], target=["x", "y"], baseline=["q", "z"]
    ),
    "activation_patching": lambda m: activation_patching(
        m, token_pairs(), components=("resid_pre", "attn.z"), progress=False
    ),
    "attribution_patching": lambda m: attribution_patching(m, token_pairs(), seed=2),
    "path_patching": lambda m: path_patching(m, token_pairs(), progress=False),
    "ablation_comparison": lambda m: compare_ablations(m, token_pairs(), progress=False),
    "causal_tracing": lambda m: causal_tracing(
        m,
        torch.randint(256, (3, 7), generator=torch.Generator().manual_seed(0)),
        subjects=[(2, 4), (0, 1), (3, 6)],
        samples=2,
        progress=False,
    ),
    "linear_probe": lambda m: linear_probe(
        m, last_letter_dataset(), folds=3, n_controls=1, n_resamples=200
    ),
    "steering": lambda m: steer(
        m,
        ["abc", "xyz"],
        steering_vector(m, ["happy day", "sunny"], ["rainy day", "gloom"], layers=[1]),
        coefficients=[0.0, 4.0],
        behaviour=VOWELS,
        n_random=1,
        max_new_tokens=3,
    ),
    "directional_ablation": lambda m: compare_ablation(
        m, ["hello", "world"], random_direction(), k=2, max_new_tokens=2, n_random=2
    ),
    "top_examples": lambda m: top_examples(
        m,
        np.random.default_rng(0).integers(0, 256, size=(6, 8)),
        site="L1.mlp.post",
        neurons=[0, 5, 9],
        directions={"probe": ("L0.resid_post", random_direction())},
        k=3,
        n_random=2,
        n_hist=8,
        batch_size=4,
        progress=False,
    ),
}


@pytest.mark.parametrize("technique", sorted(RUNS))
def test_every_technique_reruns_from_its_stored_call_exactly(project, model, technique):
    first = RUNS[technique](model)
    (run,) = project.runs()
    assert run.technique == technique and run.status == "done"
    call = project.stored_call(run.id)
    assert call is not None and call.not_stored is None, call
    assert call.function.startswith("interplab.techniques.")
    report = project.rerun(run.id, model=model, modules=[__name__])
    assert report.exact_expected and report.comparison.exact, report.describe()
    assert report.matches and report.comparison.n_numbers > 0
    assert report.data_matches is not False
    again = project.result(report.rerun)
    assert type(again) is type(first)
    assert project.run(report.rerun).rerun_of == run.id
    repeat = project.stored_call(report.rerun)  # a re-run stores the same call: it re-runs too
    assert repeat is not None and (repeat.function, repeat.arguments) == (
        call.function,
        call.arguments,
    )
    assert all(np.array_equal(repeat.arrays[k], a) for k, a in call.arrays.items())


def test_a_tokenised_corpus_is_stored_by_folder_and_hash(project, model, tmp_path):
    from interplab.data.corpus import tokenize_corpus

    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\n\nand the dog ran far away\n\nhello world again\n")
    corpus = tokenize_corpus(text, model.tokenizer, window_len=6, cache_dir=tmp_path / "tok",
                             progress=False)  # fmt: skip
    top_examples(model, corpus, site="L1.mlp.post", neurons=[1, 2], k=2, n_random=1, n_bins=2, n_hist=4,
                 progress=False)  # fmt: skip
    call = project.stored_call(1)
    assert call is not None and call.arrays == {}  # the tokens were not copied
    assert project.rerun(1, model=model).comparison.exact
    (corpus.folder / "tokens.u32").write_bytes(b"\0" * (corpus.n_windows * 6 * 4))
    with pytest.raises(StoreError, match="no longer there whole"):
        project.rerun(1, model=model)


def test_a_call_that_cannot_be_stored_is_recorded_with_the_reason(project, model):
    inline = Behaviour("inline", lambda m, texts: np.zeros(len(texts)), "x", "")
    v = steering_vector(model, ["ab"], ["cd"], layers=[1])
    steer(model, ["abc"], v, coefficients=[0.0], behaviour=inline, n_random=0, max_new_tokens=1)
    call = project.stored_call(1)
    assert call is not None and "argument 'behaviour'.score" in (call.not_stored or "")
    assert "<lambda>" in (call.not_stored or "")
    with pytest.raises(StoreError, match=r"run 1 \(steering\) cannot be re-run: .*<lambda>"):
        project.rerun(1, model=model)


def test_a_model_with_hooks_in_place_is_not_stored_by_name(project, model):
    with model.intervene([Add("L0.resid_post", torch.ones(64))]):
        logit_lens(model, ["hello"], k=2)
    call = project.stored_call(1)
    assert call is not None and "hooks in place" in (call.not_stored or "")


def test_rerun_loads_the_model_by_its_recorded_name(project, model):
    logit_lens(model, ["hello"], k=2)
    from interplab.models.load import ModelNotFoundError

    with pytest.raises(ModelNotFoundError, match="tiny-llama"):
        project.rerun(1)  # a tiny random model has no name to load; the real model does
    assert len(project.runs()) == 1  # nothing recorded for a re-run that could not start


def test_functions_and_classes_outside_interplab_need_to_be_allowed(project, model):
    v = steering_vector(model, ["ab"], ["cd"], layers=[1])
    steer(model, ["abc"], v, coefficients=[0.0], behaviour=VOWELS, n_random=0, max_new_tokens=1)
    with pytest.raises(StoreError, match=f"--import {__name__}"):
        project.rerun(1, model=model)


def test_the_stored_call_keeps_paths_sites_slices_and_non_finite_numbers():
    from interplab.sites import Site
    from interplab.store import calls

    args = {
        "a": (1, 2.5, float("nan"), float("-inf")),
        "b": {"x": [Site.parse("L3.attn.z.h2"), Path("/tmp/x")], 7: slice(1, None, 2)},
        "c": np.arange(6, dtype=np.float32).reshape(2, 3),
        "d": np.int16(4),
        "e": frozenset({"p", "q"}),
        "f": range(2, 9, 3),
    }

    def fn(a, b, c, d, e, f): ...

    enc = calls.encode_call(fn, args)
    assert enc.not_stored is None
    stored = calls.read_call(enc.json_bytes, enc.tensor_bytes)
    back = calls._Decoder(stored.arrays, {}, ()).decode
    out = {k: back(v) for k, v in stored.arguments.items()}
    assert out["a"][:2] == (1, 2.5) and np.isnan(out["a"][2]) and out["a"][3] == float("-inf")
    assert out["b"] == args["b"] and out["e"] == args["e"] and out["f"] == args["f"]
    assert out["c"].dtype == np.float32 and np.array_equal(out["c"], args["c"])
    assert type(out["d"]) is np.int16 and out["d"] == 4
    bad = calls.encode_call(fn, {"a": object()})
    assert bad.not_stored is not None and "argument 'a' is a builtins.object" in bad.not_stored


def test_a_call_with_more_array_data_than_the_cap_is_not_stored(model):
    from interplab.store.calls import MAX_ARRAY_BYTES, encode_call

    big = torch.zeros(MAX_ARRAY_BYTES // 4 + 1)
    small = encode_call(top_examples, {"model": model, "directions": {"d": ("L0", big[:64])}})
    assert small.not_stored is None  # a view is stored as what it holds
    for args in ({"directions": {"d": ("L0", big)}}, {"corpus": np.zeros(MAX_ARRAY_BYTES // 7)}):
        enc = encode_call(top_examples, {"model": model, **args})
        assert enc.not_stored is not None and "a stored call keeps at most 8 MiB" in enc.not_stored
