"""tise_bench.Evaluator (issue 14 item 2): equal to evaluate() and to the CLI on the same images, no file written for
in-memory images, backbones built once across update/compute/reset cycles, tensor / PIL / array inputs, a compact
result table."""

from __future__ import annotations

import inspect
import json
import os
import pydoc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import tise_bench
from helpers import RANDOM_BACKBONES, cache_with_session_weights, custom_run_config, structured_images
from tise_bench.errors import ConfigError
from tise_bench.runner import run

METRICS = ["clip_score", "clip_rp", "is", "fid"]
N = 4
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluator")
    gen = structured_images(root / "gen", N, seed=31, size=32)
    ref = structured_images(root / "ref", N, seed=32, size=32)
    caps = [f"a picture with shapes number {i}" for i in range(N)]
    man = root / "m.jsonl"
    man.write_text(
        "".join(json.dumps({"id": p.stem, "caption": c, "reference": str(r)}) + "\n" for p, c, r in zip(gen, caps, ref))
    )
    pix = [np.asarray(Image.open(p).convert("RGB")) for p in gen]
    refs = [np.asarray(Image.open(p).convert("RGB")) for p in ref]
    return {"root": root, "gen": gen, "ref": ref, "caps": caps, "man": man, "pix": pix, "refs": refs}


@pytest.fixture(scope="module")
def cache(data, session_cache):
    """``<root>/cache`` (where :func:`helpers.custom_run_config` points the CLI) with the session's random weights."""
    c = data["root"] / "cache"
    c.mkdir()
    return cache_with_session_weights(session_cache, c)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def _mixed_batches(pix: list[np.ndarray]) -> list[object]:
    """The same pixels as a float NCHW batch, uint8 CHW tensors, PIL images and uint8 HWC arrays."""
    a, b, c, d = pix[:1], pix[1:2], pix[2:3], pix[3:]
    return [
        torch.from_numpy(np.stack(a)).permute(0, 3, 1, 2).float() / 255.0,
        [torch.from_numpy(x.copy()).permute(2, 0, 1) for x in b],
        [Image.fromarray(x) for x in c],
        list(d),
    ]


def test_equals_evaluate_and_the_cli_and_writes_no_image_files(data, cache, monkeypatch):
    import tise_bench.evaluator as evaluator_mod

    builds = []
    real_build = evaluator_mod.build_backbones
    monkeypatch.setattr(evaluator_mod, "build_backbones", lambda *a, **k: builds.append(a) or real_build(*a, **k))
    ev = tise_bench.Evaluator(METRICS, backbones=RANDOM_BACKBONES, cache_dir=cache, num_workers=0)
    nets = dict(ev.backbones)
    ids = [p.stem for p in data["gen"]]
    before = _files(cache)
    fwd0 = ev.backbones["inception"].n_forward_images
    for i, batch in enumerate(_mixed_batches(data["pix"])):
        ev.update(batch, data["caps"][i : i + 1], references=data["refs"][i : i + 1], ids=ids[i : i + 1])
    assert ev.backbones["inception"].n_forward_images - fwd0 == 2 * N and len(ev) == N  # forwards ran in update
    mem = ev.compute()
    assert ev.backbones["inception"].n_forward_images - fwd0 == 2 * N  # compute runs no image forward
    assert mem.provenance["backbone_forwards"]["inception"] == 2 * N
    new = _files(cache) - before
    assert not [f for f in new if f.lower().endswith(IMAGE_EXTS)] and not (cache / "api-images").exists()
    # in-memory images and references: the only new files are caption embeddings (and the reference side of FID a later computation reuses)
    assert all(f.split(os.sep)[1].endswith("-text") or f.startswith("stats" + os.sep + "sqrt-") for f in new), new
    for cycle in range(2):  # more evaluations, one Evaluator: the networks are built once and stay resident
        ev.reset()  # references as files: in the disk cache after the first evaluation (a fixed validation set)
        ev.update(data["pix"][cycle : cycle + 2], data["caps"][:2], references=data["ref"][:2])
        small = ev.compute()
        assert small.metrics["clip_score"].n == 2 and small.metrics["fid"].extras["n_reference"] == 2
        assert small.provenance["backbone_forwards"]["inception"] == (4 if cycle == 0 else 2)
    assert len(builds) == 1 and all(ev.backbones[k] is v for k, v in nets.items())

    folder = tise_bench.evaluate(
        data["root"] / "gen", manifest=data["man"], metrics=METRICS, backbones=RANDOM_BACKBONES, cache_dir=cache
    )
    # the CLI: its config composed as `python -m tise_bench model=folder data=custom ...` composes it, its function
    cfg = custom_run_config(data["root"], data["man"], f"metrics.ids=[{','.join(METRICS)}]")
    [cli] = run(cfg)
    res = data["root"] / "res"
    assert cli.values() == folder.values()
    saved = json.loads((res / "tiny" / "m" / "metrics.json").read_text())["metrics"]
    assert set(mem.metrics) == set(folder.metrics) == set(saved) == set(METRICS)
    for mid, mv in mem.metrics.items():
        assert np.isfinite(mv.value), mid
        for other in (folder.metrics[mid].value, saved[mid]["value"]):
            assert abs(mv.value - other) <= 1e-9 * max(1.0, abs(other)), (mid, mv.value, other)
        assert mv.n == folder.metrics[mid].n == saved[mid]["n"], mid
        assert mv.skipped == folder.metrics[mid].skipped == saved[mid].get("skipped", {}), mid
    assert mem.provenance["counts"] == {**folder.provenance["counts"]}
    # evaluate() on in-memory images and references: the Evaluator's path, nothing written either
    again = tise_bench.evaluate(
        data["pix"][:2],
        data["caps"][:2],
        references=data["refs"][:2],
        metrics=["clip_score", "clip_i2i"],
        backbones=RANDOM_BACKBONES,
        cache_dir=cache,
    )
    assert again.metrics["clip_i2i"].n == 2 and again.provenance["counts"]["reference_images"] == 2
    assert not [f for f in _files(cache) - before if f.lower().endswith(IMAGE_EXTS)]
    assert not (cache / "api-images").exists()


