"""``frozen_eval``: run attacks against models in eval mode with frozen parameters, then restore both.

Attacks need gradients with respect to the *input* only. Inside the context every given module is in
``eval()`` (BatchNorm uses running statistics, dropout is off: the attack sees the deterministic model that is
evaluated) and every parameter has ``requires_grad=False`` (no parameter gradients are built or accumulated).
On exit each submodule gets back its own previous ``training`` flag (a probe may keep a frozen encoder in eval
while its head trains) and each parameter its own ``requires_grad`` — also when the body raises.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def frozen_eval(*modules: nn.Module) -> Iterator[None]:
    """Put ``modules`` in eval mode with ``requires_grad=False``; restore every flag on exit.

    Args:
        *modules: models (or critics) an attack will differentiate through.

    Example:
        >>> with frozen_eval(model):
        ...     x_adv = pgd(classifier_objective(model, y), x, eps=0.3, steps=10, step_size=0.1)
    """
    training = {sub: sub.training for module in modules for sub in module.modules()}
    requires_grad = {p: p.requires_grad for module in modules for p in module.parameters()}
    try:
        for module in modules:
            module.eval()
            module.requires_grad_(False)
        yield
    finally:
        for sub, flag in training.items():
            sub.training = flag
        for param, flag in requires_grad.items():
            param.requires_grad_(flag)
