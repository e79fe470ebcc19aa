"""The gensim-shipped text assets parse into real, clean data."""

from __future__ import annotations

import importlib.util
import re

import pytest

from interplab.data import (
    AssetNotFoundError,
    CapitalPair,
    assets,
    capital_pairs,
    lee_documents,
    polarity_sentences,
    wiki_articles,
    wikitext_to_paragraphs,
)


def test_missing_gensim_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        assets.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gensim" else real_find_spec(name, *a),
    )
    with pytest.raises(AssetNotFoundError, match=r"pip install --no-deps gensim==4\.4\.0"):
        capital_pairs()


def test_capital_pairs_are_real() -> None:
    pairs = capital_pairs()
    assert CapitalPair("France", "Paris") in pairs
    assert CapitalPair("Japan", "Tokyo") in pairs
    assert len(pairs) == len({p.country for p in pairs}) >= 100


def test_polarity_sentences_are_balanced_and_decoded() -> None:
    sentences = polarity_sentences()
    assert [s.label for s in sentences].count("pos") == 100
    assert [s.label for s in sentences].count("neg") == 100
    assert not any(s.text.startswith("__label__") for s in sentences)
    # The file mixes cp1252 into UTF-8; the em dash must survive, not become U+FFFD.
    assert any("—" in s.text for s in sentences)
    assert not any("\ufffd" in s.text for s in sentences)


def test_lee_documents_split_into_background_and_test() -> None:
    assert len(lee_documents("background")) == 300
    assert len(lee_documents("test")) == 50
    assert lee_documents("all") == lee_documents("background") + lee_documents("test")
    with pytest.raises(ValueError, match="part must be one of"):
        lee_documents("train")  # type: ignore[arg-type]


def test_wiki_articles_are_plain_prose() -> None:
    articles = wiki_articles()
    assert len(articles) >= 90
    titles = {a.title for a in articles}
    assert "Anarchism" in titles
    assert "AccessibleComputing" not in titles  # a redirect page
    paragraphs = [p for a in articles for p in a.paragraphs]
    assert sum(len(p) for p in paragraphs) > 2_000_000
    markup = re.compile(r"\{\{|\}\}|\[\[|\]\]|<ref|==|'''|\[https?:")
    assert [p for p in paragraphs if markup.search(p)] == []


def test_wikitext_stripper_keeps_prose_and_drops_markup() -> None:
    markup = """{{Infobox country|name=Testland|capital=[[Testville]]}}
'''Testland''' is a [[country]] in [[Europe|western Europe]].<ref>{{cite web|url=x}}</ref> Its
capital is [[Testville]], home to a [http://example.org famous market] and many people.
[[File:Flag.png|thumb|The flag, with a [[star]]]]
{| class="wikitable"
| a || b
|}
== History ==
Testland was founded long ago by people who liked writing test fixtures for parsers.
* a list item that is not prose at all, really not
== References ==
The reference section is back matter and should not appear here in output at all.
[[Category:Countries]]"""
    assert wikitext_to_paragraphs(markup) == [
        "Testland is a country in western Europe. Its capital is Testville, home to a famous "
        "market and many people.",
        "Testland was founded long ago by people who liked writing test fixtures for parsers.",
    ]
