"""Benchmark: what recording a run costs, and how fast a project of 10,000 runs lists.

1. Overhead per run: the median time of ``with project.recording(...) as run: run.finish(r)``
   for a precomputed result ``r`` (so only the recording is timed: the start row, the git probe,
   the heartbeat thread, the result JSON, the artifact rows, the end row), for a tiny result and
   for a synthetic result the size of the demo's patching grid (16 pairs x 31 layers x 15
   positions, task and control); then a `store.recorded` function that returns that grid,
   called with the demo's 16 IOI pairs and a steering-size array (the call is stored too), less
   the same function undecorated. The summary is not part of recording (computed on first
   request from the stored result); its cost is shown on its own line.
2. With ``--real``: four of the demo's runs on the embedded model (logit lens, direct logit
   attribution, activation patching of resid_pre with its control, happiness steering): the
   run's time, and the time to store its call and record its result (what `store.recorded`
   adds), as a share of the run.
3. With ``--results PROJECT``: recording each result a project already holds (e.g. the demo's,
   ``reports/demo/project``), read back from its store: every result type the demo makes.
4. Listing: 10,000 runs written in one transaction (config, model, versions, a summary and its
   headline), then ``Project.runs()`` for all of them, the newest 30, one technique, and the
   CLI's ``interplab runs --limit 0 --plain`` as a fresh process (Python start-up included).

Run: ``python bench/bench_store.py [--real] [--results PROJECT] [--runs 10000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from interplab import store
from interplab.data import ContrastPair
from interplab.provenance import Provenance
from interplab.results.base import Result
from interplab.stats import Summary, summarize
from interplab.store import Project


@dataclass(frozen=True)
class GridResult(Result):
    """A result shaped like the demo's activation-patching grid (task and control)."""

    technique = "bench_grid"

    effect: np.ndarray
    control: np.ndarray
    provenance: Provenance

    def summary(self) -> Summary:
        return summarize(self.effect)


def _grid(n: int, layers: int, positions: int) -> GridResult:
    rng = np.random.default_rng(0)
    prov = Provenance("bench_grid", {"name": "smollm2-135m", "weights_sha256": "0" * 64},
                      {"component": "resid_pre"}, "1" * 64, seed=0)  # fmt: skip
    return GridResult(
        rng.normal(size=(n, layers, positions)), rng.normal(size=(n, layers, positions)), prov
    )


