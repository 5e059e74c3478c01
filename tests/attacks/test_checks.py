"""Sanity flags: each check on crafted inputs, and the flags an evaluation raises for broken set-ups
(gradient-masked models, probabilities instead of logits, chance accuracy, mis-tuned or invalid attacks)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

import robustmi.attacks.evaluate as evaluate_module
from robustmi.attacks import (
    AttackConfig,
    SanityWarning,
    check_adversarial_range,
    check_attack_strength,
    check_chance_accuracy,
    check_finite_outputs,
    check_loss_increase,
    check_perturbation_size,
    check_pgd_result,
    check_probability_outputs,
    check_zero_gradients,
    evaluate_robustness,
    pgd_with_trace,
)

PGD10 = AttackConfig("pgd10", 0.1, "linf", 10, 0.025)
FLAGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "flags.md"


def _names(results: dict) -> set[str]:
    return {flag["name"] for flag in results["flags"]}


def test_checks_pass_quietly_and_flag_with_a_warning(recwarn) -> None:
    quiet = [
        check_zero_gradients(0.05, "a"),
        check_loss_increase(torch.tensor([[1.0, 2.0, 1.5]]), "a"),
        check_chance_accuracy(0.5, 10, 200),
        check_probability_outputs(torch.tensor([[2.0, -1.0], [0.3, 0.7]])),
        check_finite_outputs(torch.zeros(2, 3), "a"),
        check_perturbation_size(0.3 + 1e-7, 0.3, "a"),
        check_adversarial_range(0, "a"),
        check_attack_strength("strong", "weak", 1, 1000),
    ]
    assert quiet == [None] * len(quiet) and len(recwarn) == 0
    loud = {
        "zero_gradients": lambda: check_zero_gradients(0.6, "a"),
        "loss_not_increasing": lambda: check_loss_increase(
            torch.tensor([[2.0, 2.0, 1.0], [3.0, 1.0, 3.0]]), "a"
        ),
        "chance_accuracy": lambda: check_chance_accuracy(0.12, 10, 200),
        "probability_outputs": lambda: check_probability_outputs(torch.tensor([[0.2, 0.8], [1.0, 0.0]])),
        "nan_outputs": lambda: check_finite_outputs(torch.tensor([[0.0, float("nan")]]), "a"),
        "perturbation_beyond_eps": lambda: check_perturbation_size(0.31, 0.3, "a"),
        "adversarial_out_of_range": lambda: check_adversarial_range(3, "a"),
        "weaker_attack_stronger": lambda: check_attack_strength("strong", "weak", 20, 1000),
    }
    for name, check in loud.items():
        with pytest.warns(SanityWarning, match=re.escape(f"docs/flags.md#{name}")):
            flag = check()
        assert flag["name"] == name and flag["doc"] == f"docs/flags.md#{name}" and flag["message"]


def test_every_flag_is_documented() -> None:
    text = FLAGS_DOC.read_text(encoding="utf-8")
    source = Path(evaluate_module.__file__).with_name("checks.py").read_text(encoding="utf-8")
    names = set(re.findall(r'make_flag\(\s*"(\w+)"', source))
    assert len(names) == 8
    for name in names:
        assert f"## {name}" in text


@pytest.mark.parametrize("kind", ["quantised", "saturated"])
def test_gradient_masked_model_raises_the_zero_gradient_flag(masked_models, mnist_test, kind) -> None:
    masked = masked_models[kind]
    with pytest.warns(SanityWarning) as warned:
        results = evaluate_robustness(masked, mnist_test.subset(100), [PGD10])
    assert "zero_gradients" in _names(results)
    assert any("zero input gradient" in str(w.message) for w in warned)
    # the masking "works" against PGD: accuracy barely drops, which is exactly what the flag warns about
    assert results["attacks"]["pgd10"]["accuracy"] > 0.8
    if kind == "quantised":  # no gradient anywhere: PGD never moves
        assert "loss_not_increasing" in _names(results)


def test_healthy_model_raises_no_flags(mnist_model, mnist_test, recwarn) -> None:
    results = evaluate_robustness(mnist_model, mnist_test.subset(100), [PGD10])
    assert results["flags"] == [] and not [w for w in recwarn if w.category is SanityWarning]


def test_mi_style_batch_objective_gradient_checks() -> None:
    """The same checks apply to a batch-level (MI-like) objective; here one whose input passes round()."""
    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    w = torch.randn(1, 6, 6)

    def masked_objective(t):
        return -((torch.round(t * 4) / 4) * w).flatten(1).sum(dim=1).logsumexp(dim=0)

    result = pgd_with_trace(masked_objective, x, eps=0.1, steps=3, step_size=0.05)
    with pytest.warns(SanityWarning):
        flags = check_pgd_result(result, "worst-case MI search")
    assert {f["name"] for f in flags} == {"zero_gradients", "loss_not_increasing"}


def test_probability_outputs_and_chance_accuracy_are_flagged(
    mnist_model, mnist_test, untrained_model
) -> None:
    probabilities = torch.nn.Sequential(mnist_model, torch.nn.Softmax(dim=1))
    with pytest.warns(SanityWarning):
        results = evaluate_robustness(probabilities, mnist_test.subset(100), [PGD10])
    assert "probability_outputs" in _names(results)
    with pytest.warns(SanityWarning, match="chance"):
        results = evaluate_robustness(untrained_model, mnist_test.subset(100), [PGD10])
    assert "chance_accuracy" in _names(results)


def test_weaker_attack_beating_a_stronger_one_is_flagged(mnist_model, mnist_test) -> None:
    """A larger budget with a step size too small to reach the ε boundary loses to PGD-10."""
    crawl = AttackConfig("pgd50-tiny-step", 0.1, "linf", 50, 0.0005)
    with pytest.warns(SanityWarning, match="pgd10 broke"):
        results = evaluate_robustness(mnist_model, mnist_test.subset(100), [crawl, PGD10], cascade=False)
    assert "weaker_attack_stronger" in _names(results)


def test_invalid_adversarial_examples_are_flagged_and_not_counted(
    mnist_model, mnist_test, monkeypatch
) -> None:
    def out_of_ball(model, x, y, cfg, generator, seed, num_classes):
        return x + 3 * cfg.eps, None  # an attack that ignores both ε and the box

    monkeypatch.setitem(evaluate_module._RUNNERS, "pgd", out_of_ball)
    with pytest.warns(SanityWarning):
        results = evaluate_robustness(mnist_model, mnist_test.subset(50), [PGD10])
    assert {"perturbation_beyond_eps", "adversarial_out_of_range"} <= _names(results)
    assert results["attacks"]["pgd10"]["broken"] == 0
    assert results["worst_case_accuracy"] == results["natural_accuracy"]
