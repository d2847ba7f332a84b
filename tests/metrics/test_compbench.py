"""compbench_spatial / compbench_numeracy against T2I-CompBench's UniDet_eval scripts.

Expected scores are worked out by hand from ``UniDet_eval/2D_spatial_eval.py`` and ``numeracy_eval.py``; the
``_ref_*`` functions below are those scripts' scoring code transcribed into the test (dict boxes, list.index,
the mutable name list), so the package's functions are compared with the reference code on random boxes too.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record, load_manifest
from tise_bench.errors import DataError
from tise_bench.metrics import compbench as cb
from tise_bench.registry import get_metric
from tise_bench.text import compbench as tx

NAMES = {0: "person", 1: "dog", 2: "cat", 3: "cell phone", 4: "boat", 5: "hot dog"}


# --- the reference's code, transcribed ------------------------------------------------------------------------
def _ref_determine_position(locality, box1, box2, iou_threshold=0.1, distance_threshold=150):
    box1_center = ((box1["x_min"] + box1["x_max"]) / 2, (box1["y_min"] + box1["y_max"]) / 2)
    box2_center = ((box2["x_min"] + box2["x_max"]) / 2, (box2["y_min"] + box2["y_max"]) / 2)
    x_distance = box2_center[0] - box1_center[0]
    y_distance = box2_center[1] - box1_center[1]
    x_overlap = max(0, min(box1["x_max"], box2["x_max"]) - max(box1["x_min"], box2["x_min"]))
    y_overlap = max(0, min(box1["y_max"], box2["y_max"]) - max(box1["y_min"], box2["y_min"]))
    intersection = x_overlap * y_overlap
    box1_area = (box1["x_max"] - box1["x_min"]) * (box1["y_max"] - box1["y_min"])
    box2_area = (box2["x_max"] - box2["x_min"]) * (box2["y_max"] - box2["y_min"])
    union = box1_area + box2_area - intersection
    iou = intersection / union
    score = 0
    if locality in ["next to", "on side of", "near"]:
        if abs(x_distance) < distance_threshold or abs(y_distance) < distance_threshold:
            score = 1
        else:
            score = distance_threshold / max(abs(x_distance), abs(y_distance))
    elif locality == "on the right of":
        if x_distance < 0:
            if abs(x_distance) > abs(y_distance) and iou < iou_threshold:
                score = 1
            elif abs(x_distance) > abs(y_distance) and iou >= iou_threshold:
                score = iou_threshold / iou
        else:
            score = 0
    elif locality == "on the left of":
        if x_distance > 0:
            if abs(x_distance) > abs(y_distance) and iou < iou_threshold:
                score = 1
            elif abs(x_distance) > abs(y_distance) and iou >= iou_threshold:
                score = iou_threshold / iou
        else:
            score = 0
    elif locality == "on the bottom of":
        if y_distance < 0:
            if abs(y_distance) > abs(x_distance) and iou < iou_threshold:
                score = 1
            elif abs(y_distance) > abs(x_distance) and iou >= iou_threshold:
                score = iou_threshold / iou
    elif locality == "on the top of":
        if y_distance > 0:
            if abs(y_distance) > abs(x_distance) and iou < iou_threshold:
                score = 1
            elif abs(y_distance) > abs(x_distance) and iou >= iou_threshold:
                score = iou_threshold / iou
    else:
        score = 0
    return score


def _ref_spatial(obj1, obj2, locality, obj, obj_bounding_box, instance_score):
    person = ["girl", "boy", "man", "woman"]
    if obj1 in person:
        obj1 = "person"
    if obj2 in person:
        obj2 = "person"
    if obj1 in obj and obj2 in obj:
        obj1_bb, obj2_bb = obj_bounding_box[obj.index(obj1)], obj_bounding_box[obj.index(obj2)]
        box1 = dict(x_min=obj1_bb[0], y_min=obj1_bb[1], x_max=obj1_bb[2], y_max=obj1_bb[3])
        box2 = dict(x_min=obj2_bb[0], y_min=obj2_bb[1], x_max=obj2_bb[2], y_max=obj2_bb[3])
        score = 0.25 * instance_score[obj.index(obj1)] + 0.25 * instance_score[obj.index(obj2)]
        score += _ref_determine_position(locality, box1, box2) / 2
    elif obj1 in obj:
        score = 0.25 * instance_score[obj.index(obj1)]
    elif obj2 in obj:
        score = 0.25 * instance_score[obj.index(obj2)]
    else:
        score = 0
    if score < 0.5:
        score = 0
    return score


def _ref_calculate_iou(bbox1, bbox2):
    x1_1, y1_1, x2_1, y2_1 = bbox1
    x1_2, y1_2, x2_2, y2_2 = bbox2
    x1_inter, y1_inter = max(x1_1, x1_2), max(y1_1, y1_2)
    x2_inter, y2_inter = min(x2_1, x2_2), min(y2_1, y2_2)
    intersection_area = max(0, x2_inter - x1_inter + 1) * max(0, y2_inter - y1_inter + 1)
    area_bbox1 = (x2_1 - x1_1 + 1) * (y2_1 - y1_1 + 1)
    area_bbox2 = (x2_2 - x1_2 + 1) * (y2_2 - y1_2 + 1)
    iou = intersection_area / float(area_bbox1 + area_bbox2 - intersection_area)
    if iou > 0.9 or (intersection_area / float(area_bbox1) > 0.9) or (intersection_area / float(area_bbox2) > 0.9):
        return 1
    return 0


def _ref_numeracy(my_obj, num_obj, obj, obj_bounding_box):
    new_obj, new_bbox = [], []
    for i in range(len(obj)):
        flag = 0
        for j in range(len(new_obj)):
            if _ref_calculate_iou(obj_bounding_box[i], new_bbox[j]) and obj[i] == new_obj[j]:
                flag = 1
                break
        if flag == 0:
            new_obj.append(obj[i])
            new_bbox.append(obj_bounding_box[i])
    score = 0
    weight = 1.0 / len(my_obj)
    for i, my_obj_i in enumerate(my_obj):
        if my_obj_i in ["boy", "girl", "man", "woman"]:
            my_obj_i = "person"
        if my_obj_i == "ship":
            my_obj_i = "boat"
        if my_obj_i == "telivision":
            my_obj_i = "tv"
        if my_obj_i == "goldfish":
            my_obj_i = "fish"
        if my_obj_i == "painting":
            my_obj_i = "picture"
        if my_obj_i not in new_obj:
            for j, obj_i in enumerate(new_obj):
                if my_obj_i in obj_i:
                    new_obj[j] = my_obj_i
        if my_obj_i in new_obj:
            score += 0.5 * weight
            num_det = new_obj.count(my_obj_i)
            if num_det == num_obj[i]:
                score += 0.5 * weight
    return score


# --- constants ---------------------------------------------------------------------------------------------
def test_reference_constants_are_pinned():
    assert tx.SPATIAL_RELATIONS == (
        "on side of",
        "next to",
        "near",
        "on the left of",
        "on the right of",
        "on the bottom of",
        "on the top of",
        "on top of",
    )
    assert cb.IOU_THRESHOLD == 0.1 and cb.DISTANCE_THRESHOLD == 150.0 and cb.SCORE_FLOOR == 0.5
    assert cb.CONFIDENCE == 0.5 and cb.UNIDET_RESIZE == (479, 480) and cb.DUPLICATE_OVERLAP == 0.9
    assert tx.PERSON_WORDS == ("girl", "boy", "man", "woman")
    assert tx.NUMBER_WORDS == ("a", "an", "one", "two", "three", "four", "five", "six", "seven", "eight")
    assert tx.WORD_TO_NUM == {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
    assert tx.NUMERACY_ALIASES == {
        "boy": "person",
        "girl": "person",
        "man": "person",
        "woman": "person",
        "ship": "boat",
        "telivision": "tv",
        "goldfish": "fish",
        "painting": "picture",
    }
    # examples/dataset/new_objects.txt: 101 lines, first, last and the irregular plurals
    assert len(tx.NEW_OBJECTS) == 101 and tx.NEW_OBJECTS[0] == ("bottle", "bottles")
    assert tx.NEW_OBJECTS[-1] == ("apple", "apples")
    pairs = dict(tx.NEW_OBJECTS)
    assert pairs["man"] == "men" and pairs["mouse"] == "mice" and pairs["person"] == "people"
    assert pairs["fish"] == "fish" and pairs["knife"] == "knives" and pairs["strawberry"] == "strawberries"


def test_unidet_frame_is_torchvision_resize_479_max_480():
    assert cb.unidet_frame(512, 512) == (479, 479)
    assert cb.unidet_frame(1024, 768) == (480, 360)  # long side capped: int(480 * 479 / 638) = 360
    assert cb.unidet_frame(300, 600) == (240, 480)
    assert cb.unidet_frame(479, 480) == (479, 480)


# --- 2D spatial --------------------------------------------------------------------------------------------
A = (100.0, 100.0, 150.0, 150.0)  # centre (125, 125)


@pytest.mark.parametrize(
    "relation, box_b, want",
    [
        ("on the left of", (300, 100, 350, 150), 1.0),  # B right of A: dx = 200 > 0, |dx| > |dy|
        ("on the left of", (0, 100, 50, 150), 0.0),  # dx < 0
        ("on the right of", (0, 100, 50, 150), 1.0),
        ("on the right of", (300, 100, 350, 150), 0.0),
        ("on the top of", (100, 300, 150, 350), 1.0),  # B below A (y down): A on top
        ("on the top of", (100, 0, 150, 50), 0.0),
        ("on the bottom of", (100, 0, 150, 50), 1.0),
        ("on the bottom of", (100, 300, 150, 350), 0.0),
        ("on the left of", (200, 220, 250, 270), 0.0),  # dx = 100 < dy = 120: vertical wins, left fails
        ("on the top of", (200, 220, 250, 270), 1.0),
        ("on the left of", (175, 175, 225, 225), 0.0),  # tie |dx| = |dy| = 75: neither axis wins
        ("on the top of", (175, 175, 225, 225), 0.0),
        ("near", (175, 175, 225, 225), 1.0),
        ("on the left of", (125, 100, 175, 150), 0.1 / (1250 / 3750)),  # IoU 1/3 >= 0.1 -> 0.1/IoU = 0.3
        ("on the left of", (145, 100, 195, 150), 1.0),  # IoU 250/4750 = 0.0526 < 0.1
        ("next to", (500, 100, 550, 150), 1.0),  # |dy| = 0 < 150
        ("near", (500, 500, 550, 550), 150 / 400),  # both 400 -> 150 / 400
        ("on side of", (400, 600, 450, 650), 150 / 500),  # 300, 500 -> 150 / max
        ("on top of", (100, 300, 150, 350), 0.0),  # in the vocabulary, no rule in determine_position
        (None, (300, 100, 350, 150), 0.0),
    ],
)
def test_determine_position_by_hand(relation, box_b, want):
    assert cb.determine_position(relation, A, box_b) == pytest.approx(want, abs=1e-12)


def test_determine_position_equals_the_reference_code_on_random_boxes():
    rng = np.random.default_rng(0)
    for _ in range(600):
        b = []
        for _ in range(2):
            x, y = rng.uniform(0, 400, 2)
            w, h = rng.uniform(5, 200, 2)
            b.append((float(x), float(y), float(x + w), float(y + h)))
        d = [dict(x_min=x[0], y_min=x[1], x_max=x[2], y_max=x[3]) for x in b]
        for rel in tx.SPATIAL_RELATIONS:
            assert cb.determine_position(rel, b[0], b[1]) == pytest.approx(_ref_determine_position(rel, d[0], d[1]))


def test_spatial_score_by_hand():
    far = [(0, 100, 50, 150), (300, 100, 350, 150)]
    # both found, position 1: 0.25 * (0.9 + 0.8) + 1/2 = 0.925
    assert cb.spatial_score("dog", "on the left of", "cat", ["dog", "cat"], far, [0.9, 0.8]) == pytest.approx(0.925)
    # wrong side: 0.25 * 1.7 = 0.425 < 0.5 -> 0
    assert cb.spatial_score("cat", "on the left of", "dog", ["dog", "cat"], far, [0.9, 0.8]) == 0.0
    # position 0.3 (IoU 1/3): 0.25 * 1.2 + 0.15 = 0.45 -> 0; at scores 1.0: 0.5 + 0.15 = 0.65
    ov = [(100, 100, 150, 150), (125, 100, 175, 150)]
    assert cb.spatial_score("dog", "on the left of", "cat", ["dog", "cat"], ov, [0.6, 0.6]) == 0.0
    assert cb.spatial_score("dog", "on the left of", "cat", ["dog", "cat"], ov, [1.0, 1.0]) == pytest.approx(0.65)
    # one object missing: 0.25 * s <= 0.25 -> 0; both missing -> 0
    assert cb.spatial_score("dog", "near", "cat", ["dog"], far[:1], [1.0]) == 0.0
    assert cb.spatial_score("dog", "near", "cat", [], [], []) == 0.0
    # several dogs: the first row (highest score) is used: dog at x=400 is right of the cat -> 0
    rows = ["dog", "cat", "dog"]
    boxes = [(400, 100, 450, 150), (300, 100, 350, 150), (0, 100, 50, 150)]
    assert cb.spatial_score("dog", "on the left of", "cat", rows, boxes, [0.9, 0.8, 0.7]) == 0.0
    # girl/boy/man/woman -> person
    assert cb.spatial_score("girl", "on the left of", "cat", ["person", "cat"], far, [0.9, 0.8]) == pytest.approx(0.925)
    # the same class twice: the same box twice, dx = 0 -> left fails (0.5 * s < 0.5), near passes
    assert cb.spatial_score("dog", "on the left of", "dog", ["dog"], far[:1], [0.9]) == 0.0
    assert cb.spatial_score("dog", "near", "dog", ["dog"], far[:1], [0.9]) == pytest.approx(0.95)


def test_spatial_score_equals_the_reference_code_on_random_detections():
    rng = np.random.default_rng(1)
    classes = ["dog", "cat", "person", "boat"]
    for _ in range(400):
        n = int(rng.integers(0, 6))
        names = [classes[int(c)] for c in rng.integers(0, 4, n)]
        xy = rng.uniform(0, 400, (n, 2))
        wh = rng.uniform(5, 150, (n, 2))
        boxes = [tuple(map(float, (*p, *(p + s)))) for p, s in zip(xy, wh)]
        scores = sorted(rng.uniform(0.5, 1.0, n).tolist(), reverse=True)
        a, b = (str(x) for x in rng.choice(["dog", "cat", "man", "boat", "zebra"], 2))
        for rel in tx.SPATIAL_RELATIONS:
            got = cb.spatial_score(a, rel, b, names, boxes, scores)
            assert got == pytest.approx(_ref_spatial(a, b, rel, names, boxes, scores))


# --- prompt parsing ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "caption, want",
    [
        ("a giraffe next to a lamp", ("giraffe", "next to", "lamp")),
        ("a mouse on side of a key", ("mouse", "on side of", "key")),
        ("a bird on side of a airplane", ("bird", "on side of", "airplane")),
        ("an apple near a dog", ("apple", "near", "dog")),
        ("a girl on the top of a frog", ("girl", "on the top of", "frog")),
        ("a bicycle on the bottom of a girl", ("bicycle", "on the bottom of", "girl")),
        ("a sheep on the left of a lamp", ("sheep", "on the left of", "lamp")),
        ("a bee on the right of a refrigerator", ("bee", "on the right of", "refrigerator")),
        ("a cat on top of a dog", ("cat", "on top of", "dog")),
        ("a  dog   next to a cat", ("dog", "next to", "cat")),
        ("two dogs next to a cat", None),
        ("a red dog on the left of a cat", None),
        ("a dog and a cat", None),
    ],
)
def test_parse_spatial_on_compbench_templates(caption, want):
    assert tx.parse_spatial(caption) == want


@pytest.mark.parametrize(
    "caption, want",
    [
        ("two boys", (["boy"], [2])),
        ("six airplanes", (["airplane"], [6])),
        ("one turtle", (["turtle"], [1])),
        ("seven women", (["woman"], [7])),
        ("three fish", (["fish"], [3])),  # fish is its own plural
        ("eight mice", (["mouse"], [8])),
        ("six people gathered for a picnic", (["person"], [6])),  # "a picnic": not a CompBench noun
        ("an apple", (["apple"], [1])),
        ("four cameras and three horses", (["camera", "horse"], [4, 3])),
        (
            "three couches, one man, one rabbit, three bicycles and one backpack",
            (["couch", "man", "rabbit", "bicycle", "backpack"], [3, 1, 1, 3, 1]),
        ),
        ("one dogs", (["dog"], [1])),  # "one" + plural: singular, w2n("one") = 1
        ("a dogs", (["dog"], [])),  # w2n("a") raises: the number is lost (lists out of step)
        ("two dog", None),  # object_p.index("dog"): ValueError in the reference
        ("the dog saw two", None),  # number word last: doc[i+1] IndexError
        ("Two dogs", ([], [])),  # case-sensitive, as the reference
        ("five hamburgers sizzled on the grill", (["hamburger"], [5])),
    ],
)
def test_parse_numeracy_on_compbench_prompts(caption, want):
    assert tx.parse_numeracy(tx.tokenize(caption)) == want


def test_tokenize_splits_punctuation_as_spacy():
    assert tx.tokenize("three couches, one man.") == ["three", "couches", ",", "one", "man", "."]


# --- numeracy ----------------------------------------------------------------------------------------------
def test_numeracy_score_by_hand():
    apart = [(0, 0, 10, 10), (100, 100, 120, 120), (200, 0, 230, 30)]
    # two dogs, both found: 0.5 + 0.5
    assert cb.numeracy_score(["dog"], [2], ["dog", "dog"], apart[:2]) == 1.0
    # three dogs but two found: 0.5 only
    assert cb.numeracy_score(["dog"], [3], ["dog", "dog"], apart[:2]) == 0.5
    # missing: 0
    assert cb.numeracy_score(["dog"], [1], ["cat"], apart[:1]) == 0.0
    assert cb.numeracy_score(["dog"], [1], [], []) == 0.0
    # two nouns, weight 1/2 each: dogs count right (0.5), cat found with the wrong count (0.25)
    assert cb.numeracy_score(["dog", "cat"], [2, 2], ["dog", "cat", "dog"], apart) == pytest.approx(0.75)
    # duplicates: a second dog box covering > 0.9 of the first is the same dog -> count 1
    dup = [(0, 0, 100, 100), (2, 2, 99, 99)]
    assert cb.numeracy_score(["dog"], [2], ["dog", "dog"], dup) == 0.5
    assert cb.numeracy_score(["dog"], [1], ["dog", "dog"], dup) == 1.0
    # overlapping boxes of different classes are both kept
    assert cb.numeracy_score(["dog", "cat"], [1, 1], ["dog", "cat"], dup) == 1.0
    # aliases: women -> person; ship -> boat
    assert cb.numeracy_score(["woman"], [2], ["person", "person"], apart[:2]) == 1.0
    assert cb.numeracy_score(["ship"], [1], ["boat"], apart[:1]) == 1.0
    # substring relabel: "phone" is in "cell phone", which becomes "phone"
    assert cb.numeracy_score(["phone"], [1], ["cell phone"], apart[:1]) == 1.0
    # ... and "dog" in "hot dog": with no dog detected the hot dogs count as dogs
    assert cb.numeracy_score(["dog"], [2], ["hot dog", "hot dog"], apart[:2]) == 1.0
    # a zero in a structured field: found -> 0.5 only (count 1 != 0); not found -> 0
    assert cb.numeracy_score(["dog"], [0], ["dog"], apart[:1]) == 0.5
    with pytest.raises(ValueError, match="as many numbers as nouns"):
        cb.numeracy_score(["dog"], [], ["dog"], apart[:1])


def test_numeracy_score_equals_the_reference_code_on_random_detections():
    rng = np.random.default_rng(2)
    classes = ["dog", "cat", "person", "cell phone", "hot dog"]
    prompt_nouns = ["dog", "cat", "woman", "phone", "boat"]
    for _ in range(500):
        n = int(rng.integers(0, 8))
        names = [classes[int(c)] for c in rng.integers(0, len(classes), n)]
        xy = rng.uniform(0, 100, (n, 2))
        wh = rng.uniform(5, 60, (n, 2))
        boxes = [tuple(map(float, (*p, *(p + s)))) for p, s in zip(xy, wh)]
        k = int(rng.integers(1, 4))
        objs = [str(o) for o in rng.choice(prompt_nouns, k)]
        nums = [int(x) for x in rng.integers(0, 4, k)]
        assert cb.numeracy_score(objs, nums, names, boxes) == pytest.approx(_ref_numeracy(objs, nums, names, boxes))


def test_same_object_equals_calculate_iou():
    rng = np.random.default_rng(3)
    for _ in range(1000):
        b = [tuple(map(float, (*p, *(p + s)))) for p, s in zip(rng.uniform(0, 20, (2, 2)), rng.uniform(1, 30, (2, 2)))]
        assert cb.same_object(b[0], b[1]) == bool(_ref_calculate_iou(b[0], b[1]))


# --- the registered metrics ----------------------------------------------------------------------------------
def _dets(*rows, max_det=6):
    out = np.full((max_det, 6), -1.0, dtype=np.float32)
    for i, r in enumerate(rows):
        out[i] = r
    return out


def _ctx(subset, recs, dets, size=(479.0, 479.0)):
    return MetricContext(
        subset=subset,
        records=recs,
        samples=[Sample(i, 0, f"{i}.png", str(i)) for i in range(len(recs))],
        gen_features={
            "detector.detections": np.stack(dets),
            "detector.size": np.tile(np.asarray(size, np.float32), (len(recs), 1)),
        },
        extra={"class_names": NAMES, "detector": "yolov8x.pt"},
    )


def test_spatial_metric_scores_skips_and_bootstraps():
    recs = [
        Record("0", "a dog on the left of a cat"),
        Record("1", "a dog on the right of a cat"),
        Record(
            "2", "x", extra={"compbench": {"task": "spatial", "object_a": "man", "relation": "near", "object_b": "dog"}}
        ),
        Record("3", "a dog on the left of a frog"),  # frog: not a detector class -> skipped
        Record("4", "a dog beside a cat"),  # not CompBench's template -> skipped
        Record("5", "a dog on the left of a cat"),
    ]
    left = _dets([0, 100, 50, 150, 0.9, 1], [300, 100, 350, 150, 0.8, 2])
    dets = [
        left,
        left,
        _dets([0, 0, 50, 50, 0.7, 0], [20, 20, 60, 60, 0.9, 1]),  # man near dog: 0.25*1.6 + 0.5 = 0.9
        left,
        left,
        _dets([0, 100, 50, 150, 0.5, 1], [300, 100, 350, 150, 0.8, 2]),  # dog at exactly 0.5: not > 0.5
    ]
    mv = get_metric("compbench_spatial").compute(_ctx("spatial", recs, dets), {})
    want = [0.925, 0.0, 0.9, math.nan, math.nan, 0.0]
    np.testing.assert_allclose(mv.per_sample, want, equal_nan=True)
    assert mv.value == pytest.approx(np.nanmean(want)) and mv.n == 4
    assert mv.skipped == {"noun_not_in_detector": 1, "caption_not_parsed": 1}
    assert mv.extras["protocol"] == "T2I-CompBench rules, yolov8x.pt"
    assert mv.extras["reference"] == "Karine-Huang/T2I-CompBench UniDet_eval/2D_spatial_eval.py"
    assert mv.extras["parsed_from"] == {"caption": 3, "field": 1}
    assert mv.extras["nouns_not_in_detector"] == {"frog": 1}
    assert mv.resample(np.arange(len(recs))[None])[0] == pytest.approx(mv.value)


def test_spatial_metric_scales_boxes_to_the_unidet_frame():
    # 1024 x 1024 image: centres 300 px apart horizontally and vertically -> 140.3 px at 479 -> 'near' = 1
    recs = [Record("0", "a dog near a cat")]
    dets = [_dets([0, 0, 100, 100, 1.0, 1], [300, 300, 400, 400, 1.0, 2])]
    assert get_metric("compbench_spatial").compute(_ctx("spatial", recs, dets, (1024, 1024)), {}).value == 1.0
    # the same boxes on a 479 px image are 300 px apart -> 150 / 300 = 0.5 -> 0.5 + 0.25 = 0.75
    v = get_metric("compbench_spatial").compute(_ctx("spatial", recs, dets), {}).value
    assert v == pytest.approx(0.75)


def test_numeracy_metric_scores_and_skips():
    recs = [
        Record("0", "two dogs"),
        Record("1", "three cats and one dog"),
        Record("2", "x", extra={"compbench": {"task": "numeracy", "objects": ["dog"], "numbers": [0]}}),
        Record("3", "two frogs"),  # frog: not a detector class -> skipped
        Record("4", "a dogs"),  # the number is lost -> skipped
        Record("5", "nothing to count"),
    ]
    dets = [
        _dets([0, 0, 10, 10, 0.9, 1], [100, 100, 120, 120, 0.8, 1], [300, 0, 330, 30, 0.4, 1]),  # 0.4: not counted
        _dets([0, 0, 10, 10, 0.9, 2], [100, 100, 120, 120, 0.8, 2]),  # cats 2 of 3 (0.25), no dog
        _dets(),
        _dets(),
        _dets(),
        _dets(),
    ]
    mv = get_metric("compbench_numeracy").compute(_ctx("numeracy", recs, dets), {})
    want = [1.0, 0.25, 0.0, math.nan, math.nan, math.nan]
    np.testing.assert_allclose(mv.per_sample, want, equal_nan=True)
    assert mv.value == pytest.approx(np.nanmean(want)) and mv.n == 3
    assert mv.skipped == {"noun_not_in_detector": 1, "count_not_parsed": 1, "caption_not_parsed": 1}
    assert mv.extras["reference"] == "Karine-Huang/T2I-CompBench UniDet_eval/numeracy_eval.py"


def test_bad_field_names_the_record_and_the_expected_shape():
    recs = [Record("r7", "x", extra={"compbench": {"task": "spatial", "object_a": "dog", "relation": "under"}})]
    with pytest.raises(DataError, match=r"record 'r7'.*'compbench'.*relation"):
        get_metric("compbench_spatial").compute(_ctx("spatial", recs, [_dets()]), {})
    recs = [Record("r8", "x", extra={"compbench": {"task": "numeracy", "objects": ["dog"], "numbers": [1, 2]}})]
    with pytest.raises(DataError, match=r"record 'r8'.*same length"):
        get_metric("compbench_numeracy").compute(_ctx("numeracy", recs, [_dets()]), {})


def test_requires_a_parseable_record():
    spec = get_metric("compbench_spatial")
    assert spec.requires([Record("0", "a dog near a cat")], None) is None
    assert "compbench" in spec.requires([Record("0", "a photo")], None)
    assert get_metric("compbench_numeracy").requires([Record("0", "two dogs")], None) is None


# --- whole runs ----------------------------------------------------------------------------------------------
def _e2e_inputs(tmp_path):
    """data=compbench prepared from two small prompt files, a 64 x 48 image per prompt and planted detections."""
    import json

    from PIL import Image

    from tise_bench.prepare import prepare_compbench

    src = tmp_path / "cb"
    src.mkdir()
    (src / "spatial_val.txt").write_text(
        "a giraffe next to a lamp\na dog on the left of a cat\nan apple near a man\na red dog beside a cat\n"
    )
    (src / "numeracy_val.txt").write_text("two boys\nthree couches, one man and two dogs\nfour ducks\na dogs\n")
    paths = prepare_compbench(src, tmp_path / "data" / "compbench", log=None)
    gen = tmp_path / "gen"
    gen.mkdir()
    ids = [r.id for p in paths.values() for r in load_manifest(p)]
    for i, rid in enumerate(ids):
        Image.fromarray(np.full((48, 64, 3), 20 * i + 5, np.uint8)).save(gen / f"{rid}.png")
    planted = {  # file -> [(box in image pixels, class, score)]
        "spatial-0000.png": [([0, 0, 10, 10], "giraffe", 0.9)],
        "spatial-0001.png": [([2, 10, 12, 20], "dog", 0.9), ([40, 10, 50, 20], "cat", 0.8)],
        "spatial-0002.png": [([0, 0, 10, 10], "apple", 0.6), ([50, 40, 60, 48], "person", 0.7)],
        "numeracy-0000.png": [([0, 0, 10, 10], "person", 0.9), ([30, 0, 40, 10], "person", 0.8)],
        "numeracy-0001.png": [([0, 0, 10, 10], "couch", 0.9), ([20, 0, 30, 10], "couch", 0.9)]
        + [([40, 0, 50, 10], "couch", 0.9), ([0, 30, 10, 40], "person", 0.9), ([20, 30, 30, 40], "dog", 0.9)],
    }
    images = {
        f"{rid}.png": {
            "boxes": [b for b, _, _ in planted.get(f"{rid}.png", [])],
            "classes": [c for _, c, _ in planted.get(f"{rid}.png", [])],
            "scores": [s for _, _, s in planted.get(f"{rid}.png", [])],
        }
        for rid in ids
    }
    js = tmp_path / "dets.json"
    js.write_text(json.dumps({"format": "tise_bench-detections-v1", "detector": "planted boxes", "images": images}))
    return gen, js


def _run(tmp_path, gen, *extra):
    from hydra import compose, initialize_config_module

    from tise_bench.runner import run

    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        cfg = compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                f"paths.cache_dir={tmp_path / 'cache'}",
                f"paths.results_dir={tmp_path / 'res'}",
                f"paths.data_root={tmp_path / 'data'}",
                "progress=false",
                "print_table=false",
                "model=folder",
                "model.name=mine",
                f"model.samples_dir={gen}",
                "data=compbench",
                "bootstrap.replicates=20",
                *extra,
            ],
        )
    [res] = run(cfg)
    return res, tmp_path / "res" / "compbench" / "mine"


def test_run_on_planted_detections_gives_the_hand_computed_scores(tmp_path):
    import json

    import pandas as pd

    gen, js = _e2e_inputs(tmp_path)
    res, folder = _run(tmp_path, gen, f"backbones.detector.imported={js}")
    # 64 x 48 images -> UniDet frame 480 x 360 (x 7.5). spatial-0001: dx = 38 * 7.5 > |dy| = 0 -> left = 1,
    # 0.25 * (0.9 + 0.8) + 0.5 = 0.925; spatial-0002: dx = 375, dy = 292.5 -> near = 150/375 = 0.4,
    # 0.25 * 1.3 + 0.2 = 0.525; 0000 (lamp) and 0003 (not the template) skipped.
    spatial = (0.925 + 0.525) / 2
    # numeracy-0000: two persons for "two boys" -> 1; -0001: couches 3/3 (1/3), man 1/1 (1/3), dogs 1/2 (1/6)
    numeracy = (1.0 + 5 / 6) / 2
    assert res.metrics["compbench_spatial"].value == pytest.approx(spatial)
    assert res.metrics["compbench_numeracy"].value == pytest.approx(numeracy)
    mj = json.loads((folder / "metrics.json").read_text())
    sp = mj["metrics"]["compbench_spatial"]
    assert sp["protocol"] == "T2I-CompBench rules, planted boxes" and sp["n"] == 2
    assert sp["skipped"] == {"noun_not_in_detector": 1, "caption_not_parsed": 1}
    assert mj["metrics"]["compbench_numeracy"]["skipped"] == {"noun_not_in_detector": 1, "count_not_parsed": 1}
    for m in ("compbench_spatial", "compbench_numeracy"):
        assert mj["bootstrap"]["metrics"][m]["identity"] == pytest.approx(mj["metrics"][m]["value"], rel=1e-12)
    df = pd.read_parquet(folder / "samples.parquet")
    got = {(r.id, m): r[m] for _, r in df.iterrows() for m in ("compbench_spatial", "compbench_numeracy")}
    assert got[("spatial-0001", "compbench_spatial")] == pytest.approx(0.925)
    assert got[("spatial-0002", "compbench_spatial")] == pytest.approx(0.525)
    assert math.isnan(got[("spatial-0000", "compbench_spatial")])
    assert got[("numeracy-0001", "compbench_numeracy")] == pytest.approx(5 / 6)


def test_run_with_the_random_detector(tmp_path):
    import json

    gen, _ = _e2e_inputs(tmp_path)
    res, folder = _run(tmp_path, gen)
    mj = json.loads((folder / "metrics.json").read_text())
    assert mj["metrics"]["compbench_numeracy"]["protocol"] == (
        "T2I-CompBench rules, yolov8n.yaml (random seed 0); random-weights detector"
    )
    for m in ("compbench_spatial", "compbench_numeracy"):
        mv = res.metrics[m]
        assert mv.extras["protocol"].startswith("T2I-CompBench rules, yolov8n.yaml (random seed 0)")
        assert mv.n == 2 and 0.0 <= mv.value <= 1.0
