"""Every technique in float32, bfloat16 and float16 on the tiny random Llama, on the CPU (and on
CUDA where there is one: the same file is the GPU test): each runs, its outputs are finite, its
main numbers agree with the float32 run within a tolerance chosen per technique, and where it
computes in float32 or float64 internally its results come back in the dtype the docs name.

Deviations are measured as ``max |low - float32| / max |float32|`` over the compared array (the
error relative to the value range) and bounded by ``k`` machine epsilons of the low dtype
(`torch.finfo(dtype).eps`: 2^-7 for bfloat16, 2^-10 for float16), so one ``k`` per technique
covers both dtypes. A tiny Llama has two layers of width 64; rounding errors of a few epsilons
per matmul and norm add up over the embedding, two blocks and the unembedding, so ``k`` is set
to a few times the largest deviation measured here (docs/models.md, "Precision and devices").
Where a technique's answer is discrete (a prediction, a greedy token, the top-k of a sparse
code) the claim checked is agreement of that answer, not of every number.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from interplab.core.interventions import Ablate, Add, InterventionError, Patch, Scale
from interplab.core.model import Model
from interplab.dictionaries import (
    DictionaryConfig,
    HarvestConfig,
    ModelSource,
    TrainConfig,
    build,
    train,
)
from interplab.models.load import ModelInfo
from interplab.models.registry import adapter_for
from interplab.techniques import (
    Behaviour,
    ablate_direction,
    activation_patching,
    atp_star,
    attribution_patching,
    causal_tracing,
    compare_ablation,
    counterfactual_dataset,
    das,
    direct_logit_attribution,
    direction_components,
    interchange,
    linear_probe,
    logit_lens,
    orthogonalized_model,
    path_patching,
    steer,
    steering_vector,
    top_examples,
    verified_patching,
)
from interplab.techniques.blackbox import SamplingConfig, sample
from interplab.techniques.causal_abstraction import principal_cosines
from interplab.techniques.graphs import attribute, prepare, transcoder_set
from unit.store.char_tokenizer import CharTokenizer
from unit.techniques.test_causal_abstraction import planted_model, planted_task
from unit.techniques.test_graphs_reference import make_transcoders

from helpers import (
    last_letter_dataset,
    random_direction,
    tiny_hf,
    token_pairs,
    tokens,
    weights_sha256,
)

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
LOW = {"bfloat16": torch.bfloat16, "float16": torch.float16}


@pytest.fixture(params=DEVICES)
def device(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=list(LOW))
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return LOW[request.param]


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def in_precision(hf: torch.nn.Module, dtype: torch.dtype, device: str) -> Model:
    """Returns ``hf`` (float32, CPU) converted to ``dtype`` on ``device``, as a Model whose info
    says so, with a one-character-per-token tokenizer."""
    sha = weights_sha256(hf)  # of the float32 weights: numpy has no bfloat16
    hf = hf.to(device=device, dtype=dtype)
    adapter = adapter_for(hf.config)
    info = ModelInfo(
        name="tiny-llama",
        family=adapter.family,
        source="random",
        weights_sha256=sha,
        dtype=_name(dtype),
        device=device,
        n_params=sum(p.numel() for p in hf.parameters()),
    )
    return Model(hf, CharTokenizer(), adapter, info)


@cache
def tiny(device: str, dtype: torch.dtype) -> Model:
    """The tiny random Llama of `helpers.tiny_hf` in ``dtype`` on ``device`` (built once)."""
    return in_precision(tiny_hf("llama"), dtype, device)


@cache
def planted(device: str, dtype: torch.dtype) -> tuple[Model, torch.Tensor]:
    """The planted-variable Llama of the causal abstraction tests in ``dtype`` on ``device``."""
    m, u = planted_model()
    return in_precision(m.hf, dtype, device), u


def check(technique: str, dtype: torch.dtype, device: str, low: Any, ref: Any, k: float) -> float:
    """Asserts ``low`` is finite where ``ref`` is and within ``k`` epsilons of ``dtype`` of
    ``ref``, relative to ``max |ref|``; returns the deviation in epsilons and prints it (``pytest
    -s`` lists every measured deviation, the numbers of docs/models.md)."""
    low, ref = _array(low), _array(ref)
    assert low.shape == ref.shape, (technique, low.shape, ref.shape)
    where = np.isfinite(ref)
    assert np.isfinite(low[where]).all(), f"{technique} in {_name(dtype)}: non-finite values"
    scale = float(np.abs(ref[where]).max()) if where.any() else 0.0
    dev = float(np.abs(low[where] - ref[where]).max()) / scale if scale > 0 else 0.0
    eps = dev / torch.finfo(dtype).eps
    print(f"PRECISION {technique} {_name(dtype)} {device}: {dev:.3g} of the range = {eps:.2f} eps")
    assert eps <= k, f"{technique} in {_name(dtype)}: {dev:.3g} of the range, {eps:.2f} eps > {k}"
    return eps


def _array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):  # numpy has no bfloat16
        return x.detach().double().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


_RESULTS: dict[tuple[str, str, torch.dtype], Any] = {}


def outcome(technique: str, device: str, dtype: torch.dtype) -> Any:
    """Returns ``RUNS[technique]`` on the tiny model in ``dtype`` (each computed once)."""
    key = (technique, device, dtype)
    if key not in _RESULTS:
        _RESULTS[key] = RUNS[technique](device, dtype)
    return _RESULTS[key]


def pair(technique: str, device: str, dtype: torch.dtype) -> tuple[Any, Any]:
    """Returns (the run in ``dtype``, the float32 run) of ``technique``."""
    return outcome(technique, device, dtype), outcome(technique, device, torch.float32)


# -- the runs ------------------------------------------------------------------------------------


def _vowels(model: Model, texts: list[str]) -> np.ndarray:
    return np.array([sum(c in "aeiou" for c in t) / max(len(t), 1) for t in texts])


VOWELS = Behaviour("vowels", _vowels, "Vowels: ", "share of vowels")
CORPUS = np.random.default_rng(0).integers(0, 256, size=(24, 9))
SAE_SITE = "L1.resid_post"


@torch.no_grad()
def _hf_logits(m: Model, ids: torch.Tensor) -> torch.Tensor:
    return m.hf(input_ids=ids.to(m.device)).logits


def _interventions(device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    m = tiny(device, dtype)
    ids = tokens(2, 7)
    other = m.run(ids.flip(0), capture=["L0.resid_post"]).cache["L0.resid_post"]
    reference = m.run(tokens(4, 7, seed=1), capture=["L1.mlp_out"]).cache["L1.mlp_out"]
    vec = random_direction().to(m.device, m.dtype)
    plain = m.run(ids, capture=["L1.resid_post"])
    edited = m.run(
        ids,
        capture=["L1.resid_post"],
        interventions=[
            Patch("L0.resid_post", other, positions=[2]),
            Add("L0.mlp_out", vec, coefficient=2.0),
            Scale("L1.attn_out", 0.5),
            Ablate("L1.mlp_out", "mean", reference=reference),
            Ablate("L1.attn.z", heads=[1]),
        ],
    )
    return {
        "logits": plain.logits,
        "hf_logits": _hf_logits(m, ids),
        "resid": plain.cache["L1.resid_post"],
        "edited": edited.logits,
        "edited_resid": edited.cache["L1.resid_post"],
    }


def _patching(method: str) -> Callable[[str, torch.dtype], Any]:
    return lambda device, dtype: activation_patching(
        tiny(device, dtype), token_pairs(), components=("resid_pre", "attn.z"), method=method,
        control=False, progress=False,
    )  # fmt: skip


def _sae(device: str, dtype: torch.dtype) -> dict[str, Any]:
    m = tiny(device, dtype)
    source = ModelSource(m, CORPUS, [SAE_SITE], HarvestConfig(block_windows=24, batch_windows=12))
    cfg = DictionaryConfig("topk", d_in=64, d_sae=128, k=8, site=SAE_SITE)
    run = train(
        source,
        {"topk": cfg},
        TrainConfig(total_tokens=384, batch_tokens=64, lr=1e-3, log_every=2, checkpoint_every=100),
        progress=False,
    )
    x = source.block(0, 0)[m.sites(SAE_SITE)[0]]
    fixed = build(cfg, seed=1).eval().to(x.device)  # one dictionary for every dtype
    with torch.no_grad():
        code = fixed.encode(x)
        low = copy.deepcopy(fixed).to(dtype)  # the dictionary itself in the low dtype
        low_code = low.encode(x.to(dtype))
        low_recon = low.decode(low_code)
    return {
        "x": x,
        "code": code,
        "recon": fixed.decode(code).detach(),
        "low_code": low_code,
        "low_recon": low_recon,
        "weights": run.dictionaries["topk"].state_dict(),
        "fve": run.curves["topk"].fve,
    }


def _graph(device: str, dtype: torch.dtype) -> Any:
    m = tiny(device, dtype)
    float32 = {layer: d.to(device) for layer, d in make_transcoders(False).items()}
    tcs = transcoder_set(float32, m, name="tiny")
    ids = tokens(1, 7, seed=3)
    rep = prepare(m, tcs, ids)
    return attribute(m, tcs, rep, batch_size=7, progress=False)


def _abstraction(device: str, dtype: torch.dtype) -> dict[str, Any]:
    m, u = planted(device, dtype)
    data = counterfactual_dataset(m, planted_task(), ["cls"], n=64, seed=0, progress=False)
    full = interchange(m, data, "L0.resid_post")
    along_u = interchange(m, data, "L0.resid_post", subspace=u.numpy())
    learned = das(
        m, data, "L0.resid_post", k=1, steps=40, lr=0.05, n_random=1, control="none",
        progress=False,
    )  # fmt: skip
    return {"full": full, "along_u": along_u, "das": learned, "u": u}


def _atp_star(device: str, dtype: torch.dtype) -> Any:
    comps = ("resid_pre", "attn.q", "attn.k")
    return atp_star(
        tiny(device, dtype), token_pairs(4, 7), components=comps, control=False, progress=False
    )


def _verified(device: str, dtype: torch.dtype) -> Any:
    return verified_patching(
        tiny(device, dtype), token_pairs(4, 7), components=("resid_pre", "attn.z"),
        threshold=0.3, control=False, progress=False,
    )  # fmt: skip


def _tracing(device: str, dtype: torch.dtype) -> Any:
    return causal_tracing(
        tiny(device, dtype), tokens(2, 7), subjects=[(2, 4), (0, 1)], answers=[5, 9], samples=2,
        progress=False,
    )  # fmt: skip


def _ablation(device: str, dtype: torch.dtype) -> Any:
    m = tiny(device, dtype)
    prompts = ["hello", "world"]
    compared = compare_ablation(m, prompts, random_direction(), k=2, max_new_tokens=2, n_random=2)
    ids = tokens(2, 7)
    with ablate_direction(m, random_direction()):
        hooked = m(ids)
    baked = orthogonalized_model(m, random_direction())(ids)
    return compared, direction_components(m, prompts, random_direction()), hooked, baked


def _top_examples(device: str, dtype: torch.dtype) -> Any:
    return top_examples(
        tiny(device, dtype), CORPUS[:8], site="L1.mlp.post", neurons=[0, 5, 9],
        directions={"probe": ("L0.resid_post", random_direction())}, k=3, n_random=2, n_hist=8,
        batch_size=4, progress=False,
    )  # fmt: skip


def _sample(device: str, dtype: torch.dtype) -> Any:
    greedy = SamplingConfig(n=3, max_new_tokens=4, temperature=0)
    return sample(tiny(device, dtype), [3, 4, 5, 6], greedy, stop_ids=[])


RUNS: dict[str, Callable[[str, torch.dtype], Any]] = {
    "interventions": _interventions,
    "logit_lens": lambda device, dtype: logit_lens(
        tiny(device, dtype), ["hello there", "a cat sat"], target="x", k=3
    ),
    "dla": lambda device, dtype: direct_logit_attribution(
        tiny(device, dtype), ["hello there", "a cat sat"], target=["x", "y"], baseline=["q", "z"]
    ),
    "patching_fast": _patching("fast"),
    "patching_hooks": _patching("hooks"),
    "attribution_patching": lambda device, dtype: attribution_patching(
        tiny(device, dtype), token_pairs(), components=("resid_pre", "attn.z"), control=False
    ),
    "atp_star": _atp_star,
    "verified_patching": _verified,
    "path_patching": lambda device, dtype: path_patching(
        tiny(device, dtype), token_pairs(), progress=False
    ),
    "causal_tracing": _tracing,
    "linear_probe": lambda device, dtype: linear_probe(
        tiny(device, dtype), last_letter_dataset(), folds=3, n_controls=1, n_resamples=200
    ),
    "steering_vector": lambda device, dtype: steering_vector(
        tiny(device, dtype), ["happy day", "sunny"], ["rainy day", "gloom"], layers=[1]
    ),
    "directional_ablation": _ablation,
    "top_examples": _top_examples,
    "sae": _sae,
    "graphs": _graph,
    "causal_abstraction": _abstraction,
    "blackbox": _sample,
}


# -- the tests -----------------------------------------------------------------------------------


def test_capture_is_the_hf_forward_bit_for_bit_and_interventions_run(device, dtype):
    low, ref = pair("interventions", device, dtype)
    # No intervention: the same dtype on both sides gives HF's logits exactly.
    assert torch.equal(low["logits"], low["hf_logits"])
    assert low["logits"].dtype == low["resid"].dtype == dtype
    # Two blocks of rounding: about 3 eps of the logit range in both dtypes (k = 8).
    check("capture", dtype, device, low["logits"], ref["logits"], 8)
    check("capture (resid)", dtype, device, low["resid"], ref["resid"], 8)
    check("interventions", dtype, device, low["edited"], ref["edited"], 8)
    check("interventions (resid)", dtype, device, low["edited_resid"],
          ref["edited_resid"], 8)  # fmt: skip


def test_intervention_values_must_be_in_the_models_dtype(device, dtype):
    m = tiny(device, dtype)
    with pytest.raises(InterventionError, match=r"convert it with \.to"):
        m.run(tokens(2, 7), interventions=[Add("L0.mlp_out", random_direction().to(device))])


def test_logit_lens(device, dtype):
    low, ref = pair("logit_lens", device, dtype)
    # Decoded in float32 from the low-dtype residuals, kept as float64.
    assert low.top_probs.dtype == low.target_prob.dtype == np.float64
    # Probabilities of a softmax over 256 logits: the logits' few eps, relative (k = 8).
    check("logit_lens", dtype, device, low.top_probs, ref.top_probs, 8)
    check("logit_lens (target)", dtype, device, low.target_prob, ref.target_prob, 8)


def test_direct_logit_attribution(device, dtype):
    low, ref = pair("dla", device, dtype)
    assert low.contributions.dtype == low.heads.dtype == np.float64
    # Contributions are computed in float32 from the captured components, each carrying its
    # own rounding (k = 8 of the largest contribution).
    check("dla", dtype, device, low.contributions, ref.contributions, 8)
    check("dla (heads)", dtype, device, low.heads, ref.heads, 8)
    # They add up to the logit difference only up to the residual stream's rounding in the
    # low dtype: the residual is summed in bfloat16/float16, the components in float32.
    gap = np.abs(low.total - low.actual) / (1 + np.abs(low.actual))
    print(f"PRECISION dla sum gap {_name(dtype)} {device}: {gap.max():.3g}")
    assert gap.max() < torch.finfo(dtype).eps  # measured: an eighth of one eps


@pytest.mark.parametrize("method", ["fast", "hooks"])
def test_activation_patching(device, dtype, method):
    low, ref = pair(f"patching_{method}", device, dtype)
    assert low.method == method
    for c in ("resid_pre", "attn.z"):
        assert low.effects[c].dtype == np.float64
        # Effects are differences of two logit differences: the difference of two rounded
        # numbers, so relative to the effect range they carry more eps than the logits (k = 16).
        check(f"patching_{method} ({c})", dtype, device, low.effect(c), ref.effect(c), 16)


def test_fast_and_hook_paths_agree_in_low_precision(device, dtype):
    fast, hooks = outcome("patching_fast", device, dtype), outcome("patching_hooks", device, dtype)
    # In float32 they agree within FAST_TOLERANCE (1e-4); in a low dtype different kernels round
    # differently, so they agree to the low dtype's own few eps.
    for c in ("resid_pre", "attn.z"):
        check(f"fast vs hooks ({c})", dtype, device, fast.effect(c), hooks.effect(c), 16)


def test_attribution_patching(device, dtype):
    low, ref = pair("attribution_patching", device, dtype)
    for c in ("resid_pre", "attn.z"):
        # grad · delta summed over d_model in the low dtype: the gradient's rounding on top of
        # the activations' (k = 16).
        check(f"attribution_patching ({c})", dtype, device, low.effect(c), ref.effect(c), 16)


def test_atp_star(device, dtype):
    low, ref = pair("atp_star", device, dtype)
    for c in ("resid_pre", "attn.q", "attn.k"):
        # The QK fix recomputes attention patterns in float64 from the low-dtype q and k; the
        # gradients stay in the low dtype (k = 16).
        check(f"atp_star ({c})", dtype, device, low.effect(c), ref.effect(c), 16)


def test_verified_patching(device, dtype):
    low, ref = pair("verified_patching", device, dtype)
    for c in ("resid_pre", "attn.z"):
        # Cells patched exactly in both runs are activation patching's effects (k = 16); which
        # cells are verified may differ where an AtP* score sits at the screen.
        both = low.exact(c) & ref.exact(c)
        assert both.any()
        check(f"verified_patching ({c})", dtype, device, low.effect(c)[:, both],
              ref.effect(c)[:, both], 16)  # fmt: skip
        check(f"verified_patching estimates ({c})", dtype, device, low.estimates[c],
              ref.estimates[c], 16)  # fmt: skip
    assert np.isfinite(low.bound)


def test_path_patching(device, dtype):
    low, ref = pair("path_patching", device, dtype)
    for c in low.components:
        check(f"path_patching ({c})", dtype, device, low.effect(c), ref.effect(c), 16)


def test_causal_tracing(device, dtype):
    low, ref = pair("causal_tracing", device, dtype)
    # The noise is drawn in float32 and cast to the model's dtype; p(answer) is a float32
    # softmax of low-dtype logits (k = 8 of the largest probability).
    check("causal_tracing (clean)", dtype, device, low.clean, ref.clean, 8)
    for c in low.components:
        check(f"causal_tracing ({c})", dtype, device, low.restored[c], ref.restored[c], 8)


def test_linear_probe(device, dtype):
    low, ref = pair("linear_probe", device, dtype)
    # Activations are upcast to float32 before the L-BFGS fit, so the probe sees the low
    # dtype's rounding of the residual only: the same accuracy within one example of 24 per
    # layer, and directions with a cosine above 0.99.
    assert np.isfinite(low.accuracy).all()
    assert np.abs(low.accuracy - ref.accuracy).max() <= 1 / 24 + 1e-9
    a, b = low.directions.directions, ref.directions.directions
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    print(f"PRECISION linear_probe {_name(dtype)} {device}: min cosine {cos.min():.5f}")
    assert cos.min() > 0.99


def test_steering(device, dtype):
    low, ref = pair("steering_vector", device, dtype)
    assert low.vectors.dtype == np.float32  # averaged in float64, stored as float32
    # A mean of low-dtype residuals (k = 8 of the largest component).
    check("steering_vector", dtype, device, low.vectors, ref.vectors, 8)
    m = tiny(device, dtype)
    result = steer(
        m, ["abc", "xyz"], low, coefficients=[0.0, 4.0], behaviour=VOWELS, n_random=1,
        max_new_tokens=3,
    )  # fmt: skip
    assert np.isfinite(result.steered_scores).all()
    assert np.isfinite(result.steered_perplexity).all()


def test_directional_ablation(device, dtype):
    (low, low_components, hooked, baked), (ref, ref_components, *_) = pair(
        "directional_ablation", device, dtype
    )
    for site, x in low_components.items():
        # x · d for a unit d: a sum of 64 rounded products that partly cancel (k = 16).
        check(f"direction_components ({site})", dtype, device, x, ref_components[site], 16)
    # KL is computed in float64 from low-dtype logits; the KLs here are ~0.02 nats, sums of
    # differences of nearly equal log-probabilities, so they carry more eps (k = 32).
    assert np.isfinite(low.kl).all() and np.isfinite(low.random_kl).all()
    check("directional_ablation (kl)", dtype, device, low.kl, ref.kl, 32)
    # Weight orthogonalisation runs in float64 and writes the weights back in their dtype, so it
    # equals the hook ablation up to the low dtype's rounding of the weights (k = 8).
    assert baked.dtype == dtype
    check("orthogonalized vs hooks", dtype, device, baked, hooked, 8)


def test_top_examples(device, dtype):
    low, ref = pair("top_examples", device, dtype)
    # Read in float32 from the low-dtype activations: the top scores (sorted values, whichever
    # token holds them) and the streamed statistics agree to a few eps (k = 8).
    assert low.top.score.dtype == np.float32
    check("top_examples (top)", dtype, device, low.top.score, ref.top.score, 8)
    check("top_examples (max)", dtype, device, low.max, ref.max, 8)
    check("top_examples (mean)", dtype, device, low.mean, ref.mean, 8)


def _same_support(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Returns per token whether two sparse codes ``[token, feature]`` have the same features."""
    return ((a != 0) == (b != 0)).all(-1)


