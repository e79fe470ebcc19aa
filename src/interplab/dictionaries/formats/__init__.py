"""Dictionaries on disk, in every format we read and write, chosen by the files a folder holds.

    interplab        dictionary.json + dictionary.safetensors (every architecture; `native`)
    saelens          cfg.json + sae_weights.safetensors (SAELens v6; `saelens`)
    sparsify         cfg.json + sae.safetensors (EleutherAI sparsify, TopK; `sparsify`)
    circuit_tracer   config.yaml + layer_<i>.safetensors (per-layer transcoder sets)

`load_dictionary` reads one dictionary (a layer of a circuit-tracer set with ``layer=``);
`load_dictionaries` reads every dictionary a folder holds, named by the folder or ``layer_<i>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal, get_args

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryFileError
from interplab.dictionaries.formats import circuit_tracer, native, saelens, sparsify
from interplab.sites import Site, SiteLike

Format = Literal["interplab", "saelens", "sparsify", "circuit_tracer"]
FORMATS: tuple[str, ...] = get_args(Format)


def detect(folder: str | Path) -> Format:
    """Returns the format of the dictionary folder, from the files it holds."""
    root = Path(folder)
    if not root.is_dir():
        raise DictionaryFileError(f"{root} is not a folder holding a dictionary")
    if native.is_native(root):
        return "interplab"
    if saelens.is_saelens(root):
        return "saelens"
    if sparsify.is_sparsify(root):
        return "sparsify"
    if circuit_tracer.is_circuit_tracer(root):
        return "circuit_tracer"
    raise DictionaryFileError(
        f"{root} holds no dictionary: expected dictionary.json (interplab), cfg.json + "
        "sae_weights.safetensors (SAELens), cfg.json + sae.safetensors (sparsify) or "
        "config.yaml (circuit-tracer)"
    )


def load_dictionary(
    folder: str | Path, *, layer: int | None = None, site: SiteLike | None = None
) -> Dictionary:
    """Returns the dictionary in ``folder`` (any format); ``layer`` picks one transcoder of a
    circuit-tracer set; ``site`` ties a dictionary whose files name no site (an SAE only)."""
    fmt = detect(folder)
    if fmt == "circuit_tracer":
        layers = circuit_tracer.load_set(folder)
        if layer is None or layer not in layers:
            raise DictionaryFileError(
                f"{folder} is a circuit-tracer set of {len(layers)} layers; pass layer= "
                f"(0..{len(layers) - 1})"
            )
        d = layers[layer]
    else:
        d = {"interplab": native.load, "saelens": saelens.load, "sparsify": sparsify.load}[fmt](
            folder
        )
    if site is not None:
        return with_site(d, Site.parse(site))
    return d


def load_dictionaries(folder: str | Path) -> dict[str, Dictionary]:
    """Returns every dictionary in ``folder``: one named after the folder, or ``layer_<i>`` for
    each layer of a circuit-tracer set."""
    root = Path(folder)
    if detect(root) == "circuit_tracer":
        return {f"layer_{i}": d for i, d in circuit_tracer.load_set(root).items()}
    name = "".join(ch if ch.isalnum() or ch in "_-.:" else "_" for ch in root.resolve().name)
    return {name or "dictionary": load_dictionary(root)}


def save_dictionary(
    dictionary: Dictionary | Mapping[int, Dictionary],
    folder: str | Path,
    format: Format = "interplab",
    *,
    model_name: str | None = None,
) -> Path:
    """Writes ``dictionary`` to ``folder`` in ``format`` (a circuit-tracer set takes a mapping
    layer -> transcoder; one transcoder is written as a one-layer set only at layer 0)."""
    if format not in FORMATS:
        raise DictionaryFileError(f"unknown format {format!r}; choose one of: {', '.join(FORMATS)}")
    if format == "circuit_tracer":
        if isinstance(dictionary, Dictionary):
            site = dictionary.config.site
            dictionary = {0 if site is None else (site.layer or 0): dictionary}
        return circuit_tracer.save_set(dictionary, folder, model_name)
    if not isinstance(dictionary, Dictionary):
        raise DictionaryFileError(f"the {format} format holds one dictionary, not a set")
    if format == "saelens":
        return saelens.save(dictionary, folder, model_name)
    if format == "sparsify":
        return sparsify.save(dictionary, folder)
    return native.save(dictionary, folder, {"model_name": model_name} if model_name else None)


def with_site(dictionary: Dictionary, site: Site) -> Dictionary:
    """Returns the dictionary tied to ``site`` (an SAE: it reads and writes there)."""
    c = dictionary.config
    if c.kind != "sae":
        raise DictionaryFileError("a transcoder's sites come from its files; site= is for SAEs")
    from interplab.dictionaries.registry import build

    d = build(c.replace(site=site, target=None))
    d.load_state_dict(dictionary.state_dict())
    return d.eval()


__all__ = [
    "FORMATS",
    "Format",
    "detect",
    "load_dictionaries",
    "load_dictionary",
    "save_dictionary",
    "with_site",
]
