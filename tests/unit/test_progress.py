"""Progress shows as plain lines when output is not a terminal, so long runs never look hung."""

from __future__ import annotations

import io

from interplab.progress import progress_bar


def test_plain_lines_at_every_tenth_when_not_a_terminal() -> None:
    out = io.StringIO()
    with progress_bar(20, "sweep", True, stream=out) as advance:
        for _ in range(20):
            advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "sweep: 0/20"
    assert lines[-1].startswith("sweep: 20/20 (100%")
    assert 10 <= len(lines) <= 12


def test_disabled_progress_prints_nothing() -> None:
    out = io.StringIO()
    with progress_bar(5, "sweep", False, stream=out) as advance:
        advance(5)
    assert out.getvalue() == ""


def test_listeners_hear_every_bar_shown_or_not_and_its_completion() -> None:
    from interplab import progress

    heard: list[tuple[str, int, int]] = []
    remove = progress.listen(lambda d, done, total: heard.append((d, done, total)))
    try:
        with progress_bar(50, "quiet sweep", False) as advance:
            for _ in range(50):
                advance(1)
    finally:
        remove()
    assert heard[0] == ("quiet sweep", 0, 50) and heard[-1] == ("quiet sweep", 50, 50)
    assert len(heard) <= 4  # throttled: start, completion, at most a few in between
    with progress_bar(3, "after", False) as advance:
        advance(3)
    assert heard[-1][0] == "quiet sweep"  # removed listeners hear nothing


def test_a_failing_listener_is_dropped_and_the_work_goes_on() -> None:
    from interplab import progress

    def broken(*_: object) -> None:
        raise RuntimeError("listener bug")

    progress.listen(broken)
    with progress_bar(2, "work", False) as advance:
        advance(2)
    assert broken not in progress._listeners
