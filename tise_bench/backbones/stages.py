"""Stages: steps between backbones that metrics name like a backbone (``Need("crops", ...)``).

``crops``: the detector's boxes at the metric's threshold, cut out (:mod:`tise_bench.features.crops`) and
scored by Inception and, when its file is given or its random variant asked for, TISE's COCO-80 object
classifier (O-IS / O-FID; without it those metrics are flagged fallbacks on Inception).
"""

from __future__ import annotations

from .registry import register_stage

CROPS = register_stage("crops", needs=("detector", "inception"), when_provided=("object_classifier",))
