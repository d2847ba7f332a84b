"""CUB-200 captions → realism and rp manifests (tiny fixture: 3 images, 2 species, 10 captions each)."""

from __future__ import annotations

import pickle
from pathlib import Path

from PIL import Image

from tise_bench.data.manifest import load_manifest
from tise_bench.prepare import prepare_cub, run_prepare

KEYS = (
    "001.Black_footed_Albatross/Black_Footed_Albatross_0001_1",
    "001.Black_footed_Albatross/Black_Footed_Albatross_0002_2",
    "002.Laysan_Albatross/Laysan_Albatross_0003_3",
)


def write_cub(root: Path, split: tuple[str, ...] | None = KEYS[:2]) -> Path:
    for i, key in enumerate(KEYS):
        t = root / "text_c10" / f"{key}.txt"
        t.parent.mkdir(parents=True, exist_ok=True)
        t.write_text("".join(f"bird {i} caption {k} with a white belly\n" for k in range(10)) + "\n")
        img = root / "CUB_200_2011" / "images" / f"{key}.jpg"
        img.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 60, 10, 10)).save(img)
    if split is not None:
        (root / "test").mkdir()
        (root / "test" / "filenames.pickle").write_bytes(pickle.dumps(list(split), protocol=2))
    return root


def test_cub_test_split(tmp_path):
    root = write_cub(tmp_path / "cub")
    paths = prepare_cub(root, tmp_path / "out", sizes={"realism": 3, "rp": 20}, log=None)
    real, rp = load_manifest(paths["realism"]), load_manifest(paths["rp"])
    assert len(real) == 3 and len({r.reference for r in real}) == 2  # one per image first, then a second
    assert all(Path(r.reference).is_file() and "Laysan" not in r.reference for r in real + rp)
    assert all(r.category == "Black footed Albatross" and len(r.ref_captions) == 9 for r in real)
    for r in real:  # id = <image>_<line>
        image, k = r.id.rsplit("_", 1)
        assert r.caption == f"bird {0 if image.endswith('0001_1') else 1} caption {k} with a white belly"
    assert len(rp) == 20
    for r in rp:
        assert len(r.mismatched) == 10  # the other image's 10 captions
        own = r.id.rsplit("_", 1)[0]
        assert all(f"bird {0 if own.endswith('0001_1') else 1} " not in m for m in r.mismatched)
    again = prepare_cub(root, tmp_path / "out2", sizes={"realism": 3, "rp": 20}, log=None)
    assert paths["rp"].read_bytes() == again["rp"].read_bytes()


def test_cub_without_split_uses_all_via_run_prepare(tmp_path, capsys):
    root = write_cub(tmp_path / "cub", split=None)
    paths = run_prepare(
        {
            "data": "cub",
            "cub_root": str(root),
            "out": str(tmp_path / "out"),
            "seed": 0,
            "sizes": {"realism": None, "rp": 4, "rp_distractors": 99},
        }
    )
    assert len(load_manifest(paths["realism"])) == 30 and len(load_manifest(paths["rp"])) == 4
    assert all(len(r.mismatched) == 20 for r in load_manifest(paths["rp"]))
    assert "no test/filenames.pickle" in capsys.readouterr().out
