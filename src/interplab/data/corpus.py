"""Return corpus documents, and the corpus tokenised once into fixed-length windows on disk.

Max-activating-example passes and SAE harvesting read millions of tokens many times, so the
corpus is tokenised once per (source, tokenizer, window length) and memory-mapped afterwards.

1. `iter_corpus` yields documents: "wiki" (the shortened English Wikipedia dump, one article per
   document), "lee" (the Lee news corpus, one article per document), "all" (both), or a user
   file (`.jsonl` with a "text" field per line, or plain text split per blank-line-separated
   block, per line, or as one document).
2. `tokenize_corpus` concatenates the documents' tokens, with the tokenizer's EOS token between
   documents (as in GPT-2-style pretraining streams), and cuts the stream into windows of
   `window_len` tokens; the final partial window is dropped and reported.
3. Windows are appended to a raw uint32 file in chunks of documents. After each chunk a small
   `progress.json` (documents done, windows written, the tokens carried into the next window) is
   replaced atomically, so an interrupted run resumes from the last finished chunk: the tokens
   file is first truncated back to the recorded length, discarding a half-written chunk.
4. The manifest (tokenizer name and vocabulary fingerprint, window length, counts, the source's
   and the tokens file's sha256) is written last and atomically: a folder without a manifest is
   an unfinished run, never a valid cache. A manifest whose counts or hash disagree with the
   tokens file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
from tqdm import tqdm

from interplab.data.assets import asset_path, lee_documents, wiki_articles
from interplab.data.cache import atomic_write_text, data_cache_dir, sha256_file

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

CorpusName = Literal["wiki", "lee", "all"]
TextSplit = Literal["blank_line", "line", "file"]
_FORMAT_VERSION = 1
_TOKENS_FILE = "tokens.u32"
_MANIFEST_FILE = "manifest.json"
_PROGRESS_FILE = "progress.json"
_DTYPE = np.uint32
_FINGERPRINT_PROBE = "Hello, World! 12345  naïve café\n\tDon't   stop: x=y+1; αβγ 日本語 <b>ok</b>"


@dataclass(frozen=True, eq=False)
class TokenizedCorpus:
    """A corpus tokenised into [n_windows, window_len] uint32 ids, memory-mapped from disk."""

    folder: Path
    windows: np.ndarray
    manifest: dict[str, Any] = field(repr=False)

    @property
    def n_windows(self) -> int:
        """Return the number of full windows."""
        return int(self.manifest["n_windows"])

    @property
    def window_len(self) -> int:
        """Return the number of tokens per window."""
        return int(self.manifest["window_len"])

    @property
    def total_tokens(self) -> int:
        """Return the tokens in the stream, EOS separators included, before windowing."""
        return int(self.manifest["total_tokens"])

    @property
    def window_tokens(self) -> int:
        """Return the tokens kept in full windows (total minus the dropped tail)."""
        return self.n_windows * self.window_len


def iter_corpus(source: CorpusName | str | Path, split: TextSplit = "blank_line") -> Iterator[str]:
    """Yield the documents of a named corpus ("wiki", "lee", "all") or of a user text file."""
    if isinstance(source, str) and source in get_args(CorpusName):
        if source in ("wiki", "all"):
            yield from (article.text for article in wiki_articles())
        if source in ("lee", "all"):
            yield from lee_documents("all")
        return
    yield from _iter_file(Path(source), split)


def tokenize_corpus(
    source: CorpusName | str | Path,
    tokenizer: PreTrainedTokenizerBase,
    window_len: int = 128,
    *,
    split: TextSplit = "blank_line",
    cache_dir: str | Path | None = None,
    chunk_docs: int = 32,
    progress: bool = True,
) -> TokenizedCorpus:
    """Return the corpus as memory-mapped token windows, tokenising (or resuming) only if needed."""
    if window_len < 1:
        raise ValueError(f"window_len must be >= 1, got {window_len}")
    if chunk_docs < 1:
        raise ValueError(f"chunk_docs must be >= 1, got {chunk_docs}")
    if split not in get_args(TextSplit):
        raise ValueError(f"split must be one of {get_args(TextSplit)}, got {split!r}")
    eos = tokenizer.eos_token_id
    if not isinstance(eos, int):
        raise ValueError("the tokenizer has no EOS token to separate documents with")
    label, source_sha = _source_identity(source, split)
    fingerprint = tokenizer_fingerprint(tokenizer)
    key = hashlib.sha256(
        f"{_FORMAT_VERSION}|{source_sha}|{fingerprint}|{window_len}|{split}".encode()
    ).hexdigest()[:16]
    root = Path(cache_dir) if cache_dir is not None else data_cache_dir() / "tokens"
    folder = root / f"{label}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    finished = _load_finished(folder)
    if finished is not None:
        return finished

    documents = list(iter_corpus(source, split))
    if not documents:
        raise ValueError(f"corpus {source!r} has no documents")
    done, n_windows, carry = _resume_point(folder, window_len, len(documents))
    tokens_path = folder / _TOKENS_FILE
    with (
        tokens_path.open("r+b" if tokens_path.exists() else "wb") as out,
        tqdm(
            total=len(documents),
            initial=done,
            unit="doc",
            desc=f"tokenising {label}",
            disable=not progress,
        ) as bar,
    ):
        # Drop whatever a crashed run wrote after its last recorded chunk.
        out.truncate(n_windows * window_len * _DTYPE().itemsize)
        out.seek(0, os.SEEK_END)
        for start in range(done, len(documents), chunk_docs):
            batch = documents[start : start + chunk_docs]
            for ids in tokenizer(batch, add_special_tokens=False)["input_ids"]:
                carry.extend(ids)
                carry.append(eos)
            full = len(carry) // window_len
            if full:
                np.asarray(carry[: full * window_len], dtype=_DTYPE).tofile(out)
                carry = carry[full * window_len :]
                n_windows += full
            out.flush()
            os.fsync(out.fileno())
            done = start + len(batch)
            progress_record = {"documents_done": done, "n_windows": n_windows, "carry": carry}
            atomic_write_text(folder / _PROGRESS_FILE, json.dumps(progress_record))
            bar.update(len(batch))
            bar.set_postfix(tokens=n_windows * window_len + len(carry))

    manifest = {
        "format_version": _FORMAT_VERSION,
        "source": str(source),
        "source_sha256": source_sha,
        "split": split,
        "tokenizer": {
            "class": type(tokenizer).__name__,
            "name_or_path": str(getattr(tokenizer, "name_or_path", "")),
            "vocab_size": len(tokenizer),
            "fingerprint": fingerprint,
        },
        "window_len": window_len,
        "separator": "eos",
        "eos_token_id": eos,
        "dtype": np.dtype(_DTYPE).name,
        "n_documents": len(documents),
        "n_windows": n_windows,
        "total_tokens": n_windows * window_len + len(carry),
        "tail_tokens_dropped": len(carry),
        "tokens_file": _TOKENS_FILE,
        "tokens_sha256": sha256_file(tokens_path),
    }
    atomic_write_text(folder / _MANIFEST_FILE, json.dumps(manifest, indent=2))
    (folder / _PROGRESS_FILE).unlink(missing_ok=True)
    finished = _load_finished(folder)
    if finished is None:
        raise RuntimeError(f"wrote {folder} but could not read it back as a finished corpus")
    return finished


def tokenizer_fingerprint(tokenizer: PreTrainedTokenizerBase) -> str:
    """Return a sha256 of the tokenizer's vocabulary and of how it splits a probe text."""
    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    # Two tokenizers can share a vocabulary yet normalise or pre-tokenise differently; the probe
    # catches that without depending on the class name or the folder it was loaded from.
    probe = list(tokenizer(_FINGERPRINT_PROBE, add_special_tokens=False)["input_ids"])
    payload = json.dumps([vocabulary, probe], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _source_identity(source: CorpusName | str | Path, split: TextSplit) -> tuple[str, str]:
    """Return a folder-safe label and a sha256 identifying the corpus's source bytes."""
    if isinstance(source, str) and source in get_args(CorpusName):
        files = {
            "wiki": ("wiki",),
            "lee": ("lee_background", "lee"),
            "all": ("wiki", "lee_background", "lee"),
        }[source]
        digest = "|".join(sha256_file(asset_path(name)) for name in files)
        return source, hashlib.sha256(digest.encode()).hexdigest()
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    label = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in path.stem)[:40]
    return f"file-{label}", sha256_file(path)