def test_sae_encode_decode_and_training(device, dtype):
    low, ref = pair("sae", device, dtype)
    assert low["x"].dtype == torch.float32  # harvested activations are upcast to float32
    check("sae (activations)", dtype, device, low["x"], ref["x"], 8)
    # The float32 dictionary on the low-dtype activations. TopK swaps a feature where two sit at
    # a near-tie, so most tokens keep float32's active set (the claim) and their reconstructions
    # agree to a few eps (k = 8).
    same = _same_support(low["code"], ref["code"])
    print(f"PRECISION sae support {_name(dtype)} {device}: {float(same.float().mean()):.3f}")
    assert float(same.float().mean()) >= 0.8  # measured: 0.93 in bfloat16, 0.995 in float16
    check("sae (recon)", dtype, device, low["recon"][same], ref["recon"][same], 8)
    # The dictionary itself in the low dtype runs and reconstructs within its own rounding.
    assert low["low_code"].dtype == low["low_recon"].dtype == dtype
    same = _same_support(low["low_code"], ref["code"])
    assert float(same.float().mean()) >= 0.8
    check("sae in low dtype (recon)", dtype, device, low["low_recon"][same], ref["recon"][same],
          8)  # fmt: skip
    # Training reads float32 activations and trains float32 weights: a few Adam steps on
    # slightly different inputs end close to the float32 run's weights.
    for name, w in low["weights"].items():
        assert w.dtype == torch.float32 and bool(torch.isfinite(w).all()), name
    check("sae training (W_dec)", dtype, device, low["weights"]["W_dec"],
          ref["weights"]["W_dec"], 16)  # fmt: skip
    assert np.isfinite(low["fve"]).all()


