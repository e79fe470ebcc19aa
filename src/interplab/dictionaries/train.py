"""Training several dictionaries from one stream of activations, resumable bit for bit.

1. Each dictionary reads its sites from the same blocks (`interplab.dictionaries.harvest`), so
   one harvest pass trains any number of dictionaries: different sites, widths, k, architectures.
2. Activations are scaled so the mean norm is ``sqrt(width)`` (estimated on the first block;
   Anthropic's April 2024 update), which makes learning rates and penalties carry across sites;
   `Dictionary.fold` undoes the scaling at the end, so saved dictionaries read raw activations.
   Decoder biases start at the first block's mean target.
3. Per batch: loss (`Dictionary.train_step`), backward, the gradient along each decoder row is
   removed, Adam steps, decoder rows are renormalised. The learning rate warms up linearly over
   ``warmup`` of the tokens and decays linearly to zero over the last ``1 - decay_start``
   (Gao et al. 2024 use Adam with a linear warm-up; the decay follows SAELens). Sparsity penalties
   ramp up over ``sparsity_warmup`` of the tokens.
4. A latent is dead when it has not fired for ``dead_after_tokens`` tokens; TopK-family losses
   revive dead latents through AuxK. Live metrics (MSE, FVE, L0, dead fraction) are shown on the
   progress bar and logged every ``log_every`` steps.
5. With an output folder, the state is checkpointed atomically every ``checkpoint_every`` steps
   and on Ctrl-C (after the step in progress), and a later call resumes where it stopped
   (`interplab.dictionaries._state`); a run resumed after Ctrl-C or a kill ends with the same
   weights as one never interrupted. A NaN or inf loss stops with an error naming the step and
   the dictionary, and no checkpoint is written after it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from interplab.configs import Config, ConfigError, positive
from interplab.dictionaries._live import LiveBar
from interplab.dictionaries._state import (
    Member,
    Position,
    deferred_interrupt,
    load_checkpoint,
    save_checkpoint,
)
from interplab.dictionaries.base import Dictionary, auto_lr
from interplab.dictionaries.config import DictionaryConfig, DictionaryError
from interplab.dictionaries.formats import native
from interplab.dictionaries.harvest import ActivationSource
from interplab.dictionaries.registry import build
from interplab.results.dictionaries import TrainingCurve
from interplab.sites import Site

Evaluator = Callable[[str, Dictionary], Mapping[str, float]]


@dataclass(frozen=True)
class TrainConfig(Config):
    """How long and how fast to train (shared by every dictionary of one run)."""

    total_tokens: int = 2_000_000
    batch_tokens: int = 4096
    lr: float | None = None  # None: 2e-4 / sqrt(d_sae / 2^14) per dictionary (Gao et al. 2024)
    warmup: float = 0.02  # fraction of tokens
    decay_start: float = 0.8  # fraction of tokens after which the rate decays linearly to 0
    sparsity_warmup: float = 0.05  # fraction of tokens over which penalties ramp up
    beta1: float = 0.9
    beta2: float = 0.999
    dead_after_tokens: int = 1_000_000
    log_every: int = 25  # steps
    checkpoint_every: int = 200  # steps
    seed: int = 0

    def check(self) -> None:
        for name in ("total_tokens", "batch_tokens", "dead_after_tokens", "log_every"):
            positive(name, getattr(self, name))
        positive("checkpoint_every", self.checkpoint_every)
        if self.lr is not None:
            positive("lr", self.lr)
        for name in ("warmup", "decay_start", "sparsity_warmup"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"{name} is a fraction of the tokens, in [0, 1]")
        if self.decay_start < self.warmup:
            raise ConfigError("decay_start must not come before the end of the warm-up")


@dataclass(frozen=True)
class TrainingRun:
    """Trained dictionaries (folded: they read raw activations) and their training curves."""

    dictionaries: dict[str, Dictionary]
    curves: dict[str, TrainingCurve]
    folder: Path | None


def train(
    source: ActivationSource,
    dictionaries: Mapping[str, DictionaryConfig],
    config: TrainConfig | None = None,
    *,
    out: str | Path | None = None,
    progress: bool = True,
    evaluate: Evaluator | None = None,
    eval_every_tokens: int | None = None,
    callback: Callable[[Position], None] | None = None,
) -> TrainingRun:
    """Returns dictionaries trained on ``source``; with ``out``, checkpoints there, resumes from
    it, and saves each dictionary as ``out/<name>/`` (interplab format) with ``training.json``.

    ``evaluate(name, dictionary)`` (e.g. FVE and CE recovered on held-out text) runs every
    ``eval_every_tokens`` and at the end; ``callback(position)`` runs after every step.
    """
    cfg = config or TrainConfig()
    if not dictionaries:
        raise DictionaryError("no dictionaries to train")
    _check_fits(source, dictionaries)
    folder = None if out is None else Path(out)
    fingerprint = {
        "source": source.fingerprint(),
        "train": cfg.to_dict(),
        "dictionaries": {n: c.to_dict() for n, c in sorted(dictionaries.items())},
    }
    members = {name: _member(name, c, cfg) for name, c in dictionaries.items()}
    position, seconds = Position(), 0.0
    saved = None if folder is None else load_checkpoint(folder, fingerprint)
    if saved is not None:
        position = Position(**saved["position"])
        seconds = float(saved["seconds"])
        for name, m in members.items():
            m.restore(saved["members"][name])
        torch.set_rng_state(saved["torch_rng"])
    else:
        _initialise(members, source.block(0, 0), dictionaries)
    started = time.monotonic() - seconds
    loop = _Loop(source, members, dictionaries, cfg, evaluate, eval_every_tokens)
    with LiveBar(cfg.total_tokens, f"training {', '.join(members)}", progress) as bar:
        bar.update(position.tokens, "")
        with deferred_interrupt() as pending:
            try:
                for now in loop.run(position, pending):
                    bar.update(now.tokens, loop.metrics_text)
                    if folder is not None and (
                        now.step % cfg.checkpoint_every == 0 or pending.get("now")
                    ):
                        save_checkpoint(folder, fingerprint, now, members, _since(started))
                    if pending.get("now"):
                        raise KeyboardInterrupt
                    if callback is not None:
                        callback(now)
            except KeyboardInterrupt:
                if folder is not None and not pending.get("stepping"):
                    save_checkpoint(folder, fingerprint, loop.position, members, _since(started))
                raise
    if not position.finished:
        position.finished = True
        loop.final_log(position)
        if folder is not None:
            save_checkpoint(folder, fingerprint, position, members, _since(started))
    return _finish(members, dictionaries, cfg, folder, _since(started))


class _Loop:
    """The step loop over blocks and batches; yields the position after every step."""

    def __init__(
        self,
        source: ActivationSource,
        members: dict[str, Member],
        configs: Mapping[str, DictionaryConfig],
        cfg: TrainConfig,
        evaluate: Evaluator | None,
        eval_every: int | None,
    ) -> None:
        self.source, self.members, self.configs, self.cfg = source, members, configs, cfg
        self.evaluate, self.eval_every = evaluate, eval_every
        self.position = Position()
        self.metrics_text = ""

    def run(self, position: Position, pending: dict[str, bool]) -> Iterator[Position]:
        cfg = self.cfg
        self.position = position
        while position.tokens < cfg.total_tokens and not position.finished:
            acts = self.source.block(position.epoch, position.block)
            n = next(iter(acts.values())).shape[0]
            order = torch.randperm(
                n, generator=_generator(cfg.seed, position.epoch, position.block)
            )
            batches = torch.tensor_split(order, max(1, round(n / cfg.batch_tokens)))
            while position.batch < len(batches) and position.tokens < cfg.total_tokens:
                rows = batches[position.batch]
                pending["stepping"] = True
                for name, m in self.members.items():
                    self._step(name, m, acts, rows, position)
                position.tokens += len(rows)
                position.step += 1
                position.batch += 1
                pending["stepping"] = False
                if position.step % cfg.log_every == 0:
                    self._log(position)
                if self.eval_every and _crossed(position.tokens, len(rows), self.eval_every):
                    self._evaluate(position)
                yield position
            if position.batch >= len(batches):
                position.batch = 0
                position.block += 1
                if position.block >= self.source.n_blocks:
                    position.block, position.epoch = 0, position.epoch + 1

    def _step(
        self, name: str, m: Member, acts: dict[Any, Tensor], rows: Tensor, pos: Position
    ) -> None:
        c = self.configs[name]
        d = m.dictionary
        x = acts[c.site][rows] * m.scale_in
        y = x if c.kind == "sae" else acts[c.write_site][rows] * m.scale_out
        lr = self.lr(d, pos.tokens)
        for group in m.optimizer.param_groups:
            group["lr"] = lr
        dead = m.since_fired >= self.cfg.dead_after_tokens
        warm = self.cfg.sparsity_warmup * self.cfg.total_tokens
        step = d.train_step(x, y, dead, min(1.0, (pos.tokens + 1) / warm) if warm > 0 else 1.0)
        if not bool(torch.isfinite(step.loss)):
            raise DictionaryError(
                f"the loss of dictionary {name!r} became {float(step.loss.detach())} at step {pos.step + 1} "
                f"(token {pos.tokens}); the last checkpoint is intact. Lower the learning rate "
                "(TrainConfig.lr) or check the activations"
            )
        m.optimizer.zero_grad(set_to_none=True)
        step.loss.backward()
        d.project_decoder_grad()
        m.optimizer.step()
        d.normalize_decoder()
        d.after_step(step)
        m.since_fired += len(rows)
        m.since_fired[step.fired] = 0
        sst = (y - y.mean(0)).pow(2).sum()
        sse = (step.recon - y).pow(2).sum()
        m.accumulate(
            mse=float(sse) / len(rows) / m.scale_out**2,
            fve=1.0 - float(sse / sst) if float(sst) > 0 else float("nan"),
            l0=step.l0,
        )

    def lr(self, d: Dictionary, tokens: int) -> float:
        cfg = self.cfg
        base = cfg.lr if cfg.lr is not None else auto_lr(d.d_sae)
        frac = tokens / cfg.total_tokens
        warm = cfg.warmup * cfg.total_tokens
        if tokens < warm:
            return base * (tokens + 1) / warm
        if frac > cfg.decay_start and cfg.decay_start < 1:
            return base * max(0.0, (1 - frac) / (1 - cfg.decay_start))
        return base

    def _log(self, position: Position) -> None:
        texts = []
        for name, m in self.members.items():
            dead = float((m.since_fired >= self.cfg.dead_after_tokens).float().mean())
            row = m.log(position.tokens, self.lr(m.dictionary, position.tokens), dead)
            if row:
                texts.append(
                    f"{name}: FVE {row['fve']:.3f} MSE {row['mse']:.3g} L0 {row['l0']:.1f} "
                    f"dead {dead:.1%}"
                )
        self.metrics_text = " | ".join(texts)

    def final_log(self, position: Position) -> None:
        self._log(position)
        last = next(iter(self.members.values())).evals.get("tokens", [])
        if self.evaluate is not None and (not last or last[-1] != position.tokens):
            self._evaluate(position)

    def _evaluate(self, position: Position) -> None:
        assert self.evaluate is not None
        for name, m in self.members.items():
            metrics = self.evaluate(name, folded_copy(m))
            m.evals.setdefault("tokens", []).append(float(position.tokens))
            for k, v in metrics.items():
                m.evals.setdefault(k, []).append(float(v))


def needed_sites(configs: Mapping[str, DictionaryConfig]) -> list[Site]:
    """Returns every site the dictionaries read or write, in forward order (what to harvest)."""
    sites = {s for c in configs.values() for s in (c.site, c.write_site) if s is not None}
    return sorted(sites, key=lambda s: s.sort_key)


def folded_copy(m: Member) -> Dictionary:
    """Returns a copy of the member's dictionary that reads and writes raw activations."""
    d = build(m.dictionary.config)
    d.load_state_dict(m.dictionary.state_dict())
    d.fold(m.scale_in, m.scale_out)
    return d.eval()


