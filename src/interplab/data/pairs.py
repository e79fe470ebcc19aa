"""Return contrast-pair datasets: the clean/corrupt prompts every patching technique consumes.

A contrast pair is two prompts that differ only in the information a circuit should use (Wang et
al. 2022, "Interpretability in the Wild"; Heimersheim & Nanda 2024, "How to use and interpret
activation patching"). Each pair carries the answer the model should give on the clean prompt and
a wrong answer (usually the corrupt prompt's answer), so `logit(answer) - logit(wrong_answer)` is
the metric. Answers keep the leading space the model expects (" Paris", not "Paris").

1. `ContrastPair` validates its own strings on construction (non-empty, answers differ).
2. `PairDataset` is an immutable, ordered collection with its generator's name, seed, parameters
   and how many candidate pairs the generator dropped (for example because they did not align).
3. Its `hash` is the sha256 of the canonical JSON of the pairs alone (sorted keys, no
   whitespace), so the same pairs hash the same however they were made: the provenance key.
4. `to_jsonl` writes a header line (name, seed, params, dropped, hash) then one pair per line;
   `from_jsonl` reads that back and refuses a file whose pairs no longer match the header's hash.
5. `load_pairs` reads a user's CSV or JSONL file with columns clean, corrupt, answer,
   wrong_answer and optional group; each error names the row and the column at fault.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Any

from interplab.data.cache import atomic_write_text
from interplab.errors import UserError

PAIR_COLUMNS = ("clean", "corrupt", "answer", "wrong_answer")
_HEADER_KEY = "interplab_pair_dataset"
_HEADER_VERSION = 1


class PairFileError(UserError):
    """Raised when a pairs file is malformed; the message names the file, row and column."""


@dataclass(frozen=True)
class ContrastPair:
    """One clean/corrupt prompt pair with the answer and the wrong answer to compare."""

    clean: str
    corrupt: str
    answer: str
    wrong_answer: str
    group: str = ""

    def __post_init__(self) -> None:
        for name in PAIR_COLUMNS:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"ContrastPair.{name} must be a non-empty string, got {value!r}")
        if not isinstance(self.group, str):
            raise ValueError(f"ContrastPair.group must be a string, got {self.group!r}")
        if self.answer == self.wrong_answer:
            raise ValueError(
                f"answer and wrong_answer are both {self.answer!r}; nothing to compare"
            )

    def to_dict(self) -> dict[str, str]:
        """Return the pair as a plain JSON-ready dict."""
        return {
            "clean": self.clean,
            "corrupt": self.corrupt,
            "answer": self.answer,
            "wrong_answer": self.wrong_answer,
            "group": self.group,
        }


@dataclass(frozen=True)
class PairDataset:
    """An ordered, immutable set of contrast pairs with the provenance of how it was made."""

    name: str
    pairs: tuple[ContrastPair, ...]
    seed: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    dropped: int = 0

    def __post_init__(self) -> None:
        if not self.pairs:
            raise ValueError(f"PairDataset {self.name!r} has no pairs")
        if not all(isinstance(pair, ContrastPair) for pair in self.pairs):
            raise ValueError("PairDataset.pairs must hold ContrastPair values")
        if self.dropped < 0:
            raise ValueError(f"dropped must be >= 0, got {self.dropped}")
        # Freeze params too: a frozen dataclass holding a mutable dict is only shallowly frozen.
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[ContrastPair]:
        return iter(self.pairs)

    def __getitem__(self, index: int) -> ContrastPair:
        return self.pairs[index]

    @cached_property
    def hash(self) -> str:
        """Return the sha256 of the pairs' canonical JSON: equal pairs, equal hash."""
        return pairs_hash(self.pairs)

    @property
    def groups(self) -> tuple[str, ...]:
        """Return the distinct group ids (templates), in first-seen order."""
        return tuple(dict.fromkeys(pair.group for pair in self.pairs))

    def subset(self, indices: Sequence[int]) -> PairDataset:
        """Return a dataset of the pairs at `indices`, keeping name, seed and params."""
        return PairDataset(
            self.name, tuple(self.pairs[i] for i in indices), self.seed, self.params, self.dropped
        )

    def to_jsonl(self, path: str | Path) -> Path:
        """Return `path` after writing a header line and one JSON pair per line (atomically)."""
        header = {
            _HEADER_KEY: _HEADER_VERSION,
            "name": self.name,
            "seed": self.seed,
            "params": dict(self.params),
            "dropped": self.dropped,
            "hash": self.hash,
        }
        lines = [json.dumps(header, sort_keys=True, ensure_ascii=False)]
        lines += [json.dumps(p.to_dict(), sort_keys=True, ensure_ascii=False) for p in self.pairs]
        return atomic_write_text(Path(path), "\n".join(lines) + "\n")

    @classmethod
    def from_jsonl(cls, path: str | Path) -> PairDataset:
        """Return the dataset saved by `to_jsonl`, or a user JSONL file of pairs."""
        return load_pairs(path)


