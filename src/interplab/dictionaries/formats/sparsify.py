"""EleutherAI sparsify on disk: ``cfg.json`` + ``sae.safetensors`` (read and write).

Tensors: ``encoder.weight [d_sae, d_in]`` (an ``nn.Linear``: the transpose of our ``W_enc``),
``encoder.bias [d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``, ``W_skip [d_in, d_in]``
(with ``skip_connection``). sparsify's coders are TopK (``activation: topk``; ``groupmax`` is
refused) with ``d_out == d_in``; a transcoder (``transcode: true``) reads the input of the module
its folder names and reconstructs its output, an SAE the module's output. The folder name is the
hookpoint (``layers.6`` -> L6.resid_post, ``layers.6.mlp`` -> L6.mlp_out, or L6.mlp.in ->
L6.mlp_out for a transcoder; `formats.hooks`); we also write it into ``cfg.json`` as
``hookpoint``, a key sparsify ignores.
"""

from __future__ import annotations

from pathlib import Path

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
from interplab.dictionaries.formats.hooks import module_from_sites, sites_from_module
from interplab.dictionaries.registry import build

CONFIG_FILE = "cfg.json"
WEIGHTS_FILE = "sae.safetensors"


def is_sparsify(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file() and (folder / WEIGHTS_FILE).is_file()


def load(folder: str | Path) -> Dictionary:
    """Returns the TopK dictionary in a sparsify folder."""
    root = Path(folder)
    path = root / CONFIG_FILE
    cfg = read_json(path)
    if cfg.get("activation", "topk") != "topk":
        raise DictionaryFileError(
            f"{path}: sparsify activation {cfg.get('activation')!r} is not supported (only topk)"
        )
    d_in = number(cfg, "d_in", path)
    d_sae = int(cfg.get("num_latents") or 0) or d_in * int(cfg.get("expansion_factor", 32))
    transcode = bool(cfg.get("transcode", False))
    skip = bool(cfg.get("skip_connection", False))
    hookpoint = cfg.get("hookpoint") or root.name
    try:
        site, target = sites_from_module(str(hookpoint), transcode, source=str(path))
    except DictionaryFileError:
        site = target = None
    kind = "skip_transcoder" if skip else "transcoder" if transcode else "sae"
    if kind == "skip_transcoder" and not transcode:
        raise DictionaryFileError(f"{path}: a skip connection on an autoencoder is not supported")
    config = DictionaryConfig(
        architecture="topk",
        d_in=d_in,
        d_sae=d_sae,
        kind=kind,  # type: ignore[arg-type]
        d_out=None if kind == "sae" else d_in,
        site=site,
        target=None if kind == "sae" else target,
        k=number(cfg, "k", path),
    )
    weights = root / WEIGHTS_FILE
    t = read_tensors(weights)
    state = {
        "W_enc": need(t, weights, "encoder.weight", (d_sae, d_in)).T.contiguous(),
        "b_enc": need(t, weights, "encoder.bias", (d_sae,)),
        "W_dec": need(t, weights, "W_dec", (d_sae, d_in)),
        "b_dec": need(t, weights, "b_dec", (d_in,)),
    }
    if skip:
        state["W_skip"] = need(t, weights, "W_skip", (d_in, d_in))
    d = build(config)
    d.load_state_dict(state)
    return d.eval()


def save(dictionary: Dictionary, folder: str | Path) -> Path:
    """Writes a TopK ``dictionary`` as a sparsify folder that ``SparseCoder.load_from_disk``
    reads (other architectures have no sparsify form)."""
    c = dictionary.config
    if c.architecture != "topk":
        raise DictionaryFileError(
            f"sparsify stores TopK coders only, this dictionary is {c.architecture!r}; save it "
            "in the interplab or saelens format"
        )
    if c.width_out != c.d_in:
        raise DictionaryFileError("sparsify coders write as many dimensions as they read")
    root = Path(folder)
    cfg = {
        "activation": "topk",
        "expansion_factor": max(1, c.d_sae // c.d_in),
        "normalize_decoder": True,
        "num_latents": c.d_sae,
        "k": c.k,
        "multi_topk": False,
        "skip_connection": c.kind == "skip_transcoder",
        "transcode": c.kind != "sae",
        "d_in": c.d_in,
    }
    if c.site is not None and c.write_site is not None:
        cfg["hookpoint"] = module_from_sites(c.site, c.write_site, c.kind != "sae")
    state = {
        "encoder.weight": dictionary.W_enc.detach().T,
        "encoder.bias": dictionary.b_enc.detach(),
        "W_dec": dictionary.W_dec.detach(),
        "b_dec": dictionary.b_dec.detach(),
    }
    if dictionary.W_skip is not None:
        state["W_skip"] = dictionary.W_skip.detach()
    write_tensors(root / WEIGHTS_FILE, state)
    write_json(root / CONFIG_FILE, cfg)
    return root


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "is_sparsify", "load", "save"]
