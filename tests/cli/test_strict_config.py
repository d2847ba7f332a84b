"""Strict command line (issue 14 item 7), through the installed command: a key or a config group option the
schema does not know is refused before Hydra composes (Hydra itself would suggest ``+backbone=random``), in one
paragraph with a "did you mean", exit status 2, nothing written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY = ["data.n_prompts=4", "data.image_size=32"]


def _cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TISE_OFFLINE="1", HOME=str(cwd / "home"))
    for var in ("HYDRA_FULL_ERROR", "TISE_CACHE_DIR"):
        env.pop(var, None)
    return subprocess.run(
        [sys.executable, "-m", "tise_bench", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def _refused(p: subprocess.CompletedProcess, cwd: Path) -> str:
    """The one-paragraph error of a refused run, checked for what must not be there."""
    assert p.returncode == 2, p.stderr[-3000:]
    err = p.stderr.strip()
    assert err.startswith("tise_bench: error: ") and "\n" not in err, err  # one paragraph, nothing else
    assert "Traceback" not in err and "Could not override" not in err and "To append" not in err
    assert p.stdout == ""
    assert [x.name for x in cwd.iterdir()] == [], "a refused command line wrote files"  # no results/, no .hydra/
    return err


def test_typos_are_refused_in_one_message_with_suggestions(tmp_path):
    # backbone=random is the case: Hydra suggested '+backbone=random', which then ran with real backbones
    args = ["backbone=random", "metrics.idss=[clip_score]", "backbones.clip.modle=ViT-B-16", "model=dfgn", *TINY]
    err = _refused(_cli(args, tmp_path), tmp_path)
    assert "+backbone" not in err and err.endswith("Nothing was run.")
    for text in (
        "backbone is not a setting of the config (TiseConfig, tise_bench/config_schema.py) nor a config group",
        "Did you mean backbones?",
        "fix: pass backbones=random instead.",
        "metrics.idss is not a setting of metrics (MetricsConfig",
        "Did you mean metrics.ids? Valid keys: ids, params, crops; fix: pass metrics.ids=[clip_score] instead.",
        "backbones.clip.modle is not a setting of backbones.clip (ClipConfig",
        "fix: pass backbones.clip.model=ViT-B-16 instead.",
        "model=dfgn: the config group model has no option 'dfgn' (tise_bench/configs/model/). Did you mean model=dfgan?",
    ):
        assert text in err, text
