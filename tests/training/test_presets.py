"""Presets and config building: the paper's numbers, precedence of YAML/options/overrides, validation."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
import yaml

from robustmi.errors import ConfigError
from robustmi.training import (
    EncoderRunConfig,
    ProbeRunConfig,
    SupervisedRunConfig,
    build_config,
    get_preset,
    list_presets,
)

# PAPER.md §2.4 (S App. D.1): eps, PGD steps, step size per dataset.
PAPER_TABLE = {
    "mnist": (0.3, 10, 0.1),
    "fashion-mnist": (0.1, 10, 0.02),
    "svhn": (4 / 255, 10, 0.005),
    "cifar10": (8 / 255, 7, 0.01),
}
KINDS = {"encoder": EncoderRunConfig, "probe": ProbeRunConfig, "supervised": SupervisedRunConfig}


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_builds_a_valid_config(kind: str, preset: str) -> None:
    cfg = get_preset(kind, preset, "mnist")
    assert isinstance(cfg, KINDS[kind])
    assert cfg.dataset == "mnist"
    if preset == "smoke":
        assert cfg.train_limit is not None and cfg.train_limit <= 1024 and cfg.epochs <= 2
    if preset != "smoke":  # budgets are work (epochs), never wall time
        assert cfg.max_minutes is None and cfg.max_steps is None and cfg.eval_limit is None


@pytest.mark.parametrize("dataset", sorted(PAPER_TABLE))
def test_paper_preset_has_the_papers_threat_model_and_optimiser(dataset: str) -> None:
    eps, steps, step_size = PAPER_TABLE[dataset]
    for kind in ("encoder", "probe"):
        cfg = get_preset(kind, "paper", dataset)
        assert cfg.attack.eps == pytest.approx(eps)
        assert (cfg.attack.steps, cfg.attack.random_start) == (steps, False)
        assert cfg.attack.step_size == pytest.approx(step_size)
        assert (cfg.lr, cfg.batch_size, cfg.epochs) == (1e-4, 128, 300)
    assert get_preset("encoder", "paper", dataset).critic_width == 2048


def test_paper_supervised_cnns_use_sgd_with_step_schedule() -> None:
    cfg = get_preset("supervised", "paper", "cifar10", arch="resnet18")
    assert (cfg.optimizer, cfg.lr, cfg.epochs, cfg.lr_milestones) == ("sgd", 0.1, 200, [50, 100, 150])
    assert cfg.augment
    assert get_preset("supervised", "paper", "mnist", arch="baseline-h").optimizer == "adam"
    assert not get_preset("supervised", "paper", "mnist").augment


def test_cpu_encoder_preset_is_the_prototyped_setting() -> None:
    cfg = get_preset("encoder", "cpu", "mnist")
    assert (cfg.critic_width, cfg.num_convs, cfg.lr) == (512, 3, 1e-3)
    assert not cfg.bf16 and not cfg.through_critic
    assert get_preset("encoder", "paper", "mnist").num_convs == 2  # the authors' code at the paper's budget
    assert (cfg.attack.eps, cfg.attack.steps, cfg.attack.step_size) == (0.3, 5, 0.1)
    robust = get_preset("probe", "cpu", "mnist", mode="robust")
    assert robust.early_stop == "adversarial" and robust.train_iterate == "last"
    assert get_preset("probe", "cpu", "mnist").early_stop == "none"


def test_precedence_preset_yaml_options_overrides(tmp_path) -> None:
    path = tmp_path / "cfg.yaml"
    path.write_text("epochs: 7\nseed: 3\nattack:\n  steps: 4\nobjective: mi\n")
    fields = {"objective": "worst-case-mi", "seed": None}
    overrides = ["seed=5", "attack.eps=8/255"]
    cfg = build_config("encoder", "smoke", config_path=path, fields=fields, overrides=overrides)
    assert cfg.epochs == 7  # YAML over preset
    assert cfg.attack.steps == 4 and cfg.attack.step_size == get_preset("encoder", "smoke").attack.step_size
    assert cfg.objective == "worst-case-mi"  # option over YAML
    assert cfg.seed == 5  # override over YAML; a None option is skipped
    assert cfg.attack.eps == pytest.approx(8 / 255)


def test_probe_takes_the_dataset_of_its_encoder_run(tmp_path) -> None:
    run = tmp_path / "enc"
    run.mkdir()
    (run / "config.yaml").write_text("# argv: []\ndataset: fashion-mnist\nseed: 0\n")
    cfg = build_config("probe", "paper", fields={"encoder": str(run)})
    assert cfg.dataset == "fashion-mnist"
    assert cfg.attack.eps == pytest.approx(0.1)
    assert build_config("probe", "paper", dataset="mnist", fields={"encoder": str(run)}).dataset == "mnist"


@pytest.mark.parametrize(
    ("kind", "overrides", "needle"),
    [
        ("encoder", ["objective=infomax"], "objective"),
        ("encoder", ["attack.eps=-0.1"], "attack.eps"),
        ("encoder", ["epochz=3"], "epochs"),
        ("encoder", ["epochs"], "malformed override"),
        ("encoder", ["epochs=many"], "epochs"),
        ("probe", ["head=cnn"], "head"),
        ("probe", ["mode=adversarial"], "mode"),
        ("probe", ["early_stop=loss"], "early_stop"),
        ("supervised", ["fast=true"], "fast"),
        ("supervised", ["optimizer=rmsprop"], "optimizer"),
        ("supervised", ["batch_size=0"], "batch_size"),
    ],
)
def test_bad_values_raise_config_error_naming_the_key(kind: str, overrides: list[str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        build_config(kind, "smoke", overrides=overrides)


def test_unknown_preset_kind_or_missing_yaml(tmp_path) -> None:
    with pytest.raises(ConfigError, match="unknown preset"):
        build_config("encoder", "fast")
    with pytest.raises(ConfigError, match="unknown run kind"):
        build_config("decoder", "smoke")
    with pytest.raises(ConfigError, match="not found"):
        build_config("encoder", "smoke", config_path=tmp_path / "missing.yaml")
    bad = tmp_path / "list.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        build_config("encoder", "smoke", config_path=bad)


CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_configs_load_and_apply(path: Path) -> None:
    kind = path.name.split("-")[0]  # encoder-..., probe-..., supervised-...
    cfg = build_config(kind, "cpu", config_path=path)
    written = yaml.safe_load(path.read_text())
    for key, value in written.items():
        if key == "attack":
            assert cfg.attack.eps == pytest.approx(float(Fraction(str(value["eps"]))))  # "8/255" in YAML
        else:
            assert getattr(cfg, key) == value, key
