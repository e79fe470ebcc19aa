"""Steering vectors: contrastive activation addition, with the baselines that make it a claim.

Algorithm (Turner et al. 2023, "Activation Addition: Steering Language Models Without
Optimization", arXiv:2308.10248; Rimsky et al. 2024, "Steering Llama 2 via Contrastive
Activation Addition", ACL):

1. `steering_vector`: run the positive and the negative prompts, capture the residual stream at
   the chosen layers (``resid_pre``, the input of block L, by default; ``resid_post`` is the
   output of block L, which equals ``resid_pre`` of block L+1), reduce each prompt to one vector
   (its last token, or the mean over its tokens), and take the difference of the two means.
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
5. `SteeringResult.summary` gives, per coefficient, the mean with a bootstrap CI over prompts
   (the unit of replication; random draws are averaged per prompt first) for each condition, and
   the paired differences steered − random and steered − none with sign-flip tests and Holm
   correction across coefficients (`interplab.stats.summarize`).

The default behaviour, `HAPPINESS`, scores a continuation by asking the unsteered model itself:
after the text it appends ``"\\n\\nThe mood of the text above is"`` and reads the log-odds of the
next word being happy (" happy", " joyful", " cheerful", " positive", " glad") versus sad
(" sad", " gloomy", " miserable", " negative", " unhappy"): ``logsumexp`` of the log-probs of each
list (words that are not one token are dropped), happy minus sad. Limits: it is the model's own
judgement, so it shares the model's biases; it reads words more than meaning (a text that says
"not happy" can still score high); it is a log-odds on a fixed frame, not a calibrated
probability; and a steered model can write emotion words without writing about emotion.
Perplexity has limits too: greedy, repetitive text has *low* perplexity, so read it with the texts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from interplab.core.interventions import Add, Positions
from interplab.core.model import Inputs, Model
from interplab.provenance import Provenance, data_hash, write_json
from interplab.stats import Summary, summarize

Condition = Literal["steered", "random", "none", "prompt"]
CONDITIONS: tuple[Condition, ...] = ("steered", "random", "none", "prompt")
ResidComponent = Literal["resid_pre", "resid_post"]
Reduction = Literal["last", "mean"]
Scorer = Callable[[Model, Sequence[str]], np.ndarray]

HAPPY_WORDS = (" happy", " joyful", " cheerful", " positive", " glad")
SAD_WORDS = (" sad", " gloomy", " miserable", " negative", " unhappy")
JUDGE_SUFFIX = "\n\nThe mood of the text above is"


@dataclass(frozen=True)
class SteeringVector:
    """A difference-of-means direction per layer, its norm, and how it was made."""

    layers: list[int]
    component: ResidComponent
    position: Reduction
    vectors: Tensor  # [layer, d_model], float32
    positive_mean: Tensor  # [layer, d_model]
    negative_mean: Tensor  # [layer, d_model]
    n_positive: int
    n_negative: int
    provenance: Provenance

    @property
    def norms(self) -> np.ndarray:
        """Returns the L2 norm of the vector at each layer."""
        return self.vectors.norm(dim=-1).double().numpy()

    def at(self, layer: int) -> Tensor:
        """Returns the ``[d_model]`` vector of one layer."""
        if layer not in self.layers:
            raise KeyError(f"no vector at layer {layer}; layers: {self.layers}")
        return self.vectors[self.layers.index(layer)]

    def site(self, layer: int) -> str:
        return f"L{layer}.{self.component}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "technique": "steering_vector",
            "layers": self.layers,
            "component": self.component,
            "position": self.position,
            "norms": self.norms,
            "vectors": self.vectors,
            "n_positive": self.n_positive,
            "n_negative": self.n_negative,
            "provenance": self.provenance.to_dict(),
        }

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())


@dataclass(frozen=True)
class Behaviour:
    """What steering should change: a scorer of continuations and the same intent as a prompt."""

    name: str
    score: Scorer  # (unsteered model, continuations) -> [n] scores, higher = more of it
    instruction: str  # prepended to each prompt for the prompt baseline
    description: str = ""


def happiness_score(model: Model, texts: Sequence[str], *, batch_size: int = 16) -> np.ndarray:
    """Returns, per text, the unsteered model's log-odds that its mood is happy rather than sad."""
    happy = _single_tokens(model, HAPPY_WORDS)
    sad = _single_tokens(model, SAD_WORDS)
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = [t + JUDGE_SUFFIX for t in texts[start : start + batch_size]]
        run = model.run(chunk)
        rows = torch.arange(len(chunk))
        logp = run.logits[rows, run.tokens.last].float().log_softmax(-1)
        out.append((logp[:, happy].logsumexp(-1) - logp[:, sad].logsumexp(-1)).double().numpy())
    return np.concatenate(out)


