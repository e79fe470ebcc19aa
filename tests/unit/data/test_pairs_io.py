"""PairDataset provenance and I/O, user pair files, and the alignment checks' errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from interplab.data import (
    AlignmentError,
    ContrastPair,
    PairDataset,
    PairFileError,
    check_aligned,
    check_single_token_answers,
    load_pairs,
)

PAIRS = (
    ContrastPair("The capital of France is", "The capital of Italy is", " Paris", " Rome", "t0"),
    ContrastPair("The capital of Japan is", "The capital of Egypt is", " Tokyo", " Cairo", "t0"),
)


def test_jsonl_round_trip_keeps_pairs_and_provenance(tmp_path: Path) -> None:
    dataset = PairDataset("demo", PAIRS, seed=3, params={"k": [1, 2]}, dropped=4)
    path = dataset.to_jsonl(tmp_path / "demo.jsonl")
    loaded = PairDataset.from_jsonl(path)
    assert loaded.pairs == dataset.pairs and loaded.hash == dataset.hash
    assert (loaded.name, loaded.seed, loaded.dropped) == ("demo", 3, 4)
    assert dict(loaded.params) == {"k": [1, 2]}


def test_hash_depends_on_pairs_only_and_is_order_sensitive() -> None:
    a = PairDataset("a", PAIRS, seed=1)
    assert PairDataset("b", PAIRS, seed=2).hash == a.hash
    assert PairDataset("a", PAIRS[::-1], seed=1).hash != a.hash
    assert len(a.hash) == 64


def test_edited_file_is_refused(tmp_path: Path) -> None:
    path = PairDataset("demo", PAIRS).to_jsonl(tmp_path / "demo.jsonl")
    path.write_text(path.read_text().replace("Paris", "Lyon"))
    with pytest.raises(PairFileError, match="edited after it was written"):
        load_pairs(path)


def test_user_csv_loads_with_leading_spaces_kept(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text(
        "clean,corrupt,answer,wrong_answer,group\n"
        "The capital of France is,The capital of Italy is, Paris, Rome,g1\n"
    )
    dataset = load_pairs(path)
    expected = ContrastPair(
        "The capital of France is", "The capital of Italy is", " Paris", " Rome", "g1"
    )
    assert dataset.pairs == (expected,)
    assert dataset.name == "mine"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("clean,corrupt,answer\na,b,c\n", r"header is missing column\(s\) \['wrong_answer'\]"),
        (
            "clean,corrupt,answer,wrong_answer\na,b, x, y\na,,x,y\n",
            r"row 3: column 'corrupt' is empty",
        ),
        (
            "clean,corrupt,answer,wrong_answer\na,b, x, x\n",
            r"row 2: columns 'answer' and 'wrong_answer'",
        ),
    ],
)
def test_bad_csv_errors_name_row_and_column(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(PairFileError, match=message):
        load_pairs(path)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([{"clean": "a", "corrupt": "b", "answer": " x"}], r"row 1: missing column 'wrong_answer'"),
        (
            [PAIRS[0].to_dict(), {"clean": "a", "corrupt": "b", "answer": 1, "wrong_answer": " y"}],
            r"row 2: column 'answer' must be a string",
        ),
    ],
)
def test_bad_jsonl_errors_name_row_and_column(
    tmp_path: Path, records: list[dict[str, Any]], message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    with pytest.raises(PairFileError, match=message):
        load_pairs(path)


def test_malformed_json_line_names_the_row(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(PAIRS[0].to_dict()) + "\n{not json\n")
    with pytest.raises(PairFileError, match=r"row 2: not valid JSON"):
        load_pairs(path)


def test_misaligned_pair_error_names_index_and_both_token_lists(tokenizer: Any) -> None:
    pairs = [
        PAIRS[0],
        ContrastPair(
            "The capital of France is", "The capital of Burkina Faso is", " Paris", " Ouagadougou"
        ),
    ]
    with pytest.raises(AlignmentError) as info:
        check_aligned(pairs, tokenizer)
    message = str(info.value)
    assert message.startswith("pair 1:") and "different lengths" in message
    assert "' France'" in message and "' Burk'" in message
    assert "never pads" in message


def test_multi_token_answer_error_names_the_pieces(tokenizer: Any) -> None:
    pair = ContrastPair(
        "The capital of Burkina Faso is", "The capital of Mali is", " Ouagadougou", " Bamako"
    )
    with pytest.raises(AlignmentError, match=r"pair 0: answer ' Ouagadougou' is \d+ tokens"):
        check_single_token_answers([pair], tokenizer)


def test_contrast_pair_validates_itself() -> None:
    with pytest.raises(ValueError, match="clean must be a non-empty string"):
        ContrastPair("", "b", " x", " y")
    with pytest.raises(ValueError, match="nothing to compare"):
        ContrastPair("a", "b", " x", " x")
