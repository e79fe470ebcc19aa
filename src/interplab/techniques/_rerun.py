"""How `interplab rerun` re-executes recorded runs: one function per technique, registered with
the store when `interplab.techniques` is imported.

Each takes the stored config (``config.to_dict()``), the stored model description and the stored
inputs (the prompts), loads the same model (name, dtype, device) and calls the technique with the
config rebuilt by ``Config.from_dict``. Techniques whose inputs are not stored whole (a steering
vector, a corpus) are not registered: rerun says so instead of guessing.
"""

from __future__ import annotations

from typing import Any

from interplab.store import rerun


def _model(model_info: dict[str, Any]) -> Any:
    from interplab.core.model import load

    return load(
        model_info["name"],
        dtype=model_info.get("dtype", "float32"),
        device=model_info.get("device", "cpu"),
    )


def _lens(config: dict[str, Any], model_info: dict[str, Any], inputs: Any) -> Any:
    from interplab.results.lens import LensConfig
    from interplab.techniques.lens import logit_lens

    return logit_lens(_model(model_info), list(inputs), config=LensConfig.from_dict(config))


def _dla(config: dict[str, Any], model_info: dict[str, Any], inputs: Any) -> Any:
    from interplab.results.dla import DLAConfig
    from interplab.techniques.dla import direct_logit_attribution

    return direct_logit_attribution(
        _model(model_info), list(inputs), config=DLAConfig.from_dict(config)
    )


def register() -> None:
    """Registers the rerunnable techniques with the store."""
    rerun.register("logit_lens", _lens)
    rerun.register("direct_logit_attribution", _dla)


__all__ = ["register"]
