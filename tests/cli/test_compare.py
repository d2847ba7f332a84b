"""``python -m tise_bench.compare <generated_dir> <reference_dir>`` (issue 14, item 5): distribution metrics on two
folders, no manifest; the same values as ``tise_bench.evaluate`` on a manifest pairing the same files.

Tiny folders (32 px images), random CPU backbones, FID only (one Inception pass; features cached across tests).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import pytest

import tise_bench
from helpers import cache_with_session_weights, structured_images
from tise_bench.compare import compare, main
from tise_bench.errors import ConfigError, DataError

N_GEN, N_REF = 7, 6
KID_SHRINK = "metrics.params.kid.shrink_subset_size=true"  # KID on 6 images: torch-fidelity refuses subsets > N


@pytest.fixture(scope="module")
def folders(tmp_path_factory, session_cache):
    root = tmp_path_factory.mktemp("compare")
    cache_with_session_weights(session_cache, root / "cache")
    gen = structured_images(root / "gen", N_GEN, seed=1611, size=32, prefix="g")
    ref = structured_images(root / "ref", N_REF, seed=1612, size=32, prefix="r")
    few = root / "few"
    few.mkdir()
    for p in gen[:4]:
        shutil.copy(p, few / p.name)
    return root, gen, ref


def _overrides(root, *extra):
    return ["backbones=random", "backbones.device=cpu", f"paths.cache_dir={root / 'cache'}", "progress=false", *extra]


def _evaluate(root, gen, refs, n_records, **kw):
    """tise_bench.evaluate on a manifest pairing generated image i with reference i (ids = the file stems)."""
    lines = []
    for i in range(n_records):
        rec = {"id": gen[i].stem if i < len(gen) else f"nogen{i}", "caption": "x"}
        if i < len(refs):
            rec["reference"] = str(refs[i])
        lines.append(json.dumps(rec) + "\n")
    man = root / f"pairs{n_records}.jsonl"
    man.write_text("".join(lines))
    return tise_bench.evaluate(
        kw.pop("images", root / "gen"),
        manifest=man,
        metrics=["fid"],
        backbones="random",
        device="cpu",
        cache_dir=root / "cache",
        **kw,
    )


def test_fid_equals_evaluate_on_a_manifest_pairing_the_same_files(folders):
    root, gen, ref = folders
    res = compare(root / "gen", root / "ref", _overrides(root, "metrics.ids=[fid]"))
    fid = res.metrics["fid"]
    assert (fid.n, fid.extras["n_reference"]) == (N_GEN, N_REF)  # different counts: FID needs no pairs
    want = _evaluate(root, gen, ref, N_GEN).metrics["fid"].value
    assert fid.value == pytest.approx(want, rel=1e-9)
    assert res.provenance["mismatch"] == {"missing": [], "extra": [], "duplicate": []}


def test_more_references_than_generated_images_reads_them_all(folders):
    root, gen, ref = folders
    res = compare(root / "few", root / "ref", _overrides(root, "metrics.ids=[fid]"))
    fid = res.metrics["fid"]
    assert (fid.n, fid.extras["n_reference"]) == (4, N_REF)
    assert res.provenance["counts"]["missing"] == 0  # reference-only records need no generated image
    # the same sets through evaluate: 6 records, the last two without a generated image (skipped as missing)
    want = _evaluate(root, gen[:4], ref, N_REF, images=root / "few", on_mismatch="skip")
    assert want.provenance["counts"]["missing"] == 2
    assert fid.value == pytest.approx(want.metrics["fid"].value, rel=1e-9)


def test_cli_prints_a_table_and_writes_nothing_without_results_dir(folders, tmp_path, monkeypatch):
    root, _, _ = folders
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main([str(root / "gen"), str(root / "ref"), *_overrides(root, "metrics.ids=[fid]")])
    assert rc == 0
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["metric", "value", "n_gen", "n_ref"]
    assert lines[1].split()[0] == "FID↓" and lines[1].split()[2:] == [str(N_GEN), str(N_REF)]
    assert list(tmp_path.iterdir()) == []  # no Hydra run folder, no results
    res_dir = tmp_path / "res"
    with contextlib.redirect_stdout(io.StringIO()):
        assert (
            main([str(root / "gen"), str(root / "ref"), *_overrides(root, f"paths.results_dir={res_dir}", KID_SHRINK)])
            == 0
        )
    doc = json.loads((res_dir / "compare" / "generated" / "metrics.json").read_text())
    assert sorted(doc["metrics"]) == ["fid", "kid", "precision", "recall"]  # the default metrics
    assert doc["eval_set"]["compare"]["n_generated"] == N_GEN


def test_caption_metric_is_refused_naming_it_and_why(folders):
    root, _, _ = folders
    with pytest.raises(ConfigError, match=r"clip_score \(reads the prompts' captions\).*no captions"):
        compare(root / "gen", root / "ref", _overrides(root, "metrics.ids=[fid,clip_score]"))


def test_missing_or_empty_folder_is_named(folders, tmp_path, capsys):
    root, _, _ = folders
    with pytest.raises(DataError, match=r"reference folder not found: .*nowhere"):
        compare(root / "gen", tmp_path / "nowhere", _overrides(root))
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    assert main([str(tmp_path / "empty"), str(root / "ref"), *_overrides(root)]) == 2
    assert f"generated folder {tmp_path / 'empty'} holds no images" in capsys.readouterr().err