def _median(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-use imports and caches
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _record(project: Project, result: Result) -> None:
    with project.recording(
        result.technique, config={"k": 1}, model_info={"name": "m"}, seed=0
    ) as run:
        run.finish(result)


def overhead(project: Project, repeats: int) -> list[tuple[str, float]]:
    """Returns (what, seconds) for recording a tiny and a demo-size result, outside and inside
    a git repository (there with the git status cache cleared every time: the worst case)."""
    from interplab.store import capture

    tiny = _grid(20, 1, 1)
    demo = _grid(16, 31, 15)
    rows = [
        ("record a tiny result (20 numbers)", _median(lambda: _record(project, tiny), repeats)),
        (
            f"record a demo-size grid ({demo.effect.size * 2:,} numbers)",
            _median(lambda: _record(project, demo), repeats),
        ),
    ]
    repo = project.root / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    here = Path.cwd()
    os.chdir(repo)

    def in_git() -> None:
        capture._cache.clear()
        _record(project, tiny)

    rows.append(
        (
            "record a tiny result in a git repository (git status each time)",
            _median(in_git, repeats),
        )
    )
    os.chdir(here)
    rows.append(("a recorded call (16 IOI pairs, a [30, 576] array) less the bare call",
                 _decorated(project, demo, repeats)))  # fmt: skip
    rows += [
        (
            "for comparison: result.to_json (indented: json's Python encoder)",
            _median(lambda: demo.to_json(project.root / "x.json"), repeats),
        ),
        ("summary of the demo-size grid (lazy: not part of recording)", _median(demo.summary, 1)),
    ]
    return rows


def _ioi_pairs() -> list[ContrastPair]:
    template = "When {A} and {B} went to the store, {S} gave a drink to"
    names = [("Mary", "John"), ("Tom", "Anna"), ("James", "Sarah"), ("Paul", "Emma"),
             ("David", "Lisa"), ("Mark", "Kate"), ("Peter", "Jane"), ("Steve", "Amy")]  # fmt: skip
    return [
        ContrastPair(
            template.format(A=io, B=s, S=s), template.format(A=s, B=io, S=io), " " + io, " " + s
        )
        for a, b in names
        for io, s in ((a, b), (b, a))
    ]


_RESULT: list[Result] = []


@store.recorded("bench_grid", inputs="pairs")
def recorded_grid(pairs: list[ContrastPair], vector: np.ndarray, *, seed: int = 0) -> Result:
    """Returns the precomputed result at once: a technique whose compute takes no time."""
    return _RESULT[0]


def _decorated(project: Project, result: Result, repeats: int) -> float:
    """Returns the median time a `store.recorded` function adds to a call that returns
    ``result`` at once, called with demo-size arguments."""
    os.environ["INTERPLAB_PROJECT"] = str(project.root)
    _RESULT[:] = [result]
    bare = recorded_grid.__wrapped__  # pyright: ignore[reportFunctionMemberAccess]
    pairs, vector = _ioi_pairs(), np.random.default_rng(0).normal(size=(30, 576)).astype("f4")
    with_store = _median(lambda: recorded_grid(pairs, vector, seed=1), repeats)
    last = project.runs(limit=1)[0]
    call = project.stored_call(last.id)
    assert call is not None and call.not_stored is None and call.arrays, "the call was not stored"
    return with_store - _median(lambda: bare(pairs, vector, seed=1), repeats)


def _recording_cost(project: Project, fn: Callable[..., Result], args: tuple, kwargs: dict,
                    result: Result) -> float:  # fmt: skip
    """Returns the median time of what `store.recorded` adds to a call of ``fn``: binding and
    storing the call, and recording the finished result."""
    import inspect

    from interplab.store.calls import encode_call

    def record() -> None:
        bound = inspect.signature(fn).bind(*args, **kwargs).arguments
        call = encode_call(fn, bound)
        with project.recording(fn.__name__, inputs=bound.get("prompts") or bound.get("pairs"),
                               call=call) as run:  # fmt: skip
            run.finish(result)

    return _median(record, 7)


def real(project: Project) -> list[tuple[str, float, float]]:
    """Returns (technique, seconds per run, seconds to store its call and record its result) for
    four of the demo's runs. Timing what recording adds to the finished run, rather than a
    recorded run minus a plain one, keeps the noise of a shared machine out of a difference of
    two large numbers."""
    import interplab
    from interplab.data.sentiment_prompts import NEUTRAL_PROMPTS
    from interplab.demo import PARIS_PROMPTS, ioi_prompts
    from interplab.techniques import (
        activation_patching,
        direct_logit_attribution,
        happiness_vector,
        logit_lens,
        steer,
    )

    model = interplab.load()
    prompts, io, s = ioi_prompts()
    vector = happiness_vector(model, layers=6)
    jobs: list[tuple[Callable[..., Result], tuple, dict, int]] = [
        (logit_lens, (model, PARIS_PROMPTS), {"target": " Paris"}, 3),
        (direct_logit_attribution, (model, prompts), {"target": io, "baseline": s}, 3),
        (
            activation_patching,
            (model, _ioi_pairs()),
            {"components": ("resid_pre",), "progress": False},
            1,
        ),
        (
            steer,
            (model, list(NEUTRAL_PROMPTS[:8]), vector),
            {"coefficients": (0.0, 4.0, 8.0), "n_random": 2, "max_new_tokens": 16},
            1,
        ),
    ]
    out = []
    for fn, args, kwargs, repeats in jobs:
        result = fn(
            *args, **kwargs, record=False
        )  # warm-up, and the result whose recording is timed
        plain_s = statistics.median(
            _time(lambda fn=fn, args=args, kwargs=kwargs: fn(*args, **kwargs, record=False))
            for _ in range(repeats)
        )
        out.append((fn.__name__, plain_s, _recording_cost(project, fn, args, kwargs, result)))
    return out


def stored(project: Project, source: Path, repeats: int) -> list[tuple[str, float]]:
    """Returns (technique and size, seconds) for recording each result ``source`` stores."""
    out = []
    with Project.open(source) as src:
        for run in sorted(src.runs(status="done"), key=lambda r: r.id):
            art = src.run(run.id).artifact("result")  # listings carry no artifacts
            if art is None:
                continue
            result = src.result(run.id)

            def record(result: Result = result, name: str = run.technique) -> None:
                with project.recording(name) as handle:
                    handle.finish(result)

            label = f"record run {run.id}'s {run.technique} ({art.bytes / 1e3:,.0f} kB of JSON)"
            out.append((label, _median(record, repeats)))
    return out


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def fill(project: Project, n: int) -> None:
    """Writes ``n`` finished runs in one transaction, shaped like real ones."""
    from interplab.store.capture import host, versions
    from interplab.store.summaries import headline_json

    summary = summarize(np.random.default_rng(0).normal(size=(20, 6)), n_resamples=200).to_dict()
    text, head = json.dumps(summary), headline_json(summary)
    now = time.time()
    rows = [
        ("bench_grid" if i % 3 else "logit_lens", now - n + i, now - n + i + 1, now - n + i + 1, 1,
         host(), json.dumps({"component": "resid_pre", "i": i}), "smollm2-135m", "0" * 64,
         json.dumps({"name": "smollm2-135m"}), json.dumps(versions()), text, head, 6)
        for i in range(n)
    ]  # fmt: skip
    with project.write() as conn:
        conn.executemany(
            "INSERT INTO runs (technique, status, started, ended, heartbeat, pid, host, config, "
            "model_name, model_sha256, model, versions, summary, headline, n_tests) "
            "VALUES (?, 'done', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )


def listing(project: Project, n: int) -> list[tuple[str, float]]:
    """Returns (what, seconds) for listing a project of ``n`` runs."""
    fill(project, n)
    env = {**os.environ, "INTERPLAB_PROJECT": str(project.root)}
    cli = [sys.executable, "-m", "interplab.cli", "runs", "--limit", "0", "--plain"]

    def cli_run() -> None:
        done = subprocess.run(cli, env=env, capture_output=True, text=True, check=True)
        assert len(done.stdout.splitlines()) == project.count_runs()

    assert len(project.runs()) == project.count_runs()
    return [
        (f"Project.runs(): all {project.count_runs():,} runs", _median(project.runs, 5)),
        ("Project.runs(limit=30)", _median(lambda: project.runs(limit=30), 5)),
        (
            "Project.runs(technique='logit_lens')",
            _median(lambda: project.runs(technique="logit_lens"), 5),
        ),
        ("`interplab runs --limit 0 --plain` (new process)", _median(cli_run, 2)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--real", action="store_true", help="also time four of the demo's runs")
    parser.add_argument("--results", type=Path, help="also record each result of this project")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the listing project")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    results = None if args.results is None else args.results.resolve()  # before the chdir
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        with Project.init(Path(tmp) / "overhead") as p:
            for what, s in overhead(p, args.repeats):
                print(f"{what:62s} {s * 1e3:9.1f} ms")
            if results is not None:
                for what, s in stored(p, results, args.repeats):
                    print(f"{what:62s} {s * 1e3:9.1f} ms")
            if args.real:
                for name, run_s, rec_s in real(p):
                    print(f"{name:30s} run {run_s * 1e3:8.0f} ms; recording it "
                          f"{rec_s * 1e3:6.1f} ms ({rec_s / run_s:.2%} of the run)")  # fmt: skip
        with Project.init(Path(tmp) / "listing") as p:
            for what, s in listing(p, args.runs):
                print(f"{what:62s} {s * 1e3:9.1f} ms")


if __name__ == "__main__":
    main()
