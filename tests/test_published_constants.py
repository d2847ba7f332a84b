"""Published constants are pinned here as literal numbers, each with where it is published (issue 15, item 1).

A test that compares a constant with the same constant imported from the code cannot fail; these compare the code's
constants, its parameter defaults, the shipped default configs and the metrics' computed values with the numbers
in the reference code. TISE = VinAIResearch/tise-toolbox (read with ``git show HEAD:<path>``); the other references
are named beside each value. Changing any of them in tise_bench (e.g. ``COCO_TEMPERATURE = 0.95``) fails here.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from tise_bench.config_schema import compose
from tise_bench.context import MetricContext, Sample
from tise_bench.data.manifest import Record
from tise_bench.registry import get_metric
from tise_bench.runner import resolve_config

# TISE image_realism/IS/coco/inception_score_star_coco.py:107  logits = tf.div(logits, tf.constant(0.9091363549232483))
TISE_COCO_IS_STAR_T = 0.9091363549232483
# TISE image_realism/IS/bird/inception_score_star_bird.py:192  tf.div(known_logits, tf.constant(0.5980541706085205))
TISE_CUB_IS_STAR_T = 0.5980541706085205
# TISE object_fidelity/O-IS/object_centric_inception_score.py:55  temperature = 2.1737587451934814
TISE_O_IS_T = 2.1737587451934814


def _constants() -> list[tuple[str, object, object]]:
    """(name, value in the code, published literal)."""
    from tise_bench import comparability
    from tise_bench.backbones import bird_classifier, object_classifier
    from tise_bench.features import crops
    from tise_bench.metrics import clip, compbench, inception, prdc, preference

    return [
        ("metrics.inception.COCO_TEMPERATURE", inception.COCO_TEMPERATURE, 0.9091363549232483),
        ("metrics.inception.BIRD_TEMPERATURE", inception.BIRD_TEMPERATURE, 0.5980541706085205),
        ("metrics.inception.TISE_TEMPERATURE[inception]", inception.TISE_TEMPERATURE["inception"], 0.9091363549232483),
        (
            "metrics.inception.TISE_TEMPERATURE[bird_classifier]",
            inception.TISE_TEMPERATURE["bird_classifier"],
            0.5980541706085205,
        ),
        ("backbones.bird_classifier.TISE_BIRD_TEMPERATURE", bird_classifier.TISE_BIRD_TEMPERATURE, 0.5980541706085205),
        (
            "backbones.object_classifier.TISE_OBJECT_TEMPERATURE",
            object_classifier.TISE_OBJECT_TEMPERATURE,
            2.1737587451934814,
        ),
        ("comparability.TISE_COCO_T", comparability.TISE_COCO_T, 0.9091363549232483),
        ("comparability.TISE_BIRD_T", comparability.TISE_BIRD_T, 0.5980541706085205),
        ("comparability.TISE_OBJECT_T", comparability.TISE_OBJECT_T, 2.1737587451934814),
        # TISE bird classifier: 50 CUB classes + background (inception_score_star_bird.py slices logits [1:])
        ("backbones.bird_classifier.CUB_CLASSES", bird_classifier.CUB_CLASSES, 50),
        # TISE object_fidelity/O-IS: transforms.Resize((299, 299)) of each crop
        ("features.crops.CROP_SIZE", crops.CROP_SIZE, 299),
        # Hessel et al. clipscore.py: w = 2.5, prompt "A photo depicts"
        ("metrics.clip.HESSEL_PREFIX", clip.HESSEL_PREFIX, "A photo depicts"),
        # T2I-CompBench UniDet_eval/2D_spatial_eval.py: determine_position(iou_threshold=0.1, distance_threshold=150),
        # "if (score<0.5)"; experts/model_bank.py --confidence-threshold default 0.5
        ("metrics.compbench.IOU_THRESHOLD", compbench.IOU_THRESHOLD, 0.1),
        ("metrics.compbench.DISTANCE_THRESHOLD", compbench.DISTANCE_THRESHOLD, 150.0),
        ("metrics.compbench.SCORE_FLOOR", compbench.SCORE_FLOOR, 0.5),
        ("metrics.compbench.CONFIDENCE", compbench.CONFIDENCE, 0.5),
        # torch-fidelity defaults.py: prc_neighborhood 3; clovaai prdc README: nearest_k = 5
        ("metrics.prdc.PRC_NEIGHBORHOOD", prdc.PRC_NEIGHBORHOOD, 3),
        ("metrics.prdc.PRDC_NEAREST_K", prdc.PRDC_NEAREST_K, 5),
        # HPSv2 hpsv2/evaluation.py: image_features @ text_features.T * 100
        ("metrics.preference.HPS_SCALE", preference.HPS_SCALE, 100.0),
    ]


@pytest.mark.parametrize("name, value, published", _constants(), ids=[c[0] for c in _constants()])
def test_code_constant_equals_published_value(name, value, published):
    assert value == published, f"{name} = {value!r}; the published value is {published!r}"


def test_function_defaults_equal_published_values():
    """Defaults of the metric functions a caller may use directly (not only through the configs)."""
    from tise_bench.metrics import inception, rp

    def default(fn, arg):
        return inspect.signature(fn).parameters[arg].default

    # TISE inception_score_star_coco.py get_inception_score(images, splits=10); torch-fidelity isc_splits 10
    assert default(inception.inception_score, "splits") == 10
    # TISE object_centric_inception_score.py: inception_score(imgs, ..., splits=10) as it is called
    assert default(inception.inception_score_tise_objects, "splits") == 10
    # TISE text_relevance/RP_coco.py: 1 true + 99 mismatched captions, 10 bins (num_bins = 10)
    assert default(rp.draw_candidates, "n_distractors") == 99
    assert default(rp.r_precision_hits, "n_distractors") == 99
    assert default(rp.split_std, "splits") == 10


# The shipped default config (`python -m tise_bench` with no overrides), every published value it carries.
DEFAULT_CONFIG_PINS = {
    "data.domain": "coco",  # the demo uses TISE's COCO protocol
    # IS: torch-fidelity defaults.py isc_splits 10, rng_seed 2020
    "metrics.params.is.splits": 10,
    "metrics.params.is.seed": 2020,
    "metrics.params.is.split_mode": "torch_fidelity",
    # IS*: TISE inception_score_star_coco.py: splits=10, contiguous (no shuffle); T = the network's calibration
    "metrics.params.is_star.splits": 10,
    "metrics.params.is_star.split_mode": "tise",
    "metrics.params.is_star.network": "inception",
    "metrics.params.is_star.temperature": None,
    # O-IS: TISE object_centric_inception_score.py: T 2.1737587451934814, splits=10, N // splits crops a split
    "metrics.params.o_is.temperature": 2.1737587451934814,
    "metrics.params.o_is.splits": 10,
    "metrics.params.o_is.split_mode": "tise",
    # SOA: TISE semantic_object_accuracy/SOA.py: SCORE_THRESH_TEST = 0.5; SOA-C-Top40 / Bot40
    "metrics.params.soa_c.threshold": 0.5,
    "metrics.params.soa_c.top_bottom": 40,
    "metrics.params.soa_i.threshold": 0.5,
    # O-IS / O-FID crops: TISE object_fidelity/crop_object.py SCORE_THRESH_TEST = 0.5, crops resized to 299
    "metrics.crops.threshold": 0.5,
    "metrics.crops.size": 299,
    "metrics.crops.rounding": "nearest",
    "metrics.crops.max_per_image": None,
    # CA: boxes at score >= 0.5 (tise_bench's counter; TISE counts with CountSeg, see comparability.py)
    "metrics.params.ca.threshold": 0.5,
    # PA: TISE positional_alignment/PA.py: `if probs[0] > 0.6`
    "metrics.params.pa.threshold": 0.6,
    # RP: TISE text_relevance/RP_coco.py: the true caption + 99 mismatched ones, 10 bins, top-1
    "metrics.params.clip_rp.n_distractors": 99,
    "metrics.params.clip_rp.splits": 10,
    "metrics.params.clip_rp.top_k": 1,
    # CLIPScore: Hessel et al. clipscore.py (w = 2.5, "A photo depicts")
    "metrics.params.clip_score.convention": "clipscore",
    # KID: torch-fidelity defaults.py kid_subsets 100, kid_subset_size 1000, poly degree 3, gamma None, coef0 1
    "metrics.params.kid.subsets": 100,
    "metrics.params.kid.subset_size": 1000,
    "metrics.params.kid.degree": 3,
    "metrics.params.kid.gamma": None,
    "metrics.params.kid.coef0": 1.0,
    "metrics.params.kid.seed": 2020,
    # precision / recall: torch-fidelity prc_neighborhood 3; density / coverage: prdc nearest_k 5
    "metrics.params.precision.neighborhood": 3,
    "metrics.params.recall.neighborhood": 3,
    "metrics.params.density.nearest_k": 5,
    "metrics.params.coverage.nearest_k": 5,
    # CMMD: google-research cmmd distance.py _SIGMA = 10, _SCALE = 1000 (the biased estimator)
    "metrics.params.cmmd.sigma": 10.0,
    "metrics.params.cmmd.scale": 1000.0,
    "metrics.params.cmmd.estimator": "biased",
    # HPSv2: hpsv2/evaluation.py x100
    "metrics.params.hpsv2.scale": 100.0,
    # GenEval evaluation/evaluate_images.py: threshold 0.3, counting_threshold 0.9, max_objects 16,
    # max_overlap 1.0, position_threshold 0.1
    "metrics.params.geneval.threshold": 0.3,
    "metrics.params.geneval.counting_threshold": 0.9,
    "metrics.params.geneval.max_objects": 16,
    "metrics.params.geneval.max_overlap": 1.0,
    "metrics.params.geneval.position_threshold": 0.1,
    # T2I-CompBench UniDet_eval: confidence 0.5, determine_position(iou_threshold=0.1, distance_threshold=150)
    "metrics.params.compbench_spatial.confidence": 0.5,
    "metrics.params.compbench_spatial.iou_threshold": 0.1,
    "metrics.params.compbench_spatial.distance_threshold": 150.0,
    "metrics.params.compbench_numeracy.confidence": 0.5,
}


def _get(cfg: dict, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


@pytest.fixture(scope="module")
def default_config() -> dict:
    return resolve_config(compose([]))


@pytest.mark.parametrize("key", sorted(DEFAULT_CONFIG_PINS))
def test_default_config_carries_published_value(default_config, key):
    assert _get(default_config, key) == DEFAULT_CONFIG_PINS[key], key


def test_every_geneval_metric_shares_the_published_defaults(default_config):
    params = default_config["metrics"]["params"]
    for mid in ("single_object", "two_object", "counting", "colors", "position", "color_attr"):
        p = params[f"geneval_{mid}"]
        got = (p["threshold"], p["counting_threshold"], p["max_objects"], p["max_overlap"], p["position_threshold"])
        assert got == (0.3, 0.9, 16, 1.0, 0.1), mid


def test_shipped_data_configs_select_tise_protocols():
    """configs/data/cub.yaml: TISE's CUB IS* (bird classifier, T = 0.5980541706085205 by default);
    configs/data/coco.yaml: TISE's COCO protocol (T = 0.9091363549232483); metrics=modern keeps every TISE value."""
    cub = resolve_config(compose(["data=cub"]))
    assert cub["data"]["domain"] == "cub"
    assert cub["metrics"]["params"]["is_star"]["network"] == "bird_classifier"
    assert cub["metrics"]["params"]["is_star"]["temperature"] is None  # None = the network's calibration, below
    coco = resolve_config(compose(["data=coco"]))
    assert coco["data"]["domain"] == "coco" and coco["metrics"]["params"]["is_star"]["network"] == "inception"
    modern = resolve_config(compose(["metrics=modern"]))
    for key, value in DEFAULT_CONFIG_PINS.items():
        assert _get(modern, key) == value, f"metrics=modern: {key}"


