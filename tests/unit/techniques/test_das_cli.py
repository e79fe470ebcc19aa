"""`interplab abstraction das|interchange`: bad input is one clear line before any model loads."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from interplab.cli import app
from interplab.errors import UserError


def _error(*args: str) -> str:
    result = CliRunner().invoke(app, ["abstraction", *args], catch_exceptions=True)
    assert isinstance(result.exception, UserError), result.output
    return str(result.exception)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["das", "--site", "L5.resid_post", "--task", "nope_module_xyz:f"], "cannot import"),
        (["das", "--site", "L5.resid_post", "--task", "nocolon"], "'package.module:function'"),
        (["das", "--site", "L5.resid_post", "--method", "pca"], "method='pca' is not valid"),
        (["das", "--site", "L5.resid_post", "--control", "x"], "control='x' is not valid"),
        (["das", "--site", "L5.resid_post", "--variable", "who"], "no variable who"),
        (["das", "--site", "L5.resid_post", "--k", "0"], "k must be > 0"),
        (["das", "--site", "L5.resid_post", "--n", "1"], "--n must lie in 2..100000"),
        (["das", "--site", "bogus"], "cannot parse site 'bogus'"),
        (
            ["interchange", "--site", "L5.resid_post", "--subspace", "/no/such.json"],
            "no subspace file",
        ),
        (["interchange", "--site", "L5.resid_post", "--path", "fast"], "path='fast' is not valid"),
    ],
)
def test_bad_input_is_refused_before_the_model_loads(
    args: list[str], message: str, monkeypatch
) -> None:
    import interplab.commands.das as commands

    def no_model(*_: object, **__: object) -> None:
        raise AssertionError("the model was loaded before the input was checked")

    monkeypatch.setattr(commands, "load_model", no_model)
    assert message in _error(*args)


def test_a_task_module_in_the_working_folder_is_found(tmp_path, monkeypatch) -> None:
    (tmp_path / "my_task_mod.py").write_text(
        "from interplab.techniques.causal_abstraction import CausalModel\n"
        "def task():\n    return CausalModel(variables={'a': lambda e, v: 1}, output=lambda e, v: 1)\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the command adds the folder; undo it
    message = _error("das", "--site", "L5.resid_post", "--task", "my_task_mod:task")
    assert "gave a CausalModel, not an AbstractionTask" in message
