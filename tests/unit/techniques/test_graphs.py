"""Attribution graphs end to end on a tiny model: pruning and scores against closed forms, the
circuit-tracer JSON round trip, the intervention check, the figure, and the errors users see."""

import json

import numpy as np
import pytest
import torch
from test_graphs_reference import make_transcoders

from interplab import results, viz
from interplab.dictionaries import DictionaryConfig, build, save_dictionary
from interplab.results.graphs import (
    ERROR,
    FEATURE,
    AttributionGraphResult,
    GraphEdge,
    GraphNode,
    from_neuronpedia,
)
from interplab.sites import Site
from interplab.techniques.graphs import (
    GraphConfig,
    GraphError,
    attribute,
    check_file,
    graph_result,
    graph_scores,
    predict,
    prepare,
    prune,
    transcoder_set,
    write_graph_files,
)
from interplab.techniques.graphs.prune import influence, normalise, threshold_for

from helpers import tiny_model, tokens


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama")


@pytest.fixture(scope="module")
def graph(model):
    tcs = transcoder_set(make_transcoders(False), model, name="tiny")
    ids = tokens(1, 7, seed=3)
    rep = prepare(model, tcs, ids)
    return model, tcs, ids, attribute(model, tcs, rep, batch_size=7, progress=False)


def test_influence_equals_the_inverse_series(graph):
    *_, g = graph
    a = normalise(g.adjacency).double().numpy()
    w = g.logit_weights.double().numpy()
    closed = w @ (np.linalg.inv(np.eye(len(a)) - a) - np.eye(len(a)))
    got = influence(normalise(g.adjacency).double(), g.logit_weights.double()).numpy()
    assert np.allclose(got, closed, atol=1e-10)


def test_threshold_keeps_the_smallest_prefix_reaching_the_fraction():
    scores = torch.tensor([0.1, 0.5, 0.2, 0.2])
    assert float(threshold_for(scores, 0.5)) == pytest.approx(0.5)
    assert float(threshold_for(scores, 0.6)) == pytest.approx(0.2)
    assert float(threshold_for(scores, 1.0)) == pytest.approx(0.1)


def test_pruning_keeps_tokens_and_logits_and_only_connected_nodes(graph):
    *_, g = graph
    pruned = prune(
        g.adjacency, g.logit_weights, n_features=g.n_features, n_tokens=g.n_tokens,
        n_logits=g.n_logits, node_threshold=0.8, edge_threshold=0.98,
    )  # fmt: skip
    fixed = g.n_tokens + g.n_logits
    assert bool(pruned.nodes[-fixed:].all())
    assert int(pruned.nodes.sum()) < len(pruned.nodes)
    kept = pruned.nodes.nonzero().flatten()
    for i in kept.tolist():
        if i < g.n_features:  # features need an input and an output edge
            assert bool(pruned.edges[i].any()) and bool(pruned.edges[:, i].any())
    assert not bool(pruned.edges[~pruned.nodes].any())
    assert not bool(pruned.edges[:, ~pruned.nodes].any())
    assert bool((g.adjacency[pruned.edges] != 0).all())
    # Lower thresholds keep fewer nodes.
    small = prune(
        g.adjacency, g.logit_weights, n_features=g.n_features, n_tokens=g.n_tokens,
        n_logits=g.n_logits, node_threshold=0.3, edge_threshold=0.5,
    )  # fmt: skip
    assert int(small.nodes.sum()) <= int(pruned.nodes.sum())


def test_scores_are_one_without_errors_and_fall_with_them(graph):
    *_, g = graph
    kw = dict(n_features=g.n_features, n_errors=g.n_errors, n_tokens=g.n_tokens)
    replacement, completeness = graph_scores(g.adjacency, g.logit_weights, **kw)  # type: ignore[arg-type]
    assert 0 < replacement < 1 and 0 < completeness < 1
    no_errors = g.adjacency.clone()
    no_errors[:, g.n_features : g.n_features + g.n_errors] = 0
    assert graph_scores(no_errors, g.logit_weights, **kw) == pytest.approx((1.0, 1.0))  # type: ignore[arg-type]


def test_prediction_propagates_through_features_in_layer_order():
    nodes = [
        GraphNode("0_1_1", FEATURE, "0", 1, 1, 0.1, activation=2.0),
        GraphNode("1_2_1", FEATURE, "1", 1, 2, 0.2, activation=4.0),
        GraphNode("0_0_1_error", ERROR, "0", 1, -1, 0.3),
        GraphNode("3_7_1", "logit", "3", 1, 7, 0.0, is_target_logit=True),
    ]
    edges = [
        GraphEdge("0_1_1", "1_2_1", 1.0),  # per unit of source: 0.5
        GraphEdge("1_2_1", "3_7_1", 2.0),  # per unit: 0.5
        GraphEdge("0_1_1", "3_7_1", 3.0),  # per unit: 1.5
        GraphEdge("0_0_1_error", "3_7_1", 9.0),  # errors stay fixed
    ]
    change = predict(nodes, edges, "0_1_1", -2.0)
    assert change["1_2_1"] == pytest.approx(-1.0)
    assert change["3_7_1"] == pytest.approx(-1.0 * 0.5 - 2.0 * 1.5)


