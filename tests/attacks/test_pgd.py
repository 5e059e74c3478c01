"""PGD engine: constraints (property tests), known answers, best iterate, restarts, batch-level objectives,
model state, errors; and our PGD against torchattacks' PGD on a model trained on real MNIST."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from robustmi.attacks import (
    classifier_objective,
    fgsm_rs,
    frozen_eval,
    get_threat,
    pgd,
    pgd_with_trace,
)
from robustmi.errors import AttackError

TOL = 1e-5


def _random_objective(seed: int, batch_level: bool):
    """A smooth non-linear objective of the input: per sample (B,) or one scalar for the batch."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(2, 4, 4, generator=g), torch.randn(2, 4, 4, generator=g)

    def objective(x: torch.Tensor) -> torch.Tensor:
        per_sample = (torch.sin(3 * x * w1) + x * x * w2).flatten(1).sum(dim=1)  # (B, 2, 4, 4) -> (B,)
        return per_sample.logsumexp(dim=0) if batch_level else per_sample

    return objective


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    norm=st.sampled_from(["linf", "l2"]),
    eps=st.floats(0.0, 1.5),
    steps=st.integers(1, 4),
    step_size=st.floats(0.01, 2.0),
    random_start=st.booleans(),
    restarts=st.integers(1, 2),
    keep_best=st.booleans(),
    batch_level=st.booleans(),
)
def test_output_inside_ball_and_box(
    seed, norm, eps, steps, step_size, random_start, restarts, keep_best, batch_level
) -> None:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 4, 4, generator=g)
    x[0, 0, 0, 0], x[1, 1, 1, 1] = 0.0, 1.0  # points on the box boundary
    x_before = x.clone()
    x_adv = pgd(
        _random_objective(seed, batch_level),
        x,
        eps=eps,
        steps=steps,
        step_size=step_size,
        norm=norm,
        random_start=random_start,
        restarts=restarts,
        keep_best=keep_best,
        generator=g,
    )
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert (get_threat(norm, eps).distance(x_adv, x) <= eps + TOL).all()
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert torch.equal(x, x_before)  # never modified in place


def test_eps_zero_returns_input_exactly() -> None:
    x = torch.rand(4, 2, 4, 4)
    for norm in ("linf", "l2"):
        x_adv = pgd(
            _random_objective(0, False), x, eps=0.0, steps=3, step_size=0.5, norm=norm, random_start=True
        )
        assert torch.equal(x_adv, x)


def test_linear_objective_known_answers() -> None:
    """max w·x over the ball: L∞ -> x + ε·sign(w) clipped to the box; L2 without box -> x + ε·w/‖w‖."""
    g = torch.Generator().manual_seed(1)
    x, w = torch.rand(5, 1, 4, 4, generator=g), torch.randn(5, 1, 4, 4, generator=g)

    def objective(t):
        return (t * w).flatten(1).sum(dim=1)

    linf = pgd(objective, x, eps=0.2, steps=3, step_size=0.1)
    assert torch.allclose(linf, (x + 0.2 * w.sign()).clamp(0, 1), atol=1e-6)
    l2 = pgd(objective, x, eps=0.5, steps=5, step_size=0.2, norm="l2", clamp=None)
    w_unit = w / w.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    assert torch.allclose(l2, x + 0.5 * w_unit, atol=1e-5)


