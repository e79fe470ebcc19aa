"""A small project for the dashboard's tests, built through the store's API (no model, no torch):

runs of a patching grid (two seeds, so two can be compared), a failed run, a run whose result
JSON is malformed, a run whose artifact file was deleted, a run that stored an attribution graph,
a feature index with two pages, a graph file in the project folder, and a log (sprint,
hypothesis, links, finding, notes). `bulk_runs` adds thousands of finished runs in one
transaction, for timing a large store.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from interplab.provenance import Provenance
from interplab.store import Project

MODEL = {"name": "tiny-fixture", "weights_sha256": "a" * 64}
TOKENS = ["When", " Mary", " and", " John", " went", " to"]


def patching_result(seed: int, shift: float = 3.0):
    """A real `PatchingResult` (4 layers × 6 positions, n=12) built from seeded numbers."""
    from interplab.results.patching import PatchingResult

    rng = np.random.default_rng(seed)
    n, layers, positions = 12, 4, len(TOKENS)
    effects = rng.normal(0.0, 0.5, (n, layers, positions))
    effects[:, 3, 3] += shift
    prov = Provenance(
        "activation_patching", MODEL, {"n": n, "seed": seed}, f"{seed:064d}", seed=seed
    )
    return PatchingResult(
        components=("resid_pre",),
        direction="denoise",
        per="position",
        metric="logit_diff",
        effects={"resid_pre": effects},
        clean=rng.normal(2.0, 0.3, n),
        corrupt=rng.normal(-1.0, 0.3, n),
        tokens=[list(TOKENS)] * n,
        clean_prompts=[f"When Mary and John went to the store {i}" for i in range(n)],
        corrupt_prompts=[f"When Anna and Bob went to the store {i}" for i in range(n)],
        answers=[" Mary"] * n,
        wrong_answers=[" John"] * n,
        provenance=prov,
    )


def graph_json() -> dict[str, Any]:
    """A small attribution graph in the circuit-tracer format (embeddings, two layers, a logit)."""
    nodes = [
        {
            "node_id": f"E_{100 + i}_{i}",
            "feature": i,
            "layer": "E",
            "ctx_idx": i,
            "feature_type": "embedding",
            "clerp": f"token {t!r}",
            "influence": 0.3,
        }
        for i, t in enumerate(TOKENS)
    ]
    nodes += [
        {
            "node_id": "0_17_1",
            "feature": 17,
            "layer": "0",
            "ctx_idx": 1,
            "feature_type": "cross layer transcoder",
            "clerp": "names of women",
            "influence": 0.8,
            "activation": 3.2,
        },
        {
            "node_id": "1_42_5",
            "feature": 42,
            "layer": "1",
            "ctx_idx": 5,
            "feature_type": "cross layer transcoder",
            "clerp": "say a name",
            "influence": 0.9,
            "activation": 5.5,
        },
        {
            "node_id": "1_-1_5",
            "feature": -1,
            "layer": "1",
            "ctx_idx": 5,
            "feature_type": "mlp reconstruction error",
            "influence": 0.1,
        },
        {
            "node_id": "3_9425_5",
            "feature": 9425,
            "layer": "3",
            "ctx_idx": 5,
            "feature_type": "logit",
            "clerp": 'Output " Mary" (p=0.612)',
            "token_prob": 0.612,
            "is_target_logit": True,
        },
    ]
    links = [
        {"source": "E_101_1", "target": "0_17_1", "weight": 2.5},
        {"source": "0_17_1", "target": "1_42_5", "weight": 1.75},
        {"source": "E_105_5", "target": "1_42_5", "weight": -0.6},
        {"source": "1_42_5", "target": "3_9425_5", "weight": 3.1},
        {"source": "1_-1_5", "target": "3_9425_5", "weight": 0.4},
    ]
    meta = {
        "slug": "mary-john",
        "scan": "fixture",
        "transcoder_list": [],
        "prompt_tokens": TOKENS,
        "prompt": "".join(TOKENS),
    }
    return {"metadata": meta, "qParams": {}, "nodes": nodes, "links": links}


def feature_study() -> tuple[Any, dict[int, Any]]:
    """A `FeatureIndex` over 300 features and pages for features 5 and 7."""
    from interplab.results.dictionaries import Example, FeatureIndex, FeaturePage, QuantileBin
    from interplab.sites import Site

    rng = np.random.default_rng(0)
    d = 300
    site = Site(2, "resid_pre")
    words = ["the", " cat", " sat", " on", " the", " mat", "."]

    def example(act: float) -> Example:
        acts = [0.0, 0.1, act, 0.2, 0.0, 0.0, 0.0]
        return Example(
            window=1, position=2, activation=act, tokens=list(words), activations=acts, center=2
        )

    pages = {}
    for j in (5, 7):
        pages[j] = FeaturePage(
            dictionary="fixture-sae",
            site=site,
            feature=j,
            n_tokens=10_000,
            density=0.01 * j,
            mean_activation=1.5,
            max_activation=4.0,
            top=[example(4.0), example(3.5)],
            random=[example(1.0)],
            quantiles=[
                QuantileBin(0.0, 2.0, 0.7, [example(1.2)]),
                QuantileBin(2.0, 4.0, 0.3, [example(3.0)]),
            ],
            histogram_edges=np.linspace(0.0, 4.0, 9),
            histogram_counts=np.array([50, 30, 20, 10, 5, 3, 1, 1]),
            sample_activations=rng.exponential(0.2, 400),
            boosted=[(" cat", 0.9), (" dog", 0.7)],
            suppressed=[(" the", -0.5)],
            neighbours=[(7 if j == 5 else 5, 0.42), (11, 0.3)],
        )
    index = FeatureIndex(
        dictionary="fixture-sae",
        site=site,
        n_tokens=10_000,
        density=rng.uniform(0, 0.05, d),
        max_activation=rng.uniform(0.5, 6, d),
        top_token=[f"tok{i}" for i in range(d)],
        pages={5: "f5.html", 7: "f7.html"},
        random_features=[7],
    )
    return index, pages


def build_project(root: Path) -> dict[str, int]:
    """Builds the fixture project at ``root``; returns the ids of its runs by role."""
    project = Project.init(root)
    ids: dict[str, int] = {}
    project.sprint_start("IOI heads", goal="which positions carry the name?")
    h = project.hypothesis("the name moves at the fourth position in the last layer")
    from interplab.store import evidence_for

    with evidence_for(h.id):
        for role, seed in (("grid", 0), ("grid2", 1)):
            r = patching_result(seed)
            with project.recording(
                "activation_patching", model_info=MODEL, seed=seed, inputs=r.clean_prompts
            ) as run:
                run.finish(
                    r, examples=[f"example prompt {i} with <b>markup</b>" for i in range(20)]
                )
            ids[role] = int(run.id or 0)
    try:
        with project.recording("activation_patching", model_info=MODEL, seed=2) as run:
            raise ValueError("the corrupt prompts tokenise to different lengths")
    except ValueError:
        ids["failed"] = int(run.id or 0)
    with project.recording("activation_patching", model_info=MODEL, seed=3) as run:
        run.finish(None)
        run.add(
            "result.json", b'{"technique": "activation_patching", "effects": [1, 2', kind="result"
        )
    ids["malformed"] = int(run.id or 0)
    with project.recording("activation_patching", model_info=MODEL, seed=4) as run:
        run.finish(patching_result(4))
    ids["missing"] = int(run.id or 0)
    missing = project.run(ids["missing"]).artifact("result")
    assert missing is not None
    project.artifact_path(missing.sha256).unlink()
    with project.recording("attribution_graph", model_info=MODEL, seed=0) as run:
        run.finish(None)
        run.add("graph.json", json.dumps(graph_json()).encode(), kind="graph")
        run.add("page.html", b"<script>alert('stored page')</script>", kind="file")
    ids["graph"] = int(run.id or 0)
    index, pages = feature_study()
    with project.recording("dictionary_features", model_info=MODEL, seed=0) as run:
        run.finish(index)
        for j, page in pages.items():
            run.add(f"f{j}.json", json.dumps(page.to_dict()).encode(), kind="file")
    ids["features"] = int(run.id or 0)
    (root / "graphs").mkdir(exist_ok=True)
    (root / "graphs" / "mary.json").write_text(json.dumps(graph_json()))
    project.finding(
        "patching the fourth position in the last layer restores the name",
        evidence=[ids["grid"], ids["grid2"]],
        confidence=0.7,
        change_my_mind="a random position restores as much",
        family=f"H{h.id}",
    )
    project.note("the effect is clean on this template; other templates not yet tried")
    project.note("synthetic prompts only", kind="limitation")
    project.close()
    return ids


def bulk_runs(
    project: Project, n: int, *, techniques: tuple[str, ...] = ("lens", "dla", "patching")
) -> None:
    """Adds ``n`` finished runs in one transaction (as a store of months of work would hold)."""
    now = time.time()
    rows = []
    for i in range(n):
        started = now - (n - i) * 60.0
        rows.append(
            (
                techniques[i % len(techniques)],
                "done" if i % 17 else "failed",
                started,
                started + 5.0,
                started + 5.0,
                os.getpid(),
                "bulk-host",
                json.dumps({"i": i}),
                f"model-{i % 3}",
                "b" * 64,
                "{}",
                "{}",
                i,
            )
        )
    with project.write() as conn:
        conn.executemany(
            "INSERT INTO runs (technique, status, started, ended, heartbeat, pid, host, config, "
            "model_name, model_sha256, model, versions, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
