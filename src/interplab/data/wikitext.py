"""Return plain prose paragraphs from MediaWiki markup.

A deliberately small stripper, good enough to turn an encyclopaedia dump into natural English for
max-activating-example passes; it is not a full MediaWiki parser (mwparserfromhell is the
reference for that). The steps, in order, because later ones rely on earlier ones:

1. Drop HTML comments, then `<ref>...</ref>` / `<ref/>` citations and tags whose content is not
   prose (`<math>`, `<gallery>`, `<timeline>`, `<source>`, `<pre>`, `<table>`); keep the content of
   every other tag (`<sub>`, `<span>`, ...) and drop the tag itself.
2. Remove templates `{{...}}` and tables `{| ... |}` with a depth-counting scan, because both
   nest (a template inside a table inside a template) and regexes cannot balance brackets.
3. Resolve wiki links innermost first: `[[target|label]]` -> label, `[[target]]` -> target, and
   drop `[[File:...]]`, `[[Image:...]]`, `[[Category:...]]` and interlanguage links entirely.
   Innermost-first means a link inside an image caption is flattened before the image is dropped.
4. External links `[http://x label]` -> label; bare `[http://x]` vanish. Bold/italic quotes go.
5. Walk the lines: stop at back-matter sections (References, See also, ...), drop headings, list
   items, indented and table-remnant lines, then split on blank lines into paragraphs, collapse
   whitespace and tidy the punctuation that removed citations leave behind ("word ," -> "word,").
6. Keep paragraphs of at least `min_words` words: short leftovers are captions and stubs.

The markup conventions follow https://www.mediawiki.org/wiki/Help:Formatting and
https://www.mediawiki.org/wiki/Help:Tables.
"""

from __future__ import annotations

import re

_BACK_MATTER = frozenset(
    {
        "references",
        "notes",
        "see also",
        "external links",
        "further reading",
        "bibliography",
        "sources",
        "footnotes",
        "citations",
        "notes and references",
    }
)
_DROPPED_LINK_PREFIXES = ("file:", "image:", "category:", "media:", "wikt:", "wiktionary:")
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_REF_BLOCK = re.compile(r"<ref\b[^>/]*>.*?</ref\s*>", re.DOTALL | re.IGNORECASE)
_REF_SELF_CLOSING = re.compile(r"<ref\b[^>]*/>", re.IGNORECASE)
_NON_PROSE_BLOCK = re.compile(
    r"<(math|gallery|timeline|source|syntaxhighlight|pre|table|score|imagemap)\b[^>]*>.*?</\1\s*>",
    re.DOTALL | re.IGNORECASE,
)
_ANY_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_INNER_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL_LINK = re.compile(r"\[(?:https?:|ftp:)?//[^\s\]]*(?:\s+([^\]]*))?\]")
_INTERLANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)?:")
_BOLD_ITALIC = re.compile(r"'{2,}")
_HEADING = re.compile(r"^\s*(=+)\s*(.*?)\s*\1\s*$")
_SPACE = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?)])")
_EMPTY_PARENS = re.compile(r"\(\s*[,;]?\s*\)")
_REPEATED_PUNCT = re.compile(r"([,;])\s*[,;]+")


def wikitext_to_paragraphs(markup: str, min_words: int = 8) -> list[str]:
    """Return the prose paragraphs of one article's wiki markup, markup removed."""
    text = _COMMENT.sub("", markup)
    text = _REF_BLOCK.sub("", text)
    text = _REF_SELF_CLOSING.sub("", text)
    text = _NON_PROSE_BLOCK.sub("", text)
    text = _ANY_TAG.sub("", text)
    text = _remove_nested(text, "{{", "}}")
    text = _remove_nested(text, "{|", "|}")
    text = _resolve_links(text)
    text = _EXTERNAL_LINK.sub(lambda match: match.group(1) or "", text)
    text = _BOLD_ITALIC.sub("", text)
    return [
        paragraph
        for paragraph in (_tidy(" ".join(block)) for block in _prose_blocks(text))
        # A leftover "[[" means a link whose brackets did not balance (for example a caption
        # quoting "[sic]"); such a paragraph is markup debris, not prose.
        if len(paragraph.split()) >= min_words and "[[" not in paragraph and "]]" not in paragraph
    ]


def _remove_nested(text: str, opener: str, closer: str) -> str:
    """Return `text` without any balanced `opener ... closer` spans, however deeply nested."""
    pieces: list[str] = []
    depth = 0
    kept_from = 0
    index = 0
    while index < len(text):
        if text.startswith(opener, index):
            if depth == 0:
                pieces.append(text[kept_from:index])
            depth += 1
            index += len(opener)
        elif depth > 0 and text.startswith(closer, index):
            depth -= 1
            index += len(closer)
            if depth == 0:
                kept_from = index
        else:
            index += 1
    # An unclosed opener swallows the rest: it is broken markup, not prose.
    if depth == 0:
        pieces.append(text[kept_from:])
    return "".join(pieces)


def _resolve_links(text: str) -> str:
    """Return `text` with wiki links replaced by their labels, innermost links first."""

    def replace(match: re.Match[str]) -> str:
        inner = match.group(1)
        target, _, label = inner.partition("|")
        lowered = target.strip().lower()
        if lowered.startswith(_DROPPED_LINK_PREFIXES) or _INTERLANGUAGE.match(lowered):
            return ""
        if label:
            # Image-style options ("thumb|upright|caption") keep only the last field.
            return label.rsplit("|", 1)[-1]
        return target.lstrip(":")

    previous = None
    while previous != text:
        previous = text
        text = _INNER_LINK.sub(replace, text)
    return text


def _prose_blocks(text: str) -> list[list[str]]:
    """Return runs of consecutive prose lines, stopping at back-matter sections."""
    blocks: list[list[str]] = [[]]
    for raw_line in text.splitlines():
        line = raw_line.strip()
        heading = _HEADING.match(line)
        if heading:
            if heading.group(2).strip().lower() in _BACK_MATTER:
                break
            blocks.append([])
            continue
        if not line or line.startswith(("*", "#", ":", ";", "|", "!", "{", "}", "__")):
            blocks.append([])
            continue
        blocks[-1].append(line)
    return [block for block in blocks if block]


def _tidy(paragraph: str) -> str:
    """Return a paragraph with whitespace collapsed and citation debris cleaned up."""
    paragraph = _SPACE.sub(" ", paragraph)
    paragraph = _EMPTY_PARENS.sub("", paragraph)
    paragraph = _REPEATED_PUNCT.sub(r"\1", paragraph)
    paragraph = _SPACE_BEFORE_PUNCT.sub(r"\1", paragraph)
    return _SPACE.sub(" ", paragraph).strip()
