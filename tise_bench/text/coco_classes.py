"""The 80 COCO detection classes, their official category ids, and a per-class word list.

Class names and order are those of COCO / ultralytics (index 0..79); ids are the official
``instances_*.json`` category ids (1..90 with gaps).

The word list (``CLASS_WORDS``) is what the soa/ca preparation (SPEC §4) and ``captions.find_classes``
match on word boundaries. It favours **precision over recall**: a word goes in only when, in
COCO-style captions, it almost always denotes an object a COCO detector labels with that class.
Form notation, one string per lemma:

* ``"dog/dogs"``  -- singular/plural;  ``"/people"`` -- plural only;  ``"/skis"`` -- plural only
* ``"sheep"``     -- no slash: number-invariant (sheep, aircraft) or a mass noun (broccoli, luggage);
  its mentions have ``is_plural = None``.

Deliberate omissions / choices (the judgement calls):

* person: occupational nouns common in COCO captions (player, skier, pitcher, batter, catcher ...) are
  in; "pitcher"/"batter" can also be a jug / cake batter -- accepted, baseball captions dominate.
  Collectives (crowd, couple, family, team) are out: they are not countable instances.
* skis: only the plural "skis" -- "ski" is nearly always a modifier (ski slope, ski lift, ski poles).
* sports ball: "ball", "tennis ball", "soccer ball"; "baseball"/"football"/"basketball" are out (they
  usually name the game). So "throws the ball" -> sports ball.
* baseball bat: "bat" is in (COCO captions rarely mean the animal); baseball glove: "glove" is out
  (ski/winter gloves), "mitt" is in.
* orange: only the plural "oranges" -- singular "orange" is mostly a colour ("an orange cat").
* wine glass: only "wine glass(es)" -- bare "glass" is often the material ("glass table").
* dining table: any "table" (COCO annotates coffee/picnic tables as dining table); "desk" is out.
* tv: "tv", "television", "computer monitor" (COCO labels monitors as tv); bare "monitor" is out.
* oven: "stove" is in (COCO labels ranges as oven). "microwave oven" is a microwave (longest match).
* car: "train car" is listed under train so that it is not a car.
* cell phone: "phone" is in; "telephone" (landline) is out.
* ``BLOCKED_PHRASES`` contain a class word but name something else ("jet ski", "bus stop",
  "flower bed", "toilet paper"); matching consumes them and reports no class.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

COCO_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
"""The 80 classes in the standard (ultralytics / TISE) order; the index is the contiguous label."""

COCO_CATEGORY_IDS: tuple[int, ...] = (
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    13,
    14,
    15,
    16,
    17,
    18,
    19,
    20,
    21,
    22,
    23,
    24,
    25,
    27,
    28,
    31,
    32,
    33,
    34,
    35,
    36,
    37,
    38,
    39,
    40,
    41,
    42,
    43,
    44,
    46,
    47,
    48,
    49,
    50,
    51,
    52,
    53,
    54,
    55,
    56,
    57,
    58,
    59,
    60,
    61,
    62,
    63,
    64,
    65,
    67,
    70,
    72,
    73,
    74,
    75,
    76,
    77,
    78,
    79,
    80,
    81,
    82,
    84,
    85,
    86,
    87,
    88,
    89,
    90,
)
"""Official COCO category id of ``COCO_CLASSES[i]`` (as in ``instances_val2014.json``)."""

CLASS_TO_CATEGORY_ID: Mapping[str, int] = MappingProxyType(dict(zip(COCO_CLASSES, COCO_CATEGORY_IDS)))
CATEGORY_ID_TO_CLASS: Mapping[int, str] = MappingProxyType(dict(zip(COCO_CATEGORY_IDS, COCO_CLASSES)))
CLASS_TO_INDEX: Mapping[str, int] = MappingProxyType({c: i for i, c in enumerate(COCO_CLASSES)})

CLASS_WORDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "person": (
            "person/persons",
            "/people",
            "man/men",
            "woman/women",
            "boy/boys",
            "girl/girls",
            "child/children",
            "kid/kids",
            "guy/guys",
            "lady/ladies",
            "gentleman/gentlemen",
            "baby/babies",
            "toddler/toddlers",
            "teenager/teenagers",
            "teen/teens",
            "adult/adults",
            "player/players",
            "skier/skiers",
            "surfer/surfers",
            "snowboarder/snowboarders",
            "skateboarder/skateboarders",
            "skater/skaters",
            "pitcher/pitchers",
            "batter/batters",
            "catcher/catchers",
            "umpire/umpires",
            "cyclist/cyclists",
            "biker/bikers",
            "rider/riders",
            "chef/chefs",
            "policeman/policemen",
            "police officer/police officers",
            "pedestrian/pedestrians",
            "spectator/spectators",
            "soldier/soldiers",
            "businessman/businessmen",
            "student/students",
        ),
        "bicycle": ("bicycle/bicycles", "bike/bikes"),
        "car": ("car/cars", "taxi/taxis", "sedan/sedans"),
        "motorcycle": (
            "motorcycle/motorcycles",
            "motorbike/motorbikes",
            "motor bike/motor bikes",
            "dirt bike/dirt bikes",
        ),
        "airplane": (
            "airplane/airplanes",
            "aeroplane/aeroplanes",
            "plane/planes",
            "jet/jets",
            "aircraft",
            "airliner/airliners",
            "jetliner/jetliners",
        ),
        "bus": ("bus/buses", "/busses"),
        "train": ("train/trains", "locomotive/locomotives", "train car/train cars"),
        "truck": ("truck/trucks",),
        "boat": (
            "boat/boats",
            "ship/ships",
            "sailboat/sailboats",
            "canoe/canoes",
            "kayak/kayaks",
            "yacht/yachts",
            "ferry/ferries",
        ),
        "traffic light": (
            "traffic light/traffic lights",
            "stop light/stop lights",
            "stoplight/stoplights",
            "traffic signal/traffic signals",
        ),
        "fire hydrant": ("fire hydrant/fire hydrants", "hydrant/hydrants"),
        "stop sign": ("stop sign/stop signs",),
        "parking meter": ("parking meter/parking meters",),
        "bench": ("bench/benches",),
        "bird": (
            "bird/birds",
            "pigeon/pigeons",
            "seagull/seagulls",
            "gull/gulls",
            "duck/ducks",
            "goose/geese",
            "parrot/parrots",
            "swan/swans",
            "owl/owls",
        ),
        "cat": ("cat/cats", "kitten/kittens", "kitty/kitties"),
        "dog": ("dog/dogs", "puppy/puppies", "pup/pups"),
        "horse": ("horse/horses", "pony/ponies"),
        "sheep": ("sheep", "lamb/lambs"),
        "cow": ("cow/cows", "/cattle", "bull/bulls", "calf/calves"),
        "elephant": ("elephant/elephants",),
        "bear": ("bear/bears",),
        "zebra": ("zebra/zebras",),
        "giraffe": ("giraffe/giraffes",),
        "backpack": ("backpack/backpacks", "back pack/back packs", "rucksack/rucksacks"),
        "umbrella": ("umbrella/umbrellas", "parasol/parasols"),
        "handbag": ("handbag/handbags", "hand bag/hand bags", "purse/purses"),
        "tie": ("tie/ties", "necktie/neckties"),
        "suitcase": ("suitcase/suitcases", "luggage"),
        "frisbee": ("frisbee/frisbees",),
        "skis": ("/skis",),
        "snowboard": ("snowboard/snowboards",),
        "sports ball": ("ball/balls", "tennis ball/tennis balls", "soccer ball/soccer balls"),
        "kite": ("kite/kites",),
        "baseball bat": ("baseball bat/baseball bats", "bat/bats"),
        "baseball glove": ("baseball glove/baseball gloves", "baseball mitt/baseball mitts", "mitt/mitts"),
        "skateboard": ("skateboard/skateboards", "skate board/skate boards"),
        "surfboard": ("surfboard/surfboards", "surf board/surf boards"),
        "tennis racket": (
            "tennis racket/tennis rackets",
            "tennis racquet/tennis racquets",
            "racket/rackets",
            "racquet/racquets",
        ),
        "bottle": ("bottle/bottles",),
        "wine glass": ("wine glass/wine glasses",),
        "cup": ("cup/cups", "mug/mugs"),
        "fork": ("fork/forks",),
        "knife": ("knife/knives",),
        "spoon": ("spoon/spoons",),
        "bowl": ("bowl/bowls",),
        "banana": ("banana/bananas",),
        "apple": ("apple/apples",),
        "sandwich": ("sandwich/sandwiches",),
        "orange": ("/oranges",),
        "broccoli": ("broccoli",),
        "carrot": ("carrot/carrots",),
        "hot dog": ("hot dog/hot dogs", "hotdog/hotdogs"),
        "pizza": ("pizza/pizzas",),
        "donut": ("donut/donuts", "doughnut/doughnuts"),
        "cake": ("cake/cakes", "cupcake/cupcakes"),
        "chair": ("chair/chairs", "armchair/armchairs"),
        "couch": ("couch/couches", "sofa/sofas"),
        "potted plant": ("potted plant/potted plants", "houseplant/houseplants", "house plant/house plants"),
        "bed": ("bed/beds",),
        "dining table": ("dining table/dining tables", "table/tables"),
        "toilet": ("toilet/toilets",),
        "tv": ("tv/tvs", "television/televisions", "computer monitor/computer monitors"),
        "laptop": ("laptop/laptops",),
        "mouse": ("mouse/mice",),
        "remote": ("remote/remotes", "remote control/remote controls", "controller/controllers"),
        "keyboard": ("keyboard/keyboards",),
        "cell phone": (
            "cell phone/cell phones",
            "cellphone/cellphones",
            "phone/phones",
            "mobile phone/mobile phones",
            "smartphone/smartphones",
        ),
        "microwave": ("microwave/microwaves", "microwave oven/microwave ovens"),
        "oven": ("oven/ovens", "stove/stoves"),
        "toaster": ("toaster/toasters",),
        "sink": ("sink/sinks",),
        "refrigerator": ("refrigerator/refrigerators", "fridge/fridges"),
        "book": ("book/books",),
        "clock": ("clock/clocks",),
        "vase": ("vase/vases",),
        "scissors": ("scissors",),
        "teddy bear": ("teddy bear/teddy bears", "teddy/teddies"),
        "hair drier": (
            "hair drier/hair driers",
            "hair dryer/hair dryers",
            "hairdryer/hairdryers",
            "blow dryer/blow dryers",
            "blow drier/blow driers",
        ),
        "toothbrush": ("toothbrush/toothbrushes", "tooth brush/tooth brushes"),
    }
)
"""Per-class lemma forms (notation in the module docstring)."""

BLOCKED_PHRASES: tuple[str, ...] = (
    "jet ski",
    "jet skis",
    "bus stop",
    "bus stops",
    "flower bed",
    "flower beds",
    "toilet paper",
)
"""Phrases that contain a class word but do not denote that class; they match no class."""


def _expand(form: str) -> dict[str, bool | None]:
    """``"man/men"`` -> ``{"man": False, "men": True}``; ``"sheep"`` -> ``{"sheep": None}``."""
    if "/" not in form:
        return {form: None}
    singular, plural = form.split("/")
    out: dict[str, bool | None] = {}
    if singular:
        out[singular] = False
    if plural:
        out[plural] = True
    return out


def _build_phrase_index() -> dict[str, tuple[str, bool | None]]:
    index: dict[str, tuple[str, bool | None]] = {}
    for cls, forms in CLASS_WORDS.items():
        for form in forms:
            for phrase, plural in _expand(form).items():
                if phrase in index and index[phrase][0] != cls:
                    raise ValueError(
                        f"coco_classes.CLASS_WORDS: phrase {phrase!r} is listed under both "
                        f"{index[phrase][0]!r} and {cls!r}; keep it under one class only"
                    )
                index[phrase] = (cls, plural)
    return index


PHRASE_INDEX: Mapping[str, tuple[str, bool | None]] = MappingProxyType(_build_phrase_index())
"""Lower-case phrase (single spaces) -> (class name, is_plural; ``None`` = number-ambiguous)."""


def class_phrases(name: str) -> dict[str, bool | None]:
    """All phrases of class ``name`` mapped to their number (True plural, False singular, None either)."""
    if name not in CLASS_WORDS:
        raise KeyError(f"unknown COCO class {name!r}; expected one of tise_bench.text.COCO_CLASSES")
    out: dict[str, bool | None] = {}
    for form in CLASS_WORDS[name]:
        out.update(_expand(form))
    return out
