"""Feature pages: what one dictionary feature responds to and what it does, and an index of all.

1. Stream ``n_windows`` corpus windows through the model (forward stopped after the dictionary's
   input site) and encode them (outlier tokens, `harvest.outliers`, count as silent); `_examples.ExampleTracker` keeps, for every feature at once, the
   top examples, a uniform reservoir of its active tokens, its density, maximum and an exact
   histogram, and a uniform sample of tokens (memory independent of the corpus length).
2. Pages go to the chosen features, or by default to the ``n_best`` most frequent features that
   are not dense (firing on at most 10% of tokens) and ``n_random`` features drawn at random from
   the live ones, so a reader sees typical features beside the showcase.
3. Each page: top examples; random examples (the reservoir's first); quantile bins (the reservoir
   sorted by activation and cut into equal-count bins, a few random examples each); the histogram
   and density; the output tokens the decoder direction promotes and suppresses through the
   final norm's scale and the unembedding (for dictionaries that write to the residual stream;
   a linear read that ignores the rest of the forward, as in Bricken et al. 2023); and the nearest
   features by decoder cosine.
4. `interplab.viz.dictionaries.write_feature_pages` writes the HTML pages and the index.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

from interplab.configs import Config, positive
from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.dictionaries._examples import HIST_EDGES, ExampleTracker, Slots
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError
from interplab.dictionaries.harvest import outliers
from interplab.dictionaries.splice import check_fits
from interplab.progress import progress_bar
from interplab.provenance import Provenance
from interplab.results.dictionaries import (
    EncodedPrompts,
    Example,
    FeatureIndex,
    FeaturePage,
    QuantileBin,
)

_WRITES_RESIDUAL = {"embed", "resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"}


@dataclass(frozen=True)
class FeaturesConfig(Config):
    """How much text to read and how many examples of each kind a page shows."""

    n_windows: int = 512
    batch_windows: int = 16
    skip_first: int = 1
    top: int = 20
    reservoir: int = 60
    n_random: int = 10
    n_bins: int = 5
    per_bin: int = 4
    left: int = 12
    right: int = 4
    n_tokens: int = 10
    n_neighbours: int = 8
    dense_threshold: float = 0.1
    outlier_ratio: float | None = 10.0
    seed: int = 0

    def check(self) -> None:
        for name in ("n_windows", "batch_windows", "top", "reservoir", "n_bins", "per_bin"):
            positive(name, getattr(self, name))
        for name in ("skip_first", "n_random", "left", "right", "n_tokens", "n_neighbours"):
            positive(name, getattr(self, name), allow_zero=True)


@dataclass(frozen=True)
class FeatureStudy:
    """The index of every feature and the pages of the chosen ones."""

    index: FeatureIndex
    pages: dict[int, FeaturePage]


def feature_pages(
    model: Model,
    dictionary: Dictionary,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    name: str = "dictionary",
    features: list[int] | None = None,
    n_best: int = 8,
    n_random: int = 8,
    config: FeaturesConfig | None = None,
    progress: bool = True,
) -> FeatureStudy:
    """Returns the feature index and pages of ``dictionary`` on ``corpus`` (see module doc)."""
    cfg = config or FeaturesConfig()
    write = check_fits(model, dictionary, name)
    read = dictionary.site
    assert read is not None
    windows = corpus.windows if isinstance(corpus, TokenizedCorpus) else corpus
    rng = np.random.default_rng(cfg.seed)
    chosen = np.sort(rng.permutation(len(windows))[: cfg.n_windows])
    tracker = ExampleTracker(
        dictionary.d_sae,
        top=cfg.top,
        reservoir=cfg.reservoir,
        left=cfg.left,
        right=cfg.right,
        seed=cfg.seed,
    )
    dictionary = dictionary.eval()
    batches = [chosen[i : i + cfg.batch_windows] for i in range(0, len(chosen), cfg.batch_windows)]
    with progress_bar(len(batches), f"reading features of {name}", progress) as advance:
        for batch in batches:
            ids = torch.from_numpy(np.asarray(windows[batch], dtype=np.int64))
            x = model.activations(ids, [read])[read].reshape(*ids.shape, -1).float()
            with torch.no_grad():
                f = dictionary.encode(x)
            f[:, cfg.skip_first :][outliers([x[:, cfg.skip_first :]], cfg.outlier_ratio)] = 0
            tracker.add(f, ids, torch.from_numpy(batch), cfg.skip_first)
            advance(1)
    density = tracker.density
    picked, randoms = _choose(features, density, n_best, n_random, cfg, rng, dictionary.d_sae)
    decode = _decoder(model)
    prov = Provenance(
        technique="dictionary_features",
        model=model.info.to_dict(),
        config={**cfg.to_dict(), "dictionary": dictionary.config.to_dict()},
        data_sha256=hashlib.sha256(np.ascontiguousarray(windows[chosen]).tobytes()).hexdigest(),
        seed=cfg.seed,
    )
    effects = _output_effects(model, dictionary, write.component in _WRITES_RESIDUAL, cfg.n_tokens)
    unit = dictionary.W_dec.detach() / dictionary.W_dec.detach().norm(dim=1, keepdim=True).clamp(
        min=1e-12
    )
    pages = {}
    for j in picked:
        cos = unit @ unit[j]
        cos[j] = -np.inf
        near = cos.topk(min(cfg.n_neighbours, dictionary.d_sae - 1))
        boosted, suppressed = effects(j)
        pages[j] = FeaturePage(
            dictionary=name,
            site=write,
            feature=j,
            n_tokens=tracker.tokens,
            density=float(density[j]),
            mean_activation=_mean_active(tracker, j),
            max_activation=float(tracker.max[j]),
            top=_examples(tracker.top, j, decode, cfg.left, None),
            random=_examples(tracker.reservoir, j, decode, cfg.left, cfg.n_random),
            quantiles=_quantiles(tracker.reservoir, j, decode, cfg),
            histogram_edges=HIST_EDGES.copy(),
            histogram_counts=tracker.hist[j].numpy(),
            sample_activations=tracker.sample[torch.isfinite(tracker.sample_keys), j]
            .double()
            .numpy(),
            boosted=boosted,
            suppressed=suppressed,
            neighbours=[(int(i), float(c)) for c, i in zip(near.values, near.indices, strict=True)],
            provenance=prov,
        )
    top_ids = [
        int(windows[w, p]) if w >= 0 else -1
        for w, p in zip(tracker.max_window.tolist(), tracker.max_position.tolist(), strict=True)
    ]
    index = FeatureIndex(
        dictionary=name,
        site=write,
        n_tokens=tracker.tokens,
        density=density,
        max_activation=tracker.max.double().numpy(),
        top_token=[decode(i) if i >= 0 else "" for i in top_ids],
        pages={j: f"f{j}.html" for j in picked},
        random_features=randoms,
        provenance=prov,
    )
    return FeatureStudy(index, pages)


def encode_prompts(
    model: Model,
    dictionary: Dictionary,
    prompts: list[str],
    *,
    name: str = "dictionary",
    top: int = 8,
) -> EncodedPrompts:
    """Returns each prompt token's active features (strongest first, at most ``top``)."""
    check_fits(model, dictionary, name)
    read = dictionary.site
    assert read is not None
    tokens = model.tokenize(prompts)
    x = model.activations(tokens, [read])[read].reshape(*tokens.ids.shape, -1).float()
    with torch.no_grad():
        f = dictionary.eval().encode(x)
    decode = _decoder(model)
    words, feats, acts, l0 = [], [], [], []
    for row in range(len(prompts)):
        keep = torch.nonzero(tokens.mask[row]).flatten().tolist()
        words.append([decode(int(tokens.ids[row, p])) for p in keep])
        values, index = f[row, keep].sort(dim=-1, descending=True)
        active = (values > 0).sum(-1)
        n = active.clamp(max=top).tolist()
        feats.append([index[i, : n[i]].tolist() for i in range(len(keep))])
        acts.append([values[i, : n[i]].tolist() for i in range(len(keep))])
        l0.append(active.tolist())
    return EncodedPrompts(
        dictionary=name,
        site=dictionary.target or read,
        prompts=list(prompts),
        tokens=words,
        features=feats,
        activations=acts,
        l0=l0,
        provenance=Provenance(
            technique="dictionary_encode",
            model=model.info.to_dict(),
            config={"top": top, "dictionary": dictionary.config.to_dict()},
            data_sha256=hashlib.sha256("\n".join(prompts).encode()).hexdigest(),
        ),
    )


