"""The metric tables in README.md and metrics/README.md are what the registry renders (tise_bench.docs)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tise_bench import docs
from tise_bench.registry import all_metrics

ROOT = Path(__file__).resolve().parents[1]


def _copy_docs(tmp_path: Path) -> Path:
    for t in docs.TABLES:
        (tmp_path / t.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / t.path, tmp_path / t.path)
    return tmp_path


def _table_ids(text: str) -> list[str]:
    region = text.split(docs.BEGIN, 1)[1].split(docs.END, 1)[0]
    rows = [line for line in region.splitlines() if line.startswith("| ")][1:]  # drop the header
    return [row.split("|")[1].strip().strip("`") for row in rows]


def test_tables_match_the_registry():
    diff = docs.drift(ROOT)
    assert diff == "", f"metric tables drifted from the registry; run `python -m tise_bench.docs --write`:\n{diff}"


def test_tables_list_every_metric_once_in_registration_order():
    ids = list(all_metrics())
    for t in docs.TABLES:
        assert _table_ids((ROOT / t.path).read_text(encoding="utf-8")) == ids, t.path


@pytest.mark.parametrize("table", docs.TABLES, ids=lambda t: t.path)
def test_an_edited_table_is_detected_and_rewritten(tmp_path, table):
    root = _copy_docs(tmp_path)
    docs.write(root)  # start from tables in sync with the registry, whatever the checkout holds
    path = root / table.path
    text = path.read_text(encoding="utf-8")
    spec = next(iter(all_metrics().values()))
    row = next(
        line for line in text.splitlines() if line.startswith(f"| {spec.id} |") or line.startswith(f"| `{spec.id}` |")
    )
    arrow = "↑" if spec.higher_is_better else "↓"
    flipped = row.replace(f" {arrow} ", " ↓ " if arrow == "↑" else " ↑ ", 1)
    assert flipped != row
    path.write_text(text.replace(row, flipped), encoding="utf-8")

    diff = docs.drift(root)
    assert f"--- {table.path} (on disk)" in diff and f"-{flipped}" in diff and f"+{row}" in diff
    assert docs.main(["--check", "--root", str(root)]) == 1
    assert docs.write(root) == [path]
    assert path.read_text(encoding="utf-8") == text
    assert docs.drift(root) == "" and docs.main(["--check", "--root", str(root)]) == 0


def test_check_command_exits_1_with_a_diff(tmp_path):
    root = _copy_docs(tmp_path)
    docs.write(root)
    path = root / "metrics/README.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace(docs.END, "| extra | row |\n" + docs.END, 1), encoding="utf-8"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tise_bench.docs", "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert "-| extra | row |" in proc.stdout and "--write" in proc.stderr


@dataclasses.dataclass(frozen=True)
class ZZParams:
    k: int = 3
    gamma: float | None = None


def test_a_new_metric_is_rendered_without_code_changes(tmp_path):
    root = _copy_docs(tmp_path)
    specs = list(all_metrics().values())
    new = dataclasses.replace(
        specs[0],
        id="zz_new",
        display="ZZ|new",
        higher_is_better=False,
        version="7",
        citation="Someone et al. 2031",
        subset="realism",
        unit="distance",
        description="ZZ = a distance on ``pool3``, e.g. FID's cousin (Someone et al. 2031).\n    Params: none.",
        params=ZZParams,
    )
    docs.write(root, specs + [new])
    readme, cards = (root / "README.md").read_text(encoding="utf-8"), (root / "metrics/README.md").read_text("utf-8")
    assert _table_ids(readme) == _table_ids(cards) == [s.id for s in specs] + ["zz_new"]
    assert "| `zz_new` | ZZ\\|new | ↓ | ZZ = a distance on `pool3`, e.g. FID's cousin (Someone et al. 2031) |" in readme
    assert "| zz_new | ZZ\\|new | ↓ | realism | distance | 7 | `k=3`, `gamma=null` | Someone et al. 2031 |" in cards
    assert docs.drift(root, specs + [new]) == "" and docs.drift(root) != ""


def test_missing_markers_name_the_file(tmp_path):
    root = _copy_docs(tmp_path)
    (root / "README.md").write_text("# no table here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"README\.md: expected one line '<!-- metrics-table:begin -->'"):
        docs.drift(root)
    assert docs.main(["--check", "--root", str(root)]) == 2


@pytest.mark.parametrize(
    "text, first",
    [
        ("RP = 100·mean(hit). Params: n (99).", "RP = 100·mean(hit)."),
        ("IS with T = 0.9091363549232483 (TISE). More.", "IS with T = 0.9091363549232483 (TISE)."),
        (
            "As Hessel et al. 2021 (cf. Sec. 3. of it) define it.\n    Then more.",
            "As Hessel et al. 2021 (cf. Sec. 3. of it) define it.",
        ),
        ("Wrapped over\n    two lines, no period", "Wrapped over two lines, no period"),
        ("First paragraph\n\nsecond. paragraph", "First paragraph"),
    ],
)
def test_first_sentence(text, first):
    assert docs.first_sentence(text) == first


def test_an_explicit_summary_wins_over_the_docstring():
    spec = next(iter(all_metrics().values()))

    @dataclasses.dataclass(frozen=True)
    class WithSummary(type(spec)):  # the registry may carry ``summary`` as data beside the metric
        summary: str = ""

    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec)}
    assert docs.summary(WithSummary(**fields, summary="a short\n  definition.")) == "a short definition"
    assert docs.summary(spec) == docs.first_sentence(spec.description).rstrip(".")