def test_matches_plain_reference_loop(mnist_model, mnist_test) -> None:
    """Madry's L∞ PGD written out as a plain loop (last iterate) gives the same points."""
    x, y = mnist_test.images[:64], mnist_test.labels[:64]
    eps, alpha = 0.1, 0.025
    ref = x.clone()
    for _ in range(5):
        ref.requires_grad_(True)
        loss = nn.functional.cross_entropy(mnist_model(ref), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, ref)
        ref = (x + (ref.detach() + alpha * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    ours = pgd(classifier_objective(mnist_model, y), x, eps=eps, steps=5, step_size=alpha, keep_best=False)
    assert torch.allclose(ours, ref, atol=1e-6)


def test_fgsm_rs_known_answer() -> None:
    """Uniform start in the ball, one signed step of 1.25·ε, projection (Wong et al. 2020)."""
    x = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(0))
    w = torch.randn(4, 1, 5, 5, generator=torch.Generator().manual_seed(1))

    def objective(t):
        return (t * w).flatten(1).sum(dim=1)

    eps = 0.1
    start = (x + (2 * torch.rand(x.shape, generator=torch.Generator().manual_seed(3)) - 1) * eps).clamp(0, 1)
    expected = (x + (start + 1.25 * eps * w.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    ours = fgsm_rs(objective, x, eps=eps, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(ours, expected, atol=1e-6)
    assert torch.equal(fgsm_rs(objective, x, eps=0.0), x)


def test_keep_best_per_sample_at_least_last_iterate(mnist_model, mnist_test) -> None:
    x, y = mnist_test.images[:200], mnist_test.labels[:200]
    objective = classifier_objective(mnist_model, y)
    kwargs = dict(eps=0.15, steps=10, step_size=0.1)  # a large step makes the iterates oscillate
    best = pgd_with_trace(objective, x, keep_best=True, **kwargs)
    last = pgd_with_trace(objective, x, keep_best=False, **kwargs)
    with torch.no_grad():
        assert torch.allclose(objective(best.x_adv), best.loss, atol=1e-5)
    assert (best.loss >= last.loss - 1e-6).all()
    assert (best.loss > last.loss + 1e-3).any()  # the selection matters on this model
    assert best.trace.shape == (1, 11)


def test_restarts_never_worse_than_a_single_run(mnist_model, mnist_test) -> None:
    x, y = mnist_test.images[:200], mnist_test.labels[:200]
    objective = classifier_objective(mnist_model, y)
    kwargs = dict(eps=0.1, steps=5, step_size=0.025, random_start=True)
    single = pgd_with_trace(objective, x, restarts=1, generator=torch.Generator().manual_seed(5), **kwargs)
    multi = pgd_with_trace(objective, x, restarts=3, generator=torch.Generator().manual_seed(5), **kwargs)
    assert (multi.loss >= single.loss - 1e-6).all()  # restart 0 is the single run; each sample keeps its max
    assert (multi.loss > single.loss + 1e-4).any()
    assert multi.trace.shape == (3, 6)


def test_batch_level_objective_is_attacked_jointly() -> None:
    """A scalar objective couples the samples; best iterate and restarts are chosen for the whole batch."""
    x = torch.rand(6, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    objective = _random_objective(4, batch_level=True)
    result = pgd_with_trace(
        objective,
        x,
        eps=0.2,
        steps=6,
        step_size=0.3,
        random_start=True,
        restarts=2,
        generator=torch.Generator().manual_seed(0),
    )
    assert result.loss.shape == ()
    assert torch.isclose(result.loss, result.trace.max())  # the batch's best iterate over steps and restarts
    assert torch.isclose(objective(result.x_adv), result.loss)
    assert result.loss > objective(x)


def test_bad_settings_raise_attack_error() -> None:
    x = torch.rand(2, 1, 4, 4)
    obj = _random_objective(0, False)
    cases = [
        (dict(eps=-0.1), "eps must be"),
        (dict(steps=0), "steps must be"),
        (dict(steps=1.5), "steps must be"),
        (dict(step_size=0.0), "step_size must be"),
        (dict(norm="l1"), "unknown norm"),
        (dict(restarts=0), "restarts must be"),
        (dict(clamp=(1.0, 0.0)), "clamp must be"),
    ]
    for override, message in cases:
        kwargs = dict(eps=0.1, steps=2, step_size=0.05) | override
        with pytest.raises(AttackError, match=message):
            pgd(obj, x, **kwargs)


def test_bad_inputs_and_objectives_raise_attack_error(mnist_model) -> None:
    x, obj = torch.rand(2, 1, 4, 4), _random_objective(0, False)
    kwargs = dict(eps=0.1, steps=2, step_size=0.05)
    with pytest.raises(AttackError, match=r"\(B, C, H, W\)"):
        pgd(obj, torch.rand(1, 4, 4), **kwargs)
    with pytest.raises(AttackError, match="NaN"):
        pgd(obj, torch.full((2, 1, 4, 4), float("nan")), **kwargs)
    with pytest.raises(AttackError, match="outside the box"):
        pgd(obj, x * 3 - 1, **kwargs)  # normalised images instead of [0, 1]
    with pytest.raises(AttackError, match=r"must return a \(2,\) tensor or a scalar"):
        pgd(lambda t: t.flatten(1), x, **kwargs)
    with pytest.raises(AttackError, match="does not depend on its input"):
        pgd(lambda t: obj(t).detach(), x, **kwargs)
    with pytest.raises(AttackError, match="differ in batch size"):
        pgd(
            classifier_objective(mnist_model, torch.zeros(3, dtype=torch.long)),
            torch.rand(2, 1, 28, 28),
            **kwargs,
        )


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten())
        self.head = nn.Linear(4 * 26 * 26, 3)

    def forward(self, x):
        return self.head(self.body(x))


def test_frozen_eval_restores_modes_and_requires_grad() -> None:
    net = _Net().train()
    net.body[1].eval()  # a submodule already in eval keeps its own flag
    net.head.bias.requires_grad_(False)
    before = (
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )
    with frozen_eval(net):
        assert not any(m.training for m in net.modules())
        assert not any(p.requires_grad for p in net.parameters())
    after = (
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    )
    assert after == before
    with pytest.raises(RuntimeError, match="boom"), frozen_eval(net):
        raise RuntimeError("boom")
    assert (
        {n: m.training for n, m in net.named_modules()},
        {n: p.requires_grad for n, p in net.named_parameters()},
    ) == before


def test_no_parameter_gradients_left_and_running_stats_untouched() -> None:
    net = _Net().eval()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 0])
    net.head.weight.grad = torch.ones_like(net.head.weight)  # a gradient the caller accumulated before
    pgd(classifier_objective(net, y), x, eps=0.1, steps=3, step_size=0.05)  # even without frozen_eval
    assert torch.equal(net.head.weight.grad, torch.ones_like(net.head.weight))
    assert all(p.grad is None for name, p in net.named_parameters() if name != "head.weight")
    net.train()
    running = net.body[1].running_mean.clone()
    with frozen_eval(net):
        pgd(classifier_objective(net, y), x, eps=0.1, steps=3, step_size=0.05)
    assert torch.equal(net.body[1].running_mean, running)  # eval inside: BatchNorm statistics stay put
    assert net.training and all(p.grad is None for name, p in net.named_parameters() if name != "head.weight")


def test_attacks_run_in_fp32_under_autocast() -> None:
    seen = []
    layer = nn.Linear(16, 2)

    def objective(t):
        out = layer(t.flatten(1))
        seen.append(out.dtype)
        return out[:, 0]

    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        assert layer(torch.rand(2, 16)).dtype == torch.bfloat16  # autocast is active out here
        pgd(objective, torch.rand(2, 1, 4, 4), eps=0.1, steps=2, step_size=0.05)
    assert seen and all(d == torch.float32 for d in seen)


def test_same_generator_same_result_and_global_rng_untouched() -> None:
    x, obj = torch.rand(3, 1, 4, 4), _random_objective(1, False)
    kwargs = dict(eps=0.3, steps=2, step_size=0.1, random_start=True, restarts=2)
    state = torch.get_rng_state()
    a = pgd(obj, x, generator=torch.Generator().manual_seed(9), **kwargs)
    b = pgd(obj, x, generator=torch.Generator().manual_seed(9), **kwargs)
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


def _accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def _torchattacks_start(x: torch.Tensor, norm: str, eps: float) -> torch.Tensor:
    """The random start torchattacks' PGD/PGDL2 draws right after ``torch.manual_seed(0)`` (same calls, same
    order, so bit-identical), to give our PGD the very same start."""
    torch.manual_seed(0)
    if norm == "linf":
        return (x + torch.empty_like(x).uniform_(-eps, eps)).clamp(0, 1)
    delta = torch.empty_like(x).normal_()
    n = delta.view(len(x), -1).norm(p=2, dim=1).view(-1, 1, 1, 1)
    r = torch.zeros_like(n).uniform_(0, 1)
    return (x + delta * (r / n * eps)).clamp(0, 1)


@pytest.mark.parametrize(
    "norm,eps,random_start", [("linf", 0.1, False), ("linf", 0.1, True), ("l2", 1.5, True)]
)
def test_not_weaker_than_torchattacks_pgd(mnist_model, mnist_test, norm, eps, random_start,
                                          monkeypatch) -> None:
    """Equal budget (ε, steps, step size) and the same start: our robust accuracy <= torchattacks' + 0.5 pt.

    With independent random starts the two accuracies differed by a coin toss at that tolerance (issue 13);
    sharing the start makes the comparison deterministic and about the algorithms alone.
    """
    torchattacks = pytest.importorskip("torchattacks")
    if random_start:
        start = _torchattacks_start(mnist_test.images[:500], norm, eps)
        threat_type = type(get_threat(norm, eps))
        monkeypatch.setattr(threat_type, "init", lambda self, x, generator=None: start)
    x, y = mnist_test.images[:500], mnist_test.labels[:500]
    steps, alpha = 10, eps / 4
    if norm == "linf":
        theirs = torchattacks.PGD(mnist_model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    else:
        theirs = torchattacks.PGDL2(mnist_model, eps=eps, alpha=alpha, steps=steps, random_start=random_start)
    torch.manual_seed(0)
    acc_theirs = _accuracy(mnist_model, theirs(x, y), y)
    with frozen_eval(mnist_model):
        x_adv = pgd(
            classifier_objective(mnist_model, y),
            x,
            eps=eps,
            steps=steps,
            step_size=alpha,
            norm=norm,
            random_start=random_start,
            generator=torch.Generator().manual_seed(0),
        )
    acc_ours = _accuracy(mnist_model, x_adv, y)
    print(f"{norm} eps={eps} random_start={random_start}: ours {acc_ours:.3f}, torchattacks {acc_theirs:.3f}")
    assert acc_ours <= acc_theirs + 0.005
    assert acc_ours < _accuracy(mnist_model, x, y) - 0.05  # the attack does bite