HAPPINESS = Behaviour(
    name="happiness",
    score=happiness_score,
    instruction="Write happily: ",
    description=(
        "log-odds, under the unsteered model, that the continuation's mood is happy vs sad "
        f"(words {list(HAPPY_WORDS)} vs {list(SAD_WORDS)}, after {JUDGE_SUFFIX!r})"
    ),
)


@torch.inference_mode()
def steering_vector(
    model: Model,
    positive: Inputs,
    negative: Inputs,
    *,
    layers: int | Sequence[int],
    component: ResidComponent = "resid_pre",
    position: Reduction = "mean",
    batch_size: int = 32,
) -> SteeringVector:
    """Returns mean(positive) − mean(negative) of the residual at each layer (one vector per prompt:
    its last token, or the mean over its tokens; padding is never counted)."""
    layer_list = [layers] if isinstance(layers, int) else [int(x) for x in layers]
    if not layer_list:
        raise ValueError("layers is empty; give at least one layer")
    if component not in ("resid_pre", "resid_post"):
        raise ValueError(f"component must be 'resid_pre' or 'resid_post', got {component!r}")
    if position not in ("last", "mean"):
        raise ValueError(f"position must be 'last' or 'mean', got {position!r}")
    sites = model.sites([f"L{layer}.{component}" for layer in layer_list])
    pos_mean, n_pos = _mean_residual(model, positive, sites, position, batch_size)
    neg_mean, n_neg = _mean_residual(model, negative, sites, position, batch_size)
    prov = Provenance(
        technique="steering_vector",
        model=model.info.to_dict(),
        config={"layers": layer_list, "component": component, "position": position},
        data_sha256=data_hash({"positive": _hashable(positive), "negative": _hashable(negative)}),
    )
    return SteeringVector(
        layers=layer_list,
        component=component,
        position=position,
        vectors=pos_mean - neg_mean,
        positive_mean=pos_mean,
        negative_mean=neg_mean,
        n_positive=n_pos,
        n_negative=n_neg,
        provenance=prov,
    )


def steering_interventions(
    vector: SteeringVector, rows: Tensor, *, positions: Positions = None
) -> list[Add]:
    """Returns one `Add` per layer adding ``rows[:, layer]`` (``[batch, layer, d_model]``, already
    scaled by the coefficients) to each row of the batch."""
    return [
        Add(vector.site(layer), rows[:, i, None, :], positions=positions)
        for i, layer in enumerate(vector.layers)
    ]


