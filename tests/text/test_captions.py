"""Caption analysis: a table of COCO-style captions with expected classes, positional words, counts."""

from __future__ import annotations

import pytest

from tise_bench.text import (
    COUNT_WORDS,
    OPPOSITES,
    POSITIONAL_WORDS,
    ClassMention,
    counter_caption,
    find_classes,
    find_counts,
    find_positional,
)

# caption, classes in order of mention, positional words in order, exact counts
TABLE: list[tuple[str, list[str], list[str], dict[str, int]]] = [
    ("A man riding a horse on the beach", ["person", "horse"], ["on"], {"person": 1, "horse": 1}),
    ("Two giraffes standing near a tree", ["giraffe"], ["near"], {"giraffe": 2}),
    ("A hot dog on a plate", ["hot dog"], ["on"], {"hot dog": 1}),
    ("Three sheep in a field", ["sheep"], [], {"sheep": 3}),
    ("A sheep grazing on a hill", ["sheep"], ["on"], {"sheep": 1}),
    ("A group of people on skis", ["person", "skis"], ["on"], {}),
    ("A teddy bear sitting on top of a bed", ["teddy bear", "bed"], ["on top of"], {"teddy bear": 1, "bed": 1}),
    ("A lefty pitcher throws the ball", ["person", "sports ball"], [], {"person": 1}),
    ("I understand the onion", [], [], {}),
    ("Only one lemon on the farm is bright", [], ["on"], {}),
    (
        "A traffic light above a stop sign",
        ["traffic light", "stop sign"],
        ["above"],
        {"traffic light": 1, "stop sign": 1},
    ),
    ("The light is on", [], ["on"], {}),
    ("A brown bear walking behind a tree", ["bear"], ["behind"], {"bear": 1}),
    ("A cat to the left of a dog", ["cat", "dog"], ["left"], {"cat": 1, "dog": 1}),
    ("A laptop on the right side of the desk", ["laptop"], ["right"], {"laptop": 1}),
    ("Two small brown dogs playing with a frisbee", ["dog", "frisbee"], [], {"dog": 2, "frisbee": 1}),
    ("two dog sitting in the grass", ["dog"], [], {}),
    ("a dogs bed", ["dog", "bed"], [], {}),
    (
        "Two men and a woman standing in front of a bus",
        ["person", "person", "bus"],
        ["in front of"],
        {"person": 3, "bus": 1},
    ),
    ("Several people walking down the street with umbrellas", ["person", "umbrella"], [], {}),
    ("A couple of dogs lying on a couch", ["dog", "couch"], ["on"], {"couch": 1}),
    ("A pair of scissors next to a toothbrush", ["scissors", "toothbrush"], [], {"toothbrush": 1}),
    ("A herd of sheep on a hillside", ["sheep"], ["on"], {}),
    ("A couple sheep grazing by a fence", ["sheep"], [], {}),
    ("A lot of bananas and a bunch of apples", ["banana", "apple"], [], {}),
    ("A motorbike parked beside two motorcycles", ["motorcycle", "motorcycle"], [], {"motorcycle": 3}),
    ("A jet flying above the clouds", ["airplane"], ["above"], {"airplane": 1}),
    ("Four planes flying in formation", ["airplane"], [], {"airplane": 4}),
    ("A sofa and a TV in a living room", ["couch", "tv"], [], {"couch": 1, "tv": 1}),
    ("A woman talking on her cell phone", ["person", "cell phone"], ["on"], {"person": 1}),
    (
        "A computer mouse between a keyboard and a laptop",
        ["mouse", "keyboard", "laptop"],
        ["between"],
        {"mouse": 1, "keyboard": 1, "laptop": 1},
    ),
    ("Two mice next to a keyboard", ["mouse", "keyboard"], [], {"mouse": 2, "keyboard": 1}),
    ("A knife and two forks beside a bowl", ["knife", "fork", "bowl"], [], {"knife": 1, "fork": 2, "bowl": 1}),
    ("Knives on a cutting board", ["knife"], ["on"], {}),
    ("Two buses parked outside a station", ["bus"], ["outside"], {"bus": 2}),
    ("A bench under a tree in the park", ["bench"], ["under"], {"bench": 1}),
    ("Three benches far from the road", ["bench"], ["far"], {"bench": 3}),
    ("A skier going down a snowy slope on skis", ["person", "skis"], ["on"], {"person": 1}),
    ("A fire hydrant below a street sign", ["fire hydrant"], ["below"], {"fire hydrant": 1}),
    (
        "Two wine glasses on a dining table",
        ["wine glass", "dining table"],
        ["on"],
        {"wine glass": 2, "dining table": 1},
    ),
    ("A baseball player swinging a baseball bat", ["person", "baseball bat"], [], {"person": 1, "baseball bat": 1}),
    ("A boy holding a tennis racket", ["person", "tennis racket"], [], {"person": 1, "tennis racket": 1}),
    ("A cat inside a suitcase", ["cat", "suitcase"], ["inside"], {"cat": 1, "suitcase": 1}),
    ("A dog's head resting on a pillow", ["dog"], ["on"], {"dog": 1}),
    ("Dogs, cats, and birds", ["dog", "cat", "bird"], [], {}),
    ("A left-handed batter at the plate", ["person"], [], {"person": 1}),
    ("A man on a jet ski waiting at a bus stop", ["person"], ["on"], {"person": 1}),
    ("A microwave oven above a stove", ["microwave", "oven"], ["above"], {"microwave": 1, "oven": 1}),
    ("2 elephants and 1 zebra near a river", ["elephant", "zebra"], ["near"], {"elephant": 2, "zebra": 1}),
    ("Two dogs play. The dogs are happy", ["dog", "dog"], [], {"dog": 2}),
    ("A man and his kids on a beach", ["person", "person"], ["on"], {}),
    ("An elephant standing in a very big muddy pond", ["elephant"], [], {"elephant": 1}),
    ("Two very large old brown trucks", ["truck"], [], {}),
    ("A kitten sitting at the bottom of the stairs", ["cat"], ["bottom"], {"cat": 1}),
    ("Man-made pond with ducks", ["bird"], [], {}),
    ("A PIZZA ON A TABLE", ["pizza", "dining table"], ["on"], {"pizza": 1, "dining table": 1}),
    ("Children playing in a farmyard with a hot-dog", ["person", "hot dog"], [], {"hot dog": 1}),
]


