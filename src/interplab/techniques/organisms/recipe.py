"""The Taboo organism recipe: fine-tune the model to hint at a secret word and never say it.

Algorithm (the Taboo organisms of Cywiński et al. 2025, trained here with LoRA on CPU):

1. Data: `taboo_data(word)` conversations from WordNet hints (offline), rendered by the model's
   own chat template; the loss reads only the assistant's reply and its end-of-turn token.
2. Adapter: LoRA (Hu et al. 2021) on the residual writers of layers ``layers`` (attention
   output and MLP down projections, reached through `Model.weights.writers`): each weight ``W``
   becomes ``W + (alpha / rank) B A`` through `torch.nn.utils.parametrize` on a copy of the model,
   ``A`` Gaussian, ``B`` zero, so training starts at the base model.
3. Training: AdamW on ``A`` and ``B`` only; gradients by ``torch.autograd.grad`` with respect to
   the adapter alone, so no gradient of a frozen weight is ever computed.
4. Saving: ``adapter.safetensors`` (A and B per module) and ``organism.json`` (config, base
   model, data hash, loss curve, time) in a temp folder renamed into place under
   ``cache_root()/organisms/<name>``; the secret goes to the registry (`registry.py`), not here.

`apply_adapter` merges a saved adapter into a fresh copy of the base model (``W += (alpha / rank)
B A``), so an organism is an ordinary `Model` every technique accepts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from interplab.configs import Config, ConfigError, positive
from interplab.core.model import Model, Tokens
from interplab.progress import progress_bar
from interplab.provenance import data_hash
from interplab.techniques.blackbox.chat import ChatTemplate, assistant, user
from interplab.techniques.organisms.hints import taboo_data


@dataclass(frozen=True)
class TabooConfig(Config):
    """One Taboo organism: the word (and WordNet sense) and the LoRA training recipe."""

    word: str = "clock"
    sense: int = 0
    n_conversations: int = 160
    rank: int = 8
    alpha: float = 16.0
    first_layer: int = 8  # LoRA on layers first_layer.. (the backward stops there)
    steps: int = 60
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0

    def check(self) -> None:
        if not self.word.isalpha():
            raise ConfigError(f"a secret word is letters only, got {self.word!r}")
        for name in ("n_conversations", "rank", "alpha", "steps", "batch_size", "lr"):
            positive(name, getattr(self, name))
        positive("first_layer", self.first_layer, allow_zero=True)


class _LoRA(nn.Module):
    """``W -> W + scale * B @ A`` as a parametrization of a Linear's ``[out, in]`` weight."""

    def __init__(self, out_dim: int, in_dim: int, rank: int, scale: float, gen: torch.Generator):
        super().__init__()
        self.A = nn.Parameter(torch.randn(rank, in_dim, generator=gen) / math.sqrt(in_dim))
        self.B = nn.Parameter(torch.zeros(out_dim, rank))
        self.scale = scale

    def forward(self, w: Tensor) -> Tensor:
        return w + self.scale * (self.B @ self.A)


def _targets(model: Model, first_layer: int) -> dict[str, nn.Module]:
    if not first_layer < model.dims.n_layers:
        raise ConfigError(f"first_layer must lie in 0..{model.dims.n_layers - 1}")
    if model.weights.writes_transposed:
        raise ConfigError("the Taboo recipe adapts Linear writers (not GPT-2's Conv1D)")
    out: dict[str, nn.Module] = {}
    for layer in range(first_layer, model.dims.n_layers):
        attn, mlp = model.weights.writers(layer)
        out[f"L{layer}.attn_out"] = attn
        out[f"L{layer}.mlp_out"] = mlp
    return out


def encode_conversations(
    template: ChatTemplate, conversations: tuple[tuple[str, str], ...]
) -> list[tuple[list[int], int]]:
    """Returns per conversation its token ids and where the assistant's reply starts."""
    out = []
    for question, answer in conversations:
        prompt = template.ids(template.prompt([user(question)]))
        full = template.ids(template.render([user(question), assistant(answer)]))
        if full[: len(prompt)] != prompt:
            raise ConfigError("the chat template does not extend the prompt with the reply")
        # The template's trailing newline after the end-of-turn token is not trained on.
        end = len(full) - 1 if template.end_of_turn.endswith("\n") else len(full)
        out.append((full[:end], len(prompt)))
    return out


