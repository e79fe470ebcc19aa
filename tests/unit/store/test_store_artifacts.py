"""A stored result is the results codec's JSON, nested results included, without the keys a
subclass derives (a bootstrap summary of a control sweep), and reads back equal."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
from char_tokenizer import CharTokenizer
from fake_technique import PROMPTS, FakeResult, fake_sweep

from interplab.results import load
from interplab.results.base import Result
from interplab.store.artifacts import result_dict

from helpers import tiny_model, token_pairs


def _reference(result: Result) -> dict:
    """The base codec field by field; a nested result by the same rule (no derived keys)."""
    out = Result.to_dict(result)
    for f in dataclasses.fields(result):  # type: ignore[arg-type]
        value = getattr(result, f.name)
        if isinstance(value, Result):
            out[f.name] = _reference(value)
    return out


def _text(d: dict) -> str:
    return json.dumps(d, allow_nan=False, separators=(",", ":"))


def test_a_result_is_stored_as_the_codec_writes_it_with_nan_and_nested_results(tmp_path):
    from interplab.data.labelled import LabelledDataset
    from interplab.techniques import activation_patching, linear_probe, logit_lens

    model = tiny_model("llama")
    patched = activation_patching(model, token_pairs(n=4), progress=False, record=False)
    assert patched.control is not None and "summary" in patched.control.to_dict()
    stored = result_dict(patched)
    assert "summary" not in stored["control"] and "axes" not in stored
    assert _text(stored) == _text(_reference(patched))

    plain = fake_sweep(PROMPTS, record=False)
    values = plain.values.copy()
    values[0, 1], values[2, 0] = np.nan, -np.inf  # the codec's strings for them
    odd = FakeResult(plain.prompts, values, plain.provenance)
    assert _text(result_dict(odd)) == _text(_reference(odd))
    path = tmp_path / "odd.json"
    path.write_text(_text(result_dict(odd)))
    back = load(path)
    assert np.array_equal(back.values, values, equal_nan=True)  # type: ignore[attr-defined]

    model.tokenizer = CharTokenizer()
    lens = logit_lens(model, ["hello", "a cat"], k=3, record=False)
    assert _text(result_dict(lens)) == _text(_reference(lens))  # nested token strings
    texts = tuple(f"{w}{'ab'[i % 2]}" for i, w in enumerate(["cd", "efg", "hi", "jkl"] * 4))
    data = LabelledDataset("last", texts, tuple(i % 2 for i in range(16)), ("",) * 16, ("a", "b"))
    probe = linear_probe(model, data, folds=2, n_controls=1, n_resamples=100, record=False)
    assert _text(result_dict(probe)) == _text(_reference(probe))  # nested probe directions
