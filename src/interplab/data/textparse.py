"""Return plain English prose from the raw formats that the registry-packaged texts ship in.

Pure functions, one per format, used by `textsources.py`; each takes the file's text (or bytes)
and returns documents or paragraphs with markup removed. No file system access here, so each
is tested on small synthetic inputs.

1. Brown corpus (`brown_to_text`): one sample per file, paragraphs separated by blank lines, one
   sentence per line, every token written `word/tag`. Tags are dropped and the tokens joined
   back into ordinary spacing (`` and '' become double quotes, punctuation attaches to the word
   before it).
2. OSIS XML from a SWORD zText Bible module (`osis_to_paragraphs`): footnotes (`<note>`) are
   removed, word-level tags (`<w>`, Strong's numbers) are unwrapped, verse milestones dropped;
   paragraph, title, line-group and chapter elements end a paragraph, a poetry line (`<l>`) a
   line.
3. reStructuredText from Sphinx's `_sources` (`rst_to_text`): comments and bookkeeping
   directives (`.. index::`, `.. _label:`, `.. toctree::`...) with their indented bodies,
   directive options and field lines (`:noindex:`, `:synopsis: ...`) and heading underlines are
   dropped; roles such as :func:`os.path.join` keep only their text.
   Code examples stay: they are part of the documentation's language.
4. fortune(6) databases (`fortune_cookies`): cookies separated by lines holding only `%`;
   ASCII-art cookies (mostly non-letters) are dropped.
5. Email (`email_text`): the subject and the plain-text body of an RFC 822 message; quoted
   lines (`>`), PGP armour, the signature after `-- ` and mailing-list footers (after a rule of
   underscores or dashes, or Yahoo! Groups' unsubscribe lines) are dropped.
6. The Jargon File's plain-text rendering (`jargon_documents`): the front-matter chapters and
   appendices become one document each, every glossary entry (`   :headword: n.`) one document;
   tables (box-drawing characters) and the lists of headwords that index the glossary are
   dropped by keeping only paragraphs of several words.
"""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage

_ATTACH_LEFT = {",", ".", ";", ":", "!", "?", ")", "]", "}", "''", "'", "%"}
_ATTACH_RIGHT = {"(", "[", "{", "``", "$"}


def brown_to_text(raw: str) -> str:
    """Return a tagged Brown-corpus sample as plain text, one paragraph per blank-line block."""
    paragraphs = []
    for block in re.split(r"\n\s*\n", raw):
        sentences = []
        for line in block.splitlines():
            words = [token.rsplit("/", 1)[0] for token in line.split()]
            if words:
                sentences.append(detokenize(words))
        if sentences:
            paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def detokenize(words: list[str]) -> str:
    """Return Penn/Brown-style tokens joined with ordinary English spacing and quotes."""
    out: list[str] = []
    glue_next = False
    for word in words:
        text = {"``": '"', "''": '"'}.get(word, word)
        if out and not glue_next and word not in _ATTACH_LEFT:
            out.append(" ")
        out.append(text)
        glue_next = word in _ATTACH_RIGHT
    return "".join(out)


_OSIS_NOTE = re.compile(r"<note\b[^>]*?(?:/>|>.*?</note>)", re.S)
_OSIS_STRUCTURE = re.compile(r"<(?:/?(title|l|lg|item|list|p)|(div|chapter|lb))\b[^>]*>")
_OSIS_TAG = re.compile(r"<[^>]*>")
_NOTE_MARK = "\x00"


def osis_to_paragraphs(osis: str) -> list[str]:
    """Return the paragraphs of an OSIS fragment (poetry lines kept as lines), notes removed."""
    text = _OSIS_NOTE.sub(_NOTE_MARK, osis)
    text = _OSIS_STRUCTURE.sub(_osis_break, text)
    text = _OSIS_TAG.sub("", text)
    # A footnote sometimes stands where the space between two words was.
    text = re.sub(rf"(?<=\w){_NOTE_MARK}(?=\w)", " ", text).replace(_NOTE_MARK, "")
    text = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"')
    text = text.replace("&apos;", "'").replace("&amp;", "&")
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        lines = (" ".join(line.split()) for line in block.split("\n"))
        paragraph = "\n".join(line for line in lines if line)
        if paragraph:
            paragraphs.append(paragraph)
    return paragraphs


def _osis_break(match: re.Match[str]) -> str:
    """Return what an OSIS structure tag becomes: a line break, a paragraph break or nothing."""
    tag = match.group(0)
    if "x-milestone" in tag:  # verse-boundary markers, inside lines and paragraphs
        return ""
    if match.group(1) == "l":  # a line starts a new line; its end marks nothing
        return "" if tag.startswith("</") or "eID=" in tag else "\n"
    if match.group(2) == "lb" and "x-p" not in tag:
        return "\n"
    return "\n\n"