def pairs_hash(pairs: Sequence[ContrastPair]) -> str:
    """Return the sha256 hex digest of the pairs' canonical JSON."""
    canonical = json.dumps(
        [pair.to_dict() for pair in pairs],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def load_pairs(path: str | Path, name: str | None = None) -> PairDataset:
    """Return the contrast pairs in a CSV or JSONL file (columns clean, corrupt, answer, ...)."""
    path = Path(path)
    if not path.is_file():
        raise PairFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        header, rows = None, _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        header, rows = _jsonl_rows(path)
    else:
        raise PairFileError(f"{path}: expected a .csv or .jsonl file, got {suffix or 'no suffix'}")
    pairs = tuple(_row_to_pair(path, row_label, row) for row_label, row in rows)
    if not pairs:
        raise PairFileError(f"{path}: no pairs found")
    if header is None:
        return PairDataset(name or path.stem, pairs, params={"source": str(path)})
    dataset = PairDataset(
        name or str(header.get("name") or path.stem),
        pairs,
        header.get("seed"),
        header.get("params") or {},
        int(header.get("dropped") or 0),
    )
    if header.get("hash") not in (None, dataset.hash):
        raise PairFileError(
            f"{path}: the pairs do not match the header's hash {header['hash']} "
            f"(they hash to {dataset.hash}); the file was edited after it was written"
        )
    return dataset


def _csv_rows(path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """Return (row label, row) for each data row of a CSV file; row labels are line numbers."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in PAIR_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise PairFileError(
                f"{path}: header is missing column(s) {missing}; "
                f"found {reader.fieldnames}, need {list(PAIR_COLUMNS)} (+ optional 'group')"
            )
        # Line 1 is the header, so data row i sits on line i + 1 (for single-line fields).
        return [(f"row {number}", row) for number, row in enumerate(reader, start=2)]


def _jsonl_rows(path: Path) -> tuple[dict[str, Any] | None, list[tuple[str, Mapping[str, Any]]]]:
    """Return the optional interplab header and (line label, object) for each JSONL record."""
    header: dict[str, Any] | None = None
    rows: list[tuple[str, Mapping[str, Any]]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise PairFileError(f"{path} row {number}: not valid JSON ({error.msg})") from None
        if not isinstance(record, dict):
            raise PairFileError(f"{path} row {number}: expected a JSON object, got {record!r}")
        if _HEADER_KEY in record:
            if number != 1 or header is not None:
                raise PairFileError(f"{path} row {number}: header line must be the first line")
            header = record
            continue
        rows.append((f"row {number}", record))
    return header, rows


def _row_to_pair(path: Path, row_label: str, row: Mapping[str, Any]) -> ContrastPair:
    """Return the row as a ContrastPair, or raise naming the row and the bad column."""
    values: dict[str, str] = {}
    for column in (*PAIR_COLUMNS, "group"):
        value = row.get(column)
        if column == "group" and value is None:
            value = ""
        if value is None:
            raise PairFileError(f"{path} {row_label}: missing column {column!r}")
        if not isinstance(value, str):
            raise PairFileError(
                f"{path} {row_label}: column {column!r} must be a string, got {value!r}"
            )
        if column != "group" and not value:
            raise PairFileError(f"{path} {row_label}: column {column!r} is empty")
        values[column] = value
    if values["answer"] == values["wrong_answer"]:
        raise PairFileError(
            f"{path} {row_label}: columns 'answer' and 'wrong_answer' are both "
            f"{values['answer']!r}; they must differ"
        )
    return ContrastPair(**values)
