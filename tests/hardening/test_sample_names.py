"""Issue 11 item 13: an image name that is one id and also a sample of another is refused, never guessed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tise_bench.data.manifest import Record
from tise_bench.data.samples import find_images, find_images_layout
from tise_bench.errors import DataError
from tise_bench.prepare.common import unique_ids


def _touch(d: Path, *names: str) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for n in names:
        (d / n).write_bytes(b"\x89PNG\r\n\x1a\n" + n.encode())
    return d


@pytest.mark.parametrize("policy", ["fail", "skip"])
def test_sample_of_one_id_named_like_another_id_is_refused(tmp_path: Path, policy: str) -> None:
    d = _touch(tmp_path / "gen", "123_0.png", "123_1.png", "123_2.png")  # three samples of 123 ...
    with pytest.raises(DataError) as e:  # ... but 123_1 is an id too: which prompt does 123_1.png show?
        find_images(d, ["123", "123_1"], policy=policy)
    msg = str(e.value)
    assert str(d) in msg and "123_1.png is the image of id '123_1', but also sample 1 of id '123'" in msg
    assert "e.g. 123_0.png" in msg and "fix: rename the ids" in msg and "-<n>" in msg


def test_one_image_each_is_not_ambiguous_and_keeps_working(tmp_path: Path) -> None:
    d = _touch(tmp_path / "gen", "123.png", "123_1.png", "9_0.png", "9_1.png")
    by_id, rep = find_images(d, ["123", "123_1", "9"])
    assert by_id == {
        "123": [(0, str(d / "123.png"))],
        "123_1": [(0, str(d / "123_1.png"))],
        "9": [(0, str(d / "9_0.png")), (1, str(d / "9_1.png"))],
    }
    assert rep.counts() == {"missing": 0, "extra": 0, "duplicate": 0}


def test_prepare_tise_soa_ids_beside_realism_samples_in_one_folder(tmp_path: Path) -> None:
    """``prepare`` names a SOA record ``<caption_id>_<class>``: in a folder shared with realism's multi-sample
    images, ``123_4.png`` could be realism's 5th sample of 123; refused with the separate-folders fix."""
    recs = {
        "realism": [Record(id="123", caption="a cat")],
        "soa": [Record(id="123_4", caption="a cat", category="cat")],
    }
    shared = _touch(tmp_path / "all", *(f"123_{k}.png" for k in range(5)))
    with pytest.raises(DataError, match=r"(?s)123_4\.png is the image of id '123_4'.*model\.subset_dirs"):
        find_images_layout(shared, recs)
    _touch(tmp_path / "soa", "123_4.png")
    (shared / "123_4.png").unlink()
    out, rep = find_images_layout(shared, recs, subset_dirs={"soa": tmp_path / "soa"})
    assert [k for k, _ in out["realism"]["123"]] == [0, 1, 2, 3] and out["soa"]["123_4"] == [
        (0, str(tmp_path / "soa" / "123_4.png"))
    ]


def test_tise_layout_folders_are_checked_too(tmp_path: Path) -> None:
    recs = {
        "pa": [
            Record(id=i, caption="a cat above a dog", positional_word="above", extra={"tise_caption_id": i})
            for i in ("7", "7_1")
        ]
    }
    _touch(tmp_path / "pa" / "above", "7_0.png", "7_1.png")
    with pytest.raises(DataError, match=r"7_1\.png is the image of id '7_1', but also sample 1 of id '7'"):
        find_images_layout(None, recs, layout="tise", subset_dirs={"pa": tmp_path / "pa"})


def test_repeated_ids_get_a_suffix_that_never_reads_as_a_sample(tmp_path: Path) -> None:
    recs = [Record(id=i, caption=f"c{n}") for n, i in enumerate(["A", "A", "A", "B", "B-1", "B", "C-1_0", "C", "C"])]
    ids = [r.id for r in unique_ids(recs)]
    assert ids == ["A", "A-1", "A-2", "B", "B-1", "B-2", "C-1_0", "C", "C-2"]  # C-1 would own C-1_0's name
    assert len(set(ids)) == len(ids)
    # two samples per prompt for every made id: each image goes to the prompt it was made for
    d = _touch(tmp_path / "gen", *(f"{i}_{k}.png" for i in ids for k in (0, 1)))
    by_id, rep = find_images(d, ids, policy="skip")
    assert {i: [Path(p).name for _, p in v] for i, v in by_id.items()} == {i: [f"{i}_0.png", f"{i}_1.png"] for i in ids}
    assert rep.counts() == {"missing": 0, "extra": 0, "duplicate": 0}
