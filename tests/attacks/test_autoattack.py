"""AutoAttack adapter (torchattacks): detection, recorded implementation, RNG hygiene, and AutoAttack against
PGD on a model trained on real MNIST (full standard AutoAttack behind --runslow)."""

from __future__ import annotations

import sys

import pytest
import torch

from robustmi.attacks import (
    INSTALL_HINT,
    AttackConfig,
    evaluate_robustness,
    frozen_eval,
    run_apgd_ce,
    run_autoattack,
    torchattacks_version,
)
from robustmi.errors import AttackError

EPS = 0.1


def test_missing_torchattacks_gives_the_install_command(monkeypatch, mnist_model, mnist_test) -> None:
    monkeypatch.setitem(sys.modules, "torchattacks", None)  # import now fails as if it were not installed
    with pytest.raises(AttackError, match="pip install --no-deps torchattacks==3.5.1 scipy tqdm"):
        torchattacks_version()
    assert "--no-deps" in INSTALL_HINT
    with pytest.raises(
        AttackError, match="needs the optional package torchattacks"
    ):  # before any attack runs
        evaluate_robustness(mnist_model, mnist_test.subset(10), ["paper", "autoattack"])


def test_version_and_argument_checks() -> None:
    pytest.importorskip("torchattacks")
    assert torchattacks_version() == "3.5.1"
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 1])
    with pytest.raises(AttackError, match="norms linf, l2"):
        run_apgd_ce(torch.nn.Identity(), x, y, eps=0.1, norm="l1")
    with pytest.raises(AttackError, match=">= 4 classes"):
        run_autoattack(torch.nn.Identity(), x, y, eps=0.1, num_classes=3)


def test_apgd_ce_in_ball_deterministic_and_leaves_global_rng(mnist_model, mnist_test) -> None:
    pytest.importorskip("torchattacks")
    x, y = mnist_test.images[:64], mnist_test.labels[:64]
    state = torch.get_rng_state()
    with frozen_eval(mnist_model):
        a = run_apgd_ce(mnist_model, x, y, eps=EPS, steps=20, seed=1)
        b = run_apgd_ce(mnist_model, x, y, eps=EPS, steps=20, seed=1)
    assert torch.equal(torch.get_rng_state(), state)  # torchattacks reseeds; we fork the RNG around it
    assert torch.equal(a, b)
    assert (a - x).abs().max() <= EPS + 1e-6 and a.min() >= 0 and a.max() <= 1


def test_autoattack_cascade_runs_end_to_end(mnist_model, mnist_test) -> None:
    """All four components (APGD-CE, APGD-T, FAB-T, Square) on a few points, with 10 iterations for speed."""
    pytest.importorskip("torchattacks")
    quick = AttackConfig("autoattack-10", EPS, "linf", 10, method="autoattack")
    paper_like = AttackConfig("pgd10", EPS, "linf", 10, EPS / 4)
    results = evaluate_robustness(mnist_model, mnist_test.subset(8), [paper_like, quick], cascade=False)
    entry = results["attacks"]["autoattack-10"]
    assert entry["implementation"] == "torchattacks 3.5.1 AutoAttack"
    assert entry["settings"]["components"] == ["apgd-ce", "apgd-t", "fab-t", "square"]
    assert entry["settings"]["n_target_classes"] == 9 and entry["settings"]["steps"] == 10
    assert entry["max_perturbation"] <= EPS + 1e-6 and results["flags"] == []
    assert entry["accuracy"] <= results["attacks"]["pgd10"]["accuracy"]


@pytest.mark.slow
def test_standard_autoattack_not_weaker_than_pgd(mnist_model, mnist_test) -> None:
    """Standard AutoAttack (100 iterations, 5000 Square queries) on 100 points vs PGD-10 and PGD-20 × 5."""
    pytest.importorskip("torchattacks")
    attacks = [
        AttackConfig("pgd10", EPS, "linf", 10, EPS / 4),
        AttackConfig("pgd20", EPS, "linf", 20, EPS / 4, random_start=True, restarts=5),
        AttackConfig("autoattack", EPS, "linf", 100, method="autoattack"),
    ]
    results = evaluate_robustness(mnist_model, mnist_test.subset(100), attacks, cascade=False)
    acc = {name: entry["accuracy"] for name, entry in results["attacks"].items()}
    print(f"natural {results['natural_accuracy']:.3f}, {acc}")
    assert acc["autoattack"] <= min(acc["pgd10"], acc["pgd20"])
    assert results["flags"] == []
