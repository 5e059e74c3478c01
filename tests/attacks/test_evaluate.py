"""evaluate_robustness on a model trained on real MNIST: accuracies, cascade, worst case, records, errors."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from robustmi.attacks import (
    AttackConfig,
    attack_batch,
    classifier_objective,
    evaluate_robustness,
    frozen_eval,
    pgd,
)
from robustmi.errors import AttackError

EPS = 0.1
PGD10 = AttackConfig("pgd10", EPS, "linf", 10, EPS / 4)
APGD = AttackConfig("apgd-ce", EPS, "linf", 100, method="apgd-ce")


@pytest.fixture(scope="module")
def points(mnist_test):
    return mnist_test.subset(200)


@pytest.fixture(scope="module")
def individual(mnist_model, points):
    """PGD-10 and APGD-CE, each on every naturally correct point."""
    pytest.importorskip("torchattacks")
    return evaluate_robustness(mnist_model, points, [PGD10, APGD], batch_size=128, cascade=False)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def test_natural_and_pgd_accuracy_match_direct_computation(mnist_model, points, individual) -> None:
    x, y = points.images, points.labels
    assert individual["natural_accuracy"] == pytest.approx(_accuracy(mnist_model, x, y))
    with frozen_eval(mnist_model):
        x_adv = pgd(classifier_objective(mnist_model, y), x, eps=EPS, steps=10, step_size=EPS / 4)
    plain = _accuracy(mnist_model, x_adv, y)
    # evaluation keeps a misclassified iterate whenever one occurred: never weaker than the plain attack
    assert individual["attacks"]["pgd10"]["accuracy"] <= plain
    assert individual["attacks"]["pgd10"]["accuracy"] >= plain - 0.02
    assert 0.3 < individual["attacks"]["pgd10"]["accuracy"] < individual["natural_accuracy"] - 0.05


def test_apgd_not_weaker_than_pgd_and_worst_case_is_the_minimum(individual) -> None:
    """The reduced AutoAttack (APGD-CE, 100 steps) is at least as strong as PGD-10 here."""
    acc = {name: entry["accuracy"] for name, entry in individual["attacks"].items()}
    print(
        f"natural {individual['natural_accuracy']:.3f}, {acc}, worst {individual['worst_case_accuracy']:.3f}"
    )
    assert acc["apgd-ce"] <= acc["pgd10"]
    assert individual["worst_case_accuracy"] <= min(acc.values())


def test_records_settings_implementation_and_perturbation(individual) -> None:
    json.dumps(individual)  # results.json-ready
    pgd10, apgd = individual["attacks"]["pgd10"], individual["attacks"]["apgd-ce"]
    assert pgd10["implementation"] == "robustmi.pgd"
    assert apgd["implementation"].startswith("torchattacks 3.5.1 APGD-CE")
    assert pgd10["settings"] == {
        "eps": EPS,
        "norm": "linf",
        "steps": 10,
        "step_size": EPS / 4,
        "random_start": False,
        "restarts": 1,
        "loss": "ce",
        "method": "pgd",
        "seed": 0,
    }
    for entry in (pgd10, apgd):
        assert 0 < entry["max_perturbation"] <= EPS + 1e-6
        assert entry["attacked"] == round(individual["natural_accuracy"] * 200)
    assert individual["flags"] == [] and individual["num_samples"] == 200 and individual["cascade"] is False


def test_cascade_attacks_only_points_still_robust(mnist_model, points, individual) -> None:
    cascade = evaluate_robustness(mnist_model, points, [PGD10, APGD], batch_size=128)
    first, second = cascade["attacks"]["pgd10"], cascade["attacks"]["apgd-ce"]
    assert first["accuracy"] == individual["attacks"]["pgd10"]["accuracy"]  # same points, deterministic PGD
    assert second["attacked"] == round(first["accuracy"] * 200)  # only the points PGD left robust
    assert cascade["worst_case_accuracy"] == second["accuracy"] <= first["accuracy"]


def test_attack_batch_keeps_the_successful_adversarial_examples(mnist_model, points) -> None:
    x, y = points.images[:100], points.labels[:100]
    with frozen_eval(mnist_model):
        out = attack_batch(mnist_model, x, y, [PGD10])
    broken = out.broken["pgd10"]
    assert broken.any() and (out.attacked["pgd10"] == out.correct).all()
    assert (_predict(mnist_model, out.x_adv[broken]) != y[broken]).all()
    assert ((out.x_adv - x).flatten(1).abs().amax(dim=1) <= EPS + 1e-6).all()
    assert torch.equal(out.x_adv[~broken], x[~broken])  # no successful attack: the clean input


def _predict(model, x):
    with torch.no_grad():
        return model(x).argmax(dim=1)


def test_presets_by_name_modes_restored_and_global_rng_untouched(mnist_model, points) -> None:
    mnist_model.train()
    state = torch.get_rng_state()
    try:
        results = evaluate_robustness(mnist_model, points.subset(50), ["paper", "pgd20"], seed=3)
    finally:
        was_training = mnist_model.training
        mnist_model.eval()
    assert was_training and all(p.requires_grad for p in mnist_model.parameters())
    assert torch.equal(torch.get_rng_state(), state)
    assert results["attacks"]["paper"]["settings"]["eps"] == 0.3  # MNIST's paper ε
    assert results["attacks"]["pgd20"]["settings"]["restarts"] == 5
    assert results["worst_case_accuracy"] <= results["attacks"]["paper"]["accuracy"]


def test_bad_arguments_raise_attack_error(mnist_model, points) -> None:
    with pytest.raises(AttackError, match="limit must be"):
        evaluate_robustness(mnist_model, points, [PGD10], limit=0)
    with pytest.raises(AttackError, match=r"\.images \(N, C, H, W\)"):
        evaluate_robustness(mnist_model, SimpleNamespace(name="mnist"), [PGD10])
    with pytest.raises(AttackError, match="distinct names"):
        evaluate_robustness(mnist_model, points, [PGD10, PGD10])
    with pytest.raises(AttackError, match="unknown attack preset"):
        evaluate_robustness(mnist_model, points, ["fgsm"])
    bad = SimpleNamespace(name="mnist", images=points.images * 2 - 1, labels=points.labels, num_classes=10)
    with pytest.raises(AttackError, match=r"in \[0, 1\]"):
        evaluate_robustness(mnist_model, bad, [PGD10])
    half = torch.nn.Linear(2, 2).to(torch.bfloat16)
    with pytest.raises(AttackError, match="fp32"):
        evaluate_robustness(half, points, [PGD10])
