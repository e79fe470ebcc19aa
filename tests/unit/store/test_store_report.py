"""The project report: built from a fixture store, parsed as HTML, each finding with its figures,
statistics and marks, the limitations, the random-examples appendix and reproducibility."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
import pytest
from fake_technique import PROMPTS, PlainResult, fake_sweep, register_renderer

from interplab.report.notebook import build
from interplab.report.notebook_page import write_project_report
from interplab.store import evidence_for


class Page(HTMLParser):
    """Collects, per <section id=...>, its images, captions, list items, classes and text."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.sections: dict[str, dict[str, list[str]]] = {}
        self.tags: list[str] = []
        self._capture: str | None = None

    def _now(self) -> dict[str, list[str]] | None:
        return self.sections[self.stack[-1]] if self.stack else None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.stack.append(a.get("id") or "?")
            self.sections[self.stack[-1]] = {
                "img": [],
                "figcaption": [],
                "li": [],
                "class": [],
                "text": [],
            }
            return
        now = self._now()
        if now is None:
            return
        if tag == "img":
            now["img"].append(a.get("src") or "")
        if a.get("class"):
            now["class"].append(a["class"] or "")
        if tag in ("figcaption", "li"):
            self._capture = tag

    def handle_endtag(self, tag):
        if tag == "section":
            self.stack.pop()
        if tag == self._capture:
            self._capture = None

    def handle_data(self, data):
        for sid in self.stack:  # nested sections see their children's text
            self.sections[sid]["text"].append(data)
        now = self._now()
        if now is not None and self._capture:
            now[self._capture].append(data)


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


def test_the_report_holds_each_finding_figure_table_and_the_appendix(notebook, tmp_path):
    page_path, md_path = write_project_report(notebook, tmp_path / "report")
    text = page_path.read_text()
    page = Page()
    page.feed(text)
    s = page.sections
    order = [
        k
        for k in s
        if k.startswith("F")
        or k in ("findings", "limitations", "appendix-examples", "reproducibility")
    ]
    assert order.index("F1") < order.index("limitations") < order.index("appendix-examples")
    # F1: one figure per evidence run, drawn from the stored result JSON, with captions
    assert len(s["F1"]["img"]) == 2 and all(
        src.startswith("data:image/png;base64,") for src in s["F1"]["img"]
    )
    assert any("Run 1: fake_sweep" in c for c in s["F1"]["figcaption"])
    f1 = " ".join(s["F1"]["text"])
    assert "pre-registered (H1)" in f1 and "n" in f1 and "20" in f1
    assert "8 tests in the family" in f1 and "every run linked to hypothesis H1" in f1
    # F2: no renderer, so the page says so, and shows the figure file the run stored
    f2 = " ".join(s["F2"]["text"])
    assert "no figure drawn" in f2 and "missing" in s["F2"]["class"]
    assert len(s["F2"]["img"]) == 1 and any(
        "plain.png (stored figure)" in c for c in s["F2"]["figcaption"]
    )
    assert "post hoc (H2)" in f2 and "2 tests in the family" in f2
    # limitations: the user's own and those the store sees
    lim = " ".join(s["limitations"]["text"])
    assert "only one synthetic task" in lim and "run 3 is post hoc" in lim
    # appendix: random examples from each evidence run's data
    assert len(s["appendix-examples"]["li"]) == 5 + 5 + 2
    assert all(x in [*PROMPTS, "only one", "and two"] for x in s["appendix-examples"]["li"])
    repro = " ".join(s["reproducibility"]["text"])
    assert "interplab rerun 1 --project" in repro and notebook.run(1).model_sha256 in repro
    assert "<script" not in text and "http://" not in text and "https://" not in text
    md = md_path.read_text()
    assert "### F1. a shift of 1 moves the mean" in md and "### F2." in md
    assert "## Appendix: random examples" in md and "interplab rerun 3" in md
    assert len(list((md_path.parent / "figures").glob("*.png"))) == 3


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