# --- computed values: the registered metrics apply the published constants ----------------------------------------


def _ctx(gen: dict[str, np.ndarray], n: int) -> MetricContext:
    recs = [Record(id=str(i), caption=f"c{i}") for i in range(n)]
    samples = [Sample(record_index=i, k=0, path=f"{i}.png", sha=str(i)) for i in range(n)]
    return MetricContext(subset="realism", records=recs, samples=samples, gen_features=gen)


def _tise_is(logits: np.ndarray, t: float, splits: int, per_split: int | None = None) -> float:
    """TISE's loops written out: softmax(z / T); split k = rows [k·N//splits, (k+1)·N//splits) (IS*) or
    [k·(N//splits), (k+1)·(N//splits)) (O-IS); exp(mean_i KL(p_i ‖ mean of the split)); mean over splits."""
    z = logits.astype(np.float64) / t
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    n, scores = len(p), []
    for k in range(splits):
        part = p[k * per_split : (k + 1) * per_split] if per_split else p[k * n // splits : (k + 1) * n // splits]
        kl = (part * (np.log(part) - np.log(part.mean(axis=0, keepdims=True)))).sum(axis=1)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores))


def test_is_star_default_uses_tise_coco_temperature():
    z = np.random.default_rng(0).normal(size=(40, 30)) * 3
    v = get_metric("is_star").compute(
        _ctx({"inception.logits_unbiased": z}, 40), get_metric("is_star").resolve_params()
    )
    assert v.extras["temperature"] == 0.9091363549232483 and v.extras["splits"] == 10
    assert v.value == pytest.approx(_tise_is(z, 0.9091363549232483, 10), rel=1e-10)
    assert v.value != pytest.approx(_tise_is(z, 0.95, 10), rel=1e-6)  # the test tells the two apart