def _member(name: str, c: DictionaryConfig, cfg: TrainConfig) -> Member:
    seed = int.from_bytes(hashlib.sha256(f"{cfg.seed}|{name}".encode()).digest()[:4], "little")
    d = build(c, seed=seed)
    opt = torch.optim.Adam(d.parameters(), lr=0.0, betas=(cfg.beta1, cfg.beta2))
    return Member(name, d, opt, torch.zeros(c.d_sae, dtype=torch.long), 1.0, 1.0)


def _initialise(
    members: dict[str, Member], block: dict[Any, Tensor], configs: Mapping[str, DictionaryConfig]
) -> None:
    """Sets each member's scales and decoder bias from the first block."""
    for name, m in members.items():
        c = configs[name]
        x, y = block[c.site], block[c.write_site]
        m.scale_in = _scale(x)
        m.scale_out = m.scale_in if c.kind == "sae" else _scale(y)
        with torch.no_grad():
            m.dictionary.b_dec.copy_((y * m.scale_out).mean(0))


def _scale(x: Tensor) -> float:
    norm = float(x.norm(dim=-1).mean())
    if not math.isfinite(norm) or norm == 0:
        raise DictionaryError("the first block's activations are all zero or not finite")
    return math.sqrt(x.shape[-1]) / norm


