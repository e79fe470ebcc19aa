"""Cached conversions are verified on load; damaged or unreadable model files give one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interplab.models import load as load_mod
from interplab.models.load import ModelFilesError, load_hf, verify_folder


def _folder(tmp_path: Path, payload: bytes = b"x" * 300_000) -> Path:
    folder = tmp_path / "m-abc"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    weights = folder / "model.safetensors"
    weights.write_bytes(payload)
    manifest = {
        "weights_sha256": load_mod._combined_sha([weights]),
        "files": {weights.name: load_mod._fingerprint(weights)},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_an_intact_folder_verifies_quickly_and_fully(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    assert verify_folder(folder, full=False) is None
    assert verify_folder(folder, full=True) is None


def test_truncated_weights_fail_the_quick_check(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    w = folder / "model.safetensors"
    w.write_bytes(w.read_bytes()[:1000])
    assert "bytes" in (verify_folder(folder, full=False) or "")


def test_a_flipped_byte_fails_the_sample_and_the_full_check(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    w = folder / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[len(data) // 2] ^= 0xFF
    w.write_bytes(bytes(data))
    assert "sample" in (verify_folder(folder, full=False) or "")
    assert "sha256" in (verify_folder(folder, full=True) or "")


def test_a_missing_manifest_is_reported(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    (folder / "manifest.json").unlink()
    assert verify_folder(folder, full=False) == "no manifest.json"


def test_a_legacy_manifest_is_checked_in_full_once_and_upgraded(tmp_path: Path) -> None:
    folder = _folder(tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["files"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert verify_folder(folder, full=False) is None
    assert "files" in json.loads((folder / "manifest.json").read_text())


def test_a_damaged_cached_conversion_is_moved_aside_and_converted_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + b"\0" * 100)
    calls: list[Path] = []

    def fake_convert(source: Path, name: str, folder: Path) -> Path:
        calls.append(folder)
        folder.mkdir(parents=True)
        return folder

    monkeypatch.setattr(load_mod, "_convert", fake_convert)
    first = load_mod._converted(gguf, "tiny")
    assert calls == [first]
    # The fake conversion wrote no manifest: the next load finds the folder damaged.
    second = load_mod._converted(gguf, "tiny")
    assert second == first and len(calls) == 2
    assert not list(first.parent.glob("*.damaged-*"))


def test_a_bad_config_is_one_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ModelFilesError, match=r"config\.json"):
        load_hf(str(folder))


def test_a_truncated_gguf_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from interplab.models.load import EMBEDDED

    try:
        source = EMBEDDED["smollm2-135m"].locate()
    except Exception:
        pytest.skip("the embedded GGUF is not installed")
    monkeypatch.setenv("INTERPLAB_CACHE", str(tmp_path / "cache"))
    cut = tmp_path / "cut.gguf"
    with source.open("rb") as f:
        cut.write_bytes(f.read(2_000_000))
    with pytest.raises(ModelFilesError, match="truncated or corrupt"):
        load_hf(str(cut))
    assert not list((tmp_path / "cache" / "models").glob("*"))