@pytest.mark.parametrize("caption,classes,positional,counts", TABLE, ids=[r[0] for r in TABLE])
def test_caption_table(caption: str, classes: list[str], positional: list[str], counts: dict[str, int]) -> None:
    assert [m.name for m in find_classes(caption)] == classes
    assert [p.word for p in find_positional(caption)] == positional
    assert find_counts(caption) == counts


def test_table_is_large_enough() -> None:
    assert len(TABLE) >= 40


def test_mentions_carry_phrase_span_and_number() -> None:
    caption = "Two Teddy Bears and a hot-dog, plus sheep."
    ms = find_classes(caption)
    assert ms == [
        ClassMention("teddy bear", "Teddy Bears", (4, 15), True),
        ClassMention("hot dog", "hot-dog", (22, 29), False),
        ClassMention("sheep", "sheep", (36, 41), None),
    ]
    assert all(caption[m.span[0] : m.span[1]] == m.phrase for m in ms)


@pytest.mark.parametrize(
    "caption,absent",
    [
        ("A hot dog on a bun", "dog"),
        ("A teddy bear on a shelf", "bear"),
        ("A traffic light on a pole", "light"),
        ("A baseball glove on the grass", "sports ball"),
        ("A microwave oven", "oven"),
        ("A train car on the tracks", "car"),
    ],
)
def test_longest_phrase_wins(caption: str, absent: str) -> None:
    assert absent not in [m.name for m in find_classes(caption)]


@pytest.mark.parametrize(
    "caption",
    [
        "A catalog of doges",
        "Scattered hotdogging",
        "The manager",
        "bearing",
        "A tiebreaker",
        "carpet",
        "bus-stop benchmark",
    ],
)
def test_no_match_inside_words(caption: str) -> None:
    assert find_classes(caption) == []


@pytest.mark.parametrize(
    "caption,word",
    [
        ("A lefty", None),
        ("understand it", None),
        ("onion one only lemon", None),
        ("a farm", None),
        ("bright lights", None),
        ("nearby", None),
        ("in front of", "in front of"),
        ("behind", "behind"),
        ("on the top of the hill", "on top of"),
        ("to the far right", "right"),
    ],
)
def test_positional_traps(caption: str, word: str | None) -> None:
    assert [p.word for p in find_positional(caption)] == ([word] if word else [])


def test_positional_words_match_spec_and_opposites() -> None:
    assert set(POSITIONAL_WORDS) == {
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
    }
    assert set(POSITIONAL_WORDS) <= set(OPPOSITES)
    for w, o in OPPOSITES.items():
        if o is not None and w != "on top of":
            # "near" -> "far from" (grammar); its opposite is "far" -> "near"
            norm = {"far from": "far"}
            o = norm.get(o, o)
            assert norm.get(OPPOSITES[o], OPPOSITES[o]) == w or (w, o) == ("under", "on")
    assert OPPOSITES["between"] is None and OPPOSITES["on top of"] == "under"


@pytest.mark.parametrize(
    "caption,word,expected",
    [
        ("A man riding a horse on the beach", "on", "A man riding a horse under the beach"),
        ("A cat under a table", "under", "A cat on a table"),
        ("A teddy bear sitting on top of a bed", "on top of", "A teddy bear sitting under a bed"),
        ("A cat to the left of a dog", "left", "A cat to the right of a dog"),
        ("Left of the bus is a car", "left", "Right of the bus is a car"),
        ("In front of a house stands a dog", "in front of", "Behind a house stands a dog"),
        ("A dog BEHIND a fence", "behind", "A dog IN FRONT OF a fence"),
        ("Two giraffes standing near a tree", "near", "Two giraffes standing far from a tree"),
        ("A farm far away", "far", "A farm near away"),
        ("A box inside a box outside", "outside", "A box inside a box inside"),
        ("A dog at the bottom of the stairs", "bottom", "A dog at the top of the stairs"),
        ("A bird above a bright sky", "above", "A bird below a bright sky"),
    ],
)
def test_counter_caption(caption: str, word: str, expected: str) -> None:
    assert counter_caption(caption, word) == expected


def test_counter_caption_occurrence_and_none() -> None:
    caption = "A cup on a plate on a table"
    assert counter_caption(caption, "on", occurrence=1) == "A cup on a plate under a table"
    assert counter_caption(caption, "on", occurrence=2) is None
    assert counter_caption("A dog between two cats", "between") is None
    assert counter_caption("I understand the onion", "under") is None
    assert counter_caption("A cat to the left of a dog", "on") is None  # "on the left" is left
    with pytest.raises(ValueError, match="not a positional word"):
        counter_caption("A cat", "beside")


def test_count_words() -> None:
    assert COUNT_WORDS["a"] == COUNT_WORDS["an"] == COUNT_WORDS["one"] == 1
    assert COUNT_WORDS["ten"] == 10 and COUNT_WORDS["3"] == 3