def _shared_nodes(low: Any, ref: Any) -> tuple[list[int], list[int]]:
    """Returns the indices in each graph of the nodes both have: features active in both, every
    error and token node, and the logit nodes if both chose the same tokens."""
    where = {tuple(f): i for i, f in enumerate(ref.replacement.active.tolist())}
    li, ri = [], []
    for i, f in enumerate(low.replacement.active.tolist()):
        if tuple(f) in where:
            li.append(i)
            ri.append(where[tuple(f)])
    rest = low.n_errors + low.n_tokens
    li += range(low.n_features, low.n_features + rest)
    ri += range(ref.n_features, ref.n_features + rest)
    if torch.equal(low.logits.ids, ref.logits.ids):
        li += range(low.n_features + rest, low.adjacency.shape[0])
        ri += range(ref.n_features + rest, ref.adjacency.shape[0])
    return li, ri


def test_attribution_graph(device, dtype):
    low, ref = pair("graphs", device, dtype)
    # The replacement is computed in float32 from low-dtype activations; the active features
    # are a TopK choice, so the graphs are compared where the same features are active.
    assert low.adjacency.dtype == torch.float32
    assert bool(torch.isfinite(low.adjacency).all())
    li, ri = _shared_nodes(low, ref)
    share = len(li) / low.adjacency.shape[0]
    print(f"PRECISION graphs shared nodes {_name(dtype)} {device}: {share:.3f}")
    assert share >= 0.9
    shared_low = low.adjacency[li][:, li]
    shared_ref = ref.adjacency[ri][:, ri]
    # Edges between the nodes both graphs have: float32 gradients through a low-dtype model
    # (k = 8 of the largest edge).
    check("graphs (adjacency)", dtype, device, shared_low, shared_ref, 8)
    check("graphs (logits)", dtype, device, low.replacement.logits,
          ref.replacement.logits, 8)  # fmt: skip


