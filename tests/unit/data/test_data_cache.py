"""Atomic cache writes and cache validation in interplab.data.cache / assets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import BinaryIO

import pytest

from interplab.data import assets, atomic_write, atomic_write_text, cache_root, data_cache_dir


class SimulatedInterrupt(Exception):
    pass


def test_interrupted_write_leaves_no_file_and_no_temp_litter(tmp_path: Path) -> None:
    target = tmp_path / "corpus.json"

    def write_half(handle: BinaryIO) -> None:
        handle.write(b'{"records": [1, 2,')
        raise SimulatedInterrupt

    with pytest.raises(SimulatedInterrupt):
        atomic_write(target, write_half)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_previous_complete_file(tmp_path: Path) -> None:
    target = tmp_path / "corpus.json"
    atomic_write_text(target, '{"complete": true}')

    def write_half(handle: BinaryIO) -> None:
        handle.write(b'{"complete": fa')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, write_half)
    assert json.loads(target.read_text()) == {"complete": True}
    assert [p.name for p in tmp_path.iterdir()] == ["corpus.json"]


def test_cache_root_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
    assert data_cache_dir() == tmp_path / "elsewhere" / "data"
    assert data_cache_dir().is_dir()


def test_interrupted_parse_is_not_read_back_as_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path))
    real_dumps = json.dumps

    def dumps_then_crash(*args: object, **kwargs: object) -> str:
        raise SimulatedInterrupt

    monkeypatch.setattr(assets.json, "dumps", dumps_then_crash)
    with pytest.raises(SimulatedInterrupt):
        assets.capital_pairs()
    assert list((tmp_path / "data").iterdir()) == []
    monkeypatch.setattr(assets.json, "dumps", real_dumps)
    pairs = assets.capital_pairs()
    assert len(list((tmp_path / "data").glob("questions_words-*.json"))) == 1
    assert assets.capital_pairs() == pairs


def test_truncated_or_stale_cache_is_rebuilt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path))
    expected = assets.polarity_sentences()
    (cache_file,) = (tmp_path / "data").glob("polarity-*.json")
    cache_file.write_text(cache_file.read_text()[:100])
    assert assets.polarity_sentences() == expected
    payload = json.loads(cache_file.read_text())
    payload["source_sha256"] = "0" * 64
    payload["records"] = [{"text": "poisoned", "label": "pos"}]
    cache_file.write_text(json.dumps(payload))
    assert assets.polarity_sentences() == expected
