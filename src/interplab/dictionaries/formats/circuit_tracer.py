"""circuit-tracer per-layer transcoder sets: ``config.yaml`` + one safetensors file per layer.

    config.yaml          model_kind: transcoder_set; feature_input_hook / feature_output_hook
                         (per-layer TransformerLens names: hook_resid_mid, mlp.hook_in,
                         ln2.hook_normalized -> hook_mlp_out, mlp.hook_out); optional
                         activation (relu, topk with k; default: JumpReLU when a threshold is
                         stored); transcoders: the per-layer files (default layer_<i>.safetensors)
    layer_<i>.safetensors  W_enc [d_sae, d_model] (transposed against ours), W_dec
                         [d_sae, d_model], b_enc, b_dec, activation_function.threshold (JumpReLU),
                         W_skip [d_model, d_model] (skip transcoders), k (TopK)

A set covers layers 0..n-1, one transcoder each (circuit-tracer requires all of them). Relative
file names are resolved against the folder of config.yaml here; circuit-tracer resolves them
against its working directory, so run it from the set's folder.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryConfig, DictionaryFileError
from interplab.dictionaries.formats._io import need, read_tensors, write_tensors
from interplab.dictionaries.formats.hooks import layer_hook_name, layer_hook_site
from interplab.dictionaries.registry import build
from interplab.provenance import write_text

CONFIG_FILE = "config.yaml"


def is_circuit_tracer(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file()


def load_set(folder: str | Path) -> dict[int, Dictionary]:
    """Returns layer -> transcoder for every layer of a circuit-tracer set."""
    root = Path(folder)
    path = root / CONFIG_FILE
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DictionaryFileError(f"{path} is missing") from None
    except yaml.YAMLError as e:
        raise DictionaryFileError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("model_kind") != "transcoder_set":
        kind = cfg.get("model_kind") if isinstance(cfg, dict) else None
        raise DictionaryFileError(
            f"{path}: model_kind {kind!r} is not supported (only per-layer 'transcoder_set')"
        )
    files = cfg.get("transcoders")
    if files is None:
        found = sorted(root.glob("layer_*.safetensors"), key=lambda p: int(p.stem.split("_")[1]))
        files = [p.name for p in found]
    if not files:
        raise DictionaryFileError(
            f"{path} lists no transcoders and {root} has no layer_*.safetensors"
        )
    out = {}
    for layer, name in enumerate(files):
        if str(name).startswith("hf://"):
            raise DictionaryFileError(
                f"{path}: {name} is on the Hugging Face hub; download it first"
            )
        file = Path(name) if Path(name).is_absolute() else root / name
        out[layer] = _load_layer(file, layer, cfg, path)
    return out


def _load_layer(file: Path, layer: int, cfg: dict[str, Any], source: Path) -> Dictionary:
    t = read_tensors(file)
    b_enc, b_dec = need(t, file, "b_enc"), need(t, file, "b_dec")
    d_sae, d_model = int(b_enc.shape[0]), int(b_dec.shape[0])
    W_enc = need(t, file, "W_enc", (d_sae, d_model)).T.contiguous()
    W_dec = need(t, file, "W_dec", (d_sae, d_model))
    activation = cfg.get("activation")
    threshold = t.get("activation_function.threshold")
    if activation == "topk" or "k" in t:
        arch, k = "topk", int(cfg.get("k") or int(t["k"]))
    elif activation == "relu" or threshold is None:
        arch, k = "standard", min(32, d_sae)
    else:
        arch, k = "jumprelu", min(32, d_sae)
    skip = "W_skip" in t
    config = DictionaryConfig(
        architecture=arch,  # type: ignore[arg-type]
        d_in=d_model,
        d_sae=d_sae,
        kind="skip_transcoder" if skip else "transcoder",
        d_out=d_model,
        site=layer_hook_site(
            layer, str(cfg.get("feature_input_hook", "mlp.hook_in")), source=str(source)
        ),
        target=layer_hook_site(
            layer, str(cfg.get("feature_output_hook", "hook_mlp_out")), source=str(source)
        ),
        k=k,
    )
    state = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
    if arch == "jumprelu":
        assert threshold is not None
        state["threshold"] = threshold.reshape(-1).expand(d_sae).contiguous()
    if skip:
        state["W_skip"] = need(t, file, "W_skip", (d_model, d_model))
    d = build(config)
    d.load_state_dict(state)
    return d.eval()


def save_set(
    transcoders: Mapping[int, Dictionary], folder: str | Path, model_name: str | None = None
) -> Path:
    """Writes transcoders for layers 0..n-1 as a circuit-tracer set."""
    layers = sorted(transcoders)
    if layers != list(range(len(layers))) or not layers:
        raise DictionaryFileError(
            f"a circuit-tracer set needs one transcoder for every layer 0..n-1, got layers {layers}"
        )
    first = transcoders[0].config
    if first.site is None or first.write_site is None:
        raise DictionaryFileError("the transcoders must have sites (config.site and target)")
    hooks = (layer_hook_name(first.site), layer_hook_name(first.write_site))
    arch = first.architecture
    root = Path(folder)
    names = []
    for layer in layers:
        d = transcoders[layer]
        c = d.config
        if c.kind == "sae" or c.d_in != c.width_out or c.site is None or c.write_site is None:
            raise DictionaryFileError(
                f"layer {layer}: circuit-tracer sets hold d_model -> d_model transcoders"
            )
        if (
            layer_hook_name(c.site),
            layer_hook_name(c.write_site),
        ) != hooks or c.architecture != arch:
            raise DictionaryFileError(
                "every transcoder of a set needs the same hooks and architecture"
            )
        state = {
            "W_enc": d.W_enc.detach().T,
            "W_dec": d.W_dec.detach(),
            "b_enc": d.b_enc.detach(),
            "b_dec": d.b_dec.detach(),
        }
        threshold = getattr(d, "threshold", None)
        if threshold is not None:
            state["activation_function.threshold"] = threshold.detach()
        if d.W_skip is not None:
            state["W_skip"] = d.W_skip.detach()
        name = f"layer_{layer}.safetensors"
        write_tensors(root / name, state)
        names.append(name)
    cfg: dict[str, Any] = {
        "model_kind": "transcoder_set",
        "feature_input_hook": hooks[0],
        "feature_output_hook": hooks[1],
        "transcoders": names,
    }
    if model_name:
        cfg["model_name"] = model_name
    if arch == "topk":
        cfg.update(activation="topk", k=first.k)
    elif arch == "standard":
        cfg["activation"] = "relu"
    write_text(root / CONFIG_FILE, yaml.safe_dump(cfg, sort_keys=False))
    return root


__all__ = ["CONFIG_FILE", "is_circuit_tracer", "load_set", "save_set"]