def test_interchange_and_das(device, dtype):
    low, ref = pair("causal_abstraction", device, dtype)
    # The planted variable decides the answer by a margin far above any rounding: every
    # interchange gives the float32 answer, and DAS learns the planted direction.
    np.testing.assert_array_equal(low["full"].predictions, ref["full"].predictions)
    np.testing.assert_array_equal(low["along_u"].predictions, ref["along_u"].predictions)
    assert low["full"].iia == 1.0 and low["along_u"].iia == 1.0
    r = low["das"]
    assert r.subspace.basis.dtype == np.float64  # the rotation is learned in float32
    assert np.isfinite(r.train_loss).all()
    u = low["u"].numpy()[:, None]
    cos = float(principal_cosines(r.subspace.basis, u)[0])
    ref_cos = float(principal_cosines(ref["das"].subspace.basis, u)[0])
    print(f"PRECISION das {_name(dtype)} {device}: cosine {cos:.4f} (float32 {ref_cos:.4f})")
    # 40 steps from the same seed: the low dtype's gradients move the basis very little.
    assert cos > 0.9 and abs(cos - ref_cos) < 0.01
    assert r.iia("learned") == ref["das"].iia("learned") == 1.0


def test_blackbox_sampling(device, dtype):
    low, ref = pair("blackbox", device, dtype)
    assert low.engine == "prefix-cache"
    assert np.isfinite(low.logprob).all()
    # Greedy tokens match float32 wherever the top two logits are further apart than the
    # rounding; the log-probabilities of matching rows agree well within one eps (k = 4).
    same = [i for i, (a, b) in enumerate(zip(low.ids, ref.ids, strict=True)) if a == b]
    if same:
        check("blackbox (logprob)", dtype, device, low.logprob[same], ref.logprob[same], 4)
