"""Plan before compute (issue 10, item 2): one planning step for the CLI and the API resolves metric ids, checks
that the eval set supports each (subset, record fields, reference images or statistics) and merges the feature
needs — before any backbone is built."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import RANDOM_BACKBONES, structured_images
from hydra import compose, initialize_config_module

import tise_bench
from tise_bench.data.manifest import Record
from tise_bench.errors import ConfigError
from tise_bench.evalset import SUBSETS, EvalSet
from tise_bench.planning import plan
from tise_bench.registry import MetricSpec, Need, all_metrics, records_with
from tise_bench.runner import run
from tise_bench.types import MetricValue


def _no_build(*a, **k):
    raise AssertionError("a backbone was built before the plan refused the run")


def _manifest(tmp_path: Path, n: int = 4, **fields) -> Path:
    structured_images(tmp_path / "gen", n, seed=11, size=32)
    man = tmp_path / "m.jsonl"
    man.write_text(
        "".join(json.dumps({"id": f"{i:04d}", "caption": f"a scene {i}", **fields}) + "\n" for i in range(n))
    )
    return man


def _cfg(tmp_path: Path, cache: Path, man: Path, *overrides: str):
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        return compose(
            "config",
            overrides=[
                "backbones=random",
                "backbones.device=cpu",
                "model=folder",
                "model.name=m",
                f"model.samples_dir={tmp_path / 'gen'}",
                "data=custom",
                "data.name=tiny",
                f"data.manifest={man}",
                f"paths.cache_dir={cache}",
                f"paths.results_dir={tmp_path / 'res'}",
                "progress=false",
                *overrides,
            ],
        )


def _evalset(records: list[Record], reference_stats: str | None = None, subsets=SUBSETS) -> EvalSet:
    return EvalSet(name="t", subsets={s: records for s in subsets}, reference_stats=reference_stats)


# ------------------------------------------------------------------------------------------------------ CLI
def test_cli_fid_without_references_fails_before_any_backbone(tmp_path, session_cache, monkeypatch):
    import tise_bench.runner as runner

    man = _manifest(tmp_path)
    monkeypatch.setattr(runner, "build_backbones", _no_build)
    with pytest.raises(ConfigError) as e:
        run(_cfg(tmp_path, session_cache, man, "metrics.ids=[clip_score,fid,pa]", "print_table=false"))
    msg = str(e.value)
    assert "eval set 'tiny' cannot support 2 requested metric(s)" in msg
    assert re.search(r"fid: no reference images or reference_stats given \(subset 'realism'\)", msg)
    assert re.search(r"pa: records carry no 'positional_word' \+ 'counter_caption' \(subset 'pa'\)", msg)
    assert "clip_score" not in msg and "on_unsupported=skip" in msg and "data.reference_stats" in msg
    assert not (tmp_path / "res").exists()


def test_cli_on_unsupported_skip_runs_the_rest_and_lists_them(tmp_path, session_cache, capsys):
    man = _manifest(tmp_path)
    [res] = run(
        _cfg(tmp_path, session_cache, man, "metrics.ids=[clip_score,fid,pa]", "on_unsupported=skip", "print_table=true")
    )
    assert set(res.metrics) == {"clip_score"}
    saved = json.loads((tmp_path / "res" / "tiny" / "m" / "metrics.json").read_text())
    assert set(saved["metrics"]) == {"clip_score"} and list(saved["not_applicable"]) == ["fid", "pa"]
    assert "reference" in saved["not_applicable"]["fid"] and saved["config"]["on_unsupported"] == "skip"
    out = capsys.readouterr().out
    assert "note: fid not computed: no reference images or reference_stats given (subset 'realism')" in out
    assert "note: pa not computed" in out
    # nothing unsupported: the default `fail` runs as before
    [ok] = run(_cfg(tmp_path, session_cache, man, "metrics.ids=[clip_score]", "print_table=false"))
    assert set(ok.metrics) == {"clip_score"} and ok.provenance["not_applicable"] == {}


def test_cli_invalid_policy_is_a_config_error(tmp_path, session_cache, monkeypatch):
    import tise_bench.runner as runner

    man = _manifest(tmp_path)
    monkeypatch.setattr(runner, "build_backbones", _no_build)
    with pytest.raises(ConfigError, match="on_unsupported='ignore': valid values are fail, skip"):
        run(_cfg(tmp_path, session_cache, man, "metrics.ids=[clip_score]", "on_unsupported=ignore"))


# ------------------------------------------------------------------------------------------------------ API
def test_api_default_metrics_skip_and_named_metrics_fail_before_any_backbone(tmp_path, fresh_cache, monkeypatch):
    import tise_bench.runner as runner  # the API runs through runner.evaluate_config, as the CLI

    structured_images(tmp_path / "imgs", 4, seed=3, size=32)
    caps = [f"shapes {i}" for i in range(4)]
    ids = [f"{i:04d}" for i in range(4)]
    monkeypatch.setattr(runner, "build_backbones", _no_build)
    for wanted, missing in (
        (["fid"], "fid: no reference images"),
        (["clip_score", "ca"], "ca: records carry no 'counts'"),
        (["clip_i2i"], "clip_i2i: records carry no 'reference' images"),
    ):
        with pytest.raises(ConfigError) as e:
            tise_bench.evaluate(
                tmp_path / "imgs", caps, ids=ids, metrics=wanted, backbones=RANDOM_BACKBONES, cache_dir=fresh_cache
            )
        assert missing in str(e.value) and "references=[...]" in str(e.value)
    # the default metrics: unsupported ones are left out and listed (the API's behaviour before the plan; the
    # end-to-end run is tests/test_api.py); here the plan the API made, stopped before any network
    made = []

    def spy(*a, **k):
        made.append(plan(*a, **k))
        raise _Stop

    monkeypatch.setattr(runner, "plan", spy)
    with pytest.raises(_Stop):
        tise_bench.evaluate(tmp_path / "imgs", caps, ids=ids, backbones=RANDOM_BACKBONES, cache_dir=fresh_cache)
    na = made[0].not_applicable
    assert set(na) == {"fid", "clip_i2i", "o_fid", "soa_c", "soa_i", "ca", "pa", "ref_clip_score"}
    assert made[0].ids == ["clip_score", "clip_rp", "is", "is_star", "o_is"]
    assert na["soa_c"].startswith("records carry no 'category'/'labels'") and "reference" in na["fid"]


class _Stop(Exception):
    pass


# ------------------------------------------------------------------------------------------------------ plan
def test_plan_merges_needs_and_names_backbones():
    recs = [Record(id="a", caption="x", reference="/r/a.png", counts={"dog": 1})]
    p = plan(["clip_score", "clip_rp", "clip_i2i", "fid", "is", "ca"], _evalset(recs), {}, {"random": True})
    assert p.ids == ["clip_score", "clip_rp", "clip_i2i", "fid", "is", "ca"] and p.not_applicable == {}
    keys = [(n.key, n.role) for n in p.needs]
    assert len(keys) == len(set(keys))  # one entry per (feature, role): one pass serves every metric
    assert ("clip.image", "gen") in keys and ("clip.image", "ref") in keys and ("inception.pool3", "ref") in keys
    assert p.backbones == {"clip", "inception", "detector"}


def test_plan_reference_stats_serve_fid_not_image_metrics():
    bare = [Record(id="a", caption="x")]
    p = plan(["fid", "clip_i2i", "o_fid"], _evalset(bare, reference_stats="stats.npz"), {}, {}, on_unsupported="skip")
    assert p.ids == ["fid"] and set(p.not_applicable) == {"clip_i2i", "o_fid"}
    assert "reference_stats cannot replace them" in p.not_applicable["o_fid"]


def test_plan_absent_subset_is_left_out_under_both_policies():
    recs = [Record(id="a", caption="x")]
    for policy in ("fail", "skip"):
        p = plan(["clip_score", "soa_c"], _evalset(recs, subsets=("realism",)), {}, {}, on_unsupported=policy)
        assert p.ids == ["clip_score"] and p.not_applicable == {"soa_c": "eval set 't' has no 'soa' subset"}


def test_plan_field_present_in_one_record_is_enough():
    recs = [Record(id="a", caption="x"), Record(id="b", caption="y", labels=("dog",))]
    assert plan(["soa_c", "soa_i"], _evalset(recs), {}, {}).ids == ["soa_c", "soa_i"]


def test_plan_reads_a_metrics_own_declaration(monkeypatch):
    """Generic: a metric's ``compute.requires`` decides, no metric id in the plan; a metric that declares
    nothing but reads reference features needs reference images."""
    import tise_bench.registry as registry

    def compute(ctx, params):
        return MetricValue(0.0, 0)

    compute.requires = records_with("counter_caption")  # type: ignore[attr-defined]

    def plain(ctx, params):
        return MetricValue(0.0, 0)

    all_metrics()
    for mid, fn, needs in (("x_needs_counter", compute, ()), ("x_ref_reader", plain, (Need("clip", "image", "ref"),))):
        monkeypatch.setitem(
            registry._REGISTRY,
            mid,
            MetricSpec(
                id=mid,
                display=mid,
                higher_is_better=True,
                version="1",
                citation="",
                subset="realism",
                needs=needs,
                fn=fn,
                unit="score",
            ),
        )
    recs = [Record(id="a", caption="x")]
    p = plan(["clip_score", "x_needs_counter", "x_ref_reader"], _evalset(recs), {}, {}, on_unsupported="skip")
    assert p.ids == ["clip_score"] and p.not_applicable == {
        "x_needs_counter": "records carry no 'counter_caption' (subset 'realism')",
        "x_ref_reader": "records carry no 'reference' images (reference_stats cannot "
        "replace them for this metric) (subset 'realism')",
    }
    with pytest.raises(ConfigError, match=r"none of the selected metrics can run .*x_needs_counter: records carry no"):
        plan(["x_needs_counter", "x_ref_reader"], _evalset(recs), {}, {}, on_unsupported="skip")  # nothing left to run
    ok = [Record(id="a", caption="x", counter_caption="y", reference="/r.png")]
    assert plan(["x_needs_counter", "x_ref_reader"], _evalset(ok), {}, {}).ids == ["x_needs_counter", "x_ref_reader"]


def test_no_metric_id_in_the_plan_or_the_api():
    root = Path(tise_bench.__file__).parent
    ids = set(all_metrics())
    for name in ("planning.py", "pipeline.py", "api.py", "runner.py"):
        text = (root / name).read_text(encoding="utf-8")
        found = sorted(i for i in ids if re.search(rf"[\"']{re.escape(i)}[\"']", text))
        assert not found, f"{name} names metric ids {found}: metrics declare what they need (compute.requires)"
