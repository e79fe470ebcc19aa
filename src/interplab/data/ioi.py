"""Return indirect-object-identification (IOI) contrast pairs, as in Wang et al. (2022).

"Interpretability in the Wild: a Circuit for Indirect Object Identification in GPT-2 small"
(arXiv:2211.00593). A prompt names two people, repeats one (the subject, S) and asks for the other
(the indirect object, IO): "When Mary and John went to the store, John gave a drink to" -> " Mary".

1. Filter the name pool to names that are one token with a leading space in this tokenizer, so that
   swapping names never changes the prompt's length.
2. For each pair, pick a template (the paper's templates, below), an order and two distinct
   names. In ABBA order the first clause reads "IO and S", in BABA order "S and IO"; the repeated
   name is always S, so the answer is always IO. Orders alternate to stay balanced.
3. Corrupt the prompt:
   - "swap": exchange IO and S everywhere ("When John and Mary went ..., Mary gave a drink to"),
     so the corrupt prompt's correct answer is the clean prompt's S;
   - "abc": replace the three name slots with three other distinct names (the paper's ABC
     distribution), which removes the information about who was repeated.
   The wrong answer is always S, so `logit(IO) - logit(S)` is the paper's logit difference.
4. Tokenise both prompts and keep the pair only if they align and IO and S are single tokens;
   count what was dropped. Templates are the group id, as "t07-BABA".
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Literal, get_args

from interplab.data.alignment import encode, single_token_id
from interplab.data.pairs import ContrastPair, PairDataset

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IOICorruption = Literal["swap", "abc"]
IOIOrder = Literal["ABBA", "BABA", "both"]

# Wang et al. (2022), Appendix: the BABA templates, written with {A} {B} for the first clause and
# {S} for the repeated subject; each ends right before the indirect object.
IOI_TEMPLATES: tuple[str, ...] = (
    "When {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "Then, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {A} and {B} had a lot of fun at the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {A} and {B} were working at the {PLACE}. {S} decided to give a {OBJECT} to",
    "Then, {A} and {B} were thinking about going to the {PLACE}. {S} wanted to give a {OBJECT} to",
    "Then, {A} and {B} had a long argument, and afterwards {S} said to",
    "After {A} and {B} went to the {PLACE}, {S} gave a {OBJECT} to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give it to",
    "When {A} and {B} got a {OBJECT} at the {PLACE}, {S} decided to give the {OBJECT} to",
    "While {A} and {B} were working at the {PLACE}, {S} gave a {OBJECT} to",
    "While {A} and {B} were commuting to the {PLACE}, {S} gave a {OBJECT} to",
    "After the lunch, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Afterwards, {A} and {B} went to the {PLACE}. {S} gave a {OBJECT} to",
    "Then, {A} and {B} had a long argument. Afterwards {S} said to",
    "Friends {A} and {B} found a {OBJECT} at the {PLACE}. {S} gave it to",
)
IOI_NAMES: tuple[str, ...] = (
    "Mary", "John", "Alice", "Bob", "Tom", "James", "Michael", "David", "Sarah", "Emma",
    "Lisa", "Paul", "Mark", "Daniel", "Anna", "Laura", "Kevin", "Jessica", "Robert", "William",
    "Richard", "Thomas", "Charles", "Steven", "Brian", "Edward", "Jason", "Jeff", "Ryan", "Jacob",
    "Gary", "Eric", "Stephen", "Andrew", "Peter", "George", "Frank", "Scott", "Patrick", "Jack",
    "Sam", "Adam", "Henry", "Chris", "Kate", "Rachel", "Amy", "Helen", "Linda", "Susan",
    "Karen", "Nancy", "Betty", "Sandra", "Emily", "Michelle", "Joseph", "Martin", "Simon", "Anthony",
    "Victoria", "Grace", "Rose", "Claire", "Lucy", "Sophie", "Max", "Ben", "Dan", "Matt",
)  # fmt: skip
IOI_PLACES: tuple[str, ...] = (
    "store", "garden", "restaurant", "school", "hospital", "office", "house", "station",
    "park", "market", "library", "beach",
)  # fmt: skip
# Consonant-initial so that the templates' "a {OBJECT}" stays grammatical.
IOI_OBJECTS: tuple[str, ...] = (
    "ring", "kiss", "bone", "basketball", "computer", "necklace", "drink", "snack",
    "book", "gift", "letter", "flower",
)  # fmt: skip


@dataclass(frozen=True)
class IOIConfig:
    """Choices for `ioi_pairs`, validated on construction."""

    n: int = 200
    corruption: IOICorruption = "abc"
    order: IOIOrder = "both"
    seed: int = 0
    templates: tuple[int, ...] | None = None  # indices into IOI_TEMPLATES; None: all

    def __post_init__(self) -> None:
        if self.templates is not None and (
            not self.templates or any(not 0 <= t < len(IOI_TEMPLATES) for t in self.templates)
        ):
            raise ValueError(
                f"templates must be indices in 0..{len(IOI_TEMPLATES) - 1}, got {self.templates}"
            )
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")
        if self.corruption not in get_args(IOICorruption):
            raise ValueError(f"corruption must be one of {get_args(IOICorruption)}")
        if self.order not in get_args(IOIOrder):
            raise ValueError(f"order must be one of {get_args(IOIOrder)}")


def ioi_pairs(
    tokenizer: PreTrainedTokenizerBase,
    n: int = 200,
    corruption: IOICorruption = "abc",
    order: IOIOrder = "both",
    seed: int = 0,
    templates: tuple[int, ...] | None = None,
) -> PairDataset:
    """Return `n` aligned IOI contrast pairs whose answer is the indirect object's name; with
    ``templates`` (indices into `IOI_TEMPLATES`) and one ``order``, every prompt has the same
    template and name order, so a position means the same role (IO, S1, S2, END) in every pair."""
    config = IOIConfig(n=n, corruption=corruption, order=order, seed=seed, templates=templates)
    names = [name for name in IOI_NAMES if single_token_id(tokenizer, " " + name) is not None]
    excluded = sorted(set(IOI_NAMES) - set(names))
    if len(names) < 5:
        raise ValueError(
            f"only {len(names)} IOI names are single tokens in this tokenizer; need at least 5"
        )
    rng = random.Random(seed)
    pairs: list[ContrastPair] = []
    dropped = 0
    max_attempts = 50 * n
    attempts = 0
    while len(pairs) < n:
        attempts += 1
        if attempts > max_attempts:
            raise ValueError(
                f"gave up after {max_attempts} attempts with {len(pairs)} of {n} aligned IOI "
                "pairs; this tokenizer splits the templates unevenly"
            )
        this_order = order if order != "both" else ("ABBA", "BABA")[len(pairs) % 2]
        pair = _sample_pair(rng, names, this_order, corruption, templates)
        clean, corrupt = encode(tokenizer, pair.clean), encode(tokenizer, pair.corrupt)
        if len(clean) != len(corrupt):
            dropped += 1
            continue
        pairs.append(pair)
    params = {**asdict(config), "excluded_names": excluded, "n_templates": len(IOI_TEMPLATES)}
    if templates is None:
        params.pop("templates")
    return PairDataset(f"ioi-{corruption}", tuple(pairs), seed, params, dropped)


def _sample_pair(
    rng: random.Random,
    names: list[str],
    order: str,
    corruption: IOICorruption,
    templates: tuple[int, ...] | None = None,
) -> ContrastPair:
    """Return one IOI pair drawn with `rng` for the given order and corruption."""
    if templates is None:
        template_index = rng.randrange(len(IOI_TEMPLATES))
    else:
        template_index = templates[rng.randrange(len(templates))]
    template = IOI_TEMPLATES[template_index]
    io_name, s_name = rng.sample(names, 2)
    place, obj = rng.choice(IOI_PLACES), rng.choice(IOI_OBJECTS)
    clean = _fill(template, order, io_name, s_name, place, obj)
    if corruption == "swap":
        corrupt = _fill(template, order, s_name, io_name, place, obj)
    else:
        others = [name for name in names if name not in (io_name, s_name)]
        first, second, subject = rng.sample(others, 3)
        corrupt = template.format(A=first, B=second, S=subject, PLACE=place, OBJECT=obj)
    return ContrastPair(
        clean=clean,
        corrupt=corrupt,
        answer=" " + io_name,
        wrong_answer=" " + s_name,
        group=f"t{template_index:02d}-{order}",
    )


def _fill(template: str, order: str, io_name: str, s_name: str, place: str, obj: str) -> str:
    """Return the template filled so that `s_name` is repeated and `io_name` is not."""
    first, second = (io_name, s_name) if order == "ABBA" else (s_name, io_name)
    return template.format(A=first, B=second, S=s_name, PLACE=place, OBJECT=obj)
