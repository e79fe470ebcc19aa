"""SAELens v6 on disk: ``cfg.json`` + ``sae_weights.safetensors`` (read and write).

Tensors: ``W_enc [d_in, d_sae]``, ``b_enc [d_sae]``, ``W_dec [d_sae, d_out]``, ``b_dec [d_out]``,
``threshold [d_sae]`` (JumpReLU variants), ``W_skip [d_out, d_in]`` (skip transcoders); our own
orientation, so conversion copies. The site comes from ``metadata.hook_name`` (TransformerLens
names, `formats.hooks`), a transcoder's output site from ``metadata.hook_name_out``.

Architectures, read -> ours and ours -> written:

    standard                        <-> standard (an SAE; apply_b_dec_to_input=False is folded
                                        into b_enc on reading)
    topk                            <-> topk (rescale_acts_by_decoder_norm folded on reading)
    jumprelu                        <-> jumprelu; batchtopk and matryoshka_batchtopk are written
                                        as jumprelu with their inference threshold, as SAELens
                                        saves its own BatchTopK SAEs
    transcoder, skip_transcoder     <-> standard transcoders
    jumprelu_transcoder, jumprelu_skip_transcoder <-> gated transcoders (jumprelu, batchtopk...)

SAELens has no TopK transcoder, so saving one here is refused (use the interplab or sparsify
format). Activation normalisation other than ``none`` is refused on reading (its scale factor is
not in the files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryConfig, DictionaryFileError
from interplab.dictionaries.formats._io import (
    need,
    number,
    read_json,
    read_tensors,
    write_json,
    write_tensors,
)
from interplab.dictionaries.formats.hooks import hook_from_site, site_from_hook
from interplab.dictionaries.registry import build

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
_VERSION = "6.0.0"  # the format version we write: SAELens reads older configs differently
_GATED = ("jumprelu", "batchtopk", "matryoshka_batchtopk")
_READ: dict[str, tuple[str, str]] = {  # SAELens architecture -> (ours, kind)
    "standard": ("standard", "sae"),
    "topk": ("topk", "sae"),
    "jumprelu": ("jumprelu", "sae"),
    "transcoder": ("standard", "transcoder"),
    "skip_transcoder": ("standard", "skip_transcoder"),
    "jumprelu_transcoder": ("jumprelu", "transcoder"),
    "jumprelu_skip_transcoder": ("jumprelu", "skip_transcoder"),
}


def is_saelens(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def load(folder: str | Path) -> Dictionary:
    """Returns the dictionary in a SAELens folder."""
    root = Path(folder)
    path = root / CONFIG_FILE
    cfg = read_json(path)
    arch = cfg.get("architecture", "standard")
    if arch not in _READ:
        raise DictionaryFileError(
            f"{path}: SAELens architecture {arch!r} is not supported; supported: {', '.join(_READ)}"
        )
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise DictionaryFileError(
            f"{path}: normalize_activations={cfg['normalize_activations']!r} is not supported "
            "(the scaling factor is not stored with the weights); fold it into the weights first"
        )
    ours, kind = _READ[arch]
    meta = cfg.get("metadata") or {}
    hook = meta.get("hook_name") or cfg.get("hook_name")
    hook_out = meta.get("hook_name_out") or cfg.get("hook_name_out")
    if meta.get("hook_head_index", cfg.get("hook_head_index")) is not None:
        raise DictionaryFileError(f"{path}: dictionaries on one attention head are not supported")
    site = None if not hook else site_from_hook(hook, source=str(path))
    target = None if kind == "sae" or not hook_out else site_from_hook(hook_out, source=str(path))
    d_in, d_sae = number(cfg, "d_in", path), number(cfg, "d_sae", path)
    d_out = d_in if kind == "sae" else number(cfg, "d_out", path)
    config = DictionaryConfig(
        architecture=ours,  # type: ignore[arg-type]
        d_in=d_in,
        d_sae=d_sae,
        kind=kind,  # type: ignore[arg-type]
        d_out=None if kind == "sae" else d_out,
        site=site,
        target=target,
        k=int(cfg.get("k", 32)) if ours == "topk" else min(32, d_sae),
    )
    weights = root / WEIGHTS_FILE
    t = read_tensors(weights)
    W_enc = need(t, weights, "W_enc", (d_in, d_sae))
    b_enc = need(t, weights, "b_enc", (d_sae,))
    W_dec = need(t, weights, "W_dec", (d_sae, d_out))
    b_dec = need(t, weights, "b_dec", (d_out,))
    if kind == "sae" and cfg.get("apply_b_dec_to_input", True) is False:
        b_enc = b_enc + b_dec @ W_enc  # ours always subtracts b_dec: compensate in the bias
    if ours == "topk" and cfg.get("rescale_acts_by_decoder_norm", False):
        norms = W_dec.norm(dim=1).clamp(min=1e-8)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    state: dict[str, torch.Tensor] = {
        "W_enc": W_enc,
        "b_enc": b_enc,
        "W_dec": W_dec,
        "b_dec": b_dec,
    }
    if ours == "jumprelu":
        state["threshold"] = need(t, weights, "threshold", (d_sae,))
    if kind == "skip_transcoder":
        state["W_skip"] = need(t, weights, "W_skip", (d_out, d_in))
    d = build(config)
    d.load_state_dict(state)
    return d.eval()


def save(dictionary: Dictionary, folder: str | Path, model_name: str | None = None) -> Path:
    """Writes ``dictionary`` as a SAELens folder that ``SAE.load_from_disk`` reads."""
    c = dictionary.config
    arch = _architecture(c)
    root = Path(folder)
    state = {k: v for k, v in dictionary.state_dict().items()}
    metadata: dict[str, Any] = {
        "sae_lens_version": _VERSION,
        "sae_lens_training_version": _VERSION,
        "interplab_config": c.to_dict(),
    }
    if c.site is not None:
        metadata["hook_name"] = hook_from_site(c.site)
    if c.kind != "sae" and c.write_site is not None:
        metadata["hook_name_out"] = hook_from_site(c.write_site)
    if model_name:
        metadata["model_name"] = model_name
    cfg: dict[str, Any] = {
        "architecture": arch,
        "d_in": c.d_in,
        "d_sae": c.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": c.kind == "sae",
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": metadata,
    }
    if c.kind != "sae":
        cfg["d_out"] = c.width_out
    if arch == "topk":
        cfg["k"] = c.k
        cfg["rescale_acts_by_decoder_norm"] = False
    write_tensors(root / WEIGHTS_FILE, state)
    write_json(root / CONFIG_FILE, cfg)
    return root


def _architecture(c: DictionaryConfig) -> str:
    gated = c.architecture in _GATED
    if c.kind == "sae":
        return "jumprelu" if gated else c.architecture
    if c.architecture == "topk":
        raise DictionaryFileError(
            "SAELens has no TopK transcoder; save this one in the interplab or sparsify format"
        )
    skip = "skip_" if c.kind == "skip_transcoder" else ""
    return f"jumprelu_{skip}transcoder" if gated else f"{skip}transcoder"


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "is_saelens", "load", "save"]
