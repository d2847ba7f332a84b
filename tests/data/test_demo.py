"""Tests for the embedded offline demo eval set (tise_bench.data.demo)."""

from __future__ import annotations

import hashlib
import multiprocessing as mp
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tise_bench.data.demo import (
    COUNT_WORDS,
    DEMO_MODELS,
    DEMO_VERSION,
    POSITIONAL,
    SUBSETS,
    DemoPaths,
    demo_folder_name,
    plan_scenes,
    prepare_demo,
)
from tise_bench.data.demo_draw import ASPECT, BACKGROUNDS, INTERIOR, layout_counting, layout_positional
from tise_bench.data.manifest import Record, load_manifest
from tise_bench.errors import DataError

N, SIZE = 14, 48


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoPaths:
    return prepare_demo(tmp_path_factory.mktemp("demo") / "demo", n_prompts=N, image_size=SIZE, seed=3)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _ids(recs: list[Record]) -> list[str]:
    return [r.id for r in recs]


def test_manifests_follow_subset_rules(demo: DemoPaths) -> None:
    assert set(demo.manifests) == set(SUBSETS)
    subsets = {s: load_manifest(p) for s, p in demo.manifests.items()}
    all_ids = _ids(subsets["realism"])
    assert len(all_ids) == N and len(set(all_ids)) == N
    assert _ids(subsets["rp"]) == all_ids and _ids(subsets["soa"]) == all_ids
    pa, ca = subsets["pa"], subsets["ca"]
    assert sorted(_ids(pa) + _ids(ca)) == sorted(all_ids) and abs(len(pa) - len(ca)) <= 1
    assert len({r.caption for r in subsets["realism"]}) == N  # unique captions (RP would be ambiguous)
    for r in subsets["realism"]:
        assert r.category in r.labels and all(lab in r.caption for lab in r.labels)
        assert 2 <= len(r.ref_captions) <= 3 and all(c != r.caption for c in r.ref_captions)
        assert r.reference is not None and Path(r.reference) == demo.reference_dir / f"{r.id}.png"
        with Image.open(r.reference) as im:
            assert im.size == (SIZE, SIZE) and im.mode == "RGB"
    for r in pa:
        assert r.positional_word in POSITIONAL and r.counter_caption and not r.counts
        phrase, opposite = POSITIONAL[r.positional_word]
        pre, _, post = r.caption.partition(f" {phrase} ")
        assert post and r.counter_caption == f"{pre} {POSITIONAL[opposite][0]} {post}"
        assert POSITIONAL[opposite][1] == r.positional_word and r.counter_caption != r.caption
        assert len(set(r.labels)) == 2
    for r in ca:
        word, *rest = r.caption.split()
        n = COUNT_WORDS[word]
        assert r.counts == {r.category: n} and r.positional_word is None and r.counter_caption is None
        assert r.labels == (r.category,)
        noun_ok = " ".join(rest).startswith(r.category + ("" if n == 1 else "s"))
        assert noun_ok, r.caption


def test_plan_covers_words_counts_and_classes() -> None:
    scenes = plan_scenes(40, seed=0)
    assert {s.word for s in scenes if s.word} == set(POSITIONAL)
    assert {s.count for s in scenes if s.word is None} == {1, 2, 3, 4}
    assert {s.record.category for s in scenes} == set(ASPECT)


def test_every_model_has_every_id(demo: DemoPaths) -> None:
    ids = _ids(load_manifest(demo.manifests["realism"]))
    assert demo.model_names == list(DEMO_MODELS)
    for m in demo.model_names:
        got = sorted(p.name for p in (demo.models_dir / m).iterdir())
        want = (
            sorted(f"{i}_{k}.png" for i in ids for k in (0, 1)) if m == "faithful" else sorted(f"{i}.png" for i in ids)
        )
        assert got == want, m
        with Image.open(demo.models_dir / m / got[0]) as im:
            assert im.size == (SIZE, SIZE)


