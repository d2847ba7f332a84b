"""Rows from runs and extra-row CSVs: step rule, random-weights flag, clear errors on bad CSVs and clashes."""

from __future__ import annotations

import pytest

from tise_bench.errors import ConfigError, DataError
from tise_bench.leaderboard.collect import collect_runs, merge, parse_step, read_extra_rows

from .lb_helpers import write_csv, write_run


@pytest.mark.parametrize(
    "name, step",
    [
        ("ckpt_12000", 12000),
        ("step12000", 12000),
        ("gan-step_500", 500),
        ("run.iter300", 300),
        ("sd15", None),
        ("sdxl-1", None),
        ("my_model", None),
        ("stepper", None),
    ],
)
def test_step_parsed_from_the_end_of_the_name(name, step):
    assert parse_step(name) == step


def test_runs_skip_dot_folders_prefer_config_step_and_flag_random_weights(tmp_path):
    write_run(tmp_path, "d", "ckpt_100", {"fid": 1.0})
    write_run(tmp_path, "d", "ckpt_200", {"fid": 2.0}, step=7, random_weights=True)
    write_run(tmp_path, "d", "ignored", {"fid": 3.0}, folder=".hydra")
    (tmp_path / "d" / "no_result").mkdir()
    got = collect_runs(tmp_path / "d")
    assert [(r["model"], r["step"], r["external"]) for r in got.rows] == [
        ("ckpt_100", 100, False),
        ("ckpt_200", 7, False),
    ]
    assert got.random_weights == ["ckpt_200"] and set(got.run_dirs) == {"ckpt_100", "ckpt_200"}
    write_run(tmp_path, "d", "ckpt_100", {"fid": 1.0}, folder="copy")
    with pytest.raises(DataError, match="appears in two runs"):
        collect_runs(tmp_path / "d")


def test_extra_rows_by_display_name_or_id_blank_is_missing(tmp_path):
    csv = write_csv(tmp_path / "x.csv", "method,FID,is_star,o-fid\nAttnGAN,35.5,,120\nDF-GAN,21.4,30.1,")
    rows = read_extra_rows(csv)
    assert rows[0] == {
        "model": "AttnGAN",
        "external": True,
        "step": None,
        "source": str(csv),
        "values": {"fid": 35.5, "is_star": None, "o_fid": 120.0},
        "protocol": "tise-paper",
    }
    assert rows[1]["values"] == {"fid": 21.4, "is_star": 30.1, "o_fid": None}


def test_unknown_column_error_names_it_and_the_known_names(tmp_path):
    csv = write_csv(tmp_path / "x.csv", "method,FID,Sharpness\nA,1,2")
    with pytest.raises(ConfigError, match=r"unknown column 'Sharpness'.*FID.*IS\*.*fid"):
        read_extra_rows(csv)


def test_non_numeric_cell_error_names_row_and_column(tmp_path):
    csv = write_csv(tmp_path / "x.csv", "method,FID,RP\nA,1,2\nB,n/a,3")
    with pytest.raises(ConfigError, match=r"line 3 \(method 'B'\), column 'FID': 'n/a' is not a number"):
        read_extra_rows(csv)
    with pytest.raises(ConfigError, match="no 'method' column"):
        read_extra_rows(write_csv(tmp_path / "y.csv", "name,FID\nA,1"))
    with pytest.raises(ConfigError, match="not found"):
        read_extra_rows(tmp_path / "missing.csv")


def test_same_name_as_run_and_extra_row_is_an_error(tmp_path):
    write_run(tmp_path, "d", "dfgan", {"fid": 1.0})
    extra = read_extra_rows(write_csv(tmp_path / "x.csv", "method,FID\ndfgan,2"))
    with pytest.raises(ConfigError, match=r"\['dfgan'\] are both a run"):
        merge(collect_runs(tmp_path / "d"), extra)