def _iter_file(path: Path, split: TextSplit) -> Iterator[str]:
    """Yield the documents of a user file: JSONL "text" records, or plain text split by `split`."""
    if not path.is_file():
        raise FileNotFoundError(f"corpus file {path} does not exist")
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                text = record.get("text") if isinstance(record, dict) else None
                if not isinstance(text, str):
                    raise ValueError(
                        f"{path} row {number}: expected an object with a 'text' string"
                    )
                yield text
        return
    text = path.read_text(encoding="utf-8")
    if split == "file":
        blocks: Sequence[str] = [text]
    elif split == "line":
        blocks = text.splitlines()
    else:
        blocks = _blank_line_blocks(text)
    yield from (block.strip() for block in blocks if block.strip())


def _blank_line_blocks(text: str) -> list[str]:
    """Return the blocks of `text` separated by one or more blank lines."""
    blocks: list[list[str]] = [[]]
    for line in text.splitlines():
        if line.strip():
            blocks[-1].append(line)
        elif blocks[-1]:
            blocks.append([])
    return ["\n".join(block) for block in blocks if block]


def _resume_point(folder: Path, window_len: int, n_documents: int) -> tuple[int, int, list[int]]:
    """Return (documents done, windows written, carried tokens) from a previous partial run."""
    progress_path = folder / _PROGRESS_FILE
    tokens_path = folder / _TOKENS_FILE
    if not progress_path.is_file() or not tokens_path.is_file():
        return 0, 0, []
    try:
        record = json.loads(progress_path.read_text(encoding="utf-8"))
        done, n_windows, carry = record["documents_done"], record["n_windows"], record["carry"]
    except (OSError, ValueError, KeyError, TypeError):
        return 0, 0, []
    written_bytes = n_windows * window_len * _DTYPE().itemsize
    consistent = (
        isinstance(done, int)
        and 0 <= done <= n_documents
        and isinstance(carry, list)
        and tokens_path.stat().st_size >= written_bytes
    )
    return (done, n_windows, [int(t) for t in carry]) if consistent else (0, 0, [])


def _load_finished(folder: Path) -> TokenizedCorpus | None:
    """Return the finished corpus in `folder`, or None if it is missing, partial or corrupt."""
    manifest_path = folder / _MANIFEST_FILE
    tokens_path = folder / _TOKENS_FILE
    if not manifest_path.is_file() or not tokens_path.is_file():
        return None
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        n_windows, window_len = int(manifest["n_windows"]), int(manifest["window_len"])
        expected_sha = manifest["tokens_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    expected_bytes = n_windows * window_len * _DTYPE().itemsize
    if tokens_path.stat().st_size != expected_bytes or sha256_file(tokens_path) != expected_sha:
        return None
    if n_windows == 0:
        windows = np.zeros((0, window_len), dtype=_DTYPE)
    else:
        windows = np.memmap(tokens_path, dtype=_DTYPE, mode="r", shape=(n_windows, window_len))
    return TokenizedCorpus(folder=folder, windows=windows, manifest=manifest)
