"""The research log: notes, highlights, hypotheses (hash chain, pre-registered vs post hoc),
findings, sprints and corrections over a named family."""

from __future__ import annotations

import numpy as np
import pytest
from fake_technique import PROMPTS, fake_sweep

from interplab.stats import correct_pvalues
from interplab.store import StoreError, evidence_for, parse_family


def test_notes_limitations_and_highlights(project):
    fake_sweep(PROMPTS)
    project.note("the effect is bigger on short prompts")
    project.note("n is small", kind="limitation")
    star = project.highlight(1, "the cleanest sweep", artifact="result.json")
    assert [n.kind for n in project.notes()] == ["note", "limitation", "highlight"]
    assert star.run_id == 1 and star.artifact_sha256 == project.run(1).artifact("result").sha256
    assert [n.text for n in project.notes(kind="limitation")] == ["n is small"]
    with pytest.raises(StoreError, match="has no artifact"):
        project.highlight(1, "x", artifact="nope.png")
    with pytest.raises(StoreError, match="some text"):
        project.note("  ")


def test_a_hypothesis_written_before_a_run_is_preregistered_and_one_after_is_post_hoc(project):
    before = project.hypothesis("shift moves the mean")
    fake_sweep(PROMPTS)
    after = project.hypothesis("the mean is above zero")
    assert project.link(before.id, 1).preregistered
    assert not project.link(after.id, 1).preregistered
    assert [(lk.hypothesis_id, lk.preregistered) for lk in project.links(run=1)] == [
        (before.id, True), (after.id, False)]  # fmt: skip


def test_the_marking_follows_the_stored_times_not_the_order_of_linking(project):
    fake_sweep(PROMPTS)
    h = project.hypothesis("later")
    with project.write() as conn:  # a hypothesis time before the run's start
        conn.execute("UPDATE hypotheses SET created = created - 3600 WHERE id = ?", (h.id,))
    assert project.link(h.id, 1).preregistered


def test_runs_inside_evidence_for_are_linked_as_they_start(project):
    h = project.hypothesis("shift moves the mean")
    with evidence_for(h.id):
        fake_sweep(PROMPTS)
        fake_sweep(PROMPTS, shift=1.0)
    fake_sweep(PROMPTS, shift=2.0)
    assert sorted(r.id for r in project.runs(hypothesis=h.id)) == [1, 2]
    assert all(lk.preregistered for lk in project.links(hypothesis=h.id))


def test_the_hypothesis_chain_shows_an_edited_text_or_time(project):
    a = project.hypothesis("one")
    b = project.hypothesis("two")
    assert b.previous == a.sha256 and project.verify() == []
    with project.write() as conn:
        conn.execute("UPDATE hypotheses SET text = 'one, edited' WHERE id = ?", (a.id,))
    assert any("H1" in p for p in project.verify())
    with project.write() as conn:
        conn.execute(
            "UPDATE hypotheses SET text = 'one', created = created - 60 WHERE id = ?", (a.id,)
        )
    assert any("time" in p for p in project.verify())


def test_hypothesis_status_changes_with_a_reason(project):
    h = project.hypothesis("x")
    assert project.set_status(h.id, "refuted", "the control moves too").status == "refuted"
    with pytest.raises(StoreError, match="not one of"):
        project.set_status(h.id, "maybe")  # type: ignore[arg-type]


def test_a_finding_needs_evidence_a_probability_and_what_would_change_my_mind(project):
    fake_sweep(PROMPTS)
    with pytest.raises(StoreError, match="evidence"):
        project.finding("c", evidence=[], confidence=0.5, change_my_mind="x")
    with pytest.raises(StoreError, match="between 0 and 1"):
        project.finding("c", evidence=[1], confidence=70, change_my_mind="x")
    with pytest.raises(StoreError, match="change my mind"):
        project.finding("c", evidence=[1], confidence=0.7, change_my_mind=" ")
    with pytest.raises(StoreError, match="family"):
        project.finding("c", evidence=[1], confidence=0.7, change_my_mind="x", family="H")
    f = project.finding("c", evidence=[1, 1], confidence=0.7, change_my_mind="x")
    assert f.evidence == (1,) and project.findings()[0] == f


def test_family_correction_equals_holm_over_every_cell_of_the_family(project):
    h = project.hypothesis("shift moves the mean")
    with evidence_for(h.id):
        for shift in (0.0, 0.3, 1.0):
            fake_sweep(PROMPTS, shift=shift)
    fake_sweep(PROMPTS, shift=5.0)  # outside the family
    f = project.finding("shift 1.0 moves it", evidence=[3], confidence=0.8,
                        change_my_mind="a null at larger n", family=f"H{h.id}")  # fmt: skip
    c = project.correct(f.id)
    assert c.n_tests == 12 and c.n_runs == 3  # 3 runs x 4 cells
    every = np.concatenate([np.asarray(project.summary(r)["p_value"], float) for r in (1, 2, 3)])
    expected = correct_pvalues(every, method="holm").p_adjusted[8:12]
    (row,) = c.runs
    assert row.run_id == 3 and row.n_cells == 4
    assert row.smallest_p_family == pytest.approx(expected.min())
    assert row.smallest_p_family >= row.smallest_p_within_run  # a bigger family, a higher bar
    assert "12 tests in the family" in c.describe() and "hypothesis H1" in c.describe()
    bh = project.correct_family("runs:1,2,3", method="bh")
    assert bh.n_tests == 12 and len(bh.runs) == 3


def test_family_names_parse(project):
    assert str(parse_family("H3")) == "H3" and parse_family("hypothesis:3").kind == "hypothesis"
    assert parse_family("S2").kind == "sprint" and parse_family("runs: 1, 2,2").key == "1,2"
    assert (
        parse_family("technique:patching").key == "patching" and parse_family("all").kind == "all"
    )
    with pytest.raises(StoreError, match="not one of"):
        parse_family("everything")


def test_a_sprint_counts_hypotheses_runs_and_cells_tested(project):
    fake_sweep(PROMPTS)  # before the sprint: not counted
    s = project.sprint_start("induction heads", "find the heads")
    with pytest.raises(StoreError, match="still open"):
        project.sprint_start("another")
    h = project.hypothesis("L1 has induction heads")
    with evidence_for(h.id):
        fake_sweep(PROMPTS, cells=3)
    fake_sweep(PROMPTS, cells=5)
    project.note("looked at patterns")
    project.finding(
        "heads exist", evidence=[2], confidence=0.6, change_my_mind="random heads do it"
    )
    stats = project.sprint_stats()
    assert (stats.runs, stats.runs_done, stats.hypotheses) == (2, 2, 1)
    assert (stats.preregistered_links, stats.post_hoc_links) == (1, 0)
    assert stats.cells_tested == 8 and stats.runs_without_summary == 0
    assert (stats.findings, stats.notes) == (1, 1)
    with pytest.raises(StoreError, match="every answer"):
        project.sprint_end(tried="a", worked="", differently="c", decision="pivot")
    ended = project.sprint_end(tried="patching", worked="L1 heads", differently="controls first",
                               decision="continue")  # fmt: skip
    assert ended.id == s.id and ended.decision == "continue" and ended.ended is not None
    assert project.current_sprint() is None
    fake_sweep(PROMPTS)
    assert project.run(4).sprint_id is None
