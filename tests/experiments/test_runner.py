"""Experiment steps are reused or resumed only when they were computed with the requested settings."""

from __future__ import annotations

import json

import pytest
import yaml

from robustmi.errors import ConfigError
from robustmi.experiments.runner import (
    RunSpec,
    check_overrides,
    measure_vulnerability,
    run_in_processes,
    run_one,
)
from robustmi.runs import config_to_dict
from robustmi.training import get_preset

SPEC = RunSpec("sup", "supervised", {}, "supervised")


def _finished(run_dir, cfg) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"kind": "supervised", "config": config_to_dict(cfg)}))


def test_finished_run_with_the_same_config_is_reused(tmp_path):
    cfg = get_preset("supervised", "smoke", dataset="synthetic-mnist")
    _finished(tmp_path / "sup", cfg)
    assert run_one(SPEC, cfg, tmp_path / "sup")["kind"] == "supervised"  # read back, nothing trained


def test_finished_run_of_another_budget_is_refused(tmp_path):
    smoke = get_preset("supervised", "smoke", dataset="synthetic-mnist")
    _finished(tmp_path / "sup", smoke)
    cpu = get_preset("supervised", "cpu", dataset="synthetic-mnist")
    before = (tmp_path / "sup" / "results.json").read_bytes()
    with pytest.raises(ConfigError, match=r"holds a run with other settings \(.* -> ") as info:
        run_one(SPEC, cpu, tmp_path / "sup")
    assert "\n" not in str(info.value)
    assert (tmp_path / "sup" / "results.json").read_bytes() == before


def test_interrupted_run_of_another_config_is_not_resumed(tmp_path):
    cfg = get_preset("supervised", "smoke", dataset="synthetic-mnist")
    run_dir = tmp_path / "sup"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"")
    (run_dir / "config.yaml").write_text(yaml.safe_dump({**config_to_dict(cfg), "seed": 7}))
    with pytest.raises(ConfigError, match=r"seed: 7 -> 0"):
        run_one(SPEC, cfg, run_dir)


def test_results_without_settings_are_refused(tmp_path):
    (tmp_path / "sup").mkdir()
    (tmp_path / "sup" / "results.json").write_text("{}")
    with pytest.raises(ConfigError, match="settings are not recorded"):
        run_one(SPEC, get_preset("supervised", "smoke"), tmp_path / "sup")


def test_finished_vulnerability_run_is_reused_only_with_the_same_settings(tmp_path):
    from robustmi.runs.config import config_from_dict
    from robustmi.vulnerability.vulnerability_run import VulnerabilityRunConfig

    settings = {"epochs": 1, "attack": {"eps": 0.3}}
    cfg = config_from_dict(VulnerabilityRunConfig,
                           {**settings, "model": str(tmp_path), "dataset": "mnist", "data_dir": None})
    (tmp_path / "vulnerability").mkdir()
    (tmp_path / "vulnerability" / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg)))
    (tmp_path / "vulnerability" / "results.json").write_text(json.dumps({"vulnerability": 0.1}))
    assert measure_vulnerability(tmp_path, "mnist", None, settings)["vulnerability"] == 0.1
    assert measure_vulnerability(tmp_path, "mnist", "/elsewhere", settings)["vulnerability"] == 0.1
    with pytest.raises(ConfigError, match=r"epochs: 1 -> 5"):
        measure_vulnerability(tmp_path, "mnist", None, {**settings, "epochs": 5})


def test_a_finished_run_elsewhere_on_disk_is_reused(tmp_path):
    cfg = get_preset("supervised", "smoke")
    _finished(tmp_path / "sup", cfg)
    moved = get_preset("supervised", "smoke", data_dir="/elsewhere", num_threads=1)
    assert run_one(SPEC, moved, tmp_path / "sup")["kind"] == "supervised"


def test_overrides_reach_only_the_runs_that_have_the_key():
    from robustmi.experiments.runner import run_config

    overrides = ["critic_width=32", "val_size=100", "attack.eps=0.2"]
    check_overrides(overrides, ("encoder", "probe"))
    encoder = run_config("encoder", "smoke", dataset="mnist", fields={"seed": 3}, overrides=overrides)
    probe = run_config("probe", "smoke", dataset="mnist", fields={"encoder": "x"}, overrides=overrides)
    assert (encoder.critic_width, encoder.attack.eps, encoder.seed) == (32, 0.2, 3)
    assert (probe.val_size, probe.attack.eps) == (100, 0.2)


@pytest.mark.parametrize("override", ["critic_width=32", "no_such_key=1", "novalue"])
def test_an_override_no_run_has_is_refused(override):
    with pytest.raises(ConfigError, match="override"):
        check_overrides([override], ("supervised",))


def test_runs_in_processes_match_runs_in_order():
    import operator

    calls = [(operator.mul, (x, x)) for x in range(3)]  # (spawned workers import the function by name)
    assert run_in_processes(calls, 2) == run_in_processes(calls, 1) == [0, 1, 4]
