"""A self-contained HTML report: figures inlined as PNG, tables, numbers with n and CI, provenance.

One file a person can open anywhere (no server, no network, no script), plus the same figures as
PNG files and every result as JSON beside it.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from interplab.provenance import jsonable, write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.5}
h1{font-size:1.6em;margin-bottom:.2em} h2{font-size:1.25em;margin-top:2em;border-bottom:1px solid #ddd}
.lede{color:#555} img{max-width:100%;border:1px solid #eee}
table{border-collapse:collapse;font-size:.88em;margin:.8em 0} td,th{border:1px solid #ddd;padding:.25em .6em;
text-align:left} th{background:#f5f5f5} .num{text-align:right;font-variant-numeric:tabular-nums}
.claim{background:#f3f8ff;border-left:4px solid #2f6fdd;padding:.5em 1em;margin:.8em 0}
.caveat{background:#fff8ec;border-left:4px solid #e0a030;padding:.5em 1em;margin:.8em 0}
details{margin:.6em 0} pre{background:#f7f7f7;padding:.6em;overflow-x:auto;font-size:.8em}
"""


@dataclass
class Section:
    """One part of a report: a heading, prose, claims with their evidence, figures, tables."""

    title: str
    text: str = ""
    claims: list[str] = field(default_factory=list)
    caveats: list[str] = field(default_factory=list)
    figures: list[tuple[str, bytes]] = field(default_factory=list)  # (caption, PNG bytes)
    tables: list[tuple[list[str], list[list[Any]]]] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, path beside the report)


@dataclass
class Report:
    """A report under construction; ``write`` renders it to one HTML file."""

    title: str
    intro: str = ""
    sections: list[Section] = field(default_factory=list)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section

    def render(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
        ]
        if self.intro:
            parts.append(f"<p class='lede'>{self.intro}</p>")
        for s in self.sections:
            parts.append(f"<h2>{html.escape(s.title)}</h2>")
            if s.text:
                parts.append(f"<p>{s.text}</p>")
            parts.extend(f"<div class='claim'>{c}</div>" for c in s.claims)
            parts.extend(f"<div class='caveat'>{c}</div>" for c in s.caveats)
            for caption, png in s.figures:
                data = base64.b64encode(png).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(caption)}</figcaption></figure>"
                )
            for header, rows in s.tables:
                parts.append(_table(header, rows))
            if s.links:
                items = "".join(
                    f"<li><a href='{html.escape(href)}'>{html.escape(label)}</a></li>"
                    for label, href in s.links
                )
                parts.append(
                    f"<p>Interactive figures (hover a cell for its CI):</p><ul>{items}</ul>"
                )
            if s.provenance:
                import json

                text = html.escape(json.dumps(jsonable(s.provenance), indent=1))
                parts.append(f"<details><summary>provenance</summary><pre>{text}</pre></details>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def write(self, path: str | Path) -> Path:
        """Writes the HTML atomically and returns its path."""
        return write_text(path, self.render())


def _table(header: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"<td class='num'>{v:.4g}</td>"
        if isinstance(v, int):
            return f"<td class='num'>{v}</td>"
        return f"<td>{html.escape(str(v))}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"