def test_model_degradations(demo: DemoPaths) -> None:
    ids = _ids(load_manifest(demo.manifests["realism"]))
    f0 = {i: (demo.models_dir / "faithful" / f"{i}_0.png").read_bytes() for i in ids}
    owner = {hashlib.sha256(b).hexdigest(): i for i, b in f0.items()}
    assert len(owner) == len(ids)  # all faithful images distinct
    sources = [
        owner.get(hashlib.sha256((demo.models_dir / "shuffled" / f"{i}.png").read_bytes()).hexdigest()) for i in ids
    ]
    assert sorted(s for s in sources if s) == sorted(ids)  # a permutation of faithful images ...
    assert all(s != i for s, i in zip(sources, ids))  # ... with no fixed point: a derangement
    collapsed = {(demo.models_dir / "collapsed" / f"{i}.png").read_bytes() for i in ids}
    assert len(collapsed) == 2
    assert all(
        (demo.models_dir / "faithful" / f"{i}_0.png").read_bytes()
        != (demo.models_dir / "faithful" / f"{i}_1.png").read_bytes()
        for i in ids
    )

    def roughness(model: str, i: str) -> float:
        name = f"{i}_0.png" if model == "faithful" else f"{i}.png"
        a = np.asarray(Image.open(demo.models_dir / model / name), dtype=np.float64)
        return float(np.abs(np.diff(a, axis=1)).mean())

    for i in ids:
        assert roughness("blurred", i) < 0.7 * roughness("faithful", i) < roughness("noisy", i)


def test_deterministic_bytes(tmp_path: Path) -> None:
    a = prepare_demo(tmp_path / "a", n_prompts=6, image_size=32, seed=5)
    b = prepare_demo(tmp_path / "b", n_prompts=6, image_size=32, seed=5)
    fa, fb = _files(a.root), _files(b.root)
    assert len(fa) == 5 + 6 + 6 * 6 + 1 and fa == fb
    c = prepare_demo(tmp_path / "c", n_prompts=6, image_size=32, seed=6)
    assert _files(c.root)["reference/demo_0000.png"] != fa["reference/demo_0000.png"]
    with Image.open(a.reference_dir / "demo_0000.png") as im:
        assert not im.info and not getattr(im, "text", {})  # no metadata chunks


def test_idempotent_and_one_folder_per_configuration(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    p1 = prepare_demo(root, n_prompts=4, image_size=32)
    assert p1.root == root / demo_folder_name(4, 32, 0) == root / f"v{DEMO_VERSION}-n4-px32-seed0"
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}
    p2 = prepare_demo(str(root), n_prompts=4, image_size=32)
    assert p1 == p2 and {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes
    p3 = prepare_demo(root, n_prompts=4, image_size=40)  # other configuration: its own folder, the first untouched
    with Image.open(p3.reference_dir / "demo_0000.png") as im:
        assert im.size == (40, 40)
    assert {p: p.stat().st_mtime_ns for p in p1.root.rglob("*")} == {
        p: m for p, m in mtimes.items() if p1.root in p.parents
    }
    assert sorted(p.name for p in root.iterdir()) == sorted([p1.root.name, p3.root.name])  # no tmp/old folders


def test_refuses_foreign_folder_and_bad_args(tmp_path: Path) -> None:
    mine = tmp_path / "mine" / demo_folder_name(4, 32, 0)
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="(?s)no DEMO_VERSION file.*never moves or deletes it"):
        prepare_demo(tmp_path / "mine", n_prompts=4, image_size=32)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
    (tmp_path / "afile").write_text("keep me too")
    with pytest.raises(DataError, match="not a folder"):
        prepare_demo(tmp_path / "afile", n_prompts=4, image_size=32)
    assert (tmp_path / "afile").read_text() == "keep me too"
    with pytest.raises(DataError, match="n_prompts"):
        prepare_demo(tmp_path / "x", n_prompts=1)
    with pytest.raises(DataError, match="seed"):
        prepare_demo(tmp_path / "x", n_prompts=4, seed=-1)


def _worker(root: str) -> str:
    return str(prepare_demo(root, n_prompts=8, image_size=32, seed=1).root)


