"""T2I-CompBench's prompt rules (``Karine-Huang/T2I-CompBench``): its relation vocabulary, number words, noun
list and aliases, and how its UniDet scripts read a prompt -- without spaCy, for its own prompt templates.

``UniDet_eval/2D_spatial_eval.py`` takes the relation as the first phrase of :data:`SPATIAL_RELATIONS` contained
in the prompt and objects A / B as spaCy's (``en_core_web_sm``) first and last NOUN; :func:`parse_spatial`
reads them from CompBench's template ``a|an <A> <relation> a|an <B>`` (every line of its spatial files).
``UniDet_eval/numeracy_eval.py`` walks spaCy's tokens; :func:`tokenize` splits CompBench's numeracy prompts as
spaCy does (words and single punctuation marks) and :func:`parse_numeracy` is its loop. Used by the
``compbench_*`` metrics and by ``python -m tise_bench.prepare data=compbench``; importable without torch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: ``vocab_spatial`` of 2D_spatial_eval.py, in its order (the first substring found wins)
SPATIAL_RELATIONS = (
    "on side of",
    "next to",
    "near",
    "on the left of",
    "on the right of",
    "on the bottom of",
    "on the top of",
    "on top of",
)
PERSON_WORDS = ("girl", "boy", "man", "woman")  # -> "person" (both scripts)
NUMBER_WORDS = ("a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight")
WORD_TO_NUM = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}  # w2n
NUMERACY_ALIASES = {
    **{w: "person" for w in PERSON_WORDS},
    "ship": "boat",
    "telivision": "tv",  # sic: "television" itself is not mapped
    "goldfish": "fish",
    "painting": "picture",
}
_NEW_OBJECTS_TXT = """
bottle:bottles cup:cups cake:cakes bird:birds knife:knives microwave:microwaves desk:desks
book:books helmet:helmets pillow:pillows bowl:bowls flag:flags stool:stools toy:toys pen:pens
microphone:microphones bread:breads fish:fish camera:cameras candle:candles paddle:paddles
drum:drums guitar:guitars tomato:tomatoes tent:tents kite:kites lemon:lemons
strawberry:strawberries suitcase:suitcases pear:pears printer:printers duck:ducks
hamburger:hamburgers deer:deer egg:eggs ship:ships chicken:chickens peach:peaches
helicopter:helicopters swan:swans camel:camels goldfish:goldfish shrimp:shrimp banana:bananas
balloon:balloons giraffe:giraffes frog:frogs horse:horses man:men rabbit:rabbits bicycle:bicycles
bee:bees girl:girls mouse:mice painting:paintings fish:fish chicken:chickens desk:desks lamp:lamps
cow:cows train:trains vase:vases pig:pigs sheep:sheep airplane:airplanes woman:women phone:phones
boy:boys plate:plates bird:birds computer:computers book:books couch:couches turtle:turtles
bowl:bowls cup:cups bag:bags car:cars backpack:backpacks microwave:microwaves dog:dogs
television:televisions butterfly:butterflies cat:cats person:people table:tables sofa:sofas
key:keys refrigerator:refrigerators clock:clocks candle:candles chair:chairs pig:pigs
rabbit:rabbits truck:trucks boat:boats bear:bears bicycle:bicycles sink:sinks horse:horses
apple:apples
"""
#: examples/dataset/new_objects.txt as (singular, plural) lines, duplicates kept (``list.index`` takes the first)
NEW_OBJECTS: tuple[tuple[str, str], ...] = tuple(
    (s, p) for s, p in (pair.split(":") for pair in _NEW_OBJECTS_TXT.split())
)
_SINGULAR = [s for s, _ in NEW_OBJECTS]
_PLURAL = [p for _, p in NEW_OBJECTS]


_SPATIAL_TEMPLATE = re.compile(
    r"^(?:a|an) (\w+) (" + "|".join(re.escape(r) for r in SPATIAL_RELATIONS) + r") (?:a|an) (\w+)$"
)


def parse_spatial(caption: str) -> tuple[str, str, str] | None:
    """(object A, relation, object B) of a caption of CompBench's template ``a|an <A> <relation> a|an <B>``
    (every line of examples/dataset/spatial*.txt), where spaCy's first and last NOUN are <A> and <B>; the
    relation is the script's (first vocabulary phrase contained in the prompt). None for other captions."""
    text = " ".join(caption.split())
    m = _SPATIAL_TEMPLATE.match(text)
    if m is None:
        return None
    relation = next(r for r in SPATIAL_RELATIONS if r in text)
    return m.group(1), relation, m.group(3)


# --- numeracy prompts --------------------------------------------------------------------------------------
def tokenize(caption: str) -> list[str]:
    """Words and single punctuation marks: spaCy's split of CompBench's numeracy prompts."""
    return re.findall(r"\w+|[^\w\s]", caption)


def parse_numeracy(tokens: Sequence[str]) -> tuple[list[str], list[int]] | None:
    """numeracy_eval.py's loop: (nouns, numbers), in the order the prompt names them; None where the
    reference raises (a number word as the last token; a non-plural after a number > 1)."""
    objs: list[str] = []
    nums: list[int] = []
    n = len(tokens)
    for i, t in enumerate(tokens):
        if t not in NUMBER_WORDS:
            continue
        two = " ".join(tokens[i + 1 : i + 3])
        if i < n - 2 and (two in _SINGULAR or two in _PLURAL):
            if two in _PLURAL and t not in ("a", "an", "one"):
                objs.append(_SINGULAR[_PLURAL.index(two)])
                if t in WORD_TO_NUM:
                    nums.append(WORD_TO_NUM[t])
            else:
                nums.append(1)
                objs.append(two)
        elif i + 1 >= n:
            return None  # doc[i+1]: IndexError
        elif tokens[i + 1] in _SINGULAR or tokens[i + 1] in _PLURAL:
            if tokens[i + 1] in _SINGULAR and t in ("a", "an", "one"):
                nums.append(1)
                objs.append(tokens[i + 1])
            else:
                if tokens[i + 1] not in _PLURAL:
                    return None  # object_p.index: ValueError
                objs.append(_SINGULAR[_PLURAL.index(tokens[i + 1])])
                if t in WORD_TO_NUM:  # w2n.word_to_num raises on "a"/"an": the reference skips the number
                    nums.append(WORD_TO_NUM[t])
    return objs, nums