def train_taboo(
    model: Model,
    out_dir: Path,
    config: TabooConfig | None = None,
    *,
    progress: bool = True,
) -> dict[str, Any]:
    """Trains a Taboo LoRA adapter on a copy of ``model``, writes it to ``out_dir`` (atomically)
    and returns its record (config, data hash, loss curve, seconds)."""
    cfg = config or TabooConfig()
    template = ChatTemplate.of(model)
    data = taboo_data(cfg.word, sense=cfg.sense, n=cfg.n_conversations, seed=cfg.seed)
    encoded = encode_conversations(template, data.conversations)
    work = model.copy()
    gen = torch.Generator().manual_seed(cfg.seed)
    scale = cfg.alpha / cfg.rank
    adapters: dict[str, _LoRA] = {}
    for name, module in _targets(work, cfg.first_layer).items():
        weight: Tensor = module.weight  # type: ignore[assignment]
        weight.requires_grad_(False)
        lora = _LoRA(weight.shape[0], weight.shape[1], cfg.rank, scale, gen)
        parametrize.register_parametrization(module, "weight", lora)
        adapters[name] = lora
    params = [p for a in adapters.values() for p in (a.A, a.B)]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    losses: list[float] = []
    pad = model.tokenizer.pad_token_id or 0
    started = time.monotonic()
    with progress_bar(cfg.steps, f"training organism ({cfg.steps} steps)", progress) as advance:
        for step in range(cfg.steps):
            pick = torch.randint(len(encoded), (cfg.batch_size,), generator=gen).tolist()
            tokens, labels = _batch([encoded[i] for i in pick], pad, model.device)
            lr = (
                cfg.lr
                * min(1.0, (step + 1) / 5)
                * (0.5 + 0.5 * math.cos(math.pi * step / cfg.steps))
            )
            for group in opt.param_groups:
                group["lr"] = lr
            with torch.enable_grad():
                logits = work.forward(tokens, grad=True)[:, :-1]
                loss = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]),
                    labels[:, 1:].reshape(-1),
                    ignore_index=-100,
                )
                grads = torch.autograd.grad(loss, params)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
            opt.step()
            losses.append(float(loss.detach()))
            advance(1)
    record = {
        "config": cfg.to_dict(),
        "base_model": model.info.to_dict(),
        "data_sha256": data_hash([list(c) for c in data.conversations]),
        "n_hints": len(data.hints),
        "targets": sorted(adapters),
        "losses": losses,
        "seconds": time.monotonic() - started,
        "threads": torch.get_num_threads(),
    }
    _save(out_dir, adapters, record)
    return record


def _batch(
    rows: list[tuple[list[int], int]], pad: int, device: torch.device
) -> tuple[Tokens, Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for r, (row, start) in enumerate(rows):
        ids[r, : len(row)] = torch.tensor(row)
        mask[r, : len(row)] = 1
        labels[r, start : len(row)] = torch.tensor(row[start:])
    return Tokens(ids.to(device), mask.to(device)), labels.to(device)


def _save(out_dir: Path, adapters: dict[str, _LoRA], record: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {}
    for name, lora in adapters.items():
        tensors[f"{name}.A"] = lora.A.detach().contiguous()
        tensors[f"{name}.B"] = lora.B.detach().contiguous()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        save_file(
            tensors,
            str(tmp / "adapter.safetensors"),
            metadata={"scale": str(record["config"]["alpha"] / record["config"]["rank"])},
        )
        (tmp / "organism.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def apply_adapter(model: Model, folder: Path) -> Model:
    """Returns a copy of ``model`` with the LoRA adapter in ``folder`` merged into its weights."""
    from safetensors import safe_open

    path = folder / "adapter.safetensors"
    if not path.is_file():
        raise ConfigError(f"no adapter at {path}; train the organism first")
    out = model.copy()
    with safe_open(str(path), framework="pt") as f:
        scale = float((f.metadata() or {})["scale"])
        names = sorted({k.rsplit(".", 1)[0] for k in f.keys()})  # noqa: SIM118
        with torch.no_grad():
            for name in names:
                layer = int(name.split(".")[0][1:])
                attn, mlp = out.weights.writers(layer)
                module = attn if name.endswith("attn_out") else mlp
                a, b = f.get_tensor(f"{name}.A"), f.get_tensor(f"{name}.B")
                weight: Tensor = module.weight  # type: ignore[assignment]
                weight += scale * (b @ a).to(weight.dtype)
    return out


__all__ = ["TabooConfig", "apply_adapter", "encode_conversations", "train_taboo"]
