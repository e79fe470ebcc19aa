"""Labelled datasets: truth statements, sentiment, user files, splits."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from interplab.data import (
    TRUTH_PHRASINGS,
    LabelledDataset,
    LabelledFileError,
    capital_pairs,
    load_labelled,
    sentiment_dataset,
    truth_dataset,
)


def _parse_statement(text: str) -> tuple[str, str]:
    """Return (country, capital) named by a statement in any of the truth phrasings."""
    for phrasing in TRUTH_PHRASINGS:
        pattern = re.escape(phrasing)
        pattern = pattern.replace(r"\{country\}", "(?P<country>.+)")
        pattern = pattern.replace(r"\{capital\}", "(?P<capital>.+)")
        match = re.fullmatch(pattern, text)
        if match:
            return match["country"], match["capital"]
    raise AssertionError(f"{text!r} matches no phrasing")


def test_truth_dataset_is_balanced_and_false_statements_are_wrong() -> None:
    dataset = truth_dataset(seed=0)
    facts = capital_pairs()
    n = len(facts) * len(TRUTH_PHRASINGS)
    assert dataset.label_counts() == {"false": n, "true": n}
    capital_of = {f.country: f.capital for f in facts}
    for text, label, group in zip(dataset.texts, dataset.labels, dataset.groups, strict=True):
        country, capital = _parse_statement(text)
        assert country == group and capital in capital_of.values()
        assert (capital_of[country] == capital) == (label == 1), text
    assert "The capital of France is Paris." in dataset.texts


def test_truth_dataset_uses_every_phrasing_and_is_seeded() -> None:
    dataset = truth_dataset(seed=0)
    for phrasing in TRUTH_PHRASINGS:
        stem = phrasing.split("{")[0] or phrasing.split("}")[1][:12]
        assert any(stem in text for text in dataset.texts)
    assert truth_dataset(seed=0).hash == dataset.hash
    assert truth_dataset(seed=1).hash != dataset.hash


def test_group_split_keeps_each_country_on_one_side() -> None:
    split = truth_dataset().split(test_fraction=0.25, seed=0)
    assert not set(split.train.groups) & set(split.test.groups)
    assert len(split.train) + len(split.test) == len(truth_dataset())
    assert split.train.label_names == ("false", "true")


def test_sentiment_dataset_from_pang_lee() -> None:
    dataset = sentiment_dataset()
    assert len(dataset) == 200
    assert dataset.label_counts() == {"negative": 100, "positive": 100}
    assert dataset.texts[0] == "simplistic , silly and tedious ."
    assert dataset.labels[0] == 0


def test_load_labelled_csv_and_jsonl(tmp_path: Path) -> None:
    csv_path = tmp_path / "probe.csv"
    csv_path.write_text("text,label,group\nthe sky is blue,true,a\nthe sky is green,false,b\n")
    from_csv = load_labelled(csv_path)
    assert from_csv.labels == (1, 0) and from_csv.label_names == ("false", "true")
    jsonl_path = tmp_path / "probe.jsonl"
    rows = [{"text": "great film", "label": "pos"}, {"text": "dull film", "label": "neg"}]
    jsonl_path.write_text("\n".join(json.dumps(r) for r in rows))
    from_jsonl = load_labelled(jsonl_path)
    assert from_jsonl.label_names == ("neg", "pos") and from_jsonl.labels == (1, 0)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,group\nhello,a\n", r"header is missing column\(s\) \['label'\]"),
        ("text,label\nhello,1\n,0\n", r"row 3: column 'text' must be non-empty"),
        ("text,label\nhello,1\nworld,\n", r"row 3: missing column 'label'"),
    ],
)
def test_bad_labelled_files_name_the_row(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(LabelledFileError, match=message):
        load_labelled(path)


def test_labelled_dataset_validates_lengths() -> None:
    with pytest.raises(ValueError, match="one entry each"):
        LabelledDataset("x", ("a", "b"), (0,), ("", ""), ("no", "yes"))
    with pytest.raises(ValueError, match="have no name"):
        LabelledDataset("x", ("a",), (2,), ("",), ("no", "yes"))
