"""TISE's released caption pickles (real names and keys) imported as released (issue 9, defect 7)."""

from __future__ import annotations

import pickle

import pytest
from tise_release_fixture import CAPTION_FILES, CUB_RP, PA, RP, SOA, write_tise_release

from tise_bench.data.manifest import load_manifest
from tise_bench.errors import DataError
from tise_bench.prepare import prepare_tise_pickles, run_prepare
from tise_bench.prepare.tise_pickles import find_tise_pickles


def _import(tmp_path, data="coco", **kw):
    root = write_tise_release(tmp_path / "tise-toolbox")
    paths = prepare_tise_pickles(root, tmp_path / "out" / data, data=data, log=None, **kw)
    return root, {s: load_manifest(p) for s, p in paths.items()}


def test_released_names_found_in_the_toolbox_tree_coco_and_cub_apart(tmp_path):
    root = write_tise_release(tmp_path / "tise-toolbox")
    hits, _, how = find_tise_pickles(root, "coco")
    assert {s: [p.relative_to(root).as_posix() for p in ps] for s, ps in hits.items() if s != "soa"} == {
        s: [CAPTION_FILES[s]] for s in ("realism", "rp", "pa", "ca")
    }  # CUB_RP_captions.pkl is not a 2nd rp match
    assert len(hits["soa"]) == 3 and set(how.values()) == {"released name"}
    cub, _, _ = find_tise_pickles(root, "cub")
    assert [p.name for p in cub["rp"]] == ["CUB_RP_captions.pkl"]
    assert [p.name for p in cub["realism"]] == ["cub_image_realism_captions.pkl"]


def test_rp_records_carry_the_released_mismatched_captions(tmp_path):
    _, m = _import(tmp_path)
    assert [r.id for r in m["rp"]] == ["101", "201", "202"]
    assert [list(r.mismatched) for r in m["rp"]] == [it["mismatched_captions"] for it in RP]


def test_pa_ca_soa_records_keep_the_release_keys_and_layout_hints(tmp_path):
    _, m = _import(tmp_path)
    pa = m["pa"]
    assert [(r.id, r.positional_word, r.counter_caption, r.extra["tise_dir"]) for r in pa] == [
        ("303", "above", PA["above"][0]["false_caption"], "above"),
        ("301", "left", PA["left"][0]["false_caption"], "left"),
        ("302", "left", PA["left"][1]["false_caption"], "left"),
    ]
    assert [r.counts for r in m["ca"]] == [{"dog": 2, "cat": 1}, {"person": 3, "bus": 1}]  # numpy count too
    soa = m["soa"]
    assert [(r.id, r.category, r.extra["tise_dir"], r.extra["tise_index"]) for r in soa] == [
        ("501_0", "person", "label_00_person", 0),
        ("502_0", "person", "label_00_person", 1),
        ("503_4", "airplane", "label_04_plane", 0),
        ("504_16", "dog", "label_16_dog", 0),
    ]
    assert [r.id for r in m["realism"]] == ["101", "102", "103"]


def test_hinz_label_names_give_no_note_but_a_real_mismatch_does(tmp_path, capsys):
    root = write_tise_release(tmp_path / "t")
    prepare_tise_pickles(root, tmp_path / "o", subsets=["soa"])
    assert "file says" not in capsys.readouterr().out  # label_04_plane is airplane in Hinz et al.'s naming
    (root / "semantic_object_accuracy" / "captions" / "label_16_dog.pkl").rename(
        root / "semantic_object_accuracy" / "captions" / "label_16_horse.pkl"
    )
    prepare_tise_pickles(root, tmp_path / "o2", subsets=["soa"])
    assert "label_16_horse.pkl: index 16 is 'dog' in COCO order, file says 'horse'" in capsys.readouterr().out


def test_released_rp_file_without_distractors_is_refused(tmp_path):
    root = write_tise_release(tmp_path / "t")
    stripped = [{k: v for k, v in it.items() if k != "mismatched_captions"} for it in RP]
    (root / CAPTION_FILES["rp"]).write_bytes(pickle.dumps(stripped))
    with pytest.raises(DataError, match=r"3 of 3 rp items have no 'mismatched_captions'.*released file unmodified"):
        prepare_tise_pickles(root, tmp_path / "o", subsets=["rp"], log=None)
    (root / CAPTION_FILES["rp"]).write_bytes(pickle.dumps([{**RP[0], "mismatched_captions": "one string"}]))
    with pytest.raises(DataError, match="non-empty list of captions"):
        prepare_tise_pickles(root, tmp_path / "o", subsets=["rp"], log=None)


def test_cub_import_realism_and_rp_with_distractors(tmp_path):
    root = write_tise_release(tmp_path / "tise-toolbox")
    paths = run_prepare({"data": "cub", "tise_pickles": str(root), "out": str(tmp_path / "cub"), "seed": 0})
    assert set(paths) == {"realism", "rp"}
    rp = load_manifest(paths["rp"])
    assert [r.id for r in rp] == ["Black_Footed_Albatross_0046_18_0"]
    assert list(rp[0].mismatched) == CUB_RP[0]["mismatched_captions"]
    with pytest.raises(DataError, match=r"subsets=\['pa'\] unknown for data=cub"):
        prepare_tise_pickles(root, tmp_path / "o", data="cub", subsets=["pa"], log=None)


def test_unzipped_soa_captions_hint(tmp_path):
    root = write_tise_release(tmp_path / "t")
    for stem in SOA:
        (root / "semantic_object_accuracy" / "captions" / f"{stem}.pkl").unlink()
    (root / "semantic_object_accuracy" / "captions.zip").write_bytes(b"PK")
    with pytest.raises(DataError, match=r"(?s)no pickle found for \['soa'\].*captions\.zip: unzip it"):
        prepare_tise_pickles(root, tmp_path / "o", subsets=["soa"], log=None)
