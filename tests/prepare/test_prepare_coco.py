"""COCO-2014 → five manifests: determinism, per-subset selection rules, sizes, clear input errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from prepare_fixtures import IMAGES, CocoFixture, write_coco

from tise_bench.data.manifest import Record, load_manifest
from tise_bench.errors import DataError
from tise_bench.prepare import prepare_coco
from tise_bench.prepare.common import text_key
from tise_bench.text.captions import OPPOSITES, find_classes, find_counts, find_positional
from tise_bench.text.coco_classes import CLASS_TO_INDEX

SMALL = {"realism": 8, "rp": 6, "pa_per_word": 2}
SUBSETS = ("realism", "rp", "pa", "ca", "soa")


def _run(coco: CocoFixture, out: Path, seed: int = 0, sizes: dict | None = None) -> dict[str, list[Record]]:
    paths = prepare_coco(coco.root, out, seed=seed, sizes=SMALL if sizes is None else sizes, log=None)
    assert set(paths) == set(SUBSETS)
    return {s: load_manifest(p) for s, p in paths.items()}


def _cid(rec: Record) -> int:
    return int(rec.id.split("_")[0])


def _image(rec: Record) -> int:
    return CocoFixture.image_of(_cid(rec))


def test_two_runs_byte_identical_and_another_seed_differs(coco, tmp_path):
    prepare_coco(coco.root, tmp_path / "a", seed=0, sizes=SMALL, log=None)
    prepare_coco(coco.root, tmp_path / "b", seed=0, sizes=SMALL, log=None)
    prepare_coco(coco.root, tmp_path / "c", seed=1, sizes=SMALL, log=None)
    for s in SUBSETS:
        a = (tmp_path / "a" / f"{s}.jsonl").read_bytes()
        assert a == (tmp_path / "b" / f"{s}.jsonl").read_bytes(), s
    for s in ("realism", "rp", "pa"):  # the sampled subsets pick other records, not just another header
        body = lambda d: (tmp_path / d / f"{s}.jsonl").read_bytes().split(b"\n", 1)[1]  # noqa: E731
        assert body("a") != body("c"), s


def test_sizes_of_one_subset_do_not_change_another(coco, tmp_path):
    a = _run(coco, tmp_path / "a")
    b = _run(coco, tmp_path / "b", sizes={**SMALL, "realism": 5})
    assert a["rp"] == b["rp"] and a["pa"] == b["pa"]
    assert len(b["realism"]) == 5


def test_manifest_header_and_ids(coco, tmp_path):
    _run(coco, tmp_path / "o", seed=3)
    for s in SUBSETS:
        first = (tmp_path / "o" / f"{s}.jsonl").read_text().splitlines()[0]
        assert first == f'{{"schema_version": 1, "seed": 3, "subset": "{s}"}}'


def test_realism_one_caption_per_image_with_refs_and_category(coco, tmp_path):
    recs = _run(coco, tmp_path / "o")["realism"]
    assert len(recs) == 8 and len({_image(r) for r in recs}) == 8
    for r in recs:
        caps = dict(CocoFixture.captions(_image(r)))
        assert r.caption == caps[int(r.id)] and r.id == str(int(r.id))
        assert sorted(r.ref_captions) == sorted(t for c, t in caps.items() if c != int(r.id))
        assert Path(r.reference).is_file() and Path(r.reference).name.endswith(f"{_image(r):012d}.png")
        objs = IMAGES[_image(r)][0]
        if objs:
            area: dict[str, float] = {}
            for c, a, _ in objs:
                area[c] = area.get(c, 0) + a
            assert r.category == max(sorted(area), key=lambda c: area[c])
        else:
            assert r.category is None
    # more captions than images: every image first, then second captions
    more = _run(coco, tmp_path / "m", sizes={"realism": 20})["realism"]
    assert len(more) == 20 and len({_image(r) for r in more}) == 12 and len({r.id for r in more}) == 20


def test_rp_mismatched_from_other_images_and_count(coco, tmp_path):
    recs = _run(coco, tmp_path / "o", sizes={"rp": 6})["rp"]
    assert len(recs) == 6
    owner: dict[str, set[int]] = {}
    for img in IMAGES:
        for _, t in CocoFixture.captions(img):
            owner.setdefault(t, set()).add(img)
    for r in recs:
        img = _image(r)
        available = {text_key(t) for t, imgs in owner.items() if imgs - {img}} - {text_key(r.caption)}
        assert len(r.mismatched) == min(99, len(available))
        assert len({text_key(m) for m in r.mismatched}) == len(r.mismatched)
        assert text_key(r.caption) not in {text_key(m) for m in r.mismatched}
        assert all(owner[m] - {img} for m in r.mismatched)
    few = _run(coco, tmp_path / "f", sizes={"rp": 3, "rp_distractors": 4})["rp"]
    assert [len(r.mismatched) for r in few] == [4, 4, 4]


def test_pa_counter_caption_swaps_only_the_positional_word(coco, tmp_path):
    recs = _run(coco, tmp_path / "o", sizes={"pa_per_word": None})["pa"]
    words = {r.positional_word for r in recs}
    assert {"left", "right", "on top of", "in front of", "behind", "inside", "outside", "under"} <= words
    assert "between" not in words
    for r in recs:
        hits = find_positional(r.caption)
        assert len(hits) == 1 and hits[0].word == r.positional_word
        a, b = r.caption.split(), r.counter_caption.split()
        pre = 0
        while a[pre] == b[pre]:
            pre += 1
        suf = 0
        while a[-1 - suf] == b[-1 - suf]:
            suf += 1
        old, new = " ".join(a[pre : len(a) - suf]).lower(), " ".join(b[pre : len(b) - suf]).lower()
        assert new.strip(".") == OPPOSITES[r.positional_word], r
        # "far from X" -> "near X" also drops the preposition that only "far" needs
        assert set(old.strip(".").split()) <= set(r.positional_word.split()) | {"the", "from", "away", "to"}, r
    capped = _run(coco, tmp_path / "c", sizes={"pa_per_word": 2})["pa"]
    per_word: dict[str, int] = {}
    for r in capped:
        per_word[r.positional_word] = per_word.get(r.positional_word, 0) + 1
    assert max(per_word.values()) == 2 and per_word["on"] == 2


def test_ca_counts_equal_instance_annotations(coco, tmp_path):
    recs = _run(coco, tmp_path / "o")["ca"]
    ids = {r.id for r in recs}
    assert {"1010", "1030", "1060", "1090"} <= ids  # two dogs / three sheep / two people (crowd ignored)
    assert "1070" not in ids  # "two dogs" on an image with one dog
    for r in recs:
        counts = CocoFixture.counts(_image(r))
        assert r.counts and r.counts == find_counts(r.caption)
        assert all(counts.get(c, 0) == n for c, n in r.counts.items()), r
        assert set(r.counts) <= set(r.labels)


def test_soa_class_annotated_and_named(coco, tmp_path):
    recs = _run(coco, tmp_path / "o")["soa"]
    assert len({r.id for r in recs}) == len(recs)
    assert "1081_15" not in {r.id for r in recs}  # a painted cat on an image without a cat
    for r in recs:
        named = [m.name for m in find_classes(r.caption)]
        assert r.category in CocoFixture.classes(_image(r)) and r.category in named
        assert list(r.labels) == list(dict.fromkeys(named))
        assert r.id == f"{_cid(r)}_{CLASS_TO_INDEX[r.category]}"
    capped = _run(coco, tmp_path / "c", sizes={"soa_per_class": 1, "soa_class_caps": {"dog": 3}})["soa"]
    per: dict[str, int] = {}
    for r in capped:
        per[r.category] = per.get(r.category, 0) + 1
    assert per["dog"] == 3 and all(n == 1 for c, n in per.items() if c != "dog")


def test_references_relative_when_images_inside_out(tmp_path):
    coco = write_coco(tmp_path / "data" / "coco")
    recs = prepare_coco(coco.root, coco.root, sizes=SMALL, log=None)
    line = recs["realism"].read_text().splitlines()[1]
    assert '"reference": "val2014/COCO_val2014_' in line
    assert all(Path(r.reference).is_file() for r in load_manifest(recs["realism"]))


def test_summary_printed(coco, tmp_path, capsys):
    prepare_coco(coco.root, tmp_path / "o", sizes=SMALL)
    out = capsys.readouterr().out
    assert "realism" in out and "no opposite for 'between': 1" in out and "more than one positional" in out


@pytest.mark.parametrize("missing", ["captions_val2014.json", "instances_val2014.json"])
def test_missing_annotation_file_is_named(coco, tmp_path, missing):
    (coco.root / "annotations" / missing).unlink()
    with pytest.raises(DataError, match=missing.replace(".", r"\.")) as e:
        prepare_coco(coco.root, tmp_path / "o", log=None)
    assert "annotations" in str(e.value)
    with pytest.raises(DataError, match="not a folder"):
        prepare_coco(tmp_path / "nowhere", tmp_path / "o", log=None)


def test_annotations_directly_in_root_and_bad_sizes(tmp_path):
    coco = write_coco(tmp_path / "c")
    for f in (coco.root / "annotations").iterdir():
        f.rename(coco.root / f.name)
    assert prepare_coco(coco.root, tmp_path / "o", sizes=SMALL, log=None)["rp"].is_file()
    from tise_bench.errors import ConfigError

    with pytest.raises(ConfigError, match="realism_size"):
        prepare_coco(coco.root, tmp_path / "o", sizes={"realism_size": 3}, log=None)
