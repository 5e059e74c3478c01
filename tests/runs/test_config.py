"""Config trees: defaults -> YAML -> overrides, round trips, and every kind of bad input."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pytest

from robustmi.errors import ConfigError
from robustmi.runs import config_from_dict, config_to_dict, load_config, save_config_yaml


@dataclass(frozen=True)
class AttackCfg:
    eps: float = 0.3
    norm: Literal["linf", "l2"] = "linf"
    steps: int = 10
    random_start: bool = False

    def __post_init__(self) -> None:
        if self.eps < 0:
            raise ValueError(f"eps must be >= 0, got {self.eps}")


@dataclass
class TrainCfg:
    lr: float = 1e-3
    epochs: int = 1
    milestones: tuple[int, ...] = (50, 75)
    layers: list[str] = field(default_factory=lambda: ["features"])
    weights: dict[str, float] = field(default_factory=dict)
    data_dir: Optional[Path] = None  # noqa: UP045 - typing.Optional must work too
    note: str | None = None


@dataclass(frozen=True)
class RunCfg:
    dataset: str = "mnist"
    seed: int = 0
    attack: AttackCfg = field(default_factory=AttackCfg)
    # a parent may choose a non-default sub-config; partial overrides must keep it
    eval_attack: AttackCfg = field(default_factory=lambda: AttackCfg(eps=0.1, steps=20))
    train: TrainCfg = field(default_factory=TrainCfg)
    shape: tuple[int, int, int] = (1, 28, 28)


@dataclass
class NeedsName:
    name: str
    size: int = 1


def write_yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_defaults_without_file_or_overrides() -> None:
    assert load_config(RunCfg) == RunCfg()


def test_yaml_then_overrides_nested(tmp_path: Path) -> None:
    text = "dataset: fashion-mnist\nattack:\n  eps: 0.1\n  steps: 5\ntrain:\n  epochs: 3\n"
    path = write_yaml(tmp_path, text)
    overrides = ["attack.steps=7", "attack.norm=l2", "attack.random_start=true", "train.lr=1e-4",
                 "train.milestones=[1, 2]", "train.layers=[a, b]", "train.weights={a: 1, b: 0.5}",
                 "train.data_dir=/tmp/data", "eval_attack.steps=3", "seed=5"]
    cfg = load_config(RunCfg, path, overrides)
    assert cfg.dataset == "fashion-mnist"
    assert cfg.attack == AttackCfg(eps=0.1, norm="l2", steps=7, random_start=True)
    # eval_attack keeps the parent's non-default eps=0.1 while its steps are overridden
    assert cfg.eval_attack == AttackCfg(eps=0.1, steps=3)
    assert cfg.train.epochs == 3
    assert cfg.train.lr == 1e-4  # "1e-4" is a string to YAML 1.1; the float field parses it
    assert cfg.train.milestones == (1, 2) and isinstance(cfg.train.milestones, tuple)
    assert cfg.train.layers == ["a", "b"]
    assert cfg.train.weights == {"a": 1.0, "b": 0.5} and isinstance(cfg.train.weights["a"], float)
    assert cfg.train.data_dir == Path("/tmp/data")
    assert cfg.seed == 5


def test_fraction_and_int_for_float() -> None:
    cfg = load_config(RunCfg, overrides=["attack.eps=8/255", "eval_attack.eps=1"])
    assert cfg.attack.eps == pytest.approx(8 / 255)
    assert cfg.eval_attack.eps == 1.0 and isinstance(cfg.eval_attack.eps, float)


def test_round_trip_dict_and_yaml(tmp_path: Path) -> None:
    cfg = load_config(RunCfg, overrides=["attack.eps=0.25", "train.data_dir=/x", "train.note=hi",
                                         "train.weights={w: 2.0}", "shape=[3, 32, 32]"])
    assert config_from_dict(RunCfg, config_to_dict(cfg)) == cfg
    path = tmp_path / "out" / "config.yaml"
    path.parent.mkdir()
    save_config_yaml(cfg, path, header="argv: [robustmi, run]")
    assert path.read_text().startswith("# argv: [robustmi, run]\n")
    assert load_config(RunCfg, path) == cfg


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    assert load_config(RunCfg, write_yaml(tmp_path, "# nothing\n")) == RunCfg()


def test_optional_accepts_none_and_value() -> None:
    assert load_config(RunCfg, overrides=["train.note=null"]).train.note is None
    assert load_config(RunCfg, overrides=["train.note=x"]).train.note == "x"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["atack.eps=0.1"], r"unknown config key 'atack'.*valid keys at the top level: dataset, seed, "
                            r"attack.*did you mean 'attack'\?"),
        (["attack.stpes=3"], r"unknown config key 'attack.stpes'; valid keys at 'attack': eps, norm, steps, "
                             r"random_start; did you mean 'steps'\?"),
        (["attack.steps=ten"], r"'attack.steps' expects int, got 'ten' \(str\)"),
        (["attack.steps=2.5"], r"'attack.steps' expects int, got 2.5 \(float\)"),
        (["attack.steps=true"], r"'attack.steps' expects int, got True \(bool\)"),
        (["attack.eps=abc"], r"'attack.eps' expects float, got 'abc'"),
        (["attack.eps=true"], r"'attack.eps' expects float, got True"),
        (["attack.eps=1/0"], r"division by zero"),
        (["attack.eps=null"], r"'attack.eps' expects float, got None"),
        (["attack.random_start=1"], r"'attack.random_start' expects bool, got 1 \(int\)"),
        (["dataset=3"], r"'dataset' expects str, got 3 \(int\)"),
        (["attack.norm=l1"], r"'attack.norm' must be one of 'linf', 'l2', got 'l1'"),
        (["attack.eps=-0.1"], r"invalid config 'attack': eps must be >= 0, got -0.1"),
        (["attack=3"], r"'attack' expects AttackCfg, got 3"),
        (["shape=[1, 28]"], r"'shape' expects 3 values, got 2"),
        (["train.milestones=[1, x]"], r"'train.milestones\[1\]' expects int"),
        (["train.weights=[1]"], r"'train.weights' expects dict"),
        (["train.data_dir=3"], r"'train.data_dir' expects Path"),
        (["seed"], r"malformed override 'seed'; write key=value"),
        (["=3"], r"malformed override"),
        (["attack..eps=3"], r"malformed override"),
        (["seed.x=3"], r"'seed' expects int, got \{'x': 3\} \(dict\)"),
        (["seed=1", "seed.x=3"], r"'seed' is a single value, not a section"),
    ],
)
def test_bad_overrides(overrides: list[str], expected: str) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        load_config(RunCfg, overrides=overrides)
    assert "\n" not in str(info.value)


def test_missing_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"config file .*nope.yaml' not found; check the --config path"):
        load_config(RunCfg, tmp_path / "nope.yaml")


@pytest.mark.parametrize("text", ["- a\n- b\n", "just a string\n", "3\n"])
def test_yaml_not_a_mapping(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"must hold a mapping of keys to values"):
        load_config(RunCfg, write_yaml(tmp_path, text))


def test_yaml_syntax_error_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is not valid YAML") as info:
        load_config(RunCfg, write_yaml(tmp_path, "a: [1, 2\nb: 3\n"))
    assert "\n" not in str(info.value)


def test_yaml_section_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'train' expects TrainCfg, got \[1, 2\]"):
        load_config(RunCfg, write_yaml(tmp_path, "train: [1, 2]\n"))


def test_unknown_key_in_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'train.epoch'.*did you mean 'epochs'\?"):
        load_config(RunCfg, write_yaml(tmp_path, "train:\n  epoch: 3\n"))


def test_required_field() -> None:
    with pytest.raises(ConfigError, match=r"config key 'name' is required"):
        load_config(NeedsName)
    assert load_config(NeedsName, overrides=["name=x"]) == NeedsName(name="x")


def test_non_dataclass_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="expects a dataclass type"):
        config_from_dict(dict, {})
