"""The raw formats of the packaged texts become clean prose (small synthetic inputs)."""

from __future__ import annotations

from interplab.data.textparse import (
    brown_to_text,
    detokenize,
    email_text,
    fortune_cookies,
    jargon_documents,
    osis_to_paragraphs,
    rst_to_text,
)


def test_brown_tags_are_dropped_and_spacing_restored() -> None:
    raw = (
        "\n\n\tThe/at jury/nn said/vbd ``/`` no/at evidence/nn ''/'' was/bedz found/vbn ./.\n"
        "\tIt/pps ended/vbd (/( at/in last/ap )/) ;/. 1/2/cd won/vbd !/.\n\n\n"
        "\tSecond/od paragraph/nn ,/, here/rb ./.\n"
    )
    assert brown_to_text(raw) == (
        'The jury said "no evidence" was found. It ended (at last); 1/2 won!'
        "\n\nSecond paragraph, here."
    )


def test_detokenize_attaches_quotes_and_punctuation() -> None:
    assert detokenize(["``", "Hi", "''", ",", "he", "said", "--", "$", "5", "."]) == (
        '"Hi", he said -- $5.'
    )


def test_osis_notes_removed_words_unwrapped_and_lines_kept() -> None:
    osis = (
        '<title type="main">Genesis</title> <div sID="g1" type="x-p"/><chapter n="1"/>'
        '<w lemma="strong:H1">In</w> <w>the</w> <w>beginning</w>, <w>God</w>'
        '<note placement="foot"><reference>1:1 </reference>Elohim.</note><w>created</w>'
        '<note placement="foot">x</note>. &amp; more<div eID="g1" type="x-p"/> '
        '<lg sID="a"/><l sID="b"/>Line one,<l eID="b"/> '
        '<div type="x-milestone" subType="x-preverse" sID="pv"/><l sID="c"/>'
        '<div type="x-milestone" eID="pv"/>line two.<l eID="c"/><lg eID="a"/>'
    )
    assert osis_to_paragraphs(osis) == [
        "Genesis",
        "In the beginning, God created. & more",
        "Line one,\nline two.",
    ]


def test_rst_bookkeeping_dropped_and_roles_reduced() -> None:
    rst = """.. _tut-intro:

**********************
Whetting Your Appetite
**********************

.. index:: single: Python
   pair: language; Python

See :func:`os.path.join`, :ref:`the tutorial <tut-x>` and ``len(x)``.

.. function:: open(file, mode='r')
   :noindex:

   Open a file.

   .. versionadded:: 3.2

.. this is a comment
   spanning lines

.. code-block:: python

   print("hi")
"""
    assert rst_to_text(rst) == (
        "Whetting Your Appetite\n\n"
        "See os.path.join, the tutorial and len(x).\n\n"
        "open(file, mode='r')\n\n"
        "   Open a file.\n\n"
        "   New in version 3.2.\n\n"
        '   print("hi")'
    )


def test_fortune_cookies_split_and_ascii_art_dropped() -> None:
    raw = (
        "A fool and his money are soon parted.\n%\n"
        "  /\\_/\\\n ( o.o )\n  > ^ <\n%\n"
        "Two lines,\n\t\t-- Someone\n%\n"
    )
    assert fortune_cookies(raw) == [
        "A fool and his money are soon parted.",
        "Two lines,\n\t\t-- Someone",
    ]


def _message(body: str, subject: str = "Re: [ILUG] modems") -> bytes:
    return (
        f"From: a@example.com\nTo: b@example.com\nSubject: {subject}\n"
        f"Content-Type: text/plain; charset=us-ascii\n\n{body}"
    ).encode()


def test_email_keeps_subject_and_own_words_only() -> None:
    body = (
        "On Mon, Bob wrote:\n> quoted line\n> another\n\n"
        "I tried the other modem and it works fine now, thanks.\n\n"
        "-- \nBob's signature\n"
    )
    assert email_text(_message(body)) == (
        "Re: [ILUG] modems\n\nOn Mon, Bob wrote:\n\n"
        "I tried the other modem and it works fine now, thanks."
    )


def test_email_footers_cut_and_short_or_html_only_messages_skipped() -> None:
    body = (
        "The meeting moved to Thursday at noon in room four.\n"
        "_______________________________________________\n"
        "ILUG mailing list\nhttp://lists.example/ilug\n"
    )
    assert email_text(_message(body)).endswith("room four.")  # type: ignore[union-attr]
    yahoo = (
        "Ray passed away in November, details to follow soon.\nTo unsubscribe from this group, send"
    )
    assert email_text(_message(yahoo)).endswith("to follow soon.")  # type: ignore[union-attr]
    assert email_text(_message("ok thanks")) is None
    html = b"Subject: x\nContent-Type: text/html\n\n<html><body>Hello there friend of mine</body></html>"
    assert email_text(html) is None


def test_jargon_chapters_and_entries_become_documents() -> None:
    raw = (
        "Table of Contents\n\n   1. Hacker Slang\n\n"
        "Chapter\u00a01.\u00a0Hacker Slang\n\n"
        "   This document is a collection of slang terms used by hackers.\n\n"
        "┌──┬──┐\n│ a table row with enough words in it │\n└──┴──┘\n\n"
        "Glossary\n\n   crufty\n\n   cruft\n\n"
        "   :cruft: n.\n\n"
        "   An unpleasant substance. The dust that gathers under your bed.\n\n"
        "   :empty: n.\n\n   short\n"
    )
    assert jargon_documents(raw) == [
        (
            "Chapter 1. Hacker Slang",
            "Chapter 1. Hacker Slang\n\n"
            "This document is a collection of slang terms used by hackers.",
        ),
        ("cruft", "cruft: n.\n\nAn unpleasant substance. The dust that gathers under your bed."),
    ]
