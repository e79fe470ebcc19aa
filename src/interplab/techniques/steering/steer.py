"""Steering: contrastive activation addition, with the baselines that make it a claim.

Algorithm (Turner et al. 2023, "Activation Addition: Steering Language Models Without
Optimization", arXiv:2308.10248; Rimsky et al. 2024, "Steering Llama 2 via Contrastive
Activation Addition", ACL):

1. `steering_vector` (`interplab.techniques.steering.vector`): the difference of mean residuals
   of positive and negative prompts at the chosen layers.
2. `steer`: for every prompt, generate greedily with ``coefficient * vector`` added to that site
   at every generation step (`interplab.core.Add`; ``positions=None`` adds it at every token, the
   prompt's and each new one, as CAA does; ``positions=[-1]`` only at the newest token). All the
   variants of one prompt (no steering, every coefficient, every random draw) run as one batch,
   each row with its own added vector, so they share one forward per step.
3. Baselines, on by default: (a) no steering; (b) norm-matched random vectors: Gaussian
   directions rescaled to the steering vector's norm at each layer, ``n_random`` seeded draws,
   at the same coefficients, so a score change that any push of that size causes is not credited
   to the direction; (c) a prompt baseline: the same intent written as an instruction before the
   prompt (``behaviour.instruction``), generated without steering.
4. Each continuation (the new text only) gets a behaviour score (`Behaviour.score`) and a
   fluency measure: its perplexity under the *unsteered* model, conditioned on the original
   prompt (also for the prompt baseline), so a coefficient that wrecks the text is visible.
   Perplexity has limits: greedy, repetitive text has *low* perplexity, so read it with the texts.
5. `SteeringResult.summary` gives the paired difference steered − random per coefficient over
   prompts (the unit of replication; random draws are averaged per prompt first) with a sign-flip
   test and Holm correction across coefficients; `summaries` gives every condition's mean and CI.

Coefficients and vectors must be finite: NaN or inf would generate text from garbage and still
produce a scored table, so they are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from interplab.configs import ConfigError
from interplab.core.interventions import Positions
from interplab.core.model import Model
from interplab.provenance import Provenance, data_hash
from interplab.results.steering import SteerConfig, SteeringResult, SteeringVector
from interplab.store import recorded
from interplab.techniques.steering.behaviour import HAPPINESS, Behaviour, SteeringError
from interplab.techniques.steering.vector import check_finite, steering_interventions


@torch.inference_mode()
@recorded("steering", inputs="prompts")
def steer(
    model: Model,
    prompts: str | Sequence[str],
    vector: SteeringVector,
    *,
    coefficients: Sequence[float] = (0.0, 2.0, 4.0, 8.0),
    behaviour: Behaviour = HAPPINESS,
    positions: Positions = None,
    n_random: int = 3,
    prompt_baseline: bool = True,
    max_new_tokens: int = 24,
    temperature: float = 0.0,
    seed: int = 0,
    config: SteerConfig | None = None,
) -> SteeringResult:
    """Returns behaviour scores and perplexities of continuations steered by ``coefficient *
    vector`` at each coefficient, beside norm-matched random vectors, no steering and a prompt
    baseline, per prompt. ``config`` replaces the keyword options (not ``behaviour``)."""
    cfg = config or SteerConfig(
        coefficients=tuple(float(c) for c in coefficients),
        positions=_positions(positions),
        n_random=n_random,
        prompt_baseline=prompt_baseline,
        max_new_tokens=max_new_tokens,
        temperature=temperature,
        seed=seed,
    )
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise SteeringError("steer needs at least one prompt")
    check_finite(vector.vectors, vector.layers)
    coefs = list(cfg.coefficients)
    vectors = torch.as_tensor(vector.vectors)
    random_dirs = _random_like(vectors, cfg.n_random, cfg.seed)  # [draw, layer, d_model]
    n_c, n_p = len(coefs), len(prompt_list)
    coef_t = torch.tensor(coefs, dtype=torch.float32)[:, None, None]
    rows = torch.cat(
        [
            torch.zeros_like(vectors)[None],  # no steering
            coef_t * vectors[None],  # steered, per coefficient
            (coef_t[None] * random_dirs[:, None]).flatten(0, 1),  # [draw * coefficient, ...]
        ]
    ).to(model.device, model.dtype)
    ivs = steering_interventions(vector, rows, positions=cfg.positions)
    texts: list[list[str]] = []
    conts: list[list[Tensor]] = []
    for i, prompt in enumerate(prompt_list):
        gen = model.generate(
            [prompt] * rows.shape[0],
            max_new_tokens=cfg.max_new_tokens,
            interventions=ivs,
            temperature=cfg.temperature,
            seed=cfg.seed + i,
        )
        texts.append(gen.texts)
        conts.append([_until_eos(model, r[gen.prompt_length :]) for r in gen.ids])
    prompt_texts: list[str] = []
    if cfg.prompt_baseline:
        for i, prompt in enumerate(prompt_list):
            gen = model.generate(
                behaviour.instruction + prompt,
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                seed=cfg.seed + i,
            )
            prompt_texts.append(gen.texts[0])
            conts[i].append(_until_eos(model, gen.ids[0, gen.prompt_length :]))
    n_gen = len(texts[0])
    scores = behaviour.score(model, [t for row in texts for t in row] + prompt_texts)
    flat_scores = np.full((n_p, n_gen + int(cfg.prompt_baseline)), np.nan)
    flat_scores[:, :n_gen] = scores[: n_p * n_gen].reshape(n_p, n_gen)
    if cfg.prompt_baseline:
        flat_scores[:, n_gen] = scores[n_p * n_gen :]
    ppl = np.stack([_perplexities(model, p, c) for p, c in zip(prompt_list, conts, strict=True)])
    nan = np.full(n_p, np.nan)

    def rand(a: np.ndarray) -> np.ndarray:  # [prompt, draw * coef] -> [prompt, coef, draw]
        return a[:, 1 + n_c : n_gen].reshape(n_p, cfg.n_random, n_c).transpose(0, 2, 1)

    return SteeringResult(
        prompts=prompt_list,
        coefficients=coefs,
        behaviour=behaviour.name,
        behaviour_description=behaviour.description,
        instruction=behaviour.instruction,
        layers=list(vector.layers),
        component=vector.component,
        vector_norms=vector.norms,
        steered_scores=flat_scores[:, 1 : 1 + n_c],
        random_scores=rand(flat_scores),
        none_scores=flat_scores[:, 0],
        prompt_scores=flat_scores[:, n_gen] if cfg.prompt_baseline else nan,
        steered_perplexity=ppl[:, 1 : 1 + n_c],
        random_perplexity=rand(ppl),
        none_perplexity=ppl[:, 0],
        prompt_perplexity=ppl[:, n_gen] if cfg.prompt_baseline else nan,
        steered_texts=[row[1 : 1 + n_c] for row in texts],
        random_texts=[
            [[row[1 + n_c + d * n_c + j] for d in range(cfg.n_random)] for j in range(n_c)]
            for row in texts
        ],
        none_texts=[row[0] for row in texts],
        prompt_texts=prompt_texts if cfg.prompt_baseline else [""] * n_p,
        vector_provenance=vector.provenance,
        provenance=Provenance(
            technique="steering",
            model=model.info.to_dict(),
            config=cfg.to_dict(),
            data_sha256=data_hash(prompt_list),
            seed=cfg.seed,
        ),
    )


def _positions(positions: Positions) -> tuple[int, ...] | None:
    """Returns the token positions as a tuple (None: every token)."""
    if positions is None:
        return None
    if isinstance(positions, int):
        return (positions,)
    if isinstance(positions, slice):
        raise ConfigError("give steering positions as a list of ints (e.g. [-1]), not a slice")
    return tuple(int(p) for p in positions)


def _random_like(vectors: Tensor, n: int, seed: int) -> Tensor:
    """Returns ``[n, layer, d]`` Gaussian directions with each layer's norm matched to ``vectors``."""
    g = torch.Generator().manual_seed(seed)
    r = torch.randn((n, *vectors.shape), generator=g)
    return r / r.norm(dim=-1, keepdim=True) * vectors.norm(dim=-1, keepdim=True)[None]


def _until_eos(model: Model, ids: Tensor) -> Tensor:
    """Returns generated ids up to and including the first EOS (the model chose to stop)."""
    eos = model.tokenizer.eos_token_id if model.tokenizer is not None else None
    if eos is None:
        return ids.cpu()
    hits = (ids == eos).nonzero()
    return ids[: int(hits[0, 0]) + 1].cpu() if len(hits) else ids.cpu()


def _perplexities(model: Model, prompt: str, continuations: Sequence[Tensor]) -> np.ndarray:
    """Returns exp(mean NLL) of each continuation after ``prompt`` under the unsteered model.

    Rows are right-padded: in a causal model later (pad) tokens never change earlier logits.
    """
    p = model.tokenize(prompt).ids[0].cpu()
    seqs = [torch.cat([p, c]) for c in continuations]
    width = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = s
    logp = model.forward(ids).float().log_softmax(-1).cpu()
    out = np.empty(len(seqs))
    for i, c in enumerate(continuations):
        at = torch.arange(len(p) - 1, len(p) - 1 + len(c))
        out[i] = float(torch.exp(-logp[i, at, c].mean()))
    return out


__all__ = ["steer"]
