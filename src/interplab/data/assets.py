"""Return the offline text assets that the gensim wheel ships, parsed and cached.

No model or data hub is reachable from our machines, so interplab's real text comes from the test
data inside the `gensim==4.4.0` wheel (LGPL-2.1 package; the texts keep their own licences, see
docs/data.md). gensim itself is never imported: importing it would pull in scipy/smart_open and
compiled extensions we do not need, and it is installed with `--no-deps`.

1. Locate the wheel's folder with `importlib.util.find_spec("gensim")` and append
   `test/test_data/`; a missing gensim is an error that says how to install it.
2. Parse each file into plain Python values:
   - `enwiki-...-shortened.bz2`: a MediaWiki XML export; main-namespace, non-redirect pages become
     `WikiArticle(title, paragraphs)` via `wikitext_to_paragraphs`.
   - `lee_background.cor`, `lee.cor`: the Lee news corpus (Lee, Pincombe & Welsh 2005), one
     article per line.
   - `pang_lee_polarity.cor`: 200 movie-review sentences from Pang & Lee (2005), each line
     `__label__pos ...` or `__label__neg ...` (fastText label format).
   - `questions-words.txt`: the word2vec analogy set (Mikolov et al. 2013); lines of the
     `: capital-common-countries` and `: capital-world` sections read `capital country capital
     country`, which gives real capital-country pairs.
3. Cache each parse as JSON under `data_cache_dir()`, keyed by the source's sha256 and a format
   version; writes are atomic (see `cache.py`), and a cache file whose recorded sha256 or version
   does not match, or that does not parse, is rebuilt rather than trusted.
"""

from __future__ import annotations

import bz2
import importlib.util
import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from interplab.data.cache import atomic_write_text, data_cache_dir, sha256_file
from interplab.data.wikitext import wikitext_to_paragraphs
from interplab.errors import UserFileError

AssetName = Literal["wiki", "lee_background", "lee", "polarity", "questions_words"]
LeePart = Literal["background", "test", "all"]
Sentiment = Literal["pos", "neg"]

ASSET_FILES: dict[AssetName, str] = {
    "wiki": "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "lee_background": "lee_background.cor",
    "lee": "lee.cor",
    "polarity": "pang_lee_polarity.cor",
    "questions_words": "questions-words.txt",
}
GENSIM_INSTALL_HINT = "pip install --no-deps gensim==4.4.0"
_CAPITAL_SECTIONS = ("capital-common-countries", "capital-world")
# Bump when a parser changes, so caches written by the old parser are rebuilt.
_FORMAT_VERSION = 1


class AssetNotFoundError(UserFileError):
    """Raised when the gensim wheel, or one of its test-data files, is not installed."""


@dataclass(frozen=True)
class WikiArticle:
    """One Wikipedia article reduced to its prose paragraphs."""

    title: str
    paragraphs: tuple[str, ...]

    @property
    def text(self) -> str:
        """Return the article as one string, paragraphs separated by blank lines."""
        return "\n\n".join(self.paragraphs)


@dataclass(frozen=True)
class PolaritySentence:
    """One labelled movie-review sentence from Pang & Lee (2005)."""

    text: str
    label: Sentiment

    def __post_init__(self) -> None:
        if self.label not in get_args(Sentiment):
            raise ValueError(f"label must be one of {get_args(Sentiment)}, got {self.label!r}")


@dataclass(frozen=True)
class CapitalPair:
    """A real country and its capital, as listed in the word2vec analogy questions."""

    country: str
    capital: str


def gensim_test_data_dir() -> Path:
    """Return the folder of test data inside the installed gensim wheel."""
    spec = importlib.util.find_spec("gensim")
    locations = None if spec is None else spec.submodule_search_locations
    if not locations:
        raise AssetNotFoundError(
            "interplab.data needs the text files that ship inside the gensim wheel, but gensim is "
            f"not installed. Install it without its dependencies: `{GENSIM_INSTALL_HINT}`."
        )
    folder = Path(next(iter(locations))) / "test" / "test_data"
    if not folder.is_dir():
        raise AssetNotFoundError(
            f"gensim is installed but has no test data at {folder}; reinstall the full wheel "
            f"with `{GENSIM_INSTALL_HINT}`."
        )
    return folder


def asset_path(name: AssetName) -> Path:
    """Return the path of one named asset file, checking that it exists."""
    if name not in ASSET_FILES:
        raise ValueError(f"unknown asset {name!r}; choose one of {sorted(ASSET_FILES)}")
    path = gensim_test_data_dir() / ASSET_FILES[name]
    if not path.is_file():
        raise AssetNotFoundError(
            f"{path.name} is missing from {path.parent}; reinstall with `{GENSIM_INSTALL_HINT}`."
        )
    return path


def wiki_articles() -> tuple[WikiArticle, ...]:
    """Return the shortened English Wikipedia dump's articles as prose paragraphs."""
    records = _cached_parse("wiki", _parse_wiki)
    return tuple(WikiArticle(r["title"], tuple(r["paragraphs"])) for r in records)


