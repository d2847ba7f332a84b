"""TISE caption pickles → manifests: contents, references through coco_root, clear layout errors, data-only.

write_tise below uses renamed files (the name-token fallback); test_tise_release.py covers the released names."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from prepare_fixtures import write_coco

from tise_bench.data.manifest import load_manifest
from tise_bench.errors import DataError
from tise_bench.prepare import prepare_tise_pickles


def _dump(path: Path, obj, protocol: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def write_tise(folder: Path) -> Path:
    _dump(
        folder / "captions_realism.pkl",
        [
            {"caption_id": 1010, "caption": "Two dogs sitting on a couch."},
            {"caption_id": np.int64(1120), "caption": "an elephant inside an enclosure"},
        ],
    )  # numpy ids load too
    _dump(
        folder / "captions_rp.pkl",
        [
            {"caption_id": 1030, "caption": "three sheep in a field"},
            {"caption_id": 1030, "caption": "three sheep in a field"},
            {"caption_id": 999999, "caption": "a caption COCO does not know"},
        ],
        protocol=2,
    )
    _dump(
        folder / "captions_pa.pkl",
        {
            "left": [
                {
                    "caption_id": 1020,
                    "caption": "A cat to the left of a laptop.",
                    "false_caption": "A cat to the right of a laptop.",
                }
            ],
            "above": [
                {
                    "caption_id": 1081,
                    "caption": "a painting of a cat above a fireplace",
                    "false_caption": "a painting of a cat below a fireplace",
                }
            ],
        },
    )
    _dump(
        folder / "captions_ca.pkl",
        [
            {
                "caption_id": 1060,
                "caption": "two people standing in front of a bus",
                "counting_info": {"person": 2, "bus": 1},
            }
        ],
    )
    _dump(folder / "soa" / "label_16_dog.pkl", [{"caption_id": 1071, "caption": "a dog running in the snow"}])
    _dump(folder / "soa" / "label_15_cat.pkl", [{"caption_id": 1090, "caption": "two cats sleeping on a bed"}])
    return folder


def test_import_with_references(tmp_path):
    coco = write_coco(tmp_path / "coco")
    paths = prepare_tise_pickles(write_tise(tmp_path / "tise"), tmp_path / "out", coco_root=coco.root, log=None)
    m = {s: load_manifest(p) for s, p in paths.items()}
    assert set(m) == {"realism", "rp", "pa", "ca", "soa"}
    real = m["realism"]
    assert [r.id for r in real] == ["1010", "1120"] and real[0].category == "couch" and len(real[0].ref_captions) == 4
    assert all(Path(r.reference).is_file() for r in real)
    assert [r.id for r in m["rp"]] == ["1030", "1030-1", "999999"]
    assert m["rp"][2].reference is None and not m["rp"][0].mismatched
    assert [(r.positional_word, r.counter_caption) for r in m["pa"]] == [
        ("above", "a painting of a cat below a fireplace"),
        ("left", "A cat to the right of a laptop."),
    ]
    assert m["ca"][0].counts == {"person": 2, "bus": 1}
    assert [(r.id, r.category, r.labels) for r in m["soa"]] == [
        ("1090_15", "cat", ("cat", "bed")),
        ("1071_16", "dog", ("dog",)),
    ]
    again = prepare_tise_pickles(tmp_path / "tise", tmp_path / "out2", coco_root=coco.root, log=None)
    assert all(paths[s].read_bytes() == again[s].read_bytes() for s in paths)


def test_without_coco_root_and_subset_choice(tmp_path, capsys):
    folder = write_tise(tmp_path / "tise")
    (folder / "captions_ca.pkl").unlink()
    paths = prepare_tise_pickles(folder, tmp_path / "out", subsets=["realism", "pa"])
    assert set(paths) == {"realism", "pa"}
    assert all(r.reference is None for r in load_manifest(paths["realism"]))
    assert "no coco_root" in capsys.readouterr().out


def test_layout_errors_list_what_was_found(tmp_path):
    folder = write_tise(tmp_path / "tise")
    (folder / "captions_ca.pkl").rename(folder / "counts_misc.txt")
    _dump(folder / "other.pkl", [])
    with pytest.raises(DataError) as e:
        prepare_tise_pickles(folder, tmp_path / "out", log=None)
    msg = str(e.value)
    assert "no pickle found for ['ca']" in msg and "other.pkl  -> no subset" in msg
    assert "captions_rp.pkl  -> ['rp']" in msg and "soa/label_16_dog.pkl" in msg
    assert "COCO_RP_captions.pkl" in msg and "CA_input_captions.pkl" in msg  # the released names are named
    _dump(folder / "rp_extra.pkl", [])
    with pytest.raises(DataError, match="several pickles match rp"):
        prepare_tise_pickles(folder, tmp_path / "out", subsets=["rp"], log=None)


def test_refuses_code_and_bad_items(tmp_path):
    folder = write_tise(tmp_path / "tise")
    _dump(folder / "captions_realism.pkl", [Path("x")])
    with pytest.raises(DataError, match="refusing to load pathlib"):
        prepare_tise_pickles(folder, tmp_path / "out", subsets=["realism"], log=None)
    _dump(folder / "captions_realism.pkl", [{"caption_id": 1}])
    with pytest.raises(DataError, match="item 0 is not a dict with a non-empty 'caption'"):
        prepare_tise_pickles(folder, tmp_path / "out", subsets=["realism"], log=None)
    _dump(folder / "captions_ca.pkl", [{"caption_id": 1, "caption": "two dogs"}])
    with pytest.raises(DataError, match="counting_info"):
        prepare_tise_pickles(folder, tmp_path / "out", subsets=["ca"], log=None)
