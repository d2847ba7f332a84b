"""Caption analysis as data plus pure functions: COCO class words, positional words, count words.

Used by eval-set preparation (SPEC §4: soa / pa / ca subsets) and importable without torch.
"""

from __future__ import annotations

from .captions import (
    COUNT_WORDS,
    MAX_ADJECTIVES,
    OPPOSITES,
    POSITIONAL_WORDS,
    QUANTIFIERS,
    ClassMention,
    PositionalMention,
    counter_caption,
    find_classes,
    find_counts,
    find_positional,
)
from .coco_classes import (
    BLOCKED_PHRASES,
    CATEGORY_ID_TO_CLASS,
    CLASS_TO_CATEGORY_ID,
    CLASS_TO_INDEX,
    CLASS_WORDS,
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    PHRASE_INDEX,
    class_phrases,
)

__all__ = [
    "BLOCKED_PHRASES",
    "CATEGORY_ID_TO_CLASS",
    "CLASS_TO_CATEGORY_ID",
    "CLASS_TO_INDEX",
    "CLASS_WORDS",
    "COCO_CATEGORY_IDS",
    "COCO_CLASSES",
    "COUNT_WORDS",
    "MAX_ADJECTIVES",
    "OPPOSITES",
    "PHRASE_INDEX",
    "POSITIONAL_WORDS",
    "QUANTIFIERS",
    "ClassMention",
    "PositionalMention",
    "class_phrases",
    "counter_caption",
    "find_classes",
    "find_counts",
    "find_positional",
]