def test_is_star_cub_uses_tise_bird_temperature():
    z = np.random.default_rng(1).normal(size=(40, 50)) * 2
    spec = get_metric("is_star")
    v = spec.compute(_ctx({"bird_classifier.logits": z}, 40), spec.resolve_params({"network": "bird_classifier"}))
    assert v.extras["temperature"] == 0.5980541706085205 and v.extras["network"] == "bird_classifier"
    assert v.value == pytest.approx(_tise_is(z, 0.5980541706085205, 10), rel=1e-10)


def test_o_is_default_uses_tise_object_temperature():
    rng = np.random.default_rng(2)
    n_img, per_img = 11, 3  # 33 crops: TISE's loop takes 33 // 10 = 3 crops a split and drops the last 3
    obj = rng.normal(size=(n_img * per_img, 80)) * 3
    gen = {
        "crops.objcls_logits": obj,
        "crops.logits_unbiased": rng.normal(size=(n_img * per_img, 1008)),
        "crops.owner": np.repeat(np.arange(n_img), per_img),
    }
    spec = get_metric("o_is")
    v = spec.compute(_ctx(gen, n_img), spec.resolve_params())
    assert v.extras["fallback"] is False and v.extras["temperature"] == 2.1737587451934814
    assert v.value == pytest.approx(_tise_is(obj, 2.1737587451934814, 10, per_split=3), rel=1e-10)


def test_clipscore_weight_is_hessels():
    from tise_bench.metrics.clip import clip_score_from_cos

    # Hessel et al. clipscore.py: w = 2.5; per image w·max(cos, 0)
    assert clip_score_from_cos(np.array([0.4, -0.1]), "clipscore").tolist() == pytest.approx([1.0, 0.0])
