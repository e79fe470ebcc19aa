"""Corpus streaming and the resumable tokenised-window cache."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from interplab.data import iter_corpus, lee_documents, tokenize_corpus


class SimulatedInterrupt(Exception):
    pass


class InterruptingTokenizer:
    """Delegates to a real tokenizer but raises on its `fail_on`-th batch (list) call."""

    def __init__(self, inner: Any, fail_on: int | None) -> None:
        self.inner, self.fail_on, self.calls = inner, fail_on, 0

    def __call__(self, texts: str | list[str], **kwargs: Any) -> Any:
        # Only document batches count: a single string is the fingerprint's probe.
        if isinstance(texts, list):
            self.calls += 1
            if self.calls == self.fail_on:
                raise SimulatedInterrupt
        return self.inner(texts, **kwargs)

    def __len__(self) -> int:
        return len(self.inner)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_iter_corpus_named_and_user_files(tmp_path: Path) -> None:
    assert list(iter_corpus("lee")) == list(lee_documents("all"))
    text_file = tmp_path / "notes.txt"
    text_file.write_text("First doc,\nstill first.\n\n\nSecond doc.\n")
    assert list(iter_corpus(text_file)) == ["First doc,\nstill first.", "Second doc."]
    assert list(iter_corpus(text_file, split="line")) == [
        "First doc,",
        "still first.",
        "Second doc.",
    ]
    jsonl_file = tmp_path / "docs.jsonl"
    jsonl_file.write_text('{"text": "one"}\n{"text": "two"}\n')
    assert list(iter_corpus(jsonl_file)) == ["one", "two"]


def test_windows_hold_the_token_stream_with_eos_between_documents(
    tokenizer: Any, tmp_path: Path
) -> None:
    docs = tmp_path / "tiny.txt"
    docs.write_text("The cat sat on the mat.\n\nA dog barked at the moon all night long.\n")
    corpus = tokenize_corpus(docs, tokenizer, window_len=4, cache_dir=tmp_path, progress=False)
    stream: list[int] = []
    for doc in iter_corpus(docs):
        stream += [*tokenizer.encode(doc, add_special_tokens=False), tokenizer.eos_token_id]
    assert corpus.total_tokens == len(stream)
    assert corpus.windows.dtype == np.uint32 and corpus.windows.shape == (len(stream) // 4, 4)
    np.testing.assert_array_equal(corpus.windows.ravel(), stream[: corpus.window_tokens])
    manifest = json.loads((corpus.folder / "manifest.json").read_text())
    assert manifest["window_len"] == 4 and manifest["tail_tokens_dropped"] == len(stream) % 4
    assert manifest["tokenizer"]["vocab_size"] == len(tokenizer)


def test_interrupted_tokenisation_resumes_to_the_same_result(
    tokenizer: Any, tmp_path: Path
) -> None:
    reference = tokenize_corpus(
        "lee", tokenizer, 64, cache_dir=tmp_path / "fresh", chunk_docs=40, progress=False
    )
    flaky: Any = InterruptingTokenizer(tokenizer, fail_on=4)
    with pytest.raises(SimulatedInterrupt):
        tokenize_corpus(
            "lee", flaky, 64, cache_dir=tmp_path / "resumed", chunk_docs=40, progress=False
        )
    (folder,) = (tmp_path / "resumed").iterdir()
    assert not (folder / "manifest.json").exists()
    progress = json.loads((folder / "progress.json").read_text())
    assert progress["documents_done"] == 120
    # A crash mid-chunk leaves bytes past the checkpoint; resuming must discard them.
    with (folder / "tokens.u32").open("ab") as handle:
        handle.write(b"\xff" * 1000)

    flaky.fail_on, flaky.calls = None, 0
    resumed = tokenize_corpus(
        "lee", flaky, 64, cache_dir=tmp_path / "resumed", chunk_docs=40, progress=False
    )
    assert flaky.calls == 6  # 350 documents in chunks of 40, from document 120 on
    np.testing.assert_array_equal(resumed.windows, reference.windows)
    assert resumed.total_tokens == reference.total_tokens
    assert not (folder / "progress.json").exists()


def test_finished_cache_is_reused_and_a_corrupt_one_rebuilt(tokenizer: Any, tmp_path: Path) -> None:
    first = tokenize_corpus("lee", tokenizer, 256, cache_dir=tmp_path, progress=False)
    counting: Any = InterruptingTokenizer(tokenizer, fail_on=None)
    again = tokenize_corpus("lee", counting, 256, cache_dir=tmp_path, progress=False)
    assert counting.calls == 0 and again.folder == first.folder
    expected = np.array(first.windows)
    with (first.folder / "tokens.u32").open("r+b") as handle:
        handle.write(b"\x00\x00\x00\x00")
    rebuilt = tokenize_corpus("lee", counting, 256, cache_dir=tmp_path, progress=False)
    assert counting.calls > 0
    np.testing.assert_array_equal(rebuilt.windows, expected)