_RST_DROP_DIRECTIVES = re.compile(
    r"\.\.\s+(?:(?:index|toctree|highlight|moduleauthor|sectionauthor|module|currentmodule|"
    r"testsetup|testcleanup|include|literalinclude|only|raw|image|figure|tabularcolumns|"
    r"audit-event|availability|program|productionlist|csv-table|list-table|table)::"
    r"|_[^:]*:|\|[^|]*\|)"
)
_RST_COMMENT = re.compile(r"\.\.(?:\s|$)")
_RST_OPTION = re.compile(r"^:[\w-]+:(?:\s.*)?$")
_RST_UNDERLINE = re.compile(r"^([=\-~^*#+\"'`:.]){3,}\s*$")
_RST_ROLE_TITLE = re.compile(r":[\w:.+-]+:`([^`<]*?)\s*<[^`>]*>`")
_RST_ROLE = re.compile(r":[\w:.+-]+:`!?~?([^`]*)`")
_RST_DIRECTIVE_HEAD = re.compile(r"^\.\.\s+([\w:-]+)::\s*(.*)$")
# How Sphinx renders these directives' heads; others keep their argument (a signature, a title).
_RST_HEAD_TEXT = {
    "versionadded": "New in version {}.",
    "versionchanged": "Changed in version {}.",
    "deprecated": "Deprecated since version {}.",
    "deprecated-removed": "Deprecated since version {}.",
    "note": "Note:",
    "warning": "Warning:",
    "seealso": "See also:",
    "code-block": "",
    "sourcecode": "",
    "doctest": "",
    "testcode": "",
    "testoutput": "",
}


def rst_to_text(rst: str) -> str:
    """Return Sphinx reStructuredText as readable text with bookkeeping markup removed."""
    out: list[str] = []
    skip_indent: int | None = None
    for line in rst.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None:
            if not stripped or indent > skip_indent:
                continue
            skip_indent = None
        head = _RST_DIRECTIVE_HEAD.match(stripped)
        if _RST_DROP_DIRECTIVES.match(stripped) or (_RST_COMMENT.match(stripped) and not head):
            skip_indent = indent
            continue
        if _RST_UNDERLINE.match(stripped) or _RST_OPTION.match(stripped):
            continue
        if head:
            name, argument = head.group(1), head.group(2).strip()
            template = _RST_HEAD_TEXT.get(name, "{}")
            version_only = "version" in template and argument
            stripped = template.format(argument.split()[0] if version_only else argument).strip()
            if not stripped or stripped.endswith(" ."):
                continue
            line = " " * indent + stripped
        line = _RST_ROLE_TITLE.sub(r"\1", line)
        line = _RST_ROLE.sub(r"\1", line)
        line = line.replace("``", "")
        out.append(line.rstrip())
    text = "\n".join(out)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def fortune_cookies(raw: str, min_letter_fraction: float = 0.5) -> list[str]:
    """Return the cookies of a fortune database, dropping ASCII art (few letters)."""
    cookies = []
    for cookie in re.split(r"(?m)^%\s*$", raw):
        text = cookie.strip("\n").rstrip()
        visible = [ch for ch in text if not ch.isspace()]
        if not visible:
            continue
        if sum(ch.isalpha() for ch in visible) / len(visible) < min_letter_fraction:
            continue
        cookies.append(text)
    return cookies


_FOOTER_RULE = re.compile(r"^(?:_{10,}|-{10,}|={10,})\s*$")
_FOOTER_START = re.compile(
    r"^(?:To unsubscribe from this group|Your use of Yahoo! Groups|-+\s*Yahoo! Groups Sponsor)"
)
_PGP_BEGIN = re.compile(r"^-----BEGIN PGP (?:SIGNATURE|PUBLIC KEY BLOCK)-----")
_PGP_HEADER = re.compile(r"^(?:-----BEGIN PGP SIGNED MESSAGE-----|Hash: \S+)\s*$")


def email_text(raw: bytes) -> str | None:
    """Return "subject + body" of a message's plain-text part, or None if it has none."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    if not isinstance(message, EmailMessage):
        return None
    part = message.get_body(preferencelist=("plain",))
    if part is None:
        return None
    try:
        body = part.get_content()
    except (LookupError, ValueError, AssertionError):
        return None
    if not isinstance(body, str):
        return None
    kept: list[str] = []
    for line in body.replace("\r\n", "\n").split("\n"):
        if line == "-- " or any(p.match(line) for p in (_FOOTER_RULE, _FOOTER_START, _PGP_BEGIN)):
            break
        if line.lstrip().startswith((">", "|>")) or _PGP_HEADER.match(line):
            continue
        kept.append(line.rstrip())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    if len(text.split()) < 5:
        return None
    subject = " ".join(str(message.get("subject", "")).split())
    return f"{subject}\n\n{text}" if subject else text


_JARGON_ENTRY = re.compile(r"^ {3}:(.+?):(.*)$")
# Headings are separated by no-break spaces (U+00A0), which \s matches.
_JARGON_SECTION = re.compile(r"^(?:Chapter\s+\d+\.|Appendix\s+[A-Z]\.|Glossary$|Bibliography$)")
_BOX_DRAWING = re.compile(r"[\u2500-\u257f]")


def jargon_documents(raw: str, min_words: int = 6) -> list[tuple[str, str]]:
    """Return (title, text) for each chapter, appendix and glossary entry of the Jargon File."""
    documents: list[tuple[str, list[str]]] = []  # (title, paragraphs), the heading first
    for block in re.split(r"\n\s*\n", raw):
        first = block.strip("\n").split("\n", 1)[0]
        entry = _JARGON_ENTRY.match(first)
        if entry:
            title, grammar = entry.group(1).strip(), entry.group(2).strip()
            documents.append((title, [f"{title}: {grammar}" if grammar else title]))
        elif _JARGON_SECTION.match(first):
            title = " ".join(first.split())
            documents.append((title, [title]))
        elif documents and not _BOX_DRAWING.search(block):
            text = " ".join(block.split())
            if len(text.split()) >= min_words:
                documents[-1][1].append(text)
    # An entry or chapter whose only paragraph is its heading says nothing.
    return [(t, "\n\n".join(p)) for t, p in documents if len(p) > 1]
