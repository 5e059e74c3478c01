"""Attack presets: the paper's numbers (PAPER.md §2.4), every registered preset, and the error paths."""

from __future__ import annotations

import pytest

from robustmi.attacks import PAPER_THREAT, AttackConfig, get_attack_preset, list_attack_presets, paper_threat
from robustmi.errors import AttackError


def test_paper_threat_matches_the_paper() -> None:
    assert PAPER_THREAT == {
        "mnist": (0.3, 10, 0.1),
        "fashion-mnist": (0.1, 10, 0.02),
        "svhn": (4 / 255, 10, 0.005),
        "cifar10": (8 / 255, 7, 0.01),
    }
    assert paper_threat("synthetic-mnist") == PAPER_THREAT["mnist"]


def test_paper_and_pgd20_presets() -> None:
    (paper,) = get_attack_preset("paper", "cifar10")
    assert paper == AttackConfig("paper", 8 / 255, "linf", 7, 0.01, random_start=False, restarts=1)
    (pgd20,) = get_attack_preset("pgd20", "mnist")
    assert (pgd20.steps, pgd20.step_size, pgd20.random_start, pgd20.restarts) == (20, 0.075, True, 5)
    (aa,) = get_attack_preset("autoattack", "fashion-mnist")
    assert (aa.method, aa.eps, aa.norm, aa.steps) == ("autoattack", 0.1, "linf", 100)


@pytest.mark.parametrize("name", list_attack_presets())
@pytest.mark.parametrize("dataset", sorted(PAPER_THREAT))
def test_every_preset_builds_at_the_paper_eps(name: str, dataset: str) -> None:
    configs = get_attack_preset(name, dataset)
    assert configs and all(c.eps == PAPER_THREAT[dataset][0] and c.norm == "linf" for c in configs)


def test_unknown_names_list_the_valid_ones() -> None:
    with pytest.raises(AttackError, match="unknown attack preset 'pgd7'.*apgd-ce, autoattack, paper, pgd20"):
        get_attack_preset("pgd7", "mnist")
    with pytest.raises(AttackError, match="no paper threat model for dataset 'imagenet'.*cifar10"):
        get_attack_preset("paper", "imagenet")


def test_config_validation() -> None:
    with pytest.raises(AttackError, match="unknown attack method"):
        AttackConfig("x", 0.1, method="cw-l2")
    with pytest.raises(AttackError, match="unknown norm"):
        AttackConfig("x", 0.1, norm="l1", step_size=0.1)
    with pytest.raises(AttackError, match="eps must be a finite number >= 0"):
        AttackConfig("x", -0.1, step_size=0.1)
    with pytest.raises(AttackError, match="needs step_size > 0"):
        AttackConfig("x", 0.1)


@pytest.mark.parametrize("eps", ["abc", 2.0, float("nan"), float("inf"), True])
def test_attack_settings_and_configs_share_one_validation_rule(eps):
    """The threat knobs are checked by one rule: a RobustMIError naming the field, never a TypeError."""
    from robustmi.attacks import AttackSettings
    from robustmi.errors import RobustMIError

    with pytest.raises(RobustMIError, match="eps"):
        AttackConfig("x", eps, step_size=0.1)
    with pytest.raises(RobustMIError, match="attack.eps"):
        AttackSettings(eps=eps)
    assert AttackSettings(eps=2.0, norm="l2").eps == 2.0  # an L2 radius may exceed 1