def lee_documents(part: LeePart = "all") -> tuple[str, ...]:
    """Return the Lee news articles: the 300 background ones, the 50 test ones, or all."""
    if part not in get_args(LeePart):
        raise ValueError(f"part must be one of {get_args(LeePart)}, got {part!r}")
    background: list[str] = [] if part == "test" else _cached_parse("lee_background", _parse_lines)
    test: list[str] = [] if part == "background" else _cached_parse("lee", _parse_lines)
    return tuple(background + test)


def polarity_sentences() -> tuple[PolaritySentence, ...]:
    """Return the 200 labelled movie-review sentences (100 positive, 100 negative)."""
    records = _cached_parse("polarity", _parse_polarity)
    return tuple(PolaritySentence(r["text"], r["label"]) for r in records)


def capital_pairs() -> tuple[CapitalPair, ...]:
    """Return the distinct real country-capital pairs, sorted by country."""
    records = _cached_parse("questions_words", _parse_capitals)
    return tuple(CapitalPair(r["country"], r["capital"]) for r in records)


def _cached_parse(name: AssetName, parse: Callable[[Path], list[Any]]) -> list[Any]:
    """Return `parse(asset)`, read from the JSON cache when it matches the source's sha256."""
    source = asset_path(name)
    source_sha = sha256_file(source)
    cache_file = data_cache_dir() / f"{name}-{source_sha[:16]}.json"
    cached = _read_cache(cache_file, source_sha)
    if cached is not None:
        return cached
    records = parse(source)
    payload = {
        "format_version": _FORMAT_VERSION,
        "asset": ASSET_FILES[name],
        "source_sha256": source_sha,
        "records": records,
    }
    atomic_write_text(cache_file, json.dumps(payload, ensure_ascii=False))
    return records


def _read_cache(cache_file: Path, source_sha: str) -> list[Any] | None:
    """Return cached records if the file is complete and made from this source, else None."""
    if not cache_file.is_file():
        return None
    try:
        payload = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    valid = (
        isinstance(payload, dict)
        and payload.get("format_version") == _FORMAT_VERSION
        and payload.get("source_sha256") == source_sha
        and isinstance(payload.get("records"), list)
    )
    return payload["records"] if valid else None


def _decode_line(raw: bytes) -> str:
    """Return one line as text: UTF-8 where valid, else Windows-1252 (the Lee/Pang files mix)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace")


def _parse_lines(path: Path) -> list[str]:
    """Return the non-empty lines of a one-document-per-line file, stripped."""
    lines = (_decode_line(raw).strip() for raw in path.read_bytes().splitlines())
    return [line for line in lines if line]


def _parse_polarity(path: Path) -> list[dict[str, str]]:
    """Return `{"text", "label"}` records from fastText-style `__label__pos text` lines."""
    records = []
    for number, line in enumerate(_parse_lines(path), start=1):
        tag, _, text = line.partition(" ")
        label = tag.removeprefix("__label__")
        if not tag.startswith("__label__") or label not in get_args(Sentiment) or not text:
            raise ValueError(f"{path.name} line {number}: expected '__label__pos|neg text'")
        records.append({"text": text.strip(), "label": label})
    return records


def _parse_capitals(path: Path) -> list[dict[str, str]]:
    """Return distinct `{"country", "capital"}` records from the capital analogy sections."""
    capitals: dict[str, str] = {}
    section = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
            continue
        if section not in _CAPITAL_SECTIONS:
            continue
        words = line.split()
        if len(words) != 4:
            raise ValueError(f"{path.name}: expected 4 words in {section!r}, got {line!r}")
        for capital, country in ((words[0], words[1]), (words[2], words[3])):
            previous = capitals.setdefault(country, capital)
            if previous != capital:
                raise ValueError(f"{path.name}: {country} has two capitals, {previous}, {capital}")
    return [{"country": c, "capital": capitals[c]} for c in sorted(capitals)]


def _parse_wiki(path: Path) -> list[dict[str, Any]]:
    """Return `{"title", "paragraphs"}` records for the dump's main-namespace articles."""
    records = []
    with bz2.open(path, "rb") as stream:
        for _, element in ET.iterparse(stream, events=("end",)):
            if _local_name(element.tag) != "page":
                continue
            fields = {_local_name(child.tag): child for child in element.iter()}
            title = (fields["title"].text or "") if "title" in fields else ""
            namespace = (fields["ns"].text or "") if "ns" in fields else ""
            markup = (fields["text"].text or "") if "text" in fields else ""
            # Free the page subtree: iterparse otherwise keeps the whole dump in memory.
            element.clear()
            if (
                namespace != "0"
                or "redirect" in fields
                or markup.lstrip().upper().startswith("#REDIRECT")
            ):
                continue
            paragraphs = wikitext_to_paragraphs(markup)
            if paragraphs:
                records.append({"title": title, "paragraphs": paragraphs})
    return records


def _local_name(tag: str) -> str:
    """Return an XML tag without its `{namespace}` prefix."""
    return tag.rsplit("}", 1)[-1]
