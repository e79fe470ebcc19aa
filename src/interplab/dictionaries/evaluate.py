"""Evaluating a dictionary on held-out text: reconstruction, sparsity, and what the model loses.

Per evaluation batch of corpus windows (positions before ``skip_first``, the attention sink the
dictionary was not trained on, are left out of every metric and never replaced):

1. Clean forward: the logits and the dictionary's input and target activations. Tokens whose
   norm exceeds ``outlier_ratio`` times the batch median (mid-sequence attention sinks,
   `harvest.outliers`) are left out of every metric and never replaced, as in harvesting; the
   result's notes say how many.
2. Reconstruction. FVE = 1 - SSE / SST with SST the squared deviation from the per-dimension
   mean of the whole evaluation set, so predicting that mean scores exactly 0 and a perfect
   reconstruction 1 (SAELens divided by the wrong variance for years, their issue #659); MSE is
   the mean over tokens of ``|x - x_hat|^2``; L0 the mean number of active latents per token.
3. Latents: density (fraction of tokens a latent fires on); dead = never fires on the evaluation
   tokens; dense = fires on more than ``dense_threshold`` of them.
4. Downstream (``ce=True``): next-token cross-entropy clean, with the site replaced by the
   reconstruction (`splice.spliced`, ``error=False``), and with the site zero-ablated; CE loss
   recovered = (CE_zero - CE_spliced) / (CE_zero - CE_clean): 1 means splicing costs nothing, 0
   means it is as bad as deleting the site. KL(clean || spliced) per token, averaged.
5. Every metric is also kept per batch; `DictionaryEval.summaries` gives each a bootstrap CI over
   batches (`interplab.stats`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from interplab.configs import Config, positive
from interplab.core.interventions import Apply
from interplab.core.model import Model
from interplab.data.corpus import TokenizedCorpus
from interplab.dictionaries.base import Dictionary
from interplab.dictionaries.config import DictionaryError
from interplab.dictionaries.harvest import outliers
from interplab.dictionaries.splice import check_fits, spliced
from interplab.progress import progress_bar
from interplab.provenance import Provenance
from interplab.results.dictionaries import EVAL_METRICS, DictionaryEval
from interplab.sites import Site


@dataclass(frozen=True)
class EvalConfig(Config):
    """How much held-out text, and which metrics."""

    n_batches: int = 8
    batch_windows: int = 8
    skip_first: int = 1
    ce: bool = True
    dense_threshold: float = 0.1
    outlier_ratio: float | None = 10.0

    def check(self) -> None:
        positive("n_batches", self.n_batches)
        positive("batch_windows", self.batch_windows)
        positive("skip_first", self.skip_first, allow_zero=True)
        positive("dense_threshold", self.dense_threshold)


def fraction_of_variance_explained(x: Tensor, x_hat: Tensor, mean: Tensor | None = None) -> float:
    """Returns 1 - SSE / SST of reconstructions ``x_hat`` of ``x`` ``[tokens, d]``, SST about the
    per-dimension ``mean`` (default: of ``x``). Computed in float64."""
    x64, h64 = x.double(), x_hat.double()
    mu = x64.mean(0) if mean is None else mean.double()
    sst = float((x64 - mu).pow(2).sum())
    return 1.0 - float((x64 - h64).pow(2).sum()) / sst


def ce_loss_recovered(ce_clean: float, ce_spliced: float, ce_ablated: float) -> float:
    """Returns (CE_ablated - CE_spliced) / (CE_ablated - CE_clean): 1 when splicing costs nothing,
    0 when it costs as much as ablating the site (NaN if ablating costs nothing)."""
    denominator = ce_ablated - ce_clean
    return (ce_ablated - ce_spliced) / denominator if denominator != 0 else math.nan


def next_token_ce(logits: Tensor, ids: Tensor, skip_first: int) -> Tensor:
    """Returns the mean cross-entropy of predicting tokens ``skip_first + 1 ..`` per row ``[b]``."""
    lp = logits[:, skip_first:-1].float().log_softmax(-1)
    target = ids[:, skip_first + 1 :].to(lp.device)
    return -lp.gather(-1, target[..., None])[..., 0].double().mean(1)


def kl_divergence(clean: Tensor, other: Tensor, skip_first: int) -> Tensor:
    """Returns KL(clean || other) of next-token distributions, averaged over positions, per row."""
    p = clean[:, skip_first:-1].float().log_softmax(-1)
    q = other[:, skip_first:-1].float().log_softmax(-1)
    return F.kl_div(q, p, log_target=True, reduction="none").sum(-1).double().mean(1)


def evaluate(
    model: Model,
    dictionary: Dictionary,
    windows: TokenizedCorpus | np.ndarray,
    *,
    name: str = "dictionary",
    config: EvalConfig | None = None,
    window_ids: Sequence[int] | None = None,
    progress: bool = True,
) -> DictionaryEval:
    """Returns the evaluation of ``dictionary`` on ``windows`` (by default the last
    ``n_batches * batch_windows`` windows, which `holdout` keeps out of training)."""
    cfg = config or EvalConfig()
    array = windows.windows if isinstance(windows, TokenizedCorpus) else windows
    write = check_fits(model, dictionary, name)
    read = dictionary.site
    assert read is not None
    wanted = cfg.n_batches * cfg.batch_windows
    ids_all = np.asarray(
        list(window_ids)
        if window_ids is not None
        else range(max(0, len(array) - wanted), len(array))
    )
    batches = [
        b
        for b in np.array_split(ids_all, max(1, math.ceil(len(ids_all) / cfg.batch_windows)))
        if len(b)
    ]
    s = cfg.skip_first
    targets, recons = [], []
    rows: dict[str, list[float]] = {k: [] for k in EVAL_METRICS}
    counts = torch.zeros(dictionary.d_sae, dtype=torch.float64)
    n_outliers = 0
    if next(dictionary.parameters()).device != model.device:  # a copy: the caller's stays put
        dictionary = copy.deepcopy(dictionary).to(model.device)
    dictionary = dictionary.eval()
    with progress_bar(len(batches), f"evaluating {name}", progress) as advance:
        for batch in batches:
            ids = torch.from_numpy(np.asarray(array[np.sort(batch)], dtype=np.int64))
            clean = model.run(ids, capture=list(dict.fromkeys([read, write])))
            x_in = clean.cache[read].reshape(*ids.shape, -1)[:, s:].float()
            x_out = clean.cache[write].reshape(*ids.shape, -1)[:, s:].float()
            keep = ~outliers([x_in, x_out], cfg.outlier_ratio)
            n_outliers += int((~keep).sum())
            x_in, x_out = x_in[keep], x_out[keep]
            with torch.no_grad():
                f = dictionary.encode(x_in)
                recon = dictionary(x_in)
            active = f > 0
            counts += active.reshape(-1, dictionary.d_sae).sum(0).double().cpu()
            rows["l0"].append(float(active.sum(-1).double().mean()))
            targets.append(x_out.reshape(-1, x_out.shape[-1]))
            recons.append(recon.reshape(-1, recon.shape[-1]))
            if cfg.ce:
                _downstream(model, dictionary, name, write, ids, clean.logits, cfg, rows)
            advance(1)
    x_all = torch.cat(targets).double()
    mean = x_all.mean(0)
    sse = [
        float((t.double() - r.double()).pow(2).sum()) for t, r in zip(targets, recons, strict=True)
    ]
    sst = [float((t.double() - mean).pow(2).sum()) for t in targets]
    rows["fve"] = [1 - a / b for a, b in zip(sse, sst, strict=True)]
    rows["mse"] = [a / t.shape[0] for a, t in zip(sse, targets, strict=True)]
    n_tokens = int(x_all.shape[0])
    density = (counts / max(n_tokens, 1)).numpy()
    means = {k: float(np.mean(v)) if v else math.nan for k, v in rows.items()}
    c = dictionary.config
    return DictionaryEval(
        name=name,
        site=read,
        target=write,
        architecture=c.architecture,
        kind=c.kind,
        d_sae=c.d_sae,
        n_tokens=n_tokens,
        skip_first=s,
        fve=1 - sum(sse) / sum(sst),
        mse=sum(sse) / n_tokens,
        l0=float(counts.sum()) / max(n_tokens, 1),
        dead_fraction=float((counts == 0).double().mean()),
        dense_fraction=float((torch.from_numpy(density) > cfg.dense_threshold).double().mean()),
        dense_threshold=cfg.dense_threshold,
        ce_clean=means["ce_clean"],
        ce_spliced=means["ce_spliced"],
        ce_zero=means["ce_zero"],
        ce_recovered=ce_loss_recovered(means["ce_clean"], means["ce_spliced"], means["ce_zero"]),
        kl=means["kl"],
        batches={
            k: np.asarray(v if v else [math.nan] * len(batches), dtype=np.float64)
            for k, v in rows.items()
        },
        density=density,
        notes=(
            f"{n_outliers} outlier tokens (norm > {cfg.outlier_ratio:g} x the batch median, "
            "massive activations) were left out of the metrics and never replaced",
        )
        if n_outliers and cfg.outlier_ratio is not None
        else (),
        provenance=Provenance(
            technique="dictionary_eval",
            model=model.info.to_dict(),
            config={**cfg.to_dict(), "dictionary": c.to_dict()},
            data_sha256=_windows_hash(array, ids_all),
        ),
    )


def _downstream(
    model: Model,
    dictionary: Dictionary,
    name: str,
    write: Site,
    ids: Tensor,
    clean_logits: Tensor,
    cfg: EvalConfig,
    rows: dict[str, list[float]],
) -> None:
    """Adds one batch's CE clean / spliced / zero-ablated, CE recovered and KL to ``rows``; the
    tokens splicing leaves untouched (the first ``skip_first``, outliers) are not ablated."""
    s, ratio = cfg.skip_first, cfg.outlier_ratio
    with spliced(model, {name: dictionary}, error=False, skip_first=s, outlier_ratio=ratio):
        spliced_logits = model.forward(ids)
    read = dictionary.site
    assert read is not None
    cache = model.activations(ids, [read]) if dictionary.config.kind != "sae" else None

    def zero(x: Tensor) -> Tensor:
        x_in = x if cache is None else cache[read].reshape(*x.shape[:2], -1)
        out = torch.zeros_like(x)
        out[:, :s] = x[:, :s]
        sinks = outliers([x_in[:, s:], x[:, s:]], ratio)
        out[:, s:][sinks] = x[:, s:][sinks]
        return out

    zero_logits = model.run(ids, interventions=[Apply(write, zero)]).logits
    ce_clean = float(next_token_ce(clean_logits, ids, s).mean())
    ce_spliced = float(next_token_ce(spliced_logits, ids, s).mean())
    ce_zero = float(next_token_ce(zero_logits, ids, s).mean())
    rows["ce_clean"].append(ce_clean)
    rows["ce_spliced"].append(ce_spliced)
    rows["ce_zero"].append(ce_zero)
    rows["ce_recovered"].append(ce_loss_recovered(ce_clean, ce_spliced, ce_zero))
    rows["kl"].append(float(kl_divergence(clean_logits, spliced_logits, s).mean()))


def holdout(windows: TokenizedCorpus | np.ndarray, config: EvalConfig | None = None) -> np.ndarray:
    """Returns the windows to train on: all but the last ``n_batches * batch_windows``, which
    `evaluate` reads by default."""
    cfg = config or EvalConfig()
    array = windows.windows if isinstance(windows, TokenizedCorpus) else windows
    keep = len(array) - cfg.n_batches * cfg.batch_windows
    if keep < 1:
        raise DictionaryError(f"the corpus has {len(array)} windows; nothing is left to train on")
    return array[:keep]


def _windows_hash(array: np.ndarray, ids: np.ndarray) -> str:
    import hashlib

    return hashlib.sha256(np.ascontiguousarray(array[np.sort(ids)]).tobytes()).hexdigest()


__all__ = [
    "EvalConfig",
    "ce_loss_recovered",
    "evaluate",
    "fraction_of_variance_explained",
    "holdout",
    "kl_divergence",
    "next_token_ce",
]