@dataclass(frozen=True)
class SteeringResult:
    """Scores, perplexities and texts per prompt × coefficient × condition, with provenance."""

    prompts: list[str]
    coefficients: list[float]
    behaviour: str
    instruction: str
    layers: list[int]
    component: str
    vector_norms: np.ndarray  # [layer]
    steered_scores: np.ndarray  # [prompt, coefficient]
    random_scores: np.ndarray  # [prompt, coefficient, draw]
    none_scores: np.ndarray  # [prompt]
    prompt_scores: np.ndarray  # [prompt]
    steered_perplexity: np.ndarray  # [prompt, coefficient]
    random_perplexity: np.ndarray  # [prompt, coefficient, draw]
    none_perplexity: np.ndarray  # [prompt]
    prompt_perplexity: np.ndarray  # [prompt]
    steered_texts: list[list[str]]  # [prompt][coefficient]
    random_texts: list[list[list[str]]]  # [prompt][coefficient][draw]
    none_texts: list[str]
    prompt_texts: list[str]
    provenance: Provenance

    @property
    def n(self) -> int:
        return len(self.prompts)

    @property
    def conditions(self) -> list[Condition]:
        """Returns the conditions this result holds (random and prompt can be switched off)."""
        return [
            c
            for c in CONDITIONS
            if (c != "random" or self.random_scores.shape[-1] > 0)
            and (c != "prompt" or not np.isnan(self.prompt_scores).all())
        ]

    def per_coefficient(self, condition: Condition, *, perplexity: bool = False) -> np.ndarray:
        """Returns ``[prompt, coefficient]`` values of a condition: random draws averaged per
        prompt; the coefficient-free conditions (none, prompt) repeated along coefficients."""
        kind = "perplexity" if perplexity else "scores"
        if condition not in CONDITIONS:
            raise KeyError(f"unknown condition {condition!r}; conditions: {CONDITIONS}")
        values = getattr(self, f"{condition}_{kind}")
        if condition == "random":
            return values.mean(-1)
        if condition in ("none", "prompt"):
            return np.repeat(values[:, None], len(self.coefficients), axis=1)
        return values

    def summary(self, *, seed: int = 0) -> dict[str, Summary]:
        """Returns per-coefficient summaries (mean, CI over prompts, n) of each condition's score
        and perplexity, and of the paired differences steered − random and steered − none (sign-
        flip test against 0, Holm-corrected across coefficients)."""
        out: dict[str, Summary] = {}
        for c in self.conditions:
            out[f"{c} score"] = summarize(self.per_coefficient(c), seed=seed)
            out[f"{c} perplexity"] = summarize(self.per_coefficient(c, perplexity=True), seed=seed)
        steered = self.per_coefficient("steered")
        bases: list[Condition] = [c for c in self.conditions if c in ("random", "none")]
        for base in bases:
            out[f"steered - {base} score"] = summarize(
                steered, baseline=self.per_coefficient(base), seed=seed
            )
        return out

    def table(self, *, seed: int = 0) -> list[dict[str, Any]]:
        """Returns one row per coefficient and condition: mean score and perplexity with CIs."""
        s = self.summary(seed=seed)
        rows = []
        for j, coef in enumerate(self.coefficients):
            for c in self.conditions:
                sc, pp = s[f"{c} score"], s[f"{c} perplexity"]
                rows.append(
                    {
                        "coefficient": coef,
                        "condition": c,
                        "n": sc.n,
                        "score": float(sc.mean[j]),
                        "score_ci": (float(sc.ci_low[j]), float(sc.ci_high[j])),
                        "perplexity": float(pp.mean[j]),
                        "perplexity_ci": (float(pp.ci_low[j]), float(pp.ci_high[j])),
                    }
                )
        return rows

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "technique": "steering",
            **{k: getattr(self, k) for k in self.__dataclass_fields__ if k != "provenance"},
            "provenance": self.provenance.to_dict(),
        }
        if self.n >= 2:
            d["summary"] = {k: v.to_dict() for k, v in self.summary().items()}
            d["table"] = self.table()
        return d

    def to_json(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    def figure(self) -> Any:
        """Returns a figure: score vs coefficient (steered and random with CI bands, the no-steering
        and prompt baselines as bands) and perplexity vs coefficient."""
        import matplotlib.pyplot as plt

        s = self.summary()
        x = np.asarray(self.coefficients)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        colours = {"steered": "C0", "random": "C1", "none": "0.4", "prompt": "C2"}
        labels = {
            "steered": "steered",
            "random": "norm-matched random",
            "none": "no steering",
            "prompt": f"prompt baseline ({self.instruction.strip()!r})",
        }
        for ax, kind in zip(axes, ("score", "perplexity"), strict=True):
            for c in self.conditions:
                summary = s[f"{c} {kind}"]
                style = "-o" if c in ("steered", "random") else "--"
                ax.plot(x, summary.mean, style, color=colours[c], label=labels[c])
                ax.fill_between(x, summary.ci_low, summary.ci_high, color=colours[c], alpha=0.15)
            ax.set_xlabel(f"coefficient (× vector at {self.component}, layers {self.layers})")
        axes[0].set_ylabel(f"{self.behaviour} score (mean, 95% CI over {self.n} prompts)")
        axes[1].set_ylabel("perplexity under the unsteered model")
        axes[1].set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"steering toward {self.behaviour}")
        fig.tight_layout()
        return fig


