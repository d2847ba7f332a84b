"""Caption analysis for the soa / pa / ca subsets (SPEC §3, §4): pure functions over strings.

* :func:`find_classes` -- COCO class mentions (word list in :mod:`.coco_classes`), case-insensitive,
  on word boundaries, leftmost-longest, non-overlapping ("hot dog" is a hot dog, never a dog).
* :func:`find_positional` / :func:`counter_caption` -- the PA positional words and their swap.
* :func:`find_counts` -- exact object counts from count words ("two small brown dogs" -> dog: 2).

Boundary rule: a match may not touch a letter, a digit or a hyphen on either side, so "dog's" and
"dogs," match while "lefty", "onion", "farm", "man-made" and "left-handed" do not. Inside a
multi-word phrase, spaces and hyphens are interchangeable ("hot-dog" == "hot dog").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Iterable, Mapping, NamedTuple, TypeVar

from .coco_classes import BLOCKED_PHRASES, PHRASE_INDEX

_LEFT = r"(?<![^\W_])(?<!-)"  # not preceded by a letter, digit or hyphen
_RIGHT = r"(?![^\W_])(?!-)"  # not followed by one
_SEP = r"[\s-]+"  # between the words of a phrase


def _phrase_regex(phrase: str) -> str:
    return _SEP.join(re.escape(w) for w in phrase.split())


def _normalise(text: str) -> str:
    return " ".join(re.split(_SEP, text.strip().lower()))


_P = TypeVar("_P")


def _leftmost_longest(cands: Iterable[tuple[int, int, _P]]) -> list[tuple[int, int, _P]]:
    """Non-overlapping candidates: earliest start first, longest first among equal starts."""
    out: list[tuple[int, int, _P]] = []
    end = -1
    for start, stop, payload in sorted(cands, key=lambda c: (c[0], c[0] - c[1])):
        if start >= end:
            out.append((start, stop, payload))
            end = stop
    return out


# ----------------------------------------------------------------------------------------- classes
@dataclass(frozen=True)
class ClassMention:
    """One mention of a COCO class in a caption.

    ``phrase`` is the caption's own text at ``span``; ``is_plural`` is ``None`` for number-invariant
    or mass nouns ("sheep", "aircraft", "broccoli").
    """

    name: str
    phrase: str
    span: tuple[int, int]
    is_plural: bool | None


_ALL_PHRASES = sorted(set(PHRASE_INDEX) | set(BLOCKED_PHRASES), key=len, reverse=True)
_CLASS_RE = re.compile(_LEFT + "(?:" + "|".join(map(_phrase_regex, _ALL_PHRASES)) + ")" + _RIGHT, re.IGNORECASE)


def find_classes(caption: str) -> list[ClassMention]:
    """All COCO class mentions in ``caption``, in order of appearance.

    Alternatives are tried longest first at each position and the scan is left to right, so matches
    are leftmost-longest and never overlap. Blocked phrases ("jet ski", "bus stop") are consumed and
    reported as nothing.
    """
    out: list[ClassMention] = []
    for m in _CLASS_RE.finditer(caption):
        hit = PHRASE_INDEX.get(_normalise(m.group(0)))
        if hit is not None:
            out.append(ClassMention(hit[0], m.group(0), m.span(), hit[1]))
    return out


# -------------------------------------------------------------------------------------- positional
POSITIONAL_WORDS: tuple[str, ...] = (
    "above",
    "right",
    "far",
    "outside",
    "between",
    "below",
    "on top of",
    "bottom",
    "left",
    "inside",
    "in front of",
    "behind",
    "on",
    "near",
    "under",
)
"""The PA positional words, as listed in SPEC §3 (TISE)."""

OPPOSITES: Mapping[str, str | None] = MappingProxyType(
    {
        "left": "right",
        "right": "left",
        "above": "below",
        "below": "above",
        "in front of": "behind",
        "behind": "in front of",
        "inside": "outside",
        "outside": "inside",
        "near": "far from",
        "far": "near",
        "on": "under",
        "on top of": "under",
        "under": "on",
        "top": "bottom",
        "bottom": "top",
        # "A between B and C" has no single-word opposite that keeps the sentence grammatical
        # ("outside" / "beside" change the structure), so no counter caption is made for it.
        "between": None,
    }
)
"""Word -> its opposite for counter captions; ``None`` = no clean opposite (skip the record)."""

# (canonical word, pattern); the group "core" is the text a counter caption replaces. Longer
# phrases win ("on top of" over "on"; "on the left" / "to the left of" are "left", not "on").
_POSITIONAL_PATTERNS: tuple[tuple[str, str], ...] = (
    *(
        (side, rf"(?:to|on)\s+the\s+(?:far\s+)?(?P<core>{side})(?:\s+(?:hand\s+)?side)?(?:\s+of)?")
        for side in ("left", "right")
    ),
    ("on top of", r"(?P<core>on\s+(?:the\s+)?top(?:\s+of)?)"),
    ("in front of", r"(?P<core>in\s+front(?:\s+of)?)"),
    ("bottom", r"(?:at|on)\s+the\s+(?P<core>bottom)"),
    *(
        (w, rf"(?P<core>{w})")
        for w in (
            "above",
            "right",
            "far",
            "outside",
            "between",
            "below",
            "bottom",
            "left",
            "inside",
            "behind",
            "on",
            "near",
            "under",
        )
    ),
)
_POSITIONAL_RES = tuple((w, re.compile(_LEFT + p + _RIGHT, re.IGNORECASE)) for w, p in _POSITIONAL_PATTERNS)


class PositionalMention(NamedTuple):
    """A positional word: its canonical form (one of ``POSITIONAL_WORDS``) and the span of the text
    a counter caption replaces ("left" inside "to the left of"; all of "in front of")."""

    word: str
    span: tuple[int, int]


def find_positional(caption: str) -> list[PositionalMention]:
    """Positional words in ``caption`` in order, on word boundaries, longest phrase first.

    Known limits (no part-of-speech tagging): the verb "left" ("he left") and "turned on" count.
    """
    cands = [(m.start(), m.end(), (w, m.span("core"))) for w, rx in _POSITIONAL_RES for m in rx.finditer(caption)]
    return [PositionalMention(*payload) for _, _, payload in _leftmost_longest(cands)]


def _match_case(src: str, repl: str) -> str:
    if len(src) > 1 and src.isupper():
        return repl.upper()
    if src[:1].isupper():
        return repl[:1].upper() + repl[1:]
    return repl


def counter_caption(caption: str, word: str, occurrence: int = 0) -> str | None:
    """``caption`` with the ``occurrence``-th mention of positional ``word`` swapped for its opposite.

    Case of the first letter (or all-caps) is kept, everything else is untouched. Returns ``None``
    when the word is not in the caption or has no clean opposite ("between").
    """
    word = word.lower()
    if word not in OPPOSITES:
        raise ValueError(f"counter_caption: {word!r} is not a positional word; expected one of {sorted(OPPOSITES)}")
    hits = [m for m in find_positional(caption) if m.word == word]
    opposite = OPPOSITES[word]
    if opposite is None or not 0 <= occurrence < len(hits):
        return None
    start, stop = hits[occurrence].span
    rest = caption[stop:]
    # near/far are not used alike: "near X" <-> "far from X" keeps both captions grammatical.
    if word == "near":
        m = re.match(r"\s+to\b", rest, re.IGNORECASE)
        if m:
            rest = rest[m.end() :]
    elif word == "far":
        m = re.match(r"\s+(?:away\s+)?from\b", rest, re.IGNORECASE)
        if m:
            rest = rest[m.end() :]
    return caption[:start] + _match_case(caption[start:stop], opposite) + rest


# ------------------------------------------------------------------------------------------ counts
COUNT_WORDS: Mapping[str, int] = MappingProxyType(
    {
        "a": 1,
        "an": 1,
        "one": 1,
        "two": 2,
        "three": 3,
        "four": 4,
        "five": 5,
        "six": 6,
        "seven": 7,
        "eight": 8,
        "nine": 9,
        "ten": 10,
        **{str(n): n for n in range(1, 11)},
    }
)
"""Words that state an exact number (SPEC §3 CA: a/an/one = 1, two, three, ...)."""

MAX_ADJECTIVES = 2
"""Words allowed between a count word and its noun ("two small brown dogs")."""

QUANTIFIERS: frozenset[str] = frozenset(
    {
        "lot",
        "lots",
        "couple",
        "pair",
        "pairs",
        "group",
        "groups",
        "bunch",
        "herd",
        "flock",
        "few",
        "number",
        "variety",
        "pile",
        "stack",
        "row",
        "line",
        "set",
        "team",
        "crowd",
        "dozen",
        "handful",
        "pack",
        "collection",
        "family",
        "bundle",
        "many",
        "several",
        "some",
        "more",
        "numerous",
        "multiple",
        "various",
        "both",
        "all",
        "no",
    }
)
"""Words that make the number inexact: "a couple of dogs" (2? 3?), "a pair of skis" (a pair of
objects or two?), "a herd of sheep" are ambiguous, so their noun gets no count at all."""

_DEFINITE = frozenset({"the", "this", "that", "these", "those"})
_STOPWORDS = frozenset(
    {
        "of",
        "and",
        "or",
        "but",
        "with",
        "without",
        "in",
        "on",
        "at",
        "to",
        "by",
        "for",
        "from",
        "into",
        "onto",
        "over",
        "under",
        "near",
        "next",
        "behind",
        "above",
        "below",
        "between",
        "beside",
        "inside",
        "outside",
        "is",
        "are",
        "was",
        "were",
        "be",
        "has",
        "have",
        "his",
        "her",
        "its",
        "their",
        "our",
        "my",
        "your",
        "while",
        "who",
        "which",
        "as",
        "another",
        "each",
        "every",
    }
)
_TOKEN_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _mention_count(
    caption: str, mention: ClassMention, tokens: list[re.Match[str]], mentions: list[ClassMention]
) -> int | str:
    """The exact count stated for ``mention``, or "definite" (anaphoric "the dog"), or "none"."""
    pos = mention.span[0]
    fillers = 0
    for tok in reversed([t for t in tokens if t.end() <= mention.span[0]]):
        gap = caption[tok.end() : pos]
        if not gap or gap.strip():  # punctuation between -> not one noun phrase
            return "none"
        if any(m.span[0] < tok.end() and tok.start() < m.span[1] for m in mentions):
            return "none"  # "a toilet bowl": bowl belongs to no count word
        w = tok.group(0).lower()
        if w in COUNT_WORDS:
            n = COUNT_WORDS[w]
            agrees = mention.is_plural is None or mention.is_plural == (n > 1)
            return n if agrees else "none"
        if w in _DEFINITE:
            return "definite"
        if w in _STOPWORDS or w in QUANTIFIERS:
            return "none"
        fillers += 1
        if fillers > MAX_ADJECTIVES:
            return "none"
        pos = tok.start()
    return "none"


def find_counts(caption: str) -> dict[str, int]:
    """Exact per-class counts stated by the caption: ``{class: n}``.

    A mention is counted when a count word precedes it with at most ``MAX_ADJECTIVES`` plain words
    between and the noun agrees in number ("two dogs", "a dog"; not "two dog", "a dogs"; "sheep" and
    other invariant nouns take either). Counts of a class's mentions add up ("a man and two women" ->
    person: 3). Mentions after "the/this/that/these/those" are taken as references to objects already
    counted and ignored. Any other mention of the class without an exact count ("people", "a group
    of people", "his kids", "a couple of dogs") makes the class's total unknown, so it is left out.
    Known limit: a class noun used as a modifier is counted ("a dog bed" -> dog: 1).
    """
    mentions = find_classes(caption)
    tokens = list(_TOKEN_RE.finditer(caption))
    totals: dict[str, int] = {}
    unknown: set[str] = set()
    for m in mentions:
        n = _mention_count(caption, m, tokens, mentions)
        if n == "none":
            unknown.add(m.name)
        elif isinstance(n, int):
            totals[m.name] = totals.get(m.name, 0) + n
    return {c: n for c, n in totals.items() if c not in unknown}