def _choose(
    features: list[int] | None,
    density: np.ndarray,
    n_best: int,
    n_random: int,
    cfg: FeaturesConfig,
    rng: np.random.Generator,
    d_sae: int,
) -> tuple[list[int], list[int]]:
    if features is not None:
        bad = [f for f in features if not 0 <= f < d_sae]
        if bad:
            raise DictionaryError(
                f"features {bad} do not exist; this dictionary has 0..{d_sae - 1}"
            )
        return list(dict.fromkeys(int(f) for f in features)), []
    live = np.flatnonzero(density > 0)
    sparse = live[density[live] <= cfg.dense_threshold]
    best = sparse[np.argsort(-density[sparse], kind="stable")][:n_best].tolist()
    rest = np.setdiff1d(live, best)
    randoms = sorted(rng.choice(rest, size=min(n_random, len(rest)), replace=False).tolist())
    return [*best, *randoms], randoms


def _decoder(model: Model):
    tok = model.tokenizer
    cache: dict[int, str] = {}

    def decode(i: int) -> str:
        if i < 0:
            return ""
        if i not in cache:
            cache[i] = tok.decode([i]) if tok is not None else f"<{i}>"
        return cache[i]

    return decode


def _output_effects(model: Model, dictionary: Dictionary, residual: bool, n: int):
    if not residual or n == 0:
        return lambda j: ([], [])
    w = model.weights
    with torch.no_grad():
        scaled = dictionary.W_dec.detach() * w.final_norm.scale_weight.detach().float()
        W_U = w.W_U.detach().float()
    decode = _decoder(model)

    def effects(j: int) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        logits = scaled[j] @ W_U
        top, bottom = logits.topk(n), (-logits).topk(n)
        return (
            [(decode(int(i)), float(v)) for v, i in zip(top.values, top.indices, strict=True)],
            [
                (decode(int(i)), -float(v))
                for v, i in zip(bottom.values, bottom.indices, strict=True)
            ],
        )

    return effects


