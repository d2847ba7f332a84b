"""Comparability is checked before ranking: settings, unit and protocol of every column (tise_bench.leaderboard.
comparable); refused with a clear message, or ranked with leaderboard.allow_mixed=true and footnoted everywhere."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tise_bench.errors import ConfigError, DataError
from tise_bench.leaderboard.build import LeaderboardOptions, build
from tise_bench.leaderboard.collect import collect_runs, read_extra_rows

from .lb_helpers import write_csv, write_run

CLIPSCORE = {"convention": "clipscore", "prefix": "A photo depicts", "feature_net": "clip-ViT-B-32", "w": 2.5}
TORCHMETRICS = {"convention": "torchmetrics", "prefix": "", "feature_net": "clip-ViT-B-32", "w": 2.5}
ASPECTS = {"realism": ["FID"], "relevance": ["CLIP-S"]}
FID_TORCH_FIDELITY = "torch-fidelity FID (TISE: torchvision Inception)"


def _opts(root: Path, **kw) -> LeaderboardOptions:
    kw.setdefault("aspects", ASPECTS)
    return LeaderboardOptions(data="d", results_dir=root, **kw)


def _outputs(root: Path) -> dict[str, str]:
    return {
        fmt: (root / "d" / f"leaderboard.{fmt}").read_text(encoding="utf-8") for fmt in ("md", "tex", "json", "html")
    }


def _two_conventions(root: Path) -> None:
    write_run(root, "d", "run_a", {"fid": 30.0, "clip_score": 31.0}, comparability={"clip_score": CLIPSCORE})
    write_run(root, "d", "run_b", {"fid": 40.0, "clip_score": 77.0}, comparability={"clip_score": TORCHMETRICS})


def test_different_clip_s_conventions_are_refused_naming_runs_fields_values_and_fix(tmp_path):
    _two_conventions(tmp_path)
    with pytest.raises(ConfigError) as e:
        build(_opts(tmp_path))
    msg = str(e.value)
    assert (
        "CLIP-S (clip_score): field 'convention' differs: 'clipscore' in run run_a; 'torchmetrics' in run run_b" in msg
    )
    assert "field 'prefix' differs: 'A photo depicts' in run run_a; '' in run run_b" in msg
    assert "feature_net" not in msg and "'w'" not in msg  # equal fields are not reported
    assert str(tmp_path / "d" / "run_a" / "metrics.json") in msg and str(tmp_path / "d" / "run_b") in msg
    assert "leaderboard.allow_mixed=true" in msg and "re-run" in msg
    assert not (tmp_path / "d" / "leaderboard.md").exists()


def test_same_settings_rank_and_a_field_only_one_run_records_is_a_difference(tmp_path):
    write_run(tmp_path, "d", "run_a", {"fid": 30.0, "clip_score": 31.0}, comparability={"clip_score": CLIPSCORE})
    write_run(tmp_path, "d", "run_b", {"fid": 20.0, "clip_score": 32.0}, comparability={"clip_score": CLIPSCORE})
    lb, _ = build(_opts(tmp_path))
    assert [r["model"] for r in lb["rows"]] == ["run_b", "run_a"] and lb["comparability"]["mixed"] == []
    assert "MIXED" not in _outputs(tmp_path)["md"]
    write_run(
        tmp_path,
        "d",
        "run_b",
        {"fid": 40.0, "clip_score": 32.0},
        comparability={"clip_score": {**CLIPSCORE, "temperature": 100}},
    )
    with pytest.raises(
        ConfigError,
        match=r"field 'temperature' differs: \(not recorded\) in run run_a; 100 in run "
        r"run_b",
    ):
        build(_opts(tmp_path))


def test_allow_mixed_ranks_and_footnotes_the_mix_in_every_output(tmp_path):
    _two_conventions(tmp_path)
    lb, files = build(_opts(tmp_path, allow_mixed=True))
    assert set(files) == {"csv", "md", "tex", "json", "html"}
    assert [r["model"] for r in lb["rows"]] == ["run_a", "run_b"]  # FID 30 < 40; CLIP-S 77 > 31: tie, then name
    out = _outputs(tmp_path)
    md_note = [line for line in out["md"].splitlines() if line.startswith("MIXED")]
    assert len(md_note) == 2 and "'clipscore' in run run_a; 'torchmetrics' in run run_b" in md_note[0]
    assert "leaderboard.allow_mixed=true" in md_note[0] and "field 'convention'" in md_note[0]
    assert "MIXED (ranked with leaderboard.allow\\_mixed=true): CLIP-S (clip\\_score): field 'convention'" in out["tex"]
    assert (
        "MIXED (ranked with leaderboard.allow_mixed=true): CLIP-S (clip_score): field &#x27;convention&#x27; "
        "differs: &#x27;clipscore&#x27; in run run_a" in out["html"]
    )
    mixed = json.loads(out["json"])["comparability"]["mixed"]
    assert json.loads(out["json"])["comparability"]["allow_mixed"] is True
    conv = next(x for x in mixed if x["field"] == "convention")
    assert conv["metric"] == "clip_score" and conv["kind"] == "settings"
    assert conv["values"] == [{"value": "clipscore", "rows": ["run_a"]}, {"value": "torchmetrics", "rows": ["run_b"]}]
    assert {x["field"] for x in mixed} == {"convention", "prefix"}


def test_allow_mixed_must_be_a_boolean():
    with pytest.raises(ConfigError, match="leaderboard.allow_mixed must be true or false, got 'yes'"):
        LeaderboardOptions.from_config({"data": "d", "leaderboard": {"allow_mixed": "yes"}})
    assert LeaderboardOptions.from_config({"data": "d", "leaderboard": {"allow_mixed": True}}).allow_mixed is True


def test_run_predating_comparability_recording_is_ranked_and_footnoted(tmp_path):
    write_run(tmp_path, "d", "old", {"fid": 30.0, "clip_score": 31.0}, legacy=True)
    write_run(tmp_path, "d", "new", {"fid": 40.0, "clip_score": 32.0}, comparability={"clip_score": CLIPSCORE})
    lb, _ = build(_opts(tmp_path))
    assert lb["comparability"]["unrecorded"] == {"old": ["fid", "clip_score"]}
    note = (
        "old predates comparability recording (no comparability fields in metrics.json): settings not checked "
        "against the other rows."
    )
    out = _outputs(tmp_path)
    assert note in out["md"] and note in out["html"] and "old predates comparability recording" in out["tex"]


def test_extra_rows_percent_column_given_as_fraction_is_refused(tmp_path):
    write_run(tmp_path, "d", "run_a", {"fid": 30.0, "soa_c": 45.0})
    write_run(tmp_path, "d", "run_b", {"fid": 40.0, "soa_c": 55.0})
    csv = write_csv(tmp_path / "paper.csv", "method,FID,SOA-C\nAttnGAN,35.5,0.25\nDF-GAN,21.4,0.31")
    opts = _opts(tmp_path, extra_rows=csv, aspects={"realism": ["FID"], "object accuracy": ["SOA-C"]})
    with pytest.raises(ConfigError) as e:
        build(opts)
    msg = str(e.value)
    assert (
        f"Column SOA-C of {csv} looks like a fraction (all values ≤ 1: 0.25, 0.31) while SOA-C is a percent "
        "metric (0..100): multiply the column by 100 (e.g. SOA-C 0.25 should be 25.0)" in msg
    )
    assert re.search(r"unit differs: 'percent' in runs run_a, run_b; 'fraction' in extra rows AttnGAN, DF-GAN", msg)
    write_csv(csv, "method,FID,SOA-C\nAttnGAN,35.5,25\nDF-GAN,21.4,31")
    lb, _ = build(opts)
    assert len(lb["rows"]) == 4 and lb["comparability"]["mixed"] == []


def test_run_predating_percent_soa_is_refused_among_percent_runs(tmp_path):
    write_run(tmp_path, "d", "old", {"fid": 30.0, "soa_i": 0.45}, legacy=True)
    write_run(tmp_path, "d", "new", {"fid": 40.0, "soa_i": 41.0})
    opts = _opts(tmp_path, aspects={"realism": ["FID"], "object accuracy": ["SOA-I"]})
    with pytest.raises(ConfigError) as e:
        build(opts)
    msg = str(e.value)
    assert "SOA-I (soa_i): unit differs: 'percent' in run new; 'fraction' in run old" in msg
    assert (
        f"SOA-I of run(s) old ({tmp_path / 'd' / 'old' / 'metrics.json'}: 0.45) is ≤ 1 with no 'unit' in "
        "metrics.json: the run predates percent SOA"
    ) in msg
    assert "re-run it" in msg and "leaderboard.allow_mixed=true" in msg
    lb, _ = build(_opts(tmp_path, aspects=opts.aspects, allow_mixed=True))
    assert "MIXED (ranked with leaderboard.allow_mixed=true): SOA-I (soa_i): unit differs" in _outputs(tmp_path)["md"]
    # old runs alone are consistent with each other (all fractions): ranked, with a note on the scale
    write_run(tmp_path, "d", "new", {"fid": 40.0, "soa_i": 0.41}, legacy=True)
    lb, _ = build(opts)
    assert lb["comparability"]["mixed"] == []
    assert "SOA-I values are fractions (0..1) in every row, not percent as in TISE's table." in _outputs(tmp_path)["md"]


def test_tise_paper_row_with_a_divergent_fid_protocol_is_refused_then_footnoted(tmp_path):
    write_run(tmp_path, "d", "run_a", {"fid": 30.0, "clip_rp": 60.0}, protocol={"fid": FID_TORCH_FIDELITY})
    write_run(tmp_path, "d", "run_b", {"fid": 40.0, "clip_rp": 70.0}, protocol={"fid": FID_TORCH_FIDELITY})
    csv = write_csv(tmp_path / "paper.csv", "method,FID,RP\nAttnGAN,35.5,65.0")
    aspects = {"realism": ["FID"], "relevance": ["RP"]}
    with pytest.raises(ConfigError) as e:
        build(_opts(tmp_path, extra_rows=csv, aspects=aspects))
    msg = str(e.value)
    assert (
        f"FID (fid): protocol differs: '{FID_TORCH_FIDELITY}' in runs run_a, run_b; 'tise-paper' in extra row "
        f"AttnGAN ({csv})"
    ) in msg
    assert "RP" not in msg.split("Runs:")[0]  # RP: runs follow 'tise', comparable with 'tise-paper'
    lb, _ = build(_opts(tmp_path, extra_rows=csv, aspects=aspects, allow_mixed=True))
    out = _outputs(tmp_path)
    for fmt in ("md", "html"):
        assert "MIXED (ranked with leaderboard.allow_mixed=true): FID (fid): protocol differs" in out[fmt], fmt
        assert (
            "FID protocol differs from TISE&#x27;s" in out[fmt]
            if fmt == "html"
            else f"FID protocol differs from TISE's: '{FID_TORCH_FIDELITY}' (run_a, run_b)." in out[fmt]
        )
    assert r"MIXED (ranked with leaderboard.allow\_mixed=true): FID (fid): protocol differs" in out["tex"]
    assert (
        "† published (tise-paper protocol)" in out["md"] and r"$^\dagger$ published (tise-paper protocol)" in out["tex"]
    )
    assert [x["kind"] for x in json.loads(out["json"])["comparability"]["mixed"]] == ["protocol"]
    assert {r["model"]: r.get("protocol") for r in json.loads(out["json"])["rows"]} == {
        "AttnGAN": "tise-paper",
        "run_a": None,
        "run_b": None,
    }


def test_tise_protocol_run_is_comparable_with_a_tise_paper_row(tmp_path):
    write_run(tmp_path, "d", "run_a", {"clip_rp": 60.0})
    csv = write_csv(tmp_path / "paper.csv", "method,RP\nAttnGAN,65.0")
    lb, _ = build(_opts(tmp_path, extra_rows=csv, aspects={"relevance": ["RP"]}))
    assert [r["model"] for r in lb["rows"]] == ["AttnGAN", "run_a"]
    assert lb["comparability"]["mixed"] == [] and lb["comparability"]["protocols"]["clip_rp"] == [
        {"protocol": "tise", "rows": ["run_a"]},
        {"protocol": "tise-paper", "rows": ["AttnGAN"]},
    ]
    md = _outputs(tmp_path)["md"]
    assert "† published (tise-paper protocol): extra row, values as reported, not re-evaluated." in md
    assert "MIXED" not in md and "differs from TISE" not in md


def test_csv_protocol_column_overrides_tise_paper(tmp_path):
    csv = write_csv(tmp_path / "x.csv", f"method,FID,protocol\nA,30,{FID_TORCH_FIDELITY}\nB,20,")
    rows = read_extra_rows(csv)
    assert [r["protocol"] for r in rows] == [FID_TORCH_FIDELITY, "tise-paper"]
    write_run(tmp_path, "d", "run_a", {"fid": 25.0}, protocol={"fid": FID_TORCH_FIDELITY})
    write_csv(csv, f"method,FID,protocol\nA,30,{FID_TORCH_FIDELITY}")
    lb, _ = build(_opts(tmp_path, extra_rows=csv, aspects={"realism": ["FID"]}))
    assert lb["comparability"]["mixed"] == []
    assert f"† published ({FID_TORCH_FIDELITY} protocol)" in _outputs(tmp_path)["md"]


def test_run_rows_carry_each_metrics_unit_protocol_and_comparability(tmp_path):
    write_run(
        tmp_path,
        "d",
        "new",
        {"fid": 30.0, "clip_score": 31.0},
        comparability={"clip_score": CLIPSCORE},
        protocol={"fid": FID_TORCH_FIDELITY},
    )
    write_run(tmp_path, "d", "old", {"fid": 30.0}, legacy=True)
    rows = {r["model"]: r for r in collect_runs(tmp_path / "d").rows}
    assert rows["new"]["meta"]["clip_score"] == {
        "unit": "score",
        "protocol": "tise",
        "comparability": {"unit": "score", "protocol": "tise", **CLIPSCORE},
    }
    assert rows["new"]["meta"]["fid"]["protocol"] == FID_TORCH_FIDELITY
    assert rows["old"]["meta"] == {"fid": {"unit": None, "protocol": None, "comparability": None}}
    path = tmp_path / "d" / "old" / "metrics.json"
    doc = json.loads(path.read_text())
    doc["metrics"]["fid"]["comparability"] = "clipscore"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=r"metrics.fid.comparability is str, expected an object"):
        collect_runs(tmp_path / "d")
