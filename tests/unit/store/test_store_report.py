"""The project report: built from a fixture store, parsed as HTML (and read as Markdown), each
finding with its figures, statistics and marks, the limitations, the random-examples appendix,
reproducibility, extra sections, and grid cells named by Site."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from fake_technique import PROMPTS, PlainResult, fake_sweep, register_renderer

from interplab.report.html import Section
from interplab.report.notebook import build
from interplab.report.notebook_page import write_project_report
from interplab.store import evidence_for
from interplab.store.summaries import headline

PNG = b"\x89PNG\r\n\x1a\n"


class Page(HTMLParser):
    """Collects, per <section id=...>, its images, captions, list items, headings, classes, text
    and tables (rows of cell texts)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sections: dict[str, dict[str, list]] = {}
        self.order: list[str] = []
        self._capture: str | None = None
        self._cell: list[str] | None = None

    def _now(self) -> dict[str, list] | None:
        return self.sections[self.stack[-1]] if self.stack else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "section":
            sid = a.get("id") or "?"
            self.stack.append(sid)
            self.order.append(sid)
            self.sections[sid] = {k: [] for k in
                                  ("img", "figcaption", "li", "h3", "class", "text", "tables")}  # fmt: skip
            return
        now = self._now()
        if now is None:
            return
        if tag == "img":
            now["img"].append(a.get("src") or "")
        if a.get("class"):
            now["class"].append(a["class"] or "")
        if tag in ("figcaption", "li", "h3"):
            self._capture = tag
            now[tag].append("")
        if tag == "table":
            now["tables"].append([])
        if tag == "tr":
            now["tables"][-1].append([])
        if tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "section":
            self.stack.pop()
        if tag == self._capture:
            self._capture = None
        now = self._now()
        if tag in ("td", "th") and now is not None and self._cell is not None:
            now["tables"][-1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        for sid in self.stack:  # nested sections see their children's text
            self.sections[sid]["text"].append(data)
        now = self._now()
        if now is None:
            return
        if self._capture:
            now[self._capture][-1] += data
        if self._cell is not None:
            self._cell.append(data)


def _parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


@pytest.fixture
def notebook(project, tmp_path):
    """A project with two findings: F1 on two drawn sweeps (pre-registered), F2 on a result no
    renderer draws, which stored its own figure file (post hoc)."""
    from matplotlib.figure import Figure

    from interplab import viz

    register_renderer()
    project.sprint_start("sprint one", "does shift move the mean?")
    h1 = project.hypothesis("shift moves the mean")
    with evidence_for(h1.id):
        fake_sweep(PROMPTS, shift=1.0)
        fake_sweep(PROMPTS, shift=0.0, seed=1)
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    png = tmp_path / "plain.png"
    png.write_bytes(viz.png_bytes(fig))
    with project.recording("fake_plain", inputs=["only one", "and two"]) as run:
        run.finish(PlainResult(np.random.default_rng(0).normal(size=(12, 2))), figures=[png])
    h2 = project.hypothesis("the plain values are near zero")
    project.link(h2.id, run.id)
    project.finding("a shift of 1 moves the mean", evidence=[1, 2], confidence=0.8,
                    change_my_mind="the same effect with shift 0", family=f"H{h1.id}")  # fmt: skip
    project.finding("plain values sit near zero", evidence=[run.id], confidence=0.4,
                    change_my_mind="a larger n with a clear mean")  # fmt: skip
    project.note("only one synthetic task", kind="limitation")
    project.highlight(1, "the cleanest sweep")
    project.sprint_end(tried="two sweeps", worked="shift 1", differently="more seeds",
                       decision="continue")  # fmt: skip
    return project


def test_each_finding_has_its_figures_statistics_marks_and_tests(notebook, tmp_path):
    page_path, _ = write_project_report(notebook, tmp_path / "report")
    text = page_path.read_text()
    page = _parse(page_path)
    s = page.sections
    assert page.order[:3] == ["findings", "F1", "F2"]
    assert page.order[3:] == ["limitations", "hypotheses", "sprints", "appendix-examples",
                              "reproducibility"]  # fmt: skip
    # F1: the claim, confidence, what would change my mind, how many tests stand behind it
    f1 = " ".join(s["F1"]["text"])
    assert s["F1"]["h3"][0] == "F1. a shift of 1 moves the mean"
    assert "Confidence 80%" in f1 and "the same effect with shift 0" in f1
    assert "8 tests in the family" in f1 and "every run linked to hypothesis H1" in f1
    # a statistics row per evidence run: n, the strongest cell's mean and CI, both p-values
    (table,) = s["F1"]["tables"]
    assert table[0][:5] == ["run", "technique", "n", "largest |mean|", "CI"] and len(table) == 3
    for row, run_id in zip(table[1:], (1, 2), strict=True):
        h = headline(notebook.summary(run_id))
        assert row[:3] == [str(run_id), "fake_sweep", str(len(PROMPTS))]
        assert row[3] == f"{h.mean:.3g} at cell {h.cell}"  # the fake result names no cells
        assert row[4] == f"95% CI [{h.ci_low:.3g}, {h.ci_high:.3g}]"
        assert row[5].endswith("(holm, 4 cells)") and row[7] == "pre-registered (H1)"
    # one figure per evidence run, drawn from the stored result, a caption saying what it shows
    assert len(s["F1"]["img"]) == 2 and len(s["F1"]["figcaption"]) == 2
    for src in s["F1"]["img"]:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    for caption, run_id in zip(s["F1"]["figcaption"], (1, 2), strict=True):
        h = headline(notebook.summary(run_id))
        sha = notebook.run(run_id).artifact("result").sha256[:12]
        assert caption.startswith(f"fake sweep. Run {run_id}: fake_sweep on fake-model")
        assert f"mean {h.mean:.3g} (95% CI [{h.ci_low:.3g}, {h.ci_high:.3g}], n=20)" in caption
        assert f"drawn by interplab.viz from its stored result, sha256 {sha}" in caption
    # F2: no renderer, so the page says so, and shows the figure file the run stored
    f2 = " ".join(s["F2"]["text"])
    assert "no figure drawn" in f2 and "missing" in s["F2"]["class"]
    assert len(s["F2"]["img"]) == 1
    assert s["F2"]["figcaption"][0].startswith("plain.png. Run 3: fake_plain")
    assert s["F2"]["figcaption"][0].endswith("(a figure the run stored)")
    assert "post hoc (H2)" in f2 and "2 tests in the family" in f2
    assert "<script" not in text and "http://" not in text and "https://" not in text


def test_limitations_appendix_and_reproducibility(notebook, tmp_path):
    page = _parse(write_project_report(notebook, tmp_path / "report")[0])
    s = page.sections
    lim = " ".join(s["limitations"]["text"])
    assert "only one synthetic task" in lim and "run 3 is post hoc" in lim
    assert "Run 3 cannot be re-run: it stored no call" in lim
    # appendix: examples drawn from each evidence run's data, per run
    assert s["appendix-examples"]["h3"] == ["Run 1", "Run 2", "Run 3"]
    items = s["appendix-examples"]["li"]
    assert len(items) == 5 + 5 + 2 and set(items[:5]) <= set(PROMPTS)
    assert set(items[10:]) == {"only one", "and two"}
    # reproducibility: the exact command and every hash, per evidence run
    assert s["reproducibility"]["h3"] == ["Run 1", "Run 2", "Run 3"]
    tables = s["reproducibility"]["tables"]
    for table, run_id in zip(tables, (1, 2, 3), strict=True):
        rows = dict(tuple(r) for r in table[1:])
        run = notebook.run(run_id)
        if run_id < 3:
            assert rows["re-run"] == f"interplab rerun {run_id} --project {notebook.root}"
        else:
            assert rows["re-run"].startswith("cannot be re-run")
        if run_id < 3:
            assert rows["model"] == f"{run.model_name} (weights sha256 {run.model_sha256})"
            assert rows["data sha256"] == run.data_sha256 and rows["seed"] == str(run.seed)
        else:  # recorded by hand without a model or seed: the page says so
            assert rows["model"] == "? (weights sha256 not recorded)"
        assert all(a.sha256 in rows["artifacts (sha256)"] for a in run.artifacts)


def test_the_markdown_report_holds_the_same_findings_figures_and_appendix(notebook, tmp_path):
    _, md_path = write_project_report(notebook, tmp_path / "report")
    md = md_path.read_text()
    heads = [line for line in md.splitlines() if line.startswith("#")]
    assert heads.index("### F1. a shift of 1 moves the mean") < heads.index("## Limitations")
    assert heads.index("## Limitations") < heads.index("## Appendix: random examples")
    assert heads.index("## Appendix: random examples") < heads.index("## Reproducibility")
    h = headline(notebook.summary(1))
    assert f"| 1 | fake_sweep | 20 | {h.mean:.3g} at cell {h.cell} |" in md
    assert "8 tests in the family" in md and "pre-registered (H1)" in md and "post hoc (H2)" in md
    images = re.findall(r"^!\[(.*)\]\((figures/[^)]+)\)$", md, re.M)
    assert len(images) == 3
    for caption, rel in images:
        assert (md_path.parent / rel).read_bytes().startswith(PNG) and "Run " in caption
    appendix = md.split("## Appendix: random examples")[1].split("## Reproducibility")[0]
    assert len(re.findall(r"^\d+\. `", appendix, re.M)) == 12
    assert f"`interplab rerun 1 --project {notebook.root}`" in md
    assert notebook.run(3).artifacts[0].sha256 in md


def test_the_appendix_draws_the_same_examples_for_the_same_seed(notebook):
    a, b, c = build(notebook, seed=0), build(notebook, seed=0), build(notebook, seed=1)
    assert [e.items for e in a.examples] == [e.items for e in b.examples]
    assert [e.items for e in a.examples] != [e.items for e in c.examples]


def test_sprints_and_hypotheses_are_in_the_report(notebook):
    nb = build(notebook)
    (sprint,) = nb.sprints
    assert sprint.runs == 3 and sprint.hypotheses == 2 and sprint.sprint.decision == "continue"
    assert [(h.id, pre, post) for h, pre, post in nb.hypotheses] == [(1, 2, 0), (2, 0, 1)]
    assert [n.text for n in nb.highlights] == ["the cleanest sweep"]


def test_extra_sections_follow_the_findings_in_both_files(notebook, tmp_path):
    from matplotlib.figure import Figure

    from interplab import viz

    fig = Figure(figsize=(2, 2))
    fig.subplots().bar([0, 1], [2, 3])
    section = Section("Logit lens", "The answer appears <b>late</b>.", claims=["p rises late"],
                      caveats=["one prompt family"], figures=[("lens figure", viz.png_bytes(fig))],
                      tables=[(["layer", "p"], [[28, 0.5], [29, 0.75]])])  # fmt: skip
    page_path, md_path = write_project_report(notebook, tmp_path / "r", intro="The demo.",
                                              sections=[section])  # fmt: skip
    page = _parse(page_path)
    assert page.order.index("F2") < page.order.index("analyses") < page.order.index("limitations")
    a = page.sections["A1"]
    assert a["h3"] == ["Logit lens"] and a["figcaption"] == ["lens figure"]
    assert a["tables"] == [[["layer", "p"], ["28", "0.5"], ["29", "0.75"]]]
    assert "late" in " ".join(a["text"]) and "<b>late</b>" in page_path.read_text()
    md = md_path.read_text()
    assert "## Analyses" in md and "### Logit lens" in md and "| 29 | 0.75 |" in md
    assert (md_path.parent / "figures" / "section1-0.png").read_bytes().startswith(PNG)
    assert "The demo." in md


def test_patching_and_tracing_cells_are_named_by_site_position_and_token(project, tmp_path):
    import torch

    from interplab.techniques import activation_patching, causal_tracing

    from helpers import tiny_model, token_pairs

    model = tiny_model("llama")
    patched = activation_patching(model, token_pairs(n=4), components=("resid_pre",),
                                  control=False, progress=False)  # fmt: skip
    ids = torch.randint(256, (4, 7), generator=torch.Generator().manual_seed(0))
    traced = causal_tracing(model, ids, subjects=[(2, 4)] * 4, samples=2, progress=False)
    project.finding("patching moves it", evidence=[1], confidence=0.5, change_my_mind="x")
    project.finding("tracing restores it", evidence=[2], confidence=0.5, change_my_mind="y")
    page_path, md_path = write_project_report(project, tmp_path / "report")
    s = _parse(page_path).sections
    p_top = patched.top_cells(k=1)[0]
    t_top = traced.top_cells("resid", k=1)[0]
    assert p_top.label.startswith("L") and " @ " in p_top.label  # Site @ position 'token'
    for sid, label in (("F1", p_top.label), ("F2", t_top.label)):
        row = s[sid]["tables"][0][1]
        assert row[3].endswith(f" at {label}"), row
        assert f"strongest: {label}, mean" in s[sid]["figcaption"][0]
        assert f"at {label}" in " ".join(s[sid]["text"])
    md = md_path.read_text()
    assert "at cell (" not in md and p_top.label in md and t_top.label in md
    # the appendix shows each run's examples (their tokens), not a list of component names
    items = s["appendix-examples"]["li"]
    assert items == ["".join(t) for t in patched.tokens] + ["".join(t) for t in traced.tokens]
