"""Attribution graphs on SmolLM2: with the quick transcoder set when it is cached
(`python -m interplab.techniques.graphs.recipe quick`), else with seeded random TopK transcoders
at every layer; the properties tested (exact replacement logits, batched rows, the check and the
export) hold for any transcoders, and the suite never trains a set."""

import json

import pytest
import torch

from interplab import results, viz
from interplab.core.interventions import Apply
from interplab.core.linearise import linearised
from interplab.dictionaries import DictionaryConfig, build
from interplab.sites import Site
from interplab.techniques.graphs import (
    attribute,
    attribution_graph,
    prepare,
    recipe,
    replacement_logits,
    transcoder_set,
)

pytestmark = pytest.mark.slow
PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def quick(smol):
    found = recipe.cached(smol, "quick")
    if found is not None:
        return found
    d = smol.dims.d_model
    return transcoder_set(
        {
            layer: build(
                DictionaryConfig(
                    "topk", d_in=d, d_sae=2 * d, k=16, kind="transcoder", d_out=d,
                    site=Site(layer, "mlp.in"), target=Site(layer, "mlp_out"),
                ),
                seed=layer,
            ).eval()
            for layer in range(smol.dims.n_layers)
        },
        smol,
    )  # fmt: skip


@pytest.fixture(scope="module")
def sparse(smol, quick):
    """Every third layer's transcoder: the other MLPs are all error (keeps the test short)."""
    return transcoder_set({layer: quick.by_layer[layer] for layer in range(0, 30, 3)}, smol)


def test_replacement_reproduces_the_real_logits(smol, quick):
    rep = prepare(smol, quick, PROMPT)
    logits = replacement_logits(smol, quick, rep)
    assert (logits - rep.logits).abs().max() <= 1e-3 * (1 + rep.logits.abs().max())
    assert rep.active.shape[0] > 0


def test_batched_rows_equal_one_backward_per_target(smol, sparse):
    rep = prepare(smol, sparse, PROMPT)
    graph = attribute(smol, sparse, rep, batch_size=64, progress=False)
    src_layer = int(rep.active[0, 0])
    first = rep.active[:, 0] == src_layer  # the sources checked: the lowest layer's features
    later = (rep.active[:, 0] > src_layer).nonzero().flatten()
    picks = [int(later[0]), int(later[len(later) // 2]), int(later[-1])]
    sites = [Site(None, "embed"), Site(src_layer, "resid_post"), Site(None, "final_norm")]
    sites += [Site(int(rep.active[r, 0]), "mlp.in") for r in picks]
    leaf = Apply("embed", lambda t: t.detach().requires_grad_(True))
    with linearised(smol), smol.capture(sites, interventions=[leaf], grad=True) as cache:
        smol.forward(rep.tokens, grad=True)
        targets = [
            cache[Site(int(rep.active[r, 0]), "mlp.in")][0, int(rep.active[r, 1])].float()
            @ rep.encoders[r]
            for r in picks
        ]
        targets.append(cache[Site(None, "final_norm")][0, -1].float() @ graph.logits.vectors[0])
        rows = [*picks, graph.adjacency.shape[0] - graph.n_logits]
        for row, value in zip(rows, targets, strict=True):
            (g,) = torch.autograd.grad(
                value, [cache[Site(src_layer, "resid_post")]], retain_graph=True
            )
            expected = torch.einsum(
                "jd,jd->j", g[0, rep.active[first, 1]].float(), rep.decoders[first]
            )
            got = graph.adjacency[row, : int(first.sum())]
            scale = float(expected.abs().max())
            assert scale > 0
            assert torch.allclose(got, expected.cpu(), atol=1e-4 * scale)


def test_graph_is_checked_and_exports(smol, sparse, tmp_path):
    result = attribution_graph(
        smol, sparse, PROMPT, check_features=4, node_threshold=0.99, progress=False
    )
    assert result.checked and len(result.feature_checks) == 4
    assert result.target_token.strip() == "Paris"
    assert 0 < result.replacement_score < 1
    path = result.write_neuronpedia(tmp_path / "g.json")
    data = json.loads(path.read_text())
    assert data["metadata"]["prompt_tokens"] == result.tokens
    back = results.load(result.to_json(tmp_path / "r.json"))
    assert back == result
    assert viz.figure(result).axes


def test_demo_section(smol, tmp_path):
    from rich.console import Console

    if recipe.cached(smol, "quick") is None:
        pytest.skip("the quick transcoder set is not cached (the demo leaves the graph out too)")

    from interplab.demo.graph import section

    s = section(smol, tmp_path, Console(quiet=True))
    assert s.figures and s.tables and len(s.tables[0][1]) == 8
    assert "intervention check" in s.claims[0]
    assert (tmp_path / "graph" / "graph-metadata.json").is_file()