def test_inputs_reset_ids_and_repr(data, cache):
    ev = tise_bench.Evaluator(["clip_score", "clip_rp"], backbones=RANDOM_BACKBONES, cache_dir=cache, num_workers=0)
    x = data["pix"][0]
    forms = [
        Image.fromarray(x),
        x,
        torch.from_numpy(x.copy()).permute(2, 0, 1),
        torch.from_numpy(x.copy()).permute(2, 0, 1).float() / 255.0,
    ]
    ev.update(forms, ["one caption"] * 4)
    res = ev.compute()
    realism = res.samples[res.samples["subset"] == "realism"]
    assert realism["sha256"].nunique() == 1 and list(realism["id"]) == ["000000", "000001", "000002", "000003"]
    with pytest.raises(ConfigError, match=r"id '000001' was given before; ids must be unique until reset\(\)"):
        ev.update([x], ["again"], ids=["000001"])
    with pytest.raises(ConfigError, match=r"2 images for 1 captions"):
        ev.update([x, x], ["c"])
    ev.reset()
    assert len(ev) == 0
    with pytest.raises(ConfigError, match=r"no samples; call update"):
        ev.compute()
    ev.update(np.stack(data["pix"][:3]), data["caps"][:3])  # an NHWC uint8 batch
    res = ev.compute()
    assert res.metrics["clip_score"].n == 3 and res.metrics["clip_rp"].n == 3
    text = repr(res)
    assert text == str(res) and len(text.splitlines()) < 40 and len(text) < 3000, text
    lines = text.splitlines()
    assert lines[0].startswith("EvalResult(model=model, data=custom, images=3, skipped=0)")
    row = next(line for line in lines if line.startswith("clip_score"))
    assert row.split()[-1] == "3" and f"{res.metrics['clip_score'].value:.4g}" in row
    assert any(line.startswith("clip_rp ") for line in lines) and "RANDOM-WEIGHTS" in text


def test_signatures_are_visible_to_help():
    params = inspect.signature(tise_bench.evaluate).parameters
    assert list(params)[:2] == ["images", "captions"] and "args" not in params and "kwargs" not in params
    doc = pydoc.render_doc(tise_bench.evaluate, renderer=pydoc.plaintext)
    assert "evaluate(images: " in doc and "references" in doc and "(*args, **kwargs)" not in doc
    ev = inspect.signature(tise_bench.Evaluator).parameters
    assert {"metrics", "backbones", "cache_dir", "device", "batch_size", "process_group"} <= set(ev)
    upd = inspect.signature(tise_bench.Evaluator.update).parameters
    assert list(upd) == ["self", "images", "captions", "references", "ids"]


def test_rows_are_selected_with_their_crops_in_the_folder_scans_order():
    """compute() orders image rows as the CLI's folder scan does (by id) and object crops follow their images, in
    their own order, renumbered (O-IS reads crops in row order); rows of several updates are joined first."""
    from tise_bench.evaluator import _concat, _select
    from tise_bench.features.bank import ImageFeatures

    def feats(paths, owner):
        n = len(paths)
        return ImageFeatures(
            paths=paths,
            shas=[f"sha-{p}" for p in paths],
            features={
                "inception.pool3": np.arange(n, dtype=np.float32)[:, None] + 10 * (paths[0] == "c"),
                "crops.pool3": np.asarray([[100.0 * o + i + 1000 * (paths[0] == "c")] for i, o in enumerate(owner)]),
                "crops.owner": np.asarray(owner, dtype=np.int64),
            },
        )

    joined = _concat([feats(["b", "a"], [0, 0, 1]), feats(["c", "d"], [1, 1]), feats(["e"], [])])
    assert joined.paths == ["b", "a", "c", "d", "e"] and joined.features["crops.owner"].tolist() == [0, 0, 1, 3, 3]
    sel = _select(joined, ["a", "b", "d", "zz"])  # "zz": a bad (left-out) image, "c", "e": not asked for
    assert sel.paths == ["a", "b", "d"] and sel.shas == ["sha-a", "sha-b", "sha-d"]
    assert sel.features["inception.pool3"][:, 0].tolist() == [1.0, 0.0, 11.0]
    assert sel.features["crops.owner"].tolist() == [0, 1, 1, 2, 2]
    assert sel.features["crops.pool3"][:, 0].tolist() == [102.0, 0.0, 1.0, 1100.0, 1101.0]
