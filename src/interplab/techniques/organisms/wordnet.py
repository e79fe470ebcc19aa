"""WordNet 3.0 noun synsets, read from the Debian package ``wordnet-base`` (no network).

`make organisms` runs ``apt-get download wordnet-base`` and ``dpkg -x`` into
``$INTERPLAB_CACHE/data/wordnet/deb`` (nothing is installed, no package script runs). WordNet 3.0
is © 2006 Princeton University under the WordNet 3.0 licence (permissive: use, copy, modify and
distribute with the copyright notice; see ``usr/share/doc/wordnet-base/copyright`` there).

The database files are plain text (``wndb(5WN)``): ``index.noun`` lists each lemma's synsets by
frequency, and ``data.noun`` holds one synset per line at a byte offset::

    offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt ptr... | gloss; "example"

Pointers used here: ``@`` hypernym, ``~`` hyponym, ``#m/#s/#p`` member/substance/part holonym,
``%m/%s/%p`` the meronyms.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from interplab.data.cache import cache_root
from interplab.errors import UserError

RELATIONS = {
    "@": "hypernym",
    "@i": "hypernym",
    "~": "hyponym",
    "#m": "holonym",
    "#s": "holonym",
    "#p": "holonym",
    "%m": "meronym",
    "%s": "meronym",
    "%p": "meronym",
}


class WordNetMissing(UserError):
    """The WordNet files are not in the cache; ``make organisms`` fetches them."""


@dataclass(frozen=True)
class Synset:
    """One noun sense: its lemmas, gloss, examples and related synsets by relation."""

    offset: int
    lemmas: tuple[str, ...]
    gloss: str
    examples: tuple[str, ...]
    pointers: tuple[tuple[str, int], ...]  # (relation, offset)


def wordnet_dir() -> Path:
    """Returns the folder holding ``index.noun`` and ``data.noun``, or an error saying how to get it."""
    folder = cache_root() / "data" / "wordnet" / "deb" / "usr" / "share" / "wordnet"
    if not (folder / "data.noun").is_file() or not (folder / "index.noun").is_file():
        raise WordNetMissing(
            f"WordNet is not in {folder}; run `make organisms` (apt-get download wordnet-base "
            "and dpkg -x into the cache)"
        )
    return folder


@lru_cache(maxsize=4)
def _index(folder: Path) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in (folder / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue  # the licence header
        parts = line.split()
        n_synsets, n_ptrs = int(parts[2]), int(parts[3])
        offsets = parts[6 + n_ptrs : 6 + n_ptrs + n_synsets]
        out[parts[0]] = [int(o) for o in offsets]
    return out


@lru_cache(maxsize=1)
def noun_frequencies() -> list[tuple[str, int]]:
    """Returns (lemma, tagged sense count) for every noun, most frequent in WordNet's tagged
    corpus (SemCor) first."""
    out: list[tuple[str, int]] = []
    for line in (wordnet_dir() / "index.noun").read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):
            continue
        parts = line.split()
        n_ptrs = int(parts[3])
        out.append((parts[0], int(parts[5 + n_ptrs])))
    out.sort(key=lambda t: (-t[1], t[0]))
    return out


def senses(lemma: str) -> list[int]:
    """Returns the noun synset offsets of ``lemma``, most frequent sense first."""
    offsets = _index(wordnet_dir()).get(lemma.lower().replace(" ", "_"))
    if not offsets:
        raise UserError(f"{lemma!r} is not a noun in WordNet")
    return offsets


def synset(offset: int) -> Synset:
    """Returns the noun synset stored at byte ``offset`` of ``data.noun``."""
    with open(wordnet_dir() / "data.noun", "rb") as f:
        f.seek(offset)
        line = f.readline().decode("latin-1")
    head, _, gloss_part = line.partition(" | ")
    parts = head.split()
    if int(parts[0]) != offset:
        raise UserError(f"no synset at offset {offset} of data.noun")
    n_words = int(parts[3], 16)
    lemmas = tuple(parts[4 + 2 * i].replace("_", " ") for i in range(n_words))
    rest = parts[4 + 2 * n_words :]
    n_ptrs = int(rest[0])
    pointers: list[tuple[str, int]] = []
    for i in range(n_ptrs):
        symbol, target, pos = rest[1 + 4 * i], rest[2 + 4 * i], rest[3 + 4 * i]
        if pos == "n" and symbol in RELATIONS:
            pointers.append((RELATIONS[symbol], int(target)))
    gloss, *examples = [g.strip() for g in gloss_part.strip().split(";")]
    quoted = tuple(e.strip('"') for e in examples if e.startswith('"'))
    return Synset(offset, lemmas, gloss, quoted, tuple(pointers))


__all__ = [
    "RELATIONS",
    "Synset",
    "WordNetMissing",
    "noun_frequencies",
    "senses",
    "synset",
    "wordnet_dir",
]
