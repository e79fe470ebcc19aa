"""The ``sae`` commands as a user runs them: harvest, train, eval, encode, features, convert."""

import json

import pytest
from test_cli import run

pytestmark = pytest.mark.slow


def test_sae_commands_from_harvest_to_pages(tmp_path):
    out = run(
        "sae",
        "harvest",
        "--site",
        "L3.resid_pre",
        "--corpus",
        "lee",
        "--max-tokens",
        "2000",
        "--out",
        str(tmp_path / "h"),
    )
    assert out.returncode == 0, out.stderr
    out = run(
        "sae",
        "train",
        "--shards",
        str(tmp_path / "h"),
        "--site",
        "L3.resid_pre",
        "--width",
        "1152",
        "--k",
        "8",
        "--k",
        "16",
        "--tokens",
        "4000",
        "--batch",
        "500",
        "--out",
        str(tmp_path / "t"),
    )
    assert out.returncode == 0, out.stderr
    d = tmp_path / "t" / "topk-w1152-k8"
    assert d.is_dir() and (tmp_path / "t" / "topk-w1152-k16").is_dir()
    out = run(
        "sae",
        "eval",
        str(d),
        "--corpus",
        "lee",
        "--batches",
        "2",
        "--batch-windows",
        "4",
        "--json",
        str(tmp_path / "e.json"),
        "--plot",
        str(tmp_path / "e.png"),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "e.json").read_text())["technique"] == "dictionary_eval"
    out = run(
        "sae",
        "encode",
        str(d),
        "--prompt",
        "The cat sat on the mat",
        "--json",
        str(tmp_path / "x.json"),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "x.json").read_text())
    assert data["tokens"][0][1] == " cat" and len(data["features"][0]) == len(data["tokens"][0])
    out = run(
        "sae",
        "features",
        str(d),
        "--corpus",
        "lee",
        "--windows",
        "16",
        "--n-best",
        "2",
        "--n-random",
        "1",
        "--out",
        str(tmp_path / "pages"),
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "pages" / "index.html").exists()
    out = run("sae", "convert", str(d), str(tmp_path / "sl"), "--to", "saelens")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "sl" / "sae_weights.safetensors").exists()


def test_sae_errors_are_one_line_before_any_compute(tmp_path):
    out = run("sae", "eval", str(tmp_path), "--json", str(tmp_path / "x.txt" / "y.json"))
    assert out.returncode == 2 and "holds no dictionary" in out.stderr
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "cfg.json").write_text("{}")
    (tmp_path / "d" / "sae.safetensors").write_bytes(b"abc")
    out = run("sae", "encode", str(tmp_path / "d"), "--prompt", "hi")
    assert out.returncode == 2 and "cfg.json" in out.stderr and "Traceback" not in out.stderr
    out = run("sae", "convert", str(tmp_path / "d"), str(tmp_path / "o"), "--to", "onnx")
    assert out.returncode == 2 and "unknown format 'onnx'" in out.stderr
