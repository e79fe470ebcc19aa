"""Position sweeps only combine prompts whose positions mean the same thing."""

from __future__ import annotations

from interplab.data import ContrastPair
from interplab.data.ioi import IOI_TEMPLATES, ioi_pairs
from interplab.data.selection import same_length


class _WordTokenizer:
    """Splits on spaces: enough to give each prompt a token count."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text.split())))}

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        return list(range(len(text.split())))


def _pair(text: str, group: str) -> ContrastPair:
    return ContrastPair(text, text + "!", " a", " b", group=group)


def test_same_length_keeps_one_template_and_order_not_just_one_length() -> None:
    pairs = [
        _pair("a b c d", "t00-ABBA"),
        _pair("e f g h", "t01-ABBA"),
        _pair("i j k l", "t00-BABA"),
        _pair("m n o p", "t00-ABBA"),
        _pair("q r s t", "t01-ABBA"),
        _pair("u v w x", "t01-ABBA"),
    ]
    chosen = same_length(pairs, _WordTokenizer())
    assert chosen.length == 4 and chosen.group == "t01-ABBA"
    assert [p.group for p in chosen.pairs] == ["t01-ABBA"] * 3


def test_ungrouped_pairs_fall_back_to_one_length() -> None:
    pairs = [_pair("a b", ""), _pair("c d e", ""), _pair("f g", "")]
    chosen = same_length(pairs, _WordTokenizer())
    assert chosen.length == 2 and len(chosen) == 2 and chosen.group == ""


def test_ioi_pairs_can_be_restricted_to_one_template_and_order() -> None:
    dataset = ioi_pairs(_NameTokenizer(), n=12, order="ABBA", templates=(0,), corruption="swap")
    assert {p.group for p in dataset} == {"t00-ABBA"}
    skeleton = IOI_TEMPLATES[0].split("{A}")[0]
    assert all(p.clean.startswith(skeleton) for p in dataset)


class _NameTokenizer(_WordTokenizer):
    """Every word one token: every IOI name counts as single-token."""
