"""The technique commands of the README, driven as a user would, on small inputs."""

import json

import pytest
from test_cli import interrupt_after, run


def test_patch_and_attribute_write_per_example_json(tmp_path):
    out = run(
        "patch",
        "--task",
        "ioi",
        "--n",
        "4",
        "--component",
        "resid_pre",
        "--json",
        str(tmp_path / "p.json"),
        "--plot",
        str(tmp_path / "p.png"),
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["provenance"]["model"]["name"] == "smollm2-135m"
    assert data["control"]["provenance"]["config"]["control"] is False  # the control's own run
    assert "resid_pre" in data["control_comparison"]
    assert "control prompts (n=4" in out.stdout and "most affected" in out.stdout
    assert (tmp_path / "p.png").stat().st_size > 1000
    page = (tmp_path / "p.html").read_text()
    assert page.count("<h2>") == 2  # the task grid and the control grid, interactive
    out = run("attribute", "--task", "ioi", "--n", "4", "--json", str(tmp_path / "a.json"))
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "a.json").stat().st_size > 1000


def test_probe_saves_directions_that_ablate_direction_reads(tmp_path):
    out = run(
        "probe",
        "--dataset",
        "truth",
        "--n",
        "80",
        "--folds",
        "3",
        "--save-directions",
        str(tmp_path / "d.safetensors"),
        "--json",
        str(tmp_path / "probe.json"),
    )
    assert out.returncode == 0, out.stderr
    assert "selectivity" in out.stdout
    out = run(
        "ablate-direction",
        "The capital of France is",
        "--direction",
        str(tmp_path / "d.safetensors"),
        "--layer",
        "12",
        "--max-new-tokens",
        "4",
    )
    assert out.returncode == 0, out.stderr
    assert "random" in out.stdout


def test_steer_and_top_examples_run_end_to_end(tmp_path):
    out = run(
        "steer",
        "--coefficients",
        "0,4",
        "--prompt",
        "Today I",
        "--n-random",
        "1",
        "--max-new-tokens",
        "6",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert out.returncode == 0, out.stderr
    assert json.loads((tmp_path / "s.json").read_text())["coefficients"] == [0.0, 4.0]
    out = run(
        "top-examples",
        "--site",
        "L3.mlp.post",
        "--neurons",
        "0,5",
        "--corpus",
        "lee",
        "--max-tokens",
        "2048",
        "--k",
        "3",
        "--html",
        str(tmp_path / "top.html"),
    )
    assert out.returncode == 0, out.stderr
    assert (
        "<mark" in (tmp_path / "top.html").read_text()
        or "background" in (tmp_path / "top.html").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["probe", "--probe", "svm"], "'logistic', 'diffmean'"),
        (["probe", "--folds", "1"], "at least 2 folds"),
        (["probe", "--plot", "p.gif"], "cannot write a figure as '.gif'"),
        (["probe", "--save-directions", "d.pt"], ".safetensors or .npz"),
        (["steer", "--coefficients", "nan,inf"], "coefficients must be finite numbers"),
        (["steer", "--coefficients", "0,inf"], "coefficients must be finite numbers"),
        (["steer", "--component", "attn_out"], "'resid_pre', 'resid_post'"),
        (["ablate-direction", "hi", "--random", "--layer", "99"], "takes no --layer"),
        (["ablate-direction", "hi"], "give either --direction PATH with --layer, or --random"),
        (["ablate-direction", "hi", "--random", "--n-random", "0"], "n_random must be > 0"),
        (
            ["top-examples", "--corpus", "nosuchcorpus"],
            "neither a built-in corpus (wiki, lee, all, austen)",
        ),
        (["top-examples", "--k", "0"], "k must be > 0"),
        (["top-examples", "--site", "L3.nothing"], "cannot parse site"),
    ],
)
def test_probe_steer_ablate_and_top_examples_refuse_bad_input_before_loading(args, message):
    out = run(*args, "--model", "no-such-model")  # the model is never reached
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) <= 3


def test_ablate_direction_checks_the_layer_of_saved_directions(tmp_path):
    import numpy as np

    from interplab.results.directions import ProbeDirections

    saved = ProbeDirections(
        np.ones((2, 576)), np.zeros(2), (3, 12), "diffmean", "resid_post", "last"
    )
    path = saved.save(tmp_path / "d.safetensors")
    out = run("ablate-direction", "hi", "--direction", str(path), "--layer", "99",
              "--model", "no-such-model")  # fmt: skip
    assert out.returncode == 2 and "no direction for layer 99; layers: [3, 12]" in out.stderr
    assert "Traceback" not in out.stderr


def test_patch_ablations_side_by_side(tmp_path):
    out = run(
        "patch", "--n", "4", "--component", "mlp_out", "--ablations", "zero,mean",
        "--json", str(tmp_path / "abl.json"),
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "zero ablation" in out.stdout and "Spearman" in out.stdout
    data = json.loads((tmp_path / "abl.json").read_text())
    assert set(data["results"]) == {"zero", "mean"}


def test_ctrl_c_during_a_sweep_keeps_the_previous_result_file(tmp_path):
    interrupt_after("using", "patch", "--n", "8", target=tmp_path / "p.json")
