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