def _check_fits(source: ActivationSource, configs: Mapping[str, DictionaryConfig]) -> None:
    for name, c in configs.items():
        if c.site is None:
            raise DictionaryError(f"dictionary {name!r} has no site to read (config.site)")
        for site, width, what in ((c.site, c.d_in, "d_in"), (c.write_site, c.width_out, "d_out")):
            if site not in source.widths:
                have = ", ".join(str(s) for s in source.sites)
                raise DictionaryError(f"dictionary {name!r} reads {site}, the source has: {have}")
            if source.widths[site] != width:
                raise DictionaryError(
                    f"dictionary {name!r} has {what}={width}, but {site} has width "
                    f"{source.widths[site]}"
                )


def _generator(seed: int, epoch: int, block: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, epoch, block]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _crossed(tokens: int, batch: int, every: int) -> bool:
    return (tokens - batch) // every != tokens // every


def _since(started: float) -> float:
    return time.monotonic() - started


def _finish(
    members: dict[str, Member],
    configs: Mapping[str, DictionaryConfig],
    cfg: TrainConfig,
    folder: Path | None,
    seconds: float,
) -> TrainingRun:
    dictionaries, curves = {}, {}
    for name, m in members.items():
        d = folded_copy(m)
        evals = {k: np.asarray(v, dtype=np.float64) for k, v in m.evals.items() if k != "tokens"}
        curve = TrainingCurve(
            name=name,
            config=configs[name].to_dict(),
            train=cfg.to_dict(),
            tokens=np.asarray(m.history["tokens"], dtype=np.int64),
            mse=np.asarray(m.history["mse"]),
            fve=np.asarray(m.history["fve"]),
            l0=np.asarray(m.history["l0"]),
            dead_fraction=np.asarray(m.history["dead_fraction"]),
            lr=np.asarray(m.history["lr"]),
            eval_tokens=np.asarray(m.evals.get("tokens", []), dtype=np.int64),
            eval_metrics=evals,
            seconds=seconds,
        )
        if folder is not None:
            native.save(d, folder / name, {"name": name, "train": cfg.to_dict()})
            curve.to_json(folder / name / "training.json")
        dictionaries[name], curves[name] = d, curve
    return TrainingRun(dictionaries, curves, folder)


__all__ = ["Evaluator", "TrainConfig", "TrainingRun", "folded_copy", "needed_sites", "train"]
