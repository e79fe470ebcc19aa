"""Feature splitting and first-letter absorption, measured on the model (definitions and how to
read them: `interplab.results.dictionary_diagnostics`).

1. Splitting: encode ``n_windows`` held-out corpus windows (the first position, the attention
   sink, left out), take every pair of features fired at least once whose unit decoder rows have
   cosine above ``cosine`` (the strongest ``max_pairs``), and count how often each fires, alone
   and together.
2. Absorption: single-token lower-case words from the tokenizer's vocabulary (a leading space,
   letters only, at least 3 of them), each read at the end of a fixed short prompt at the
   dictionary's read site. Per first letter with at least ``min_words`` words: a class-balanced
   logistic probe on standardised activations (70/30 split by ``seed``), its direction mapped
   back to activation space, the main feature (highest decoder cosine among live features), and
   on the held-out words the probe gets right, the misses and absorbed misses.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError
from interplab.dictionaries.splice import check_fits
from interplab.progress import progress_bar
from interplab.provenance import Provenance
from interplab.results.dictionary_diagnostics import (
    DictionaryDiagnostics,
    LetterAbsorption,
    SplitPair,
)

PROMPT = "Here is a word:"


@torch.no_grad()
def diagnose(
    model: Model,
    dictionary: Dictionary,
    corpus: TokenizedCorpus | np.ndarray,
    *,
    name: str = "dictionary",
    n_windows: int = 32,
    cosine: float = 0.7,
    exclusive: float = 0.05,
    redundant: float = 0.3,
    max_pairs: int = 500,
    aligned: float = 0.1,
    min_words: int = 40,
    max_words: int = 4000,
    seed: int = 0,
    progress: bool = True,
) -> DictionaryDiagnostics:
    """Returns the splitting and first-letter absorption diagnostics of ``dictionary``."""
    if not 0.0 < cosine < 1.0 or not 0.0 <= exclusive < redundant <= 1.0:
        raise DictionaryError(
            f"need 0 < cosine < 1 and 0 <= exclusive < redundant <= 1; got cosine={cosine}, "
            f"exclusive={exclusive}, redundant={redundant}"
        )
    check_fits(model, dictionary, name)
    read = model.sites(dictionary.config.site)[0]  # type: ignore[arg-type]
    windows = corpus.windows if isinstance(corpus, TokenizedCorpus) else np.asarray(corpus)
    chosen = windows[-n_windows:]
    fired = []
    with progress_bar(len(chosen), "diagnostics: encoding windows", progress) as advance:
        for lo in range(0, len(chosen), 8):
            ids = torch.from_numpy(chosen[lo : lo + 8].astype(np.int64))
            x = model.activations(ids, [read])[read][:, 1:]
            fired.append(dictionary.encode(x.to(dictionary.W_enc.dtype)).flatten(0, 1) > 0)
            advance(len(ids))
    fires = torch.cat(fired)
    unit = dictionary.W_dec.detach().float()
    unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pairs = _pairs(fires, unit, cosine, max_pairs)
    letters = _absorption(
        model, dictionary, read, unit, fires.any(0), aligned, min_words, max_words, seed
    )
    return DictionaryDiagnostics(
        name=name,
        d_sae=dictionary.d_sae,
        n_tokens=int(fires.shape[0]),
        cosine_threshold=cosine,
        exclusive=exclusive,
        redundant=redundant,
        pairs=tuple(pairs),
        letters=tuple(letters),
        aligned=aligned,
        provenance=Provenance(
            technique="dictionary_diagnostics",
            model=model.info.to_dict(),
            config={
                "dictionary": dictionary.config.to_dict(),
                "n_windows": n_windows,
                "cosine": cosine,
                "exclusive": exclusive,
                "redundant": redundant,
                "max_pairs": max_pairs,
                "aligned": aligned,
                "min_words": min_words,
                "max_words": max_words,
                "prompt": PROMPT,
            },
            data_sha256=_hash(chosen),
            seed=seed,
        ),
    )


def _pairs(fires: Tensor, unit: Tensor, cosine: float, max_pairs: int) -> list[SplitPair]:
    live = fires.any(0)
    cos = unit @ unit.T
    cos.fill_diagonal_(0.0)
    cos[~live] = 0.0
    cos[:, ~live] = 0.0
    a, b = torch.nonzero(torch.triu(cos > cosine, diagonal=1), as_tuple=True)
    order = torch.argsort(cos[a, b], descending=True)[:max_pairs]
    counts = fires.sum(0)
    out = []
    for i in order.tolist():
        fa, fb = int(a[i]), int(b[i])
        together = int((fires[:, fa] & fires[:, fb]).sum())
        union = int(counts[fa]) + int(counts[fb]) - together
        out.append(
            SplitPair(
                fa,
                fb,
                float(cos[fa, fb]),
                together / union if union else 0.0,
                int(counts[fa]),
                int(counts[fb]),
                together,
            )
        )
    return out


def vocabulary_words(model: Model, max_words: int, seed: int) -> list[tuple[int, str]]:
    """Returns up to ``max_words`` (token id, word) of single-token lower-case words."""
    tok = model.tokenizer
    if tok is None:
        raise DictionaryError("absorption needs the model's tokenizer")
    words = []
    for i, s in enumerate(tok.batch_decode([[i] for i in range(len(tok))])):
        w = s[1:]
        if s.startswith(" ") and len(w) >= 3 and w.isascii() and w.isalpha() and w.islower():
            words.append((i, w))
    rng = np.random.default_rng(seed)
    picked = rng.permutation(len(words))[:max_words]
    return [words[int(j)] for j in sorted(picked)]


def _absorption(
    model: Model,
    d: Dictionary,
    read,
    unit: Tensor,
    live: Tensor,
    aligned: float,
    min_words: int,
    max_words: int,
    seed: int,
) -> list[LetterAbsorption]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score

    words = vocabulary_words(model, max_words, seed)
    prefix = model.tokenizer.encode(PROMPT, add_special_tokens=False)
    ids = torch.tensor([[*prefix, i] for i, _ in words])
    xs = [
        model.activations(ids[lo : lo + 256], [read])[read][:, -1] for lo in range(0, len(ids), 256)
    ]
    x = torch.cat(xs).float()
    f = d.encode(x.to(d.W_enc.dtype)).float()
    xn = x.numpy()
    mean, scale = xn.mean(0), xn.std(0) + 1e-6
    z = (xn - mean) / scale
    first = np.array([w[0] for _, w in words])
    rng = np.random.default_rng(seed)
    test = np.zeros(len(words), dtype=bool)
    test[rng.permutation(len(words))[: int(0.3 * len(words))]] = True
    out = []
    for letter in sorted(set(first.tolist())):
        y = first == letter
        if y.sum() < min_words:
            continue
        probe = LogisticRegression(class_weight="balanced", max_iter=2000, C=0.1)
        probe.fit(z[~test], y[~test])
        pred = probe.predict(z[test])
        direction = torch.tensor(probe.coef_[0] / scale, dtype=torch.float32)
        direction = direction / direction.norm()
        cos = unit @ direction
        cos[~live] = -2.0
        main = int(cos.argmax())
        hit = torch.from_numpy(y[test] & pred)
        ft = f[torch.from_numpy(test)]
        silent = ft[:, main] <= 0
        others = (ft > 0) & (cos > aligned)[None, :]
        others[:, main] = False
        out.append(
            LetterAbsorption(
                letter,
                int(y.sum()),
                float(f1_score(y[test], pred)),
                main,
                float(cos[main]),
                int(hit.sum()),
                int((hit & silent).sum()),
                int((hit & silent & others.any(1)).sum()),
            )
        )
    return out


def _hash(array: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


__all__ = ["PROMPT", "diagnose", "vocabulary_words"]
