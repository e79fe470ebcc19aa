"""Return labelled text datasets for probing: true/false statements, sentiment, or a user file.

Linear probes need texts with labels, and honest probes need controls against leakage: the truth
dataset follows Marks & Tegmark (2023), "The Geometry of Truth: Emergent Linear Structure in Large
Language Model Representations of True/False Datasets" (arXiv:2310.06824), whose `cities` set
pairs real facts with the same facts made false.

1. `truth_dataset`: for every real country-capital pair and every phrasing, one true statement
   ("The capital of France is Paris.") and one false one with another country's capital drawn by
   the seeded generator ("The capital of France is Lima."). Exactly balanced; label 1 = true.
   The group is the country, so `split(by_group=True)` keeps a country's statements on one side
   and a probe cannot pass by memorising countries.
2. `sentiment_dataset`: the 200 Pang & Lee (2005) movie-review sentences; label 1 = positive.
3. `load_labelled`: a user's CSV/JSONL with columns text, label (and optional group); labels are
   integers, booleans, or strings mapped to integers in sorted order; errors name row and column.
4. `LabelledDataset` is frozen, validates its columns' lengths, and hashes (sha256 of canonical
   JSON) its texts, labels and groups for provenance; `subset` and `split` return new datasets.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from interplab.data.assets import capital_pairs, polarity_sentences
from interplab.errors import UserError

TRUTH_PHRASINGS: tuple[str, ...] = (
    "The capital of {country} is {capital}.",
    "{capital} is the capital of {country}.",
    "The capital city of {country} is {capital}.",
    "{country}'s capital is {capital}.",
)
# Label names for true/false data: index 0 is false, index 1 is true.
_BOOL = ("false", "true")


class LabelledFileError(UserError):
    """Raised when a labelled-data file is malformed; the message names the row and column."""


@dataclass(frozen=True)
class LabelledDataset:
    """Texts with integer labels and group ids, immutable, hashed for provenance."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]
    groups: tuple[str, ...]
    label_names: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.texts:
            raise ValueError(f"LabelledDataset {self.name!r} is empty")
        if not len(self.texts) == len(self.labels) == len(self.groups):
            raise ValueError(
                f"texts, labels and groups must have one entry each per example; got "
                f"{len(self.texts)}, {len(self.labels)}, {len(self.groups)}"
            )
        bad = [label for label in self.labels if not 0 <= label < len(self.label_names)]
        if bad:
            raise ValueError(f"labels {sorted(set(bad))} have no name in {self.label_names}")

    def __len__(self) -> int:
        return len(self.texts)

    @cached_property
    def hash(self) -> str:
        """Return the sha256 of the canonical JSON of texts, labels, groups and label names."""
        canonical = json.dumps(
            {
                "texts": self.texts,
                "labels": self.labels,
                "groups": self.groups,
                "label_names": self.label_names,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def label_counts(self) -> dict[str, int]:
        """Return how many examples carry each label name."""
        return {name: self.labels.count(i) for i, name in enumerate(self.label_names)}

    def subset(self, indices: Sequence[int], name: str | None = None) -> LabelledDataset:
        """Return the examples at `indices`, in that order."""
        return LabelledDataset(
            name or self.name,
            tuple(self.texts[i] for i in indices),
            tuple(self.labels[i] for i in indices),
            tuple(self.groups[i] for i in indices),
            self.label_names,
        )

    def split(
        self, test_fraction: float = 0.2, seed: int = 0, by_group: bool = True
    ) -> LabelledSplit:
        """Return a seeded train/test split; with `by_group`, no group spans both sides."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
        rng = random.Random(seed)
        if by_group and len(set(self.groups)) > 1:
            units = sorted(set(self.groups))
            rng.shuffle(units)
            n_test_units = max(1, round(test_fraction * len(units)))
            test_units = set(units[:n_test_units])
            test = [i for i, group in enumerate(self.groups) if group in test_units]
        else:
            order = list(range(len(self)))
            rng.shuffle(order)
            test = sorted(order[: max(1, round(test_fraction * len(self)))])
        test_set = set(test)
        train = [i for i in range(len(self)) if i not in test_set]
        if not train:
            raise ValueError(f"test_fraction {test_fraction} leaves no training examples")
        return LabelledSplit(
            train=self.subset(train, f"{self.name}/train"),
            test=self.subset(test, f"{self.name}/test"),
            seed=seed,
        )


@dataclass(frozen=True)
class LabelledSplit:
    """A train/test pair of labelled datasets and the seed that drew it."""

    train: LabelledDataset
    test: LabelledDataset
    seed: int


def truth_dataset(seed: int = 0, phrasings: tuple[str, ...] = TRUTH_PHRASINGS) -> LabelledDataset:
    """Return balanced true/false capital statements (label 1 = true), grouped by country."""
    for phrasing in phrasings:
        if phrasing.count("{country}") != 1 or phrasing.count("{capital}") != 1:
            raise ValueError(f"phrasing needs {{country}} and {{capital}} once each: {phrasing!r}")
    facts = capital_pairs()
    capitals = sorted({fact.capital for fact in facts})
    rng = random.Random(seed)
    texts: list[str] = []
    labels: list[int] = []
    groups: list[str] = []
    for phrasing in phrasings:
        for fact in facts:
            wrong = rng.choice([c for c in capitals if c != fact.capital])
            for capital, label in ((fact.capital, 1), (wrong, 0)):
                texts.append(phrasing.format(country=fact.country, capital=capital))
                labels.append(label)
                groups.append(fact.country)
    return LabelledDataset("truth-capitals", tuple(texts), tuple(labels), tuple(groups), _BOOL)


def sentiment_dataset() -> LabelledDataset:
    """Return the 200 Pang & Lee movie-review sentences (label 1 = positive)."""
    sentences = polarity_sentences()
    return LabelledDataset(
        "sentiment-pang-lee",
        tuple(s.text for s in sentences),
        tuple(int(s.label == "pos") for s in sentences),
        tuple("" for _ in sentences),
        ("negative", "positive"),
    )


def load_labelled(path: str | Path, name: str | None = None) -> LabelledDataset:
    """Return the labelled texts in a CSV or JSONL file with columns text, label (, group)."""
    path = Path(path)
    if not path.is_file():
        raise LabelledFileError(f"{path}: no such file")
    rows = _read_rows(path)
    if not rows:
        raise LabelledFileError(f"{path}: no rows found")
    texts, raw_labels, groups = [], [], []
    for row_label, row in rows:
        text = row.get("text")
        if text is None:
            raise LabelledFileError(f"{path} {row_label}: missing column 'text'")
        if not isinstance(text, str) or not text.strip():
            raise LabelledFileError(f"{path} {row_label}: column 'text' must be non-empty text")
        label = row.get("label")
        if label is None or label == "":
            raise LabelledFileError(f"{path} {row_label}: missing column 'label'")
        if not isinstance(label, (str, int)):
            raise LabelledFileError(
                f"{path} {row_label}: column 'label' must be an integer, boolean or string, "
                f"got {label!r}"
            )
        group = row.get("group", "")
        texts.append(text)
        raw_labels.append(label)
        groups.append("" if group is None else str(group))
    labels, label_names = _encode_labels(raw_labels)
    return LabelledDataset(
        name or path.stem, tuple(texts), tuple(labels), tuple(groups), label_names
    )


def _encode_labels(raw: list[str | int]) -> tuple[list[int], tuple[str, ...]]:
    """Return integer labels and their names: true/false, else integers, else sorted strings."""
    words = [str(value).strip() for value in raw]
    if all(word.lower() in _BOOL for word in words):
        return [_BOOL.index(word.lower()) for word in words], _BOOL
    if all(word.lstrip("-").isdigit() for word in words):
        ints = [int(word) for word in words]
        if min(ints) < 0:
            raise LabelledFileError(f"integer labels must be >= 0, got {min(ints)}")
        return ints, tuple(str(i) for i in range(max(ints) + 1))
    names = tuple(sorted(set(words)))
    return [names.index(word) for word in words], names


def _read_rows(path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """Return (row label, row) pairs from a CSV or JSONL file."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("text", "label") if c not in (reader.fieldnames or [])]
            if missing:
                raise LabelledFileError(
                    f"{path}: header is missing column(s) {missing}; found {reader.fieldnames}"
                )
            return [(f"row {number}", row) for number, row in enumerate(reader, start=2)]
    if suffix in (".jsonl", ".ndjson"):
        rows: list[tuple[str, Mapping[str, Any]]] = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise LabelledFileError(
                    f"{path} row {number}: not valid JSON ({error.msg})"
                ) from None
            if not isinstance(record, dict):
                raise LabelledFileError(f"{path} row {number}: expected a JSON object")
            rows.append((f"row {number}", record))
        return rows
    raise LabelledFileError(f"{path}: expected a .csv or .jsonl file, got {suffix or 'no suffix'}")
