"""interplab's own dictionary format: every architecture, sites included, nothing lost.

    <folder>/dictionary.json          {"format": "interplab-dictionary", "version": 1,
                                       "config": DictionaryConfig.to_dict(), "metadata": {...}}
    <folder>/dictionary.safetensors   W_enc [d_in, d_sae], b_enc [d_sae], W_dec [d_sae, d_out],
                                      b_dec [d_out], threshold [d_sae] (gated architectures),
                                      W_skip [d_out, d_in] (skip transcoders)

The tensors are the module's state dict, so loading is `registry.build` then `load_state_dict`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryFileError, config_from_dict
from interplab.dictionaries.formats._io import (
    need,
    read_json,
    read_tensors,
    write_json,
    write_tensors,
)
from interplab.dictionaries.registry import build
from interplab.errors import UserError

CONFIG_FILE = "dictionary.json"
WEIGHTS_FILE = "dictionary.safetensors"
FORMAT = "interplab-dictionary"


def save(
    dictionary: Dictionary, folder: str | Path, metadata: dict[str, Any] | None = None
) -> Path:
    """Writes ``dictionary`` to ``folder`` (weights first, then the config that names them)."""
    root = Path(folder)
    write_tensors(root / WEIGHTS_FILE, dictionary.state_dict())
    write_json(
        root / CONFIG_FILE,
        {
            "format": FORMAT,
            "version": 1,
            "config": dictionary.config.to_dict(),
            "metadata": metadata or {},
        },
    )
    return root


def is_native(folder: Path) -> bool:
    return (folder / CONFIG_FILE).is_file()


def load(folder: str | Path) -> Dictionary:
    """Returns the dictionary saved in ``folder`` by `save`."""
    root = Path(folder)
    path = root / CONFIG_FILE
    data = read_json(path)
    if data.get("format") != FORMAT:
        raise DictionaryFileError(
            f"{path} is not an interplab dictionary (format {data.get('format')!r})"
        )
    if not isinstance(data.get("config"), dict):
        raise DictionaryFileError(f"{path} has no 'config' object")
    try:
        config = config_from_dict(data["config"])
    except UserError as e:
        raise DictionaryFileError(f"{path}: {e}") from None
    dictionary = build(config)
    weights = root / WEIGHTS_FILE
    tensors = read_tensors(weights)
    expected = {k: tuple(v.shape) for k, v in dictionary.state_dict().items()}
    state = {k: need(tensors, weights, k, shape) for k, shape in expected.items()}
    dictionary.load_state_dict(state)
    return dictionary.eval()


__all__ = ["CONFIG_FILE", "WEIGHTS_FILE", "is_native", "load", "save"]