@torch.inference_mode()
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
) -> SteeringResult:
    """Returns behaviour scores and perplexities of continuations steered by ``coefficient *
    vector`` at each coefficient, beside norm-matched random vectors, no steering and a prompt
    baseline, per prompt."""
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    coefs = [float(c) for c in coefficients]
    if not prompt_list or not coefs:
        raise ValueError("steer needs at least one prompt and one coefficient")
    if n_random < 0:
        raise ValueError(f"n_random must be >= 0, got {n_random}")
    random_dirs = _random_like(vector.vectors, n_random, seed)  # [draw, layer, d_model]
    n_c = len(coefs)
    coef_t = torch.tensor(coefs, dtype=torch.float32)[:, None, None]
    rows = torch.cat(
        [
            torch.zeros_like(vector.vectors)[None],  # no steering
            coef_t * vector.vectors[None],  # steered, per coefficient
            (coef_t[None] * random_dirs[:, None]).flatten(0, 1),  # [draw * coefficient, ...]
        ]
    ).to(model.device, model.dtype)
    texts: list[list[str]] = []
    conts: list[list[Tensor]] = []
    for i, prompt in enumerate(prompt_list):
        gen = model.generate(
            [prompt] * rows.shape[0],
            max_new_tokens=max_new_tokens,
            interventions=steering_interventions(vector, rows, positions=positions),
            temperature=temperature,
            seed=seed + i,
        )
        texts.append(gen.texts)
        conts.append([_until_eos(model, r[gen.prompt_length :]) for r in gen.ids])
    prompt_texts: list[str] = []
    if prompt_baseline:
        for i, prompt in enumerate(prompt_list):
            gen = model.generate(
                behaviour.instruction + prompt,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                seed=seed + i,
            )
            prompt_texts.append(gen.texts[0])
            conts[i].append(_until_eos(model, gen.ids[0, gen.prompt_length :]))
    n_rows = len(texts[0]) + int(prompt_baseline)
    scores = behaviour.score(model, [t for row in texts for t in row] + prompt_texts)
    flat_scores = np.full((len(prompt_list), n_rows), np.nan)
    n_gen = len(texts[0])
    flat_scores[:, :n_gen] = scores[: len(prompt_list) * n_gen].reshape(len(prompt_list), n_gen)
    if prompt_baseline:
        flat_scores[:, n_gen] = scores[len(prompt_list) * n_gen :]
    ppl = np.stack([_perplexities(model, p, c) for p, c in zip(prompt_list, conts, strict=True)])
    nan = np.full(len(prompt_list), np.nan)

    def rand(a: np.ndarray) -> np.ndarray:  # [prompt, draw * coef] -> [prompt, coef, draw]
        return a[:, 1 + n_c : n_gen].reshape(len(prompt_list), n_random, n_c).transpose(0, 2, 1)

    prov = Provenance(
        technique="steering",
        model=model.info.to_dict(),
        config={
            "layers": vector.layers,
            "component": vector.component,
            "vector_position": vector.position,
            "vector_norms": vector.norms,
            "coefficients": coefs,
            "positions": "all" if positions is None else str(positions),
            "behaviour": behaviour.name,
            "behaviour_score": behaviour.description,
            "instruction": behaviour.instruction,
            "n_random": n_random,
            "random": "Gaussian directions rescaled to the vector's norm per layer",
            "max_new_tokens": max_new_tokens,
            "temperature": temperature,
            "perplexity": "of the continuation (to its first EOS, included) under the unsteered "
            "model, conditioned on the original prompt",
            "vector_provenance": vector.provenance.to_dict(),
        },
        data_sha256=data_hash(prompt_list),
        seed=seed,
    )
    return SteeringResult(
        prompts=prompt_list,
        coefficients=coefs,
        behaviour=behaviour.name,
        instruction=behaviour.instruction,
        layers=vector.layers,
        component=vector.component,
        vector_norms=vector.norms,
        steered_scores=flat_scores[:, 1 : 1 + n_c],
        random_scores=rand(flat_scores),
        none_scores=flat_scores[:, 0],
        prompt_scores=flat_scores[:, n_gen] if prompt_baseline else nan,
        steered_perplexity=ppl[:, 1 : 1 + n_c],
        random_perplexity=rand(ppl),
        none_perplexity=ppl[:, 0],
        prompt_perplexity=ppl[:, n_gen] if prompt_baseline else nan,
        steered_texts=[row[1 : 1 + n_c] for row in texts],
        random_texts=[
            [[row[1 + n_c + d * n_c + j] for d in range(n_random)] for j in range(n_c)]
            for row in texts
        ],
        none_texts=[row[0] for row in texts],
        prompt_texts=prompt_texts if prompt_baseline else [""] * len(prompt_list),
        provenance=prov,
    )