def test_concurrent_prepare(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    folder = root / demo_folder_name(8, 32, 1)
    with mp.get_context("spawn").Pool(2) as pool:
        assert pool.map(_worker, [str(root)] * 2) == [str(folder)] * 2
    assert sorted(p.name for p in root.iterdir()) == [folder.name]
    assert _files(folder) == _files(prepare_demo(tmp_path / "solo", n_prompts=8, image_size=32, seed=1).root)


def _inside(inner: tuple[float, ...], outer: tuple[float, ...]) -> bool:
    return outer[0] <= inner[0] and outer[1] <= inner[1] and inner[2] <= outer[2] and inner[3] <= outer[3]


@pytest.mark.parametrize("word", sorted(POSITIONAL))
def test_layout_matches_positional_word(word: str) -> None:
    S = 128
    for k in range(30):
        rng = np.random.default_rng(k)
        a, b = rng.choice(list(ASPECT), 2, replace=False)
        if word in ("inside", "outside"):
            b = list(INTERIOR)[k % len(INTERIOR)]
            a = "cup" if b != "cup" else "kite"
        placed = layout_positional(str(a), word, str(b), rng, S)
        assert sorted(p.cls for p in placed) == sorted([a, b])
        pa = next(p.box for p in placed if p.cls == a)
        pb = next(p.box for p in placed if p.cls == b)
        for bx in (pa, pb):
            assert -1e-6 <= bx[0] < bx[2] <= S + 1e-6 and -1e-6 <= bx[1] < bx[3] <= S + 1e-6
        cxa, cya, cxb, cyb = (pa[0] + pa[2]) / 2, (pa[1] + pa[3]) / 2, (pb[0] + pb[2]) / 2, (pb[1] + pb[3]) / 2
        order = [p.cls for p in placed]
        checks = {
            "left": pa[2] < pb[0],
            "right": pa[0] > pb[2],
            "above": pa[3] < pb[1],
            "below": pa[1] > pb[3],
            "on top of": abs(pa[3] - pb[1]) < 1e-6 and pb[0] < cxa < pb[2],
            "under": abs(pa[1] - pb[3]) < 1e-6 and pb[0] < cxa < pb[2],
            "near": 0 < max(pa[0] - pb[2], pb[0] - pa[2]) < 0.05 * S,
            "far": np.hypot(cxa - cxb, cya - cyb) > 0.7 * S,
            "in front of": order == [b, a] and cya > cyb and (pa[3] - pa[1]) > (pb[3] - pb[1]) * 0.95,
            "behind": order == [a, b] and cya < cyb,
            "inside": order == [b, a] and _inside(pa, pb),
            "outside": pa[2] < pb[0] or pa[0] > pb[2],
        }
        assert checks[word], (word, a, b, placed)


@pytest.mark.parametrize("kind", BACKGROUNDS)
def test_counting_layout_draws_n_disjoint_objects(kind: str) -> None:
    for n in (1, 2, 3, 4):
        for cls in ASPECT:
            boxes = [p.box for p in layout_counting(cls, n, kind, np.random.default_rng(n), 64)]
            assert len(boxes) == n
            assert all(0 <= b[0] and b[2] <= 64 and 0 <= b[1] and b[3] <= 64 for b in boxes)
            assert all(boxes[i][2] < boxes[i + 1][0] for i in range(n - 1))  # left to right, no overlap


def test_derangement_has_no_fixed_points() -> None:
    from tise_bench.data.demo import _derangement

    for n in range(2, 12):
        for s in range(40):
            perm = _derangement(n, np.random.default_rng(s))
            assert sorted(perm) == list(range(n)) and all(p != i for i, p in enumerate(perm))


def test_losing_the_install_race_keeps_the_winner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tise_bench.data.demo as demo_mod

    root, original, calls = tmp_path / "demo", demo_mod._render_all, []
    folder = root / demo_folder_name(4, 32, 0)

    def render_then_get_overtaken(out: Path, n: int, size: int, seed: int) -> None:
        original(out, n, size, seed)
        if not calls:  # another process finishes first while we are still rendering
            calls.append(out)
            prepare_demo(root, n_prompts=n, image_size=size, seed=seed)

    monkeypatch.setattr(demo_mod, "_render_all", render_then_get_overtaken)
    prepare_demo(root, n_prompts=4, image_size=32)
    assert len(calls) == 1 and not calls[0].exists()  # our copy was discarded, the winner kept
    assert sorted(p.name for p in root.iterdir()) == [folder.name]
    assert (folder / "DEMO_VERSION").is_file() and len(list((folder / "reference").iterdir())) == 4
