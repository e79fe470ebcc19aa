"""Benchmark: what recording a run costs, and how fast a project of 10,000 runs lists.

1. Overhead per run: the median time of ``with project.recording(...) as run: run.finish(r)``
   for a precomputed result ``r`` (so only the recording is timed: the start row, the git probe,
   the heartbeat thread, the result JSON, the artifact rows, the end row), for a tiny result and
   for a synthetic result the size of the demo's patching grid (16 pairs x 31 layers x 15
   positions, task and control). The summary is not part of recording (computed on first
   request from the stored result); its cost is shown on its own line.
2. With ``--real``: the demo's logit lens and direct logit attribution on the embedded model:
   the run's time, and the time to record its result, as a share of the run.
3. Listing: 10,000 runs written in one transaction (config, model, versions, a summary and its
   headline), then ``Project.runs()`` for all of them, the newest 30, one technique, and the
   CLI's ``interplab runs --limit 0 --plain`` as a fresh process (Python start-up included).

Run: ``python bench/bench_store.py [--real] [--runs 10000]``.
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
    rows += [
        (
            "for comparison: result.to_json (indented: json's Python encoder)",
            _median(lambda: demo.to_json(project.root / "x.json"), repeats),
        ),
        ("summary of the demo-size grid (lazy: not part of recording)", _median(demo.summary, 1)),
    ]
    return rows


def real(project: Project) -> list[tuple[str, float, float]]:
    """Returns (technique, seconds per run, seconds to record its result) for two of the demo's
    techniques. Timing the recording of the finished result, rather than a recorded run minus a
    plain one, keeps the noise of a shared machine out of a difference of two large numbers."""
    import interplab
    from interplab.demo import PARIS_PROMPTS, ioi_prompts
    from interplab.techniques.dla import direct_logit_attribution
    from interplab.techniques.lens import logit_lens

    model = interplab.load()
    prompts, io, s = ioi_prompts()
    jobs: list[tuple[str, Callable[[], Result]]] = [
        ("logit_lens", lambda: logit_lens(model, PARIS_PROMPTS, target=" Paris")),
        (
            "direct_logit_attribution",
            lambda: direct_logit_attribution(model, prompts, target=io, baseline=s),
        ),
    ]
    out = []
    for name, job in jobs:
        result = job()  # warm-up, and the result whose recording is timed
        plain_s = statistics.median(_time(job) for _ in range(3))

        def record(name: str = name, result: Result = result) -> None:
            with project.recording(name, model_info=model.info) as run:
                run.finish(result)

        out.append((name, plain_s, _median(record, 7)))
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", action="store_true", help="also time the demo's lens and DLA")
    parser.add_argument("--runs", type=int, default=10_000, help="runs in the listing project")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        with Project.init(Path(tmp) / "overhead") as p:
            for what, s in overhead(p, args.repeats):
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
