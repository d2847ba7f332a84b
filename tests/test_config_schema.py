"""The typed config (tise_bench/config_schema.py): one place per default, generated baselines, wrong keys and
types refused, composing from anywhere (repeatedly, inside a Hydra app) leaves Hydra's state as it was."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from dataclasses import fields
from pathlib import Path

import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import tise_bench
from helpers import RANDOM_BACKBONES
from tise_bench.backbones.registry import BackboneSetConfig, all_backbones
from tise_bench.config_schema import TISE_BASELINES, check_overrides, compose, config_groups
from tise_bench.errors import ConfigError
from tise_bench.features.crops import CropSpec
from tise_bench.runner import resolve_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "tise_bench" / "configs"
NO_SUBSET_DIRS = {"realism": None, "rp": None, "pa": None, "ca": None, "soa": None}


@pytest.mark.parametrize("name", TISE_BASELINES)
def test_baseline_option_resolves_as_its_former_yaml(name):
    model = resolve_config(compose([f"model={name}", "data=coco", "paths.samples_root=/s"]))["model"]
    # the keys the 12 per-baseline YAML files had, with their values
    assert {k: model[k] for k in ("name", "samples_dir", "layout", "subset_dirs")} == {
        "name": name,
        "samples_dir": f"/s/{name}/coco",
        "layout": "flat",
        "subset_dirs": NO_SUBSET_DIRS,
    }
    assert model["suite"] is None and model["step"] is None


def test_readme_and_configs_readme_name_the_generated_baselines():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| TISE baselines"))
    assert set(re.findall(r"`(\w+)`", row.split("|")[2].split(":")[0]) + ["dfgan"]) - {"model"} == set(TISE_BASELINES)
    assert "TISE_BASELINES" in (ROOT / "configs" / "README.md").read_text(encoding="utf-8")


def _defaults(cls) -> dict:
    return {f.name: f.default for f in fields(cls)}


def test_backbone_yaml_sets_only_what_differs_from_the_registered_dataclasses():
    blocks = {name: _defaults(e.config) for name, e in all_backbones().items()}
    for option in ("real", "random"):
        raw = OmegaConf.to_container(OmegaConf.load(CONFIGS / "backbones" / f"{option}.yaml"))
        for key, value in raw.items():
            if key in blocks:
                repeated = {k: v for k, v in (value or {}).items() if blocks[key][k] == v}
                assert not repeated, f"backbones/{option}.yaml repeats {key} code defaults {repeated}"
            else:
                assert _defaults(BackboneSetConfig)[key] != value, f"backbones/{option}.yaml repeats {key}={value}"
    crops = resolve_config(compose())["metrics"]["crops"]
    assert crops == _defaults(CropSpec)  # metrics.crops defaults come from CropSpec only


@pytest.mark.parametrize(
    "override, key",
    [
        ("backbones.detector.imgsz=abc", "backbones.detector.imgsz"),
        ("backbones.clip.imgsz=640", "backbones.clip.imgsz"),
        ("model.nmae=x", "model.nmae"),
        ("model.subset_dirs.relism=x", "model.subset_dirs.relism"),
        ("data.n_prompts=many", "data.n_prompts"),
        ("metrics.crops.threshold=high", "metrics.crops.threshold"),
        ("bootstrap.replicates=lots", "bootstrap.replicates"),
        ("batch_size=big", "batch_size"),
    ],
)
def test_wrong_key_or_type_is_refused_at_composition(override, key):
    with pytest.raises(Exception) as e:  # Hydra's composition error, caused by OmegaConf's naming the key
        compose([override])
    assert f"full_key: {key}" in f"{e.value}\n{e.value.__cause__}"
    assert override in str(e.value) or key.rsplit(".", 1)[0] in str(e.value)


@pytest.mark.parametrize(
    "override, message",
    [
        ("+backbone=random", "backbone is not a setting of the config (TiseConfig"),
        ("+model.nmae=x", "model.nmae is not a setting of model (ModelConfig"),
        ("+backbones.detector.imgsz2=320", "backbones.detector.imgsz2 is not a setting of backbones.detector"),
    ],
)
def test_keys_appended_past_the_schema_are_refused(override, message):
    cfg = compose([override])  # Hydra's + opens the node; the run refuses it before any work
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_config(cfg)


def test_metric_params_are_typed_by_each_metrics_dataclass():
    """metrics.params.<id> is one typed block per registered metric, built from the metric's parameter dataclass:
    any parameter composes without '+', with the metric's default when not given; an unknown key, an unknown
    metric or a wrong type stops the composition naming the key."""
    cfg = resolve_config(
        compose(["metrics.params.is.splits=2", "metrics.params.kid.subset_size=5", "metrics.params.pa.threshold=0.7"])
    )
    params = cfg["metrics"]["params"]
    assert params["is"]["splits"] == 2 and params["kid"]["subset_size"] == 5 and params["pa"]["threshold"] == 0.7
    assert params["is_star"]["temperature"] is None and params["o_is"]["temperature"] == 2.1737587451934814
    assert params["clip_rp"]["n_distractors"] == 99 and params["soa_c"]["threshold"] == 0.5
    for bad, key in (
        ("metrics.params.clip_score.extra=1", "metrics.params.clip_score.extra"),
        ("metrics.params.pa.threshold=abc", "metrics.params.pa.threshold"),
        ("metrics.params.nometric.x=1", "metrics.params.nometric.x"),
        ("metrics.idz=[clip_score]", "metrics.idz"),
    ):
        with pytest.raises(Exception) as e:
            compose([bad])
        assert key in f"{e.value}\n{e.value.__cause__}", bad


def test_compose_repeatedly_and_inside_an_initialised_hydra():
    assert resolve_config(compose(["model=dfgan"])) == resolve_config(compose(["model=dfgan"]))
    assert not GlobalHydra.instance().is_initialized()
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        before = GlobalHydra.instance().hydra
        assert compose(["backbones=random"]).backbones.random is True
        assert GlobalHydra.instance().hydra is before  # the caller's Hydra is back, untouched
        assert hydra_compose("config", overrides=["model=sd15"]).model.name == "sd15"
        # the API composes from inside too, and stops at its plan (named metric without references)
        with pytest.raises(ConfigError, match="fid: no reference images"):
            tise_bench.evaluate(ROOT, ["a caption"], metrics=["fid"], backbones=RANDOM_BACKBONES)
        assert GlobalHydra.instance().hydra is before
    assert not GlobalHydra.instance().is_initialized()


def test_api_arguments_are_checked_by_the_schema():
    with pytest.raises(ConfigError, match=r"(?s)evaluate\(\).*full_key: backbones.detector.imgsz"):
        tise_bench.evaluate(ROOT, ["a"], backbones={**RANDOM_BACKBONES, "detector": {"imgsz": "big"}})
    with pytest.raises(ConfigError, match=r"(?s)evaluate\(\).*full_key: backbones.detektor"):
        tise_bench.evaluate(ROOT, ["a"], backbones={**RANDOM_BACKBONES, "detektor": {}})
    with pytest.raises(ConfigError, match=r"(?s)evaluate\(\).*full_key: metrics.crops.treshold"):
        tise_bench.evaluate(ROOT, ["a"], backbones="random", crops={"treshold": 0.3})


def test_compose_inside_a_hydra_app_keeps_the_app_state(tmp_path):
    app = tmp_path / "app.py"
    app.write_text(
        textwrap.dedent("""
        import hydra
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig
        from omegaconf import DictConfig

        from tise_bench.config_schema import compose

        @hydra.main(version_base="1.3", config_path=None, config_name=None)
        def main(cfg: DictConfig) -> None:
            gh, job = GlobalHydra.instance().hydra, HydraConfig.get().job.name
            for _ in range(2):
                assert compose(["model=dfgan"]).model.name == "dfgan"
            assert GlobalHydra.instance().hydra is gh and HydraConfig.get().job.name == job == "app"
            print("ok")

        main()
    """)
    )
    p = subprocess.run(
        [sys.executable, str(app), "hydra.run.dir=.", "hydra.output_subdir=null"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr[-2000:]


# ------------------------------------------------------------------ the command line, checked before Hydra composes
@pytest.mark.parametrize(
    "override, expected",
    [
        (
            "backbone=random",
            "backbone is not a setting of the config (TiseConfig, tise_bench/config_schema.py) nor a "
            "config group (tise_bench/configs/: backbones, data, metrics, model, paths). Did you mean backbones?",
        ),
        ("+backbone=random", "Did you mean backbones? Valid keys: on_mismatch,"),
        ("++verbsoe=true", "verbsoe is not a setting of the config"),
        ("~bakcbones", "Did you mean backbones?"),
        ("metrics.idss=[clip_score]", "metrics.idss is not a setting of metrics (MetricsConfig"),
        ("+metrics.idss=[clip_score]", "Did you mean metrics.ids? Valid keys: ids, params, crops; fix: pass"),
        ("backbones.clip.modle=x", "backbones.clip.modle is not a setting of backbones.clip (ClipConfig"),
        ("backbones.detector.iuo=0.3", "Did you mean backbones.detector.iou?"),  # a block backbones=real leaves unset
        ("backbones.clpi.model=x", "backbones.clpi.model=x: backbones.clpi is not a setting of backbones"),
        ("metrics.params.is.splitz=2", "Did you mean metrics.params.is.splits?"),
        ("metrics.params.clip_scroe.subset=rp", "Did you mean metrics.params.clip_score?"),
        ("model.subset_dirs.relism=x", "Did you mean model.subset_dirs.realism?"),
        ("batch_size.value=3", "batch_size.value=3: batch_size is a single value, not a group of settings"),
        ("backbones=randmo", "backbones=randmo: the config group backbones has no option 'randmo'"),
        ("model=dfgan,sd15,dfgn", "model=dfgn: the config group model has no option 'dfgn'"),
        ("model=choice(lafite,xmcgn)", "Did you mean model=xmcgan? Options: attngan, attngan_plus, cpgan, demo"),
    ],
)
def test_unknown_keys_and_options_on_the_command_line_are_refused(override, expected):
    with pytest.raises(ConfigError) as e:
        check_overrides(["backbones=random", override])
    msg = str(e.value)
    assert expected in msg and msg.endswith("Nothing was run.")
    assert "\n" not in msg


def test_the_fix_is_the_corrected_override():
    for override, fix in (
        ("backbone=random", "fix: pass backbones=random instead."),
        ("+backbone=random", "fix: pass backbones=random instead."),  # a declared key takes no '+'
        ("backbones.clpi.model=ViT-B-16", "fix: pass backbones.clip.model=ViT-B-16 instead."),
        ("~bakcbones", "fix: pass ~backbones instead."),
        ("backbones=randmo", "fix: pass backbones=random."),
        ("zzzz=1", "fix: remove or rename it."),
    ):
        with pytest.raises(ConfigError) as e:
            check_overrides([override])
        assert fix in str(e.value), override


def test_every_problem_of_a_command_line_in_one_message():
    with pytest.raises(ConfigError) as e:
        check_overrides(["foo=1", "model=folder", "metrics.idz=[fid]", "data=cocco"])
    msg = str(e.value)
    assert msg.count(" is not a setting of ") == 2 and "the config group data has no option 'cocco'" in msg


@pytest.mark.parametrize(
    "overrides",
    [
        ["backbones=random", "backbones.device=cpu", "backbones.clip.model=ViT-B-16", "backbones.detector.iou=0.3"],
        ["model=folder", "model.name=x", "model.samples_dir=/s", "model.subset_dirs.rp=/r", "model.layout=tise"],
        ["data=custom", "data.name=t", "data.manifest=m.jsonl", "data.subsets.rp=a.jsonl", "+data.subsets.pa=b"],
        ["metrics=modern", "metrics.ids=[clip_score]", "metrics.params.is.splits=2", "metrics.crops.max_per_image=3"],
        ["model=dfgan,sd15", "model=glob(*gan)", "bootstrap.seed=range(1,3)"],  # sweeps: choice, glob, range
        ["verbose=true", "progress=false", "bootstrap.seed=3", "max_pixels=null", "paths.results_dir=/r", "~model"],
        ["hydra.job.chdir=true", "hydra/job_logging=disabled", "hydra.run.dir=/x", "model=null"],  # Hydra's own
        ["metrics.ids=[clip_score"],  # a syntax error: Hydra's parser names it
    ],
)
def test_valid_command_lines_pass_the_check(overrides):
    check_overrides(overrides)


def test_config_groups_are_the_config_folders_and_the_generated_baselines():
    groups = config_groups()
    assert set(groups) == {d.name for d in CONFIGS.iterdir() if d.is_dir() and not d.name.startswith("_")}
    for group, options in groups.items():
        on_disk = {f.stem for f in (CONFIGS / group).glob("*.yaml")}
        assert set(options) == on_disk | (set(TISE_BASELINES) if group == "model" else set()), group


def test_help_and_log_file_name_the_command_not_main():
    """``--help`` printed "__main__ is powered by Hydra."; the run's log file was ``__main__.log``."""
    with initialize_config_module(version_base="1.3", config_module="tise_bench.configs"):
        hcfg = hydra_compose("config", return_hydra_config=True).hydra
    assert hcfg.job.name == "tise_bench"
    assert hcfg.help.header.startswith("python -m tise_bench [key=value ...]: evaluate text-to-image models")
    assert "Hydra" not in hcfg.help.header and "__main__" not in hcfg.help.header + hcfg.help.footer


def test_verbose_switch_is_typed_and_off_by_default():
    assert resolve_config(compose())["verbose"] is False
    assert resolve_config(compose(["verbose=true"]))["verbose"] is True
    with pytest.raises(Exception, match="verbose"):
        compose(["verbose=loud"])


def test_options_of_a_config_dir_are_known(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text("name: mine\nsamples_dir: /s\n")
    check_overrides(["model=mine"], str(tmp_path))
    check_overrides(["model=mine"], "pkg://elsewhere.conf")  # not a folder here: Hydra looks the option up
    with pytest.raises(ConfigError, match="Did you mean model=mine?"):
        check_overrides(["model=mien"], str(tmp_path))
    with pytest.raises(ConfigError, match="has no option 'mine'"):
        check_overrides(["model=mine"])
