"""`store.queries` pages, filters and sorts runs exactly as a brute-force pass over
`Project.runs` does, and counts what the filters offer."""

from __future__ import annotations

import itertools

import pytest

from interplab.store import Project, StoreError
from interplab.store import queries as q


@pytest.fixture
def big(tmp_path, monkeypatch):
    from fixtures import bulk_runs

    monkeypatch.setenv("INTERPLAB_HOME", str(tmp_path / "home"))
    project = Project.init(tmp_path / "p")
    bulk_runs(project, 300)
    h = project.hypothesis("every fifth run")
    with project.write() as conn:
        for rid in range(1, 301, 5):
            project.link_in(conn, h.id, rid, started=0.0)
    yield project
    project.close()


def _brute(project, sort, descending, **filters):
    runs = project.runs(**filters)
    key = {
        "id": lambda r: (r.id,),
        "started": lambda r: (r.started, r.id),
        "technique": lambda r: (r.technique, r.id),
        "duration": lambda r: ((r.ended or r.heartbeat) - r.started, r.id),
    }[sort]
    return [r.id for r in sorted(runs, key=key, reverse=descending)]


@pytest.mark.parametrize(
    ("sort", "descending", "filters"),
    [
        ("id", True, {}),
        ("started", False, {"technique": "dla"}),
        ("technique", True, {"status": "failed"}),
        ("duration", False, {"model": "model-1", "hypothesis": 1}),
    ],
)
def test_pages_join_up_to_the_brute_force_listing(big, sort, descending, filters):
    where = q.RunFilter(**filters)
    pages, offset = [], 0
    while True:
        page = q.run_page(big, where, sort=sort, descending=descending, offset=offset, limit=37)
        pages.append(page)
        offset += 37
        if not page.has_next:
            break
    ids = [r.id for p in pages for r in p.rows]
    assert ids == _brute(big, sort, descending, **filters)
    assert all(p.total == len(ids) for p in pages)


def test_a_time_window_keeps_runs_started_inside_it(big):
    runs = big.runs()
    lo, hi = sorted(r.started for r in runs)[100], sorted(r.started for r in runs)[200]
    page = q.run_page(big, q.RunFilter(since=lo, until=hi), limit=500)
    assert {r.id for r in page.rows} == {r.id for r in runs if lo <= r.started < hi}


def test_facets_count_every_value(big):
    f = q.facets(big)
    runs = big.runs()
    for name, attr in (("technique", "technique"), ("model", "model_name"), ("status", "status")):
        expected = {
            k: len(list(g)) for k, g in itertools.groupby(sorted(getattr(r, attr) for r in runs))
        }
        assert dict(f[name]) == expected


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"limit": 0}, "1 to 500 rows"),
        ({"offset": -1}, "row 0 or later"),
        ({"sort": "colour"}, "sort by one of"),
        ({"where": q.RunFilter(status="exploded")}, "not one of"),
        ({"where": q.RunFilter(since=10.0, until=5.0)}, "window is empty"),
    ],
)
def test_bad_paging_says_what_is_valid(big, kwargs, says):
    with pytest.raises(StoreError, match=says):
        q.run_page(big, **kwargs)


def test_log_pages_are_newest_first(big):
    for i in range(7):
        big.note(f"note {i}")
    page = q.notes_page(big, offset=2, limit=3)
    assert [n.text for n in page.rows] == ["note 4", "note 3", "note 2"] and page.total == 7
    hyps = q.hypothesis_page(big)
    ((_, pre, post),) = hyps.rows
    assert pre == 0 and post == 60  # linked with a start time before the hypothesis: post hoc
    states = q.run_states(big, [3, 1, 99999])
    assert [s.id for s in states] == [1, 3] and states[0].to_dict()["elapsed"] == pytest.approx(5.0)
