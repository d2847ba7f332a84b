"""COCO class data: order, official ids, and the word list's integrity."""

from __future__ import annotations

import pytest

from tise_bench.text import (
    BLOCKED_PHRASES,
    CATEGORY_ID_TO_CLASS,
    CLASS_TO_CATEGORY_ID,
    CLASS_TO_INDEX,
    CLASS_WORDS,
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    PHRASE_INDEX,
    class_phrases,
    find_classes,
)


def test_eighty_classes_in_standard_order() -> None:
    assert len(COCO_CLASSES) == len(set(COCO_CLASSES)) == 80
    assert COCO_CLASSES[:3] == ("person", "bicycle", "car")
    assert COCO_CLASSES[9:13] == ("traffic light", "fire hydrant", "stop sign", "parking meter")
    assert COCO_CLASSES[32] == "sports ball" and COCO_CLASSES[52] == "hot dog"
    assert COCO_CLASSES[-3:] == ("teddy bear", "hair drier", "toothbrush")
    assert CLASS_TO_INDEX["dining table"] == 60 and CLASS_TO_INDEX["tv"] == 62


def test_official_category_ids() -> None:
    assert len(COCO_CATEGORY_IDS) == 80 and list(COCO_CATEGORY_IDS) == sorted(set(COCO_CATEGORY_IDS))
    assert COCO_CATEGORY_IDS[0] == 1 and COCO_CATEGORY_IDS[-1] == 90
    missing = set(range(1, 91)) - set(COCO_CATEGORY_IDS)
    assert missing == {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert CLASS_TO_CATEGORY_ID["stop sign"] == 13 and CLASS_TO_CATEGORY_ID["dining table"] == 67
    assert CATEGORY_ID_TO_CLASS[88] == "teddy bear" and CATEGORY_ID_TO_CLASS[1] == "person"


def test_every_class_has_words_and_matches_its_own_forms() -> None:
    assert list(CLASS_WORDS) == list(COCO_CLASSES)
    for cls in COCO_CLASSES:
        phrases = class_phrases(cls)
        assert phrases, cls
        for phrase, plural in phrases.items():
            assert phrase == phrase.lower().strip() and "  " not in phrase
            assert PHRASE_INDEX[phrase] == (cls, plural)
            ms = find_classes(f"there is {phrase} here")
            assert [(m.name, m.is_plural) for m in ms] == [(cls, plural)], phrase


@pytest.mark.parametrize(
    "cls,phrase,plural",
    [
        ("person", "people", True),
        ("person", "men", True),
        ("person", "woman", False),
        ("person", "children", True),
        ("motorcycle", "motorbike", False),
        ("airplane", "aircraft", None),
        ("couch", "sofa", False),
        ("tv", "television", False),
        ("dining table", "table", False),
        ("cell phone", "cellphone", False),
        ("sheep", "sheep", None),
        ("mouse", "mice", True),
        ("knife", "knives", True),
        ("bus", "buses", True),
        ("bench", "benches", True),
        ("skis", "skis", True),
        ("hot dog", "hot dogs", True),
        ("wine glass", "wine glasses", True),
    ],
)
def test_required_forms(cls: str, phrase: str, plural: bool | None) -> None:
    assert class_phrases(cls)[phrase] is plural


def test_conservative_omissions_and_blocks() -> None:
    for word in ("ski", "glass", "orange", "glove", "baseball", "monitor", "telephone"):
        assert word not in PHRASE_INDEX, word
    assert not set(BLOCKED_PHRASES) & set(PHRASE_INDEX)
    with pytest.raises(KeyError, match="unknown COCO class"):
        class_phrases("unicorn")
