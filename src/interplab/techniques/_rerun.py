"""How a recorded call stores and rebuilds what only this layer knows: models, tensors, corpora.

Every technique decorated with `store.recorded` stores its call (`interplab.store.calls`); the
store is torch-free, so the objects below are registered with it when `interplab.techniques` is
imported:

1. A `Model` is stored by its name, dtype, device and weights sha256, and rebuilt by loading
   that name (or by the model `rerun` was given). A model with hooks in place (inside
   ``model.intervene``, a spliced dictionary) is refused: its name alone would not rebuild it.
2. A torch tensor is stored as an array with its dtype and device (bfloat16 through float32,
   which holds it exactly) and rebuilt as the same tensor.
3. A `TokenizedCorpus` is stored by its folder and the sha256 of its tokens, not copied: it is
   rebuilt from the folder when the tokens there still hash the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from interplab.core.model import Model
from interplab.data import corpus as corpora
from interplab.data.corpus import TokenizedCorpus
from interplab.store import StoreError
from interplab.store.calls import MAX_ARRAY_BYTES, NotStorable, too_large
from interplab.store.calls import register as register_codec


def _encode_model(model: Model) -> dict[str, Any]:
    hooked = model.hooked_modules()
    if hooked:
        raise NotStorable(
            f"the model had hooks in place on {len(hooked)} modules ({hooked[0] or 'the model'}"
            "...: an intervention or a spliced dictionary), which its name alone would not rebuild"
        )
    info = model.info
    return {
        "name": info.name,
        "dtype": info.dtype,
        "device": info.device,
        "weights_sha256": info.weights_sha256,
    }


def _decode_model(value: dict[str, Any], context: dict[str, Any]) -> Model:
    given = context.get("model")
    if given is not None:
        return given
    if "loaded_model" not in context:
        from interplab.core.model import load

        context["loaded_model"] = load(value["name"], dtype=value["dtype"], device=value["device"])
    return context["loaded_model"]


def _encode_tensor(t: torch.Tensor) -> dict[str, Any]:
    dtype = str(t.dtype).removeprefix("torch.")
    if t.numel() * t.element_size() > MAX_ARRAY_BYTES:  # refused before any copy to the host
        raise NotStorable(too_large(f"a tensor {tuple(t.shape)}", t.numel() * t.element_size()))
    data = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        data = data.float()  # every bfloat16 is exactly a float32
    try:
        array = data.numpy()
    except TypeError:
        raise NotStorable(f"a tensor of dtype {dtype} cannot be stored") from None
    return {"dtype": dtype, "device": str(t.device), "grad": t.requires_grad, "data": array}


def _decode_tensor(value: dict[str, Any], context: dict[str, Any]) -> torch.Tensor:
    t = torch.from_numpy(np.array(value["data"])).to(getattr(torch, value["dtype"]))
    if value["device"] != "cpu":
        try:
            t = t.to(value["device"])
        except (RuntimeError, AssertionError) as e:
            raise StoreError(
                f"the stored call holds a tensor on {value['device']}, which this machine "
                f"cannot use: {e}"
            ) from None
    return t.requires_grad_(bool(value["grad"]))


def _encode_corpus(c: TokenizedCorpus) -> dict[str, Any]:
    return {"folder": str(c.folder), "tokens_sha256": c.manifest.get("tokens_sha256")}


def _decode_corpus(value: dict[str, Any], context: dict[str, Any]) -> TokenizedCorpus:
    found = corpora._load_finished(Path(value["folder"]))
    if found is None or found.manifest.get("tokens_sha256") != value["tokens_sha256"]:
        raise StoreError(
            f"the run read the tokenised corpus in {value['folder']} (tokens sha256 "
            f"{str(value['tokens_sha256'])[:12]}), which is no longer there whole; tokenise the "
            "same source again (interplab.data.corpus.tokenize_corpus) into that folder"
        )
    return found


def register() -> None:
    """Registers models, tensors and tokenised corpora with the store's call codec."""
    register_codec("model", Model, _encode_model, _decode_model)
    register_codec("tensor", torch.Tensor, _encode_tensor, _decode_tensor)
    register_codec("corpus", TokenizedCorpus, _encode_corpus, _decode_corpus)


__all__ = ["register"]
