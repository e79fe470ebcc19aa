"""The dashboard's pages and API over a fixture project: what each shows, the token, bad input.

Every page is asked for through the app (Starlette's test client, no server, no browser); the
checks read the HTML and JSON for the numbers and text the store holds.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TOKEN
from interplab.store import Project


def test_every_page_answers_and_names_what_the_store_holds(client, built):
    _, ids = built
    home = client.get("/")
    assert home.status_code == 200
    assert "patching the fourth position in the last layer restores the name" in home.text
    assert "pre-registered" in home.text and "IOI heads" in home.text
    assert home.text.count("<sub>holm</sub>") == 2  # each evidence run's headline, summarised
    runs = client.get("/runs")
    assert runs.status_code == 200 and runs.text.count('class="run-row"') == len(ids)
    for path in ("/log", "/dictionaries", "/graphs"):
        assert client.get(path).status_code == 200, path


def test_the_run_page_shows_summary_cis_heatmaps_examples_provenance_and_rerun(client, built):
    root, ids = built
    page = client.get(f"/runs/{ids['grid']}")
    assert page.status_code == 200
    text = page.text
    project = Project.open(root)
    summary = project.summary(ids["grid"])
    assert summary is not None
    mean = np.asarray(summary["mean"], dtype=float)
    top = np.unravel_index(int(np.nanargmax(np.abs(mean))), mean.shape)
    assert f"<td>{top[0]}, {top[1]}</td><td>{mean[top]:.3g}</td>" in text
    assert "95% CI [" in text and "p (holm)" in text  # heatmap hover text from viz
    assert text.count("<rect class='cell") == mean.size
    assert f"/runs/{ids['grid']}/figure.png" in text
    assert "drawn at random (seed 0)" in text and "&lt;b&gt;markup&lt;/b&gt;" in text
    assert "<b>markup</b>" not in text  # stored text is escaped, never markup
    assert f"interplab rerun {ids['grid']} --project {root}" in text
    assert "a" * 64 in text  # weights sha256 in the provenance
    figure = client.get(f"/runs/{ids['grid']}/figure.png")
    assert figure.status_code == 200 and figure.content[:4] == b"\x89PNG"
    other = client.get(f"/runs/{ids['grid']}?seed=1").text
    assert "drawn at random (seed 1)" in other
    project.close()


def test_runs_filter_sort_and_page(client, built):
    _, ids = built
    failed = client.get("/runs?status=failed")
    assert (
        failed.text.count('class="run-row"') == 1 and f'data-run="{ids["failed"]}"' in failed.text
    )
    one = client.get("/runs?per=2&page=2&sort=id&order=asc")
    rows = [int(x) for x in __import__("re").findall(r'data-run="(\d+)" class="run-row"', one.text)]
    assert rows == [3, 4] and "page 2 of" in one.text
    by_h = client.get("/runs?hypothesis=H1")
    assert by_h.text.count('class="run-row"') == 2
    today = client.get("/runs?since=2000-01-01&until=2999-01-01")
    assert today.text.count('class="run-row"') == len(ids)
    assert client.get("/runs?since=1999-01-01&until=1999-01-02").text.count('class="run-row"') == 0


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("status=exploded", "not one of: running, done, failed, interrupted"),
        ("sort=colour", "sort by one of"),
        ("page=zero", "page must be a whole number"),
        ("since=yesterday", "YYYY-MM-DD"),
        ("per=100000", "per must be between"),
    ],
)
def test_bad_filters_get_a_400_page_that_says_what_is_valid(client, query, says):
    r = client.get(f"/runs?{query}")
    assert r.status_code == 400 and says in r.text and "Traceback" not in r.text


def test_compare_two_runs_lists_config_and_number_differences(client, built):
    _, ids = built
    r = client.get(f"/runs/compare?a={ids['grid']}&b={ids['grid2']}")
    assert r.status_code == 200
    assert "summary numbers differ" in r.text and "<code>seed</code>" in r.text
    assert client.get("/runs/compare?a=1").status_code == 400


def test_a_malformed_result_a_missing_artifact_and_a_failed_run_are_explained(client, built):
    _, ids = built
    bad = client.get(f"/runs/{ids['malformed']}")
    assert bad.status_code == 200 and "is not a result JSON file" in bad.text
    gone = client.get(f"/runs/{ids['missing']}")
    assert gone.status_code == 200 and "missing from the artifacts folder" in gone.text
    assert client.get(f"/runs/{ids['missing']}/figure.png").status_code == 404
    failed = client.get(f"/runs/{ids['failed']}")
    assert "the corrupt prompts tokenise to different lengths" in failed.text


@pytest.mark.parametrize(
    "path",
    [
        "/runs/1/artifacts/../../../../etc/passwd",
        "/runs/1/artifacts/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/runs/1/artifacts/result.json/../../interplab.sqlite",
        "/graphs/view?src=file:../../../../etc/passwd",
        "/graphs/view?src=file:/etc/passwd",
        "/graphs/view?src=file:interplab.sqlite-nope",
        "/api/graph?src=file:artifacts/tmp/x.json",
        "/dictionaries/index?src=file:..%2F..%2Fetc%2Fpasswd",
        "/runs/99999",
    ],
)
def test_nothing_outside_the_project_is_served(client, path):
    r = client.get(path)
    assert r.status_code == 404, (path, r.status_code)
    assert "root:" not in r.text and "Traceback" not in r.text


def test_a_symlink_out_of_the_project_is_refused(client, built, tmp_path):
    root, _ = built
    outside = tmp_path / "secret.json"
    outside.write_text('{"nodes": [], "links": []}')
    (root / "graphs" / "escape.json").symlink_to(outside)
    assert client.get("/api/graph?src=file:graphs/escape.json").status_code == 404


def test_artifacts_are_served_by_name_and_html_is_never_rendered(client, built):
    _, ids = built
    r = client.get(f"/runs/{ids['grid']}/artifacts/examples.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert json.loads(r.text)[0].startswith("example prompt 0")
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "script-src 'self'" in r.headers["content-security-policy"]
    page = client.get(f"/runs/{ids['graph']}/artifacts/page.html")
    assert page.status_code == 200 and page.headers["content-type"] == "application/octet-stream"
    assert page.headers["content-disposition"].startswith("attachment")


def test_without_the_token_every_page_and_call_is_refused(built):
    from starlette.testclient import TestClient

    from interplab.dashboard import create_app

    root, _ = built
    app = create_app(root, TOKEN)
    with TestClient(app) as c:
        page = c.get("/runs")
        assert page.status_code == 401 and "token" in page.text
        assert c.get("/api/runs/latest").status_code == 401
        assert c.get("/static/dashboard.js").status_code == 401
        assert c.get("/runs?token=wrong").status_code == 401
        assert c.post("/api/hypotheses", json={"text": "x"}).status_code == 401
        first = c.get(f"/runs?token={TOKEN}&status=done", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/runs?status=done"
        assert (
            "HttpOnly" in first.headers["set-cookie"]
            and "SameSite=Strict" in first.headers["set-cookie"]
        )
        assert c.get("/runs?status=done").status_code == 200  # the cookie now
        # the cookie alone does not authorise a write: a page of another site could send it
        assert c.post("/api/hypotheses", json={"text": "forged"}).status_code == 403
    app.state.project.close()


def test_writes_go_to_the_store_and_show_on_the_pages(client, built):
    root, ids = built
    h = client.post("/api/hypotheses", json={"text": "the control prompts show no such effect"})
    assert h.status_code == 201
    hid = h.json()["id"]
    assert (
        client.post(f"/api/hypotheses/{hid}/links", json={"run": ids["grid2"]}).status_code == 201
    )
    s = client.post(f"/api/hypotheses/{hid}/status", json={"status": "supported", "note": "run 2"})
    assert s.status_code == 200 and s.json()["status"] == "supported"
    n = client.post("/api/notes", json={"text": "looked at the grid", "run": ids["grid"]})
    assert n.status_code == 201
    star = client.post("/api/highlights", json={"run": ids["grid"], "artifact": "result.json"})
    assert star.status_code == 201 and star.json()["kind"] == "highlight"
    f = client.post(
        "/api/findings",
        json={
            "claim": "a second claim",
            "evidence": "1, 2",
            "confidence": "0.6",
            "change_my_mind": "a rerun disagrees",
        },
    )
    assert f.status_code == 201 and f.json()["evidence"] == [1, 2]
    project = Project.open(root)
    assert project.get_hypothesis(hid).status == "supported"
    assert [lk.run_id for lk in project.links(hypothesis=hid)] == [ids["grid2"]]
    assert project.verify() == []  # the hash chain holds with the page's hypothesis in it
    highlight = [x for x in project.notes(kind="highlight") if x.run_id == ids["grid"]]
    result = project.run(ids["grid"]).artifact("result")
    assert result is not None and highlight[-1].artifact_sha256 == result.sha256
    project.close()
    assert "★ starred" in client.get(f"/runs/{ids['grid']}").text
    assert "the control prompts show no such effect" in client.get("/log").text


@pytest.mark.parametrize(
    ("path", "body", "status", "says"),
    [
        ("/api/hypotheses", {"text": "   "}, 400, "text is required"),
        ("/api/hypotheses", ["not", "an", "object"], 400, "JSON object"),
        (
            "/api/findings",
            {"claim": "c", "evidence": [1], "confidence": 2, "change_my_mind": "m"},
            400,
            "between 0 and 1",
        ),
        (
            "/api/findings",
            {"claim": "c", "evidence": [], "confidence": 0.5, "change_my_mind": "m"},
            400,
            "list of run ids",
        ),
        ("/api/highlights", {"run": 1, "artifact": "nope.png"}, 400, "has no artifact"),
        ("/api/notes", {"text": "x", "run": 99999}, 400, "no run 99999"),
        ("/api/hypotheses/1/status", {"status": "proven"}, 400, "not one of"),
    ],
)
def test_refused_writes_say_why_and_change_nothing(client, built, path, body, status, says):
    project = Project.open(built[0])

    def log_size():
        return len(project.hypotheses()), len(project.findings()), len(project.notes())

    before = log_size()
    r = client.post(path, json=body)
    assert r.status_code == status and says in r.json()["error"]
    assert log_size() == before
    project.close()


def test_oversized_and_malformed_bodies_are_refused(client):
    from interplab.dashboard.security import MAX_BODY_BYTES

    big = client.post(
        "/api/notes",
        content=b"x" * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert big.status_code == 413

    def chunks():
        for _ in range(40):
            yield b"y" * 10_000

    streamed = client.post(
        "/api/notes", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413
    bad = client.post(
        "/api/notes", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert bad.status_code == 400 and "JSON object" in bad.json()["error"]


def test_the_graph_api_lays_out_layers_and_keeps_every_link(client, built):
    from fixtures import graph_json

    _, ids = built
    for src in (f"run:{ids['graph']}:graph.json", "file:graphs/mary.json"):
        g = client.get(f"/api/graph?src={src}").json()
        assert g["rows"] == ["E", "0", "1", "3"]
        assert g["tokens"][3] == " John"
        doc = graph_json()
        assert len(g["nodes"]) == len(doc["nodes"]) and len(g["links"]) == len(doc["links"])
        by_id = [n["id"] for n in g["nodes"]]
        for (s, t, w), link in zip(g["links"], doc["links"], strict=True):
            assert (by_id[s], by_id[t], w) == (link["source"], link["target"], link["weight"])
        logit = next(n for n in g["nodes"] if n["type"] == "logit")
        assert logit["row"] == 3 and logit["target"] is True


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        (
            {
                "nodes": [{"node_id": "a", "layer": "0", "ctx_idx": 0}],
                "links": [{"source": "a", "target": "b", "weight": 1}],
            },
            "not among the nodes",
        ),
        ({"nodes": [{"node_id": "a", "layer": "0"}], "links": []}, "ctx_idx"),
        (
            {
                "nodes": [{"node_id": "a", "layer": "0", "ctx_idx": 0}],
                "links": [{"source": "a", "target": "a", "weight": "heavy"}],
            },
            "must be a number",
        ),
        ({"nodes": "many"}, "'nodes' list"),
    ],
)
def test_a_malformed_graph_file_gets_a_422_naming_the_problem(client, built, doc, says):
    root, _ = built
    (root / "graphs" / "bad.json").write_text(json.dumps(doc))
    r = client.get("/api/graph?src=file:graphs/bad.json")
    assert r.status_code == 422 and says in r.json()["error"]
    (root / "graphs" / "bad.json").write_text("{truncated")
    r = client.get("/api/graph?src=file:graphs/bad.json")
    assert r.status_code == 422 and "not valid JSON" in r.json()["error"]


def test_the_feature_browser_sorts_pages_and_links_feature_pages(client, built):
    from fixtures import feature_study

    _, ids = built
    index, _ = feature_study()
    key = f"run:{ids['features']}:result.json"
    listed = client.get("/dictionaries").text
    assert key in listed.replace("%3A", ":")
    page = client.get(f"/dictionaries/index?src={key}&sort=max_activation&order=desc")
    assert page.status_code == 200 and "page 1 of 3" in page.text
    order = np.argsort(-index.max_activation, kind="stable")
    shown = [int(x) for x in __import__("re").findall(r"<tr><td>f(\d+)</td>", page.text)]
    assert shown == [int(j) for j in order[:100]]
    f5 = client.get(f"/dictionaries/feature?src=run:{ids['features']}:f5.json&index={key}")
    assert f5.status_code == 200 and "Feature 5" in f5.text and " cat" in f5.text
    assert "f7.json" in f5.text  # its neighbour has a page: linked
    assert client.get(f"/dictionaries/index?src=run:{ids['graph']}:graph.json").status_code == 422


def test_live_state_follows_a_run_from_running_to_done(client, built):
    root, _ = built
    project = Project.open(root)
    with project.recording("slow_job", model_info={"name": "tiny"}) as run:
        rid = run.id
        state = client.get(f"/api/runs/state?ids={rid}").json()["runs"][0]
        assert state["status"] == "running" and state["heartbeat_age"] < 60
        assert rid in client.get("/api/runs/latest").json()["running"]
        run.finish(None)
    state = client.get(f"/api/runs/state?ids={rid}").json()["runs"][0]
    assert state["status"] == "done" and state["ended"] is not None
    fragment = client.get(f"/api/runs/{rid}/fragment")
    assert fragment.status_code == 200 and "status-done" in fragment.text
    project.close()
