"""``interplab path-patch`` driven as a user would: small inputs, files written, errors clear; and
the patching commands check their output paths before loading a model."""

import json

import numpy as np
import pytest
from test_cli import run


def test_path_patch_writes_json_png_and_html(tmp_path):
    out = run(
        "path-patch",
        "--n",
        "4",
        "--senders",
        "L20.attn.z,L22.mlp_out",
        "--receivers",
        "L23.attn.q.h3,L23.attn.v.h3",
        "--json",
        str(tmp_path / "pp.json"),
        "--plot",
        str(tmp_path / "pp.png"),
    )
    assert out.returncode == 0, out.stderr
    assert "strongest attn.z senders" in out.stdout and "strongest mlp_out senders" in out.stdout
    data = json.loads((tmp_path / "pp.json").read_text())
    assert data["technique"] == "path_patching"
    assert data["receivers"] == ["L23.attn.q.h3", "L23.attn.v.h3"]
    assert data["provenance"]["model"]["name"] == "smollm2-135m"
    from interplab import results
    from interplab.results.patching import PathPatchingResult

    r = results.load(tmp_path / "pp.json")
    assert isinstance(r, PathPatchingResult)
    heads = r.effect("attn.z")  # [example, layer, head], NaN where not a sender
    assert heads.shape[:2] == (4, 30) and np.isfinite(heads[0, 20]).all()
    assert np.isnan(heads[0, 19]).all()
    for comp in ("attn_z", "mlp_out"):
        assert (tmp_path / f"pp.{comp}.png").stat().st_size > 1000
        assert "<svg" in (tmp_path / f"pp.{comp}.html").read_text()


def test_path_patch_names_a_bad_receiver():
    out = run("path-patch", "--n", "4", "--receivers", "L23.attn_out")
    assert out.returncode == 2
    assert "not one head's q, k or v input" in out.stderr


@pytest.mark.parametrize("command", ["patch", "attribute", "path-patch"])
def test_patching_commands_check_output_paths_before_loading_the_model(tmp_path, command):
    blocker = tmp_path / "file"
    blocker.write_text("")
    for args, message in (
        (["--plot", str(tmp_path / "fig.gif")], "cannot write a figure as '.gif'"),
        (["--json", str(blocker / "r.json")], "is a file, not a folder"),
    ):
        out = run(command, "--n", "4", *args, "--model", "no-such-model")
        assert out.returncode == 2 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "using" not in out.stdout
    out = run(command, "--n", "4", "--model", "no-such-model")
    assert out.returncode == 2 and "Embedded models" in out.stderr, out.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["patch", "--direction", "sideways"], "direction='sideways' is not valid"),
        (["patch", "--component", "attn.q"], "cannot patch 'attn.q' as a grid"),
        (["patch", "--ablations", "zero"], "methods must be two or more of"),
        (["patch", "--budget-mb", "0"], "a positive number of MiB or 'auto'"),
        (["attribute", "--direction", "up"], "choose one of: 'denoise', 'noise'"),
    ],
)
def test_patch_and_attribute_refuse_bad_options_before_loading(args, message):
    out = run(*args, "--model", "no-such-model")  # the model is never reached
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
