"""``python -m tise_bench.list`` (issue 14 item 5): every metric (id, display, direction, the README's definition),
backbone, data set and model the registries and config groups hold, read from them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tise_bench import list as listing
from tise_bench.backbones.registry import all_backbones
from tise_bench.config_schema import TISE_BASELINES
from tise_bench.docs import summary
from tise_bench.registry import all_metrics

CONFIGS = Path(__file__).resolve().parents[1] / "tise_bench" / "configs"


def _rows(out: str, title: str) -> dict[str, str]:
    """name -> row of the section whose heading starts with ``title`` (the column header row left out)."""
    section = out.split(f"\n{title}", 1)[1] if not out.startswith(title) else out[len(title) :]
    lines = section.split("\n\n", 1)[0].splitlines()[2:]
    return {line.split()[0]: line for line in lines}


@pytest.fixture(scope="module")
def out() -> str:
    p = subprocess.run([sys.executable, "-m", "tise_bench.list"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


def test_lists_every_registered_metric_with_direction_and_definition(out):
    rows = _rows(out, "Metrics")
    assert list(rows) == list(all_metrics())  # registration order, nothing else
    for mid, spec in all_metrics().items():
        row = rows[mid]
        assert f"  {spec.display}  " in row and f"  {spec.unit}  " in row, row
        assert ("↑ higher" if spec.higher_is_better else "↓ lower") in row
        assert row.endswith(" ".join(summary(spec).replace("``", "").split())), mid
    assert "↓ lower" in rows["fid"] and "↑ higher" in rows["clip_score"]


def test_lists_every_registered_backbone_with_its_features_and_keys(out):
    rows = _rows(out, "Backbones")
    assert sorted(rows) == sorted(all_backbones())
    for name, entry in all_backbones().items():
        assert rows[name].endswith(", ".join(entry.keys())), name
        assert ", ".join(entry.cls.provides) in rows[name]
    assert rows["detector"].split()[1:3] == ["detections,", "size"]


def test_lists_every_data_set_and_model_option(out):
    data = _rows(out, "Data sets")
    assert sorted(data) == sorted(f.stem for f in (CONFIGS / "data").glob("*.yaml"))
    assert data["demo"].endswith(
        "Embedded demo: procedurally rendered scenes, prepared by the package itself (no download)."
    )
    models = _rows(out, "Models")
    assert sorted(models) == sorted({f.stem for f in (CONFIGS / "model").glob("*.yaml")} | set(TISE_BASELINES))
    assert models["dfgan"].endswith("TISE baseline: images in ${paths.samples_root}/dfgan/${data.name}")
    assert "Every demo model on data=demo" in models["demo_all"]


def test_sections_can_be_chosen_and_a_wrong_one_is_named(capsys):
    assert listing.main(["models", "data"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("Models (model=<name>") and "\n\nData sets (data=<name>" in shown and "Metrics" not in shown
    with pytest.raises(SystemExit) as e:
        listing.main(["modles"])
    assert e.value.code == 2 and "did you mean 'models'?" in capsys.readouterr().err