def test_graph_result_round_trips_through_both_json_formats(graph, tmp_path):
    model, tcs, ids, g = graph
    res = graph_result(model, tcs, ids, g, GraphConfig(check_features=4))
    assert res.checked and len(res.feature_checks) == 4
    assert {n.check for n in res.nodes} >= {"unchecked"}
    path = res.to_json(tmp_path / "result.json")
    back = results.load(path)
    assert isinstance(back, AttributionGraphResult)
    assert back == res
    graph_file = write_graph_files(res, tmp_path / "graphs")
    data = json.loads(graph_file.read_text())
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    assert set(data["metadata"]) == {
        "slug", "scan", "transcoder_list", "prompt_tokens", "prompt", "node_threshold",
        "schema_version",
    }  # fmt: skip
    node = data["nodes"][0]
    for key in ("node_id", "feature", "layer", "ctx_idx", "feature_type", "jsNodeId", "clerp",
                "influence", "activation"):  # fmt: skip
        assert key in node
    assert all(set(link) == {"source", "target", "weight"} for link in data["links"])
    index = json.loads((tmp_path / "graphs" / "graph-metadata.json").read_text())
    assert [g["slug"] for g in index["graphs"]] == [res.slug]
    read = from_neuronpedia(graph_file)
    assert [(n.node_id, n.kind, n.layer, n.position, n.feature) for n in read.nodes] == [
        (n.node_id, n.kind, n.layer, n.position, n.feature) for n in res.nodes
    ]
    assert [(e.source, e.target, e.weight) for e in read.edges] == [
        (e.source, e.target, e.weight) for e in res.edges
    ]
    assert len({n.node_id for n in res.nodes}) == len(res.nodes)
    fig = viz.figure(res)
    assert fig.axes and fig.axes[0].get_title().startswith("attribution graph")


def test_unchecked_graph_says_so(graph):
    model, tcs, ids, g = graph
    res = graph_result(model, tcs, ids, g, GraphConfig(check_features=0))
    assert not res.checked and all(n.check == "unchecked" for n in res.nodes)
    assert "UNCHECKED" in res.describe()
    assert "UNCHECKED" in viz.figure(res).axes[0].get_title()


def test_check_measures_what_the_spliced_model_does(graph):
    model, tcs, ids, g = graph
    res = graph_result(model, tcs, ids, g, GraphConfig(check_features=3))
    from interplab.dictionaries import spliced

    c = res.feature_checks[0]
    with spliced(model, {f"layer_{c.layer}": tcs.by_layer[c.layer]}) as sp:
        clean = sp.run(ids).logits[0, -1]
        site = sp.feature_site(f"layer_{c.layer}", c.feature)
        edited = sp.run(ids, edits=[sp.ablate(site, positions=[c.position])]).logits[0, -1]
    target = next(n for n in res.nodes if n.is_target_logit).feature
    expected = float((edited[target] - edited.mean()) - (clean[target] - clean.mean()))
    assert c.measured == pytest.approx(expected, abs=1e-5)


def test_attribution_graph_from_a_folder_and_check_file(model, tmp_path):
    folder = tmp_path / "set"
    save_dictionary(make_transcoders(True), folder, "circuit_tracer")
    ids = tokens(1, 6, seed=9)
    tcs = transcoder_set(folder, model)
    assert tcs.name == "set" and tcs.layers == [0, 1]
    rep = prepare(model, tcs, ids)
    g = attribute(model, tcs, rep, progress=False)
    res = graph_result(model, tcs, ids, g, GraphConfig(check_features=4))
    path = write_graph_files(res, tmp_path / "out")
    read, nodes, edges, fchecks, _ = check_file(model, folder, path, n_features=4)
    assert read.scan == "set" and len(fchecks) == 4
    assert fchecks == res.feature_checks  # the file alone reproduces the in-process check
    assert [n.check for n in nodes] == [n.check for n in res.nodes]
    assert [e.check for e in edges] == [e.check for e in res.edges]
    with pytest.raises(GraphError, match="layer"):
        check_file(tiny_model("llama", num_hidden_layers=3), folder, path)


def test_transcoders_that_do_not_fit_the_model_are_refused(model, tmp_path):
    wide = build(
        DictionaryConfig(
            "topk", d_in=32, d_sae=16, k=2, kind="transcoder", d_out=32,
            site=Site(0, "mlp.in"), target=Site(0, "mlp_out"),
        )
    )  # fmt: skip
    with pytest.raises(GraphError, match="width"):
        transcoder_set({0: wide}, model)
    sae = build(DictionaryConfig("topk", d_in=64, d_sae=16, k=2, site=Site(0, "resid_pre")))
    with pytest.raises(GraphError, match=r"mlp\.in"):
        transcoder_set({0: sae}, model)
    deep = make_transcoders(False, layers=(1,))[1]
    with pytest.raises(GraphError, match="layer"):
        transcoder_set({5: deep}, model)
    with pytest.raises(GraphError, match="not a folder"):
        transcoder_set(tmp_path / "missing", model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GraphError, match="no transcoders"):
        transcoder_set(tmp_path / "empty", model)
    with pytest.raises(ValueError, match="node_threshold"):
        GraphConfig(node_threshold=1.5)
