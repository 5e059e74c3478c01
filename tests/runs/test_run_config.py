"""The one run-folder config reader, settings comparison, layered configs and measurement run folders."""

from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from robustmi.errors import CheckpointError, ConfigError
from robustmi.runs import RunDir, save_checkpoint
from robustmi.runs.measurement import finished_results, measurement_run
from robustmi.runs.run_config import (
    config_differences,
    field_defaults,
    layered_config,
    read_run_config,
    run_dataset,
    run_defaults,
)


@dataclass(frozen=True)
class Threat:
    eps: float = 0.3
    steps: int = 10


@dataclass(frozen=True)
class Measure:
    dataset: str = "mnist"
    attack: Threat = field(default_factory=Threat)
    limit: int | None = 100
    epochs: int = 1
    data_dir: str | None = None


def test_read_run_config_and_dataset(tmp_path: Path) -> None:
    assert read_run_config(tmp_path / "missing") == {} and run_dataset("mnist.pt") is None
    (tmp_path / "config.yaml").write_text("dataset: svhn\ndata_dir: /data\n")
    assert run_dataset(tmp_path) == "svhn"
    assert run_defaults(tmp_path) == {"dataset": "svhn", "data_dir": "/data"}
    (tmp_path / "config.yaml").write_text("config:\n  dataset: cifar10\n")  # nested under "config"
    assert run_dataset(tmp_path) == "cifar10" and run_defaults(tmp_path) == {"dataset": "cifar10"}
    (tmp_path / "config.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match="config.yaml is not valid YAML; repair it"):
        run_dataset(tmp_path)


def test_config_differences_name_nested_keys_and_skip_ignored() -> None:
    saved = {"attack": {"eps": 0.3, "steps": 10}, "seeds": [1, 2], "data_dir": "a", "epochs": 1}
    wanted = {"attack": {"eps": 0.1, "steps": 10}, "seeds": (1, 2), "data_dir": "b", "limit": 5, "epochs": 1}
    assert config_differences(saved, wanted, ignore=("data_dir",)) == [
        "attack.eps: 0.3 -> 0.1", "limit: '<unset>' -> 5"]
    assert config_differences(saved, saved) == []


def test_a_setting_added_after_a_run_compares_as_its_default() -> None:
    """A run saved before ``limit`` (and ``attack.steps``) existed ran with their defaults' behaviour."""
    defaults = field_defaults(Measure)
    assert defaults == {"dataset": "mnist", "attack": {"eps": 0.3, "steps": 10}, "limit": 100, "epochs": 1,
                        "data_dir": None}
    assert field_defaults(Measure(limit=5)) == defaults and field_defaults({"limit": 5}) == {}
    old = {"dataset": "mnist", "attack": {"eps": 0.3}, "epochs": 1, "data_dir": None}
    assert config_differences(old, {**old, "attack": {"eps": 0.3, "steps": 10}, "limit": 100},
                              defaults=defaults) == []
    changed = {**old, "attack": {"eps": 0.3, "steps": 5}, "limit": 7}
    assert config_differences(old, changed, defaults=defaults) == ["attack.steps: 10 -> 5", "limit: 100 -> 7"]


def test_layered_config_merges_sections_and_overrides_win() -> None:
    layers = [{"attack": {"eps": 0.2, "steps": 3}}, {"attack": {"eps": 0.1}, "limit": None}]
    cfg = layered_config(Measure, layers, ["attack.steps=5"])
    assert cfg == Measure(attack=Threat(eps=0.1, steps=5), limit=None)  # a YAML null sets None
    with pytest.raises(ConfigError, match="malformed override '0.1'; write key=value"):
        layered_config(Measure, [], ["0.1"])
    with pytest.raises(ConfigError, match="unknown config key 'attack.epss'"):
        layered_config(Measure, [{"attack": {"epss": 1}}])


def test_measurement_run_refuses_other_settings_and_keeps_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "m"
    with measurement_run(out, Measure()) as run:
        save_checkpoint(run.checkpoint_dir / "critic.pt", {}, {"epoch": 1})  # saved state, no results yet
    saved = (out / "config.yaml").read_bytes()
    with pytest.raises(CheckpointError, match=r"unfinished run \(checkpoints/critic.pt\); pass --resume"):
        RunDir(out)
    refused = r"other settings \(attack.eps: 0.3 -> 0.1; limit: 100 -> 5\); resume with the same settings"
    with pytest.raises(ConfigError, match=refused):
        with measurement_run(out, Measure(attack=Threat(eps=0.1), limit=5), resume=True):
            pass
    grown = Measure(epochs=3, data_dir="/elsewhere")
    with measurement_run(out, grown, resume=True, may_change=("epochs", "data_dir")) as run:
        assert (out / "config.yaml").read_bytes() == saved  # written only once the run really continues
        run.write_results({"done": True})
    assert yaml.safe_load((out / "config.yaml").read_text())["epochs"] == 3


def test_measurement_run_removes_a_folder_whose_start_failed(tmp_path: Path) -> None:
    out = tmp_path / "failed"
    with pytest.raises(RuntimeError):
        with measurement_run(out, Measure()):
            raise RuntimeError("the model did not load")
    assert not out.exists()


def test_finished_results_are_reused_only_with_the_same_settings(tmp_path: Path) -> None:
    out = tmp_path / "m"
    assert finished_results(out, Measure()) is None  # nothing there: measure
    with measurement_run(out, Measure()) as run:
        run.write_results({"mi": 1.5})
    assert finished_results(out, Measure(data_dir="/moved"))["mi"] == 1.5  # where the data lives may change
    with pytest.raises(ConfigError, match=r"other settings \(epochs: 1 -> 2\)"):
        finished_results(out, Measure(epochs=2))
