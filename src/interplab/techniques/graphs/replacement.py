"""The local replacement model of one prompt: transcoders in place of the MLPs, plus error nodes.

Ameisen et al. 2025 ("Circuit Tracing: Revealing Computational Graphs in Language Models",
transformer-circuits.pub/2025/attribution-graphs/methods.html), with per-layer transcoders:

1. Run the real model once on the prompt, capturing each layer's MLP input (``mlp.in``, after the
   pre-MLP norm) and output (``mlp_out``), and the token embeddings (``embed``).
2. Encode each layer's MLP input with its transcoder. Feature ``(layer, pos, f)`` is *active*
   when its activation is non-zero; its decoder row times its activation is what it writes.
3. The error node of ``(layer, pos)`` is ``mlp_out - transcoder(mlp.in)``, so features plus error
   reproduce the MLP's output, and the replacement reproduces the real logits (to float rounding;
   `replacement_logits` recomputes them). A layer without a transcoder is all error.
4. The first ``skip_first`` positions have no feature and no error node (their MLP outputs are
   constants of the replacement): the attention sink there has ~100x the typical norm, the
   transcoders were not trained on it, and circuit-tracer zeroes it the same way.

Attention patterns and normalisation scales are frozen at their values on the prompt by
`interplab.core.linearise.linearised` whenever gradients are taken (`attribution`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from interplab.core.interventions import Apply
from interplab.core.linearise import linearised
from interplab.core.model import Inputs, Model, Tokens
from interplab.dictionaries import Dictionary, DictionaryError, load_dictionaries
from interplab.dictionaries.splice import check_fits
from interplab.errors import UserError
from interplab.sites import Site


class GraphError(UserError):
    """Transcoders, prompts or options an attribution graph cannot use; the message says why."""


@dataclass(frozen=True)
class TranscoderSet:
    """Per-layer transcoders ``mlp.in -> mlp_out`` (layers without one are all error) and a name
    (circuit-tracer's and Neuronpedia's ``scan``)."""

    by_layer: Mapping[int, Dictionary]
    name: str
    source: str = ""

    @property
    def layers(self) -> list[int]:
        return sorted(self.by_layer)


def transcoder_set(
    transcoders: Mapping[int, Dictionary] | TranscoderSet | str | Path,
    model: Model,
    *,
    name: str | None = None,
) -> TranscoderSet:
    """Returns a checked `TranscoderSet`: from a folder (a circuit-tracer set, or subfolders each
    holding one transcoder in any format), a mapping layer -> transcoder, or a set."""
    if isinstance(transcoders, TranscoderSet):
        out = transcoders
    elif isinstance(transcoders, str | Path):
        out = _load_folder(Path(transcoders))
    else:
        out = TranscoderSet(dict(transcoders), name or "transcoders")
    if name is not None:
        out = TranscoderSet(out.by_layer, name, out.source)
    if not out.by_layer:
        raise GraphError(f"the transcoder set {out.name!r} holds no transcoders")
    for layer, d in out.by_layer.items():
        c = d.config
        expected = (Site(layer, "mlp.in"), Site(layer, "mlp_out"))
        if c.kind == "sae" or (c.site, c.write_site) != expected:
            raise GraphError(
                f"transcoder for layer {layer} reads {c.site} and writes {c.write_site}; an "
                f"attribution graph needs per-layer transcoders {expected[0]} -> {expected[1]}"
            )
        if not 0 <= layer < model.dims.n_layers:
            raise GraphError(
                f"transcoder for layer {layer}, but {model.info.name} has layers "
                f"0..{model.dims.n_layers - 1}: the set was made for another model"
            )
        try:
            check_fits(model, d, f"layer {layer}")
        except DictionaryError as e:
            raise GraphError(f"{out.source or out.name}: {e}") from None
    return out


def _load_folder(root: Path) -> TranscoderSet:
    if not root.is_dir():
        raise GraphError(
            f"{root} is not a folder; give a circuit-tracer transcoder set (config.yaml + "
            "layer_<i>.safetensors) or a folder of per-layer transcoder folders"
        )
    found: dict[int, Dictionary] = {}
    try:
        if (root / "config.yaml").is_file():
            for key, d in load_dictionaries(root).items():
                found[int(key.split("_")[1])] = d
        else:
            for sub in sorted(p for p in root.iterdir() if p.is_dir()):
                for d in load_dictionaries(sub).values():
                    site = d.config.site
                    if site is None or site.layer is None:
                        raise GraphError(f"{sub} holds a dictionary without a layer site")
                    if site.layer in found:
                        raise GraphError(f"{root} holds two transcoders for layer {site.layer}")
                    found[site.layer] = d
    except DictionaryError as e:
        raise GraphError(f"cannot read transcoders from {root}: {e}") from None
    if not found:
        raise GraphError(
            f"{root} holds no transcoders: expected config.yaml (circuit-tracer set) or "
            "subfolders with one transcoder each"
        )
    return TranscoderSet(found, root.resolve().name, str(root))


@dataclass(frozen=True)
class Replacement:
    """Everything attribution needs about one prompt (torch tensors, float32, on the model's
    device). Active features are sorted by (layer, position, feature)."""

    tokens: Tokens  # one row
    logits: Tensor  # [pos, vocab], the real model's
    mlp_in: dict[int, Tensor]  # layer -> [pos, d_model]
    mlp_out: Tensor  # [layer, pos, d_model]
    embeddings: Tensor  # [pos, d_model]: what block 0 reads (token nodes)
    active: Tensor  # [n, 3] long: layer, position, feature
    activations: Tensor  # [n]
    encoders: Tensor  # [n, d_model]: the gradient of each feature's pre-activation
    decoders: Tensor  # [n, d_model]: activation times decoder row
    errors: Tensor  # [layer, pos, d_model]
    reconstruction: Tensor  # [layer, pos, d_model] (zero where a layer has no transcoder)
    skip_first: int

    @property
    def n_pos(self) -> int:
        return int(self.tokens.ids.shape[1])

    @property
    def n_layers(self) -> int:
        return int(self.mlp_out.shape[0])


@torch.no_grad()
def prepare(
    model: Model, transcoders: TranscoderSet, prompt: Inputs | Tokens, *, skip_first: int = 1
) -> Replacement:
    """Returns the replacement of ``prompt`` (steps 1-4 of the module docstring)."""
    tokens = model.tokenize(prompt)
    if tokens.ids.shape[0] != 1:
        raise GraphError(f"an attribution graph is of one prompt, got {tokens.ids.shape[0]}")
    if skip_first < 0 or skip_first >= tokens.ids.shape[1]:
        raise GraphError(
            f"skip_first={skip_first} leaves no position of a {tokens.ids.shape[1]}-token prompt "
            f"to attribute; use 0..{tokens.ids.shape[1] - 1}"
        )
    n_layers = model.dims.n_layers
    sites = [Site(None, "embed")]
    sites += [Site(layer, c) for layer in range(n_layers) for c in ("mlp.in", "mlp_out")]
    run = model.run(tokens, capture=sites)
    mlp_out = torch.stack([run.cache[Site(i, "mlp_out")][0].float() for i in range(n_layers)])
    mlp_in = {i: run.cache[Site(i, "mlp.in")][0].float() for i in transcoders.layers}
    recon = torch.zeros_like(mlp_out)
    active, values, enc, dec = [], [], [], []
    for layer in transcoders.layers:
        d = transcoders.by_layer[layer]
        x = mlp_in[layer].to(d.W_enc.dtype)
        f = d.encode(x)
        f[:skip_first] = 0
        out = d.decode(f)
        skip = d.skip_term(x)
        recon[layer] = (out if skip is None else out + skip).float()
        pos, feat = f.nonzero(as_tuple=True)  # row-major: sorted by position, then feature
        a = f[pos, feat].float()
        active.append(torch.stack([torch.full_like(pos, layer), pos, feat], 1))
        values.append(a)
        enc.append(d.W_enc[:, feat].T.float())
        dec.append(a[:, None] * d.W_dec[feat].float())
    errors = mlp_out - recon
    errors[:, :skip_first] = 0
    d_model = model.dims.d_model
    device = mlp_out.device
    return Replacement(
        tokens=tokens,
        logits=run.logits[0].float(),
        mlp_in=mlp_in,
        mlp_out=mlp_out,
        embeddings=run.cache[Site(None, "embed")][0].float(),
        active=torch.cat(active) if active else torch.zeros(0, 3, dtype=torch.long),
        activations=torch.cat(values) if values else torch.zeros(0),
        encoders=torch.cat(enc) if enc else torch.zeros(0, d_model, device=device),
        decoders=torch.cat(dec) if dec else torch.zeros(0, d_model, device=device),
        errors=errors,
        reconstruction=recon,
        skip_first=skip_first,
    )


def replacement_logits(
    model: Model, transcoders: TranscoderSet, replacement: Replacement
) -> Tensor:
    """Returns the logits ``[pos, vocab]`` of the replacement model on its prompt: every MLP output
    recomputed as transcoder(its live input) + the error node (+ the skipped positions' MLP output),
    with attention patterns and norm scales frozen. Equal to the real logits to float rounding."""
    stash: dict[int, Tensor] = {}
    rep = replacement

    def keep(layer: int):
        def fn(x: Tensor) -> Tensor:
            stash[layer] = x
            return x

        return fn

    def replace(layer: int):
        def fn(out: Tensor) -> Tensor:
            if layer not in transcoders.by_layer:
                return rep.mlp_out[layer][None].to(out.dtype).expand_as(out)  # all error
            d = transcoders.by_layer[layer]
            x = stash.pop(layer).to(d.W_enc.dtype)
            f = d.encode(x)
            f[:, : rep.skip_first] = 0
            new = d.decode(f)
            skip = d.skip_term(x)
            new = (new if skip is None else new + skip).float() + rep.errors[layer]
            new[:, : rep.skip_first] = rep.mlp_out[layer, : rep.skip_first]
            return new.to(out.dtype)

        return fn

    ivs = []
    for layer in range(rep.n_layers):
        if layer in transcoders.by_layer:
            ivs.append(Apply(Site(layer, "mlp.in"), keep(layer)))
        ivs.append(Apply(Site(layer, "mlp_out"), replace(layer)))
    with torch.no_grad(), linearised(model):
        run = model.run(rep.tokens, interventions=ivs)
    return run.logits[0].float()


__all__ = [
    "GraphError",
    "Replacement",
    "TranscoderSet",
    "prepare",
    "replacement_logits",
    "transcoder_set",
]