def happiness_vector(model: Model, *, layers: int | Sequence[int] = 6) -> SteeringVector:
    """Returns the happiness vector of the seed exercise: the 32 fixed happy minus the 32 fixed sad
    first-person sentences of `interplab.data.sentiment_prompts`, mean over tokens."""
    from interplab.data.sentiment_prompts import HAPPY_PROMPTS, SAD_PROMPTS

    return steering_vector(model, list(HAPPY_PROMPTS), list(SAD_PROMPTS), layers=layers)


# -- helpers -------------------------------------------------------------------------------------


def _mean_residual(
    model: Model, prompts: Inputs, sites: list[Any], position: Reduction, batch_size: int
) -> tuple[Tensor, int]:
    """Returns the mean over prompts of each prompt's (last or mean) residual: ``[layer, d]``."""
    if isinstance(prompts, Tensor):
        batches: list[Any] = list(prompts.split(batch_size)) if prompts.ndim == 2 else [prompts]
    else:
        items = [prompts] if isinstance(prompts, str) else list(prompts)
        batches = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
    total = torch.zeros(len(sites), model.dims.d_model, dtype=torch.float64)
    n = 0
    for batch in batches:
        run = model.run(batch, capture=sites)
        mask = run.tokens.mask.to(torch.float64)
        rows = torch.arange(mask.shape[0])
        for i, site in enumerate(sites):
            acts = run.cache[site].to(torch.float64).cpu()
            if position == "last":
                total[i] += acts[rows, run.tokens.last.cpu()].sum(0)
            else:
                m = mask.cpu()[..., None]
                total[i] += ((acts * m).sum(1) / m.sum(1)).sum(0)
        n += mask.shape[0]
    if n == 0:
        raise ValueError("no prompts given for the steering vector")
    return (total / n).float(), n


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


def _single_tokens(model: Model, words: Sequence[str]) -> list[int]:
    ids = [model.tokenizer(w, add_special_tokens=False)["input_ids"] for w in words]
    out = [i[0] for i in ids if len(i) == 1]
    if not out:
        raise ValueError(f"none of {list(words)} is a single token for this tokenizer")
    return out


def _hashable(inputs: Inputs) -> Any:
    return inputs.tolist() if isinstance(inputs, Tensor) else inputs