def _mean_active(tracker: ExampleTracker, j: int) -> float:
    values = tracker.reservoir.value[j][tracker.reservoir.window[j] >= 0]
    return float(values.mean()) if values.numel() else 0.0


def _examples(slots: Slots, j: int, decode, left: int, limit: int | None) -> list[Example]:
    out = []
    for s in range(slots.window.shape[1]):
        if int(slots.window[j, s]) < 0 or (limit is not None and len(out) >= limit):
            continue
        out.append(_example(slots, j, s, decode, left))
    return out


def _example(slots: Slots, j: int, s: int, decode, left: int) -> Example:
    return Example(
        window=int(slots.window[j, s]),
        position=int(slots.position[j, s]),
        activation=float(slots.value[j, s]),
        tokens=[decode(int(i)) for i in slots.ctx_ids[j, s]],
        activations=[float(a) for a in slots.ctx_acts[j, s]],
        center=left,
    )


def _quantiles(slots: Slots, j: int, decode, cfg: FeaturesConfig) -> list[QuantileBin]:
    valid = np.flatnonzero(slots.window[j].numpy() >= 0)
    if len(valid) == 0:
        return []
    by_value = valid[np.argsort(slots.value[j].numpy()[valid], kind="stable")]
    out = []
    for group in np.array_split(by_value, min(cfg.n_bins, len(by_value))):
        values = slots.value[j].numpy()[group]
        by_key = group[np.argsort(slots.order[j].numpy()[group], kind="stable")][: cfg.per_bin]
        out.append(
            QuantileBin(
                low=float(values.min()),
                high=float(values.max()),
                fraction=len(group) / len(valid),
                examples=[_example(slots, j, int(s), decode, cfg.left) for s in by_key],
            )
        )
    return out


__all__ = ["FeatureStudy", "FeaturesConfig", "encode_prompts", "feature_pages"]
