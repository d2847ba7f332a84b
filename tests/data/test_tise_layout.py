"""Generated images in TISE's own folder layout, scored in place (model.layout=tise, model.subset_dirs)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "prepare"))
from tise_release_fixture import SOA_README_STYLE, write_tise_images, write_tise_release  # noqa: E402

from tise_bench.data.manifest import Record, load_manifest  # noqa: E402
from tise_bench.data.samples import find_images, find_images_layout  # noqa: E402
from tise_bench.errors import ConfigError, DataError  # noqa: E402
from tise_bench.prepare import prepare_tise_pickles  # noqa: E402


@pytest.fixture()
def release(tmp_path):
    root = write_tise_release(tmp_path / "tise-toolbox", cub=False)
    paths = prepare_tise_pickles(root, tmp_path / "data" / "coco", log=None)
    records = {s: load_manifest(p) for s, p in paths.items()}
    return records, write_tise_images(root, "attngan++")


def _names(by_id):
    return {rid: [Path(p).relative_to(Path(p).parents[1]).as_posix() for _, p in v] for rid, v in by_id.items()}


def test_tise_layout_finds_every_image_where_tise_wrote_it(release):
    records, imgs = release
    by_sub, rep = find_images_layout(None, records, layout="tise", subset_dirs=imgs.subset_dirs)
    assert rep.counts() == {"missing": 0, "extra": 0, "duplicate": 0}
    assert {s: sum(len(v) for v in m.values()) for s, m in by_sub.items()} == imgs.n_images
    assert _names(by_sub["pa"]) == {"303": ["above/303.png"], "301": ["left/301.png"], "302": ["left/302.png"]}
    soa = _names(by_sub["soa"])
    assert soa["501_0"] == ["label_00_person/image_0.png"] and soa["502_0"] == ["label_00_person/image_1.png"]
    assert soa["503_4"] == ["label_04_plane/image_0.png"]
    assert soa["504_16"] == [f"{SOA_README_STYLE}/504_{k}.png" for k in range(3)]  # 3 samples, k = 0..2
    # caption 101 is in realism and in rp: TISE generated it twice, into two folders -> two different images
    assert by_sub["realism"]["101"][0][1] != by_sub["rp"]["101"][0][1]
    assert "image_realism" in by_sub["realism"]["101"][0][1] and "text_relevance" in by_sub["rp"]["101"][0][1]


def test_one_folder_for_all_subsets_in_tise_layout(tmp_path, release):
    records, imgs = release
    one = tmp_path / "one"
    for s in ("realism", "ca"):  # flat subsets share the top level (ids do not clash here)
        for p in imgs.subset_dirs[s].iterdir():
            (one / p.name).parent.mkdir(parents=True, exist_ok=True)
            (one / p.name).write_bytes(p.read_bytes())
    for s in ("pa", "soa"):
        for p in imgs.subset_dirs[s].rglob("*.png"):
            q = one / p.relative_to(imgs.subset_dirs[s])
            q.parent.mkdir(parents=True, exist_ok=True)
            q.write_bytes(p.read_bytes())
    recs = {s: records[s] for s in ("realism", "ca", "pa", "soa")}
    by_sub, rep = find_images_layout(one, recs, layout="tise")
    assert rep.counts() == {"missing": 0, "extra": 0, "duplicate": 0}  # word/label folders are not extras of realism
    assert len(by_sub["pa"]) == 3 and len(by_sub["soa"]) == 4


def test_mismatches_named_per_subset_and_folder(release):
    records, imgs = release
    (imgs.subset_dirs["pa"] / "left" / "302.png").unlink()
    (imgs.subset_dirs["pa"] / "left" / "999.png").write_bytes(b"x")
    (imgs.subset_dirs["soa"] / "label_00_person" / "image_1.jpg").write_bytes(b"x")  # 2nd file for image_1
    with pytest.raises(DataError) as e:
        find_images_layout(None, records, layout="tise", subset_dirs=imgs.subset_dirs)
    msg = str(e.value)
    assert f"pa in {imgs.subset_dirs['pa']}: 1 missing (302); 1 extra (999.png)" in msg
    assert f"soa in {imgs.subset_dirs['soa']}: 1 duplicate (image_1.png)" in msg
    assert "on_mismatch=skip" in msg and "model.layout=tise" in msg
    by_sub, rep = find_images_layout(None, records, layout="tise", subset_dirs=imgs.subset_dirs, policy="skip")
    assert rep.counts() == {"missing": 1, "extra": 1, "duplicate": 1} and "302" not in by_sub["pa"]


def test_flat_layout_with_tise_folders_does_not_find_nested_images(release):
    records, imgs = release
    _, rep = find_images_layout(None, {"pa": records["pa"]}, layout="flat", subset_dirs=imgs.subset_dirs, policy="skip")
    assert rep.counts()["missing"] == 3


def test_flat_default_is_exactly_find_images(tmp_path):
    d = tmp_path / "gen"
    d.mkdir()
    for name in ("a.png", "b_0.png", "b_1.png", "zzz.png"):
        (d / name).write_bytes(b"x")
    recs = {"realism": [Record("a", "x"), Record("b", "y")], "rp": [Record("b", "y"), Record("c", "z")]}
    by_sub, rep = find_images_layout(d, recs, policy="skip")
    by_id, rep0 = find_images(d, ["a", "b", "c"], policy="skip")
    assert by_sub == {"realism": {"a": by_id["a"], "b": by_id["b"]}, "rp": {"b": by_id["b"]}}
    assert (rep.missing, rep.extra, rep.duplicate) == (rep0.missing, rep0.extra, rep0.duplicate)
    with pytest.raises(DataError, match=r"do not match the eval set's 3 prompt ids: 1 missing \(c\); 1 extra"):
        find_images_layout(d, recs)


def test_bad_layout_or_subset_dir_key_and_missing_folder(tmp_path):
    recs = {"pa": [Record("1", "x", positional_word="left")]}
    with pytest.raises(ConfigError, match="model.layout='nested' is not valid"):
        find_images_layout(tmp_path, recs, layout="nested")
    with pytest.raises(ConfigError, match=r"model.subset_dirs has unknown subset\(s\) \['pq'\]"):
        find_images_layout(tmp_path, recs, layout="tise", subset_dirs={"pq": tmp_path})
    with pytest.raises(DataError, match=r"(?s)subset\(s\) pa not found: .*nope.*model.subset_dirs.pa"):
        find_images_layout(tmp_path, recs, layout="tise", subset_dirs={"pa": tmp_path / "nope"})
