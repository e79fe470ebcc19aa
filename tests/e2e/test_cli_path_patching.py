"""``interplab path-patch`` driven as a user would: small inputs, files written, errors clear."""

import json

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
    heads = data["effects"]["attn.z"]  # [example][layer][head], None where not a sender
    assert len(heads) == 4 and all(v is not None for v in heads[0][20])
    assert heads[0][19] == [None] * 9
    for comp in ("attn_z", "mlp_out"):
        assert (tmp_path / f"pp.{comp}.png").stat().st_size > 1000
        assert "<svg" in (tmp_path / f"pp.{comp}.html").read_text()


def test_path_patch_names_a_bad_receiver():
    out = run("path-patch", "--n", "4", "--receivers", "L23.attn_out")
    assert out.returncode == 2
    assert "not one head's q, k or v input" in out.stderr
