"""docs/input_matrix.md names a test for every row, and every named test exists (issue 15 item 3).

Each table's last column is ``test``; each row's cell names at least one ``tests/<file>.py::<test>``; a following
``::<test>`` is in the same file. A named file must exist and define ``def <test>(``."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "input_matrix.md"
REF = re.compile(r"`((?:tests/[\w./-]+\.py)?)::(test_\w+)`")
BARE_FILE = re.compile(r"`tests/[\w./-]+\.py`")


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def problems(text: str, root: Path) -> list[str]:
    """What is wrong with the test column of every table in ``text`` (tests looked up under ``root``)."""
    out: list[str] = []
    lines = text.splitlines()
    n_rows = 0
    for i, line in enumerate(lines):
        if not (line.startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---")):
            continue  # not a table header
        header = _cells(line)
        if header[-1] != "test":
            out.append(f"line {i + 1}: table without a 'test' column: {line}")
            continue
        for j in range(i + 2, len(lines)):
            row = lines[j]
            if not row.startswith("|"):
                break
            n_rows += 1
            cells = _cells(row)
            label = f"line {j + 1} ({cells[0][:50]})"
            if len(cells) != len(header):
                out.append(f"{label}: {len(cells)} cells, the header has {len(header)}")
                continue
            refs = REF.findall(cells[-1])
            if not refs or not refs[0][0]:
                out.append(f"{label}: names no tests/<file>.py::<test> first")
                continue
            if BARE_FILE.search(cells[-1]):
                out.append(f"{label}: names a file without a test")
            current = ""
            for file, test in refs:
                current = file or current
                path = root / current
                if not path.is_file():
                    out.append(f"{label}: {current} does not exist")
                elif not re.search(rf"^(async )?def {test}\(", path.read_text(encoding="utf-8"), re.MULTILINE):
                    out.append(f"{label}: {current} has no test {test}")
    if n_rows == 0:
        out.append("no table rows found")
    return out


def test_every_row_names_an_existing_test():
    found = problems(DOC.read_text(encoding="utf-8"), ROOT)
    assert found == [], "docs/input_matrix.md:\n" + "\n".join(found)


def test_the_check_fails_on_a_missing_test_a_missing_file_and_an_untested_row():
    doc = (
        "| input | behaviour | test |\n"
        "|---|---|---|\n"
        "| a | works | `tests/hardening/test_matrix_names.py::test_every_row_names_an_existing_test`, `::test_nope` |\n"
        "| b `x\\|y` | works | `tests/hardening/no_such_file.py::test_x` |\n"
        "| c | works | none |\n"
        "| d | works | `tests/hardening/test_matrix_names.py` |\n"
        "\n"
        "| input | behaviour |\n"
        "|---|---|\n"
        "| e | works |\n"
    )
    found = problems(doc, ROOT)
    assert len(found) == 5, found
    assert "has no test test_nope" in found[0]
    assert "no_such_file.py does not exist" in found[1]  # an escaped \| stays inside its cell
    assert "names no tests/<file>.py::<test>" in found[2] and "names no" in found[3]
    assert "table without a 'test' column" in found[4]
