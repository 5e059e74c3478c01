"""AutoAttack (Croce & Hein 2020) through the optional package torchattacks 3.5.1.

Standard AutoAttack runs four attacks in a cascade, each on the points the previous ones left robust: APGD on
cross-entropy, targeted APGD on the DLR loss (K − 1 target classes), targeted FAB (K − 1 targets) and the
black-box Square attack (5000 queries). torchattacks' own ``AutoAttack`` class builds the same cascade but
leaves the APGD/FAB iterations at its default of 10; we build it from torchattacks' components with the
reference 100 iterations (``steps``) of Croce & Hein's standard version.

torchattacks is detected at run time (its declared pins break environments, so it is installed with
``pip install --no-deps torchattacks==3.5.1 scipy tqdm``). Its attacks reseed the global RNG from ``seed``; we
run them inside ``torch.random.fork_rng`` so the caller's random state is left as it was. Models must return
logits for inputs in [0, 1] (robustmi models own their normalisation).
"""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import Tensor, nn

from robustmi.errors import AttackError

INSTALL_HINT = "pip install --no-deps torchattacks==3.5.1 scipy tqdm"
_NORMS = {"linf": "Linf", "l2": "L2"}


def _torchattacks() -> ModuleType:
    try:
        return importlib.import_module("torchattacks")
    except ImportError:
        raise AttackError(f"AutoAttack needs the optional package torchattacks: {INSTALL_HINT}") from None


def torchattacks_version() -> str:
    """Installed torchattacks version, e.g. "3.5.1"; ``AttackError`` with the install command if absent."""
    return str(getattr(_torchattacks(), "__version__", "unknown"))


def _norm(norm: str) -> str:
    if norm not in _NORMS:
        raise AttackError(f"AutoAttack supports norms {', '.join(_NORMS)}, got {norm!r}")
    return _NORMS[norm]


def _run(attack, x: Tensor, y: Tensor) -> Tensor:
    """Run a torchattacks attack without letting it reseed the caller's global RNG."""
    devices = [x.device.index or 0] if x.is_cuda else []
    with torch.random.fork_rng(devices=devices):
        return attack(x.detach(), y.detach()).detach()


def implementation_name(method: str) -> str:
    """What results.json records as ``implementation``, e.g. "torchattacks 3.5.1 AutoAttack"."""
    label = {"autoattack": "AutoAttack", "apgd-ce": "APGD-CE"}[method]
    return f"torchattacks {torchattacks_version()} {label}"


def autoattack_settings(steps: int, num_classes: int, seed: int) -> dict:
    """The cascade's knobs beyond eps/norm, recorded in results.json."""
    return {
        "version": "standard",
        "components": ["apgd-ce", "apgd-t", "fab-t", "square"],
        "steps": steps,
        "n_target_classes": num_classes - 1,
        "square_queries": 5000,
        "seed": seed,
    }


def run_autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    num_classes: int = 10,
    seed: int = 0,
) -> Tensor:
    """Standard AutoAttack on ``model`` (logits), returning adversarial inputs.

    Args:
        model: classifier returning logits (B, K) for inputs in [0, 1]; put it in eval mode (``frozen_eval``).
        x: (B, C, H, W) inputs in [0, 1].
        y: (B,) int64 labels.
        eps: radius; norm: "linf" or "l2".
        steps: APGD / APGD-T / FAB iterations (100 in the reference standard version).
        num_classes: K; targeted components attack the K − 1 other classes.
        seed: seed of the components' random starts.

    Returns:
        (B, C, H, W) adversarial inputs; points no component broke keep the clean input.

    Raises:
        AttackError: torchattacks missing, unsupported norm, fewer than 4 classes.
    """
    ta, ta_norm = _torchattacks(), _norm(norm)
    if num_classes < 4:
        raise AttackError(f"standard AutoAttack's targeted DLR loss needs >= 4 classes, got {num_classes}")
    common = {"norm": ta_norm, "eps": eps, "seed": seed, "n_restarts": 1}
    components = [
        ta.APGD(model, steps=steps, loss="ce", **common),
        ta.APGDT(model, steps=steps, n_classes=num_classes, **common),
        ta.FAB(model, steps=steps, multi_targeted=True, n_classes=num_classes, **common),
        ta.Square(model, n_queries=5000, **common),
    ]
    return _run(ta.MultiAttack(components), x, y)


def run_apgd_ce(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    eps: float,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    seed: int = 0,
) -> Tensor:
    """AutoAttack's first component alone: APGD on cross-entropy (``steps`` iterations, ``restarts`` runs)."""
    ta = _torchattacks()
    attack = ta.APGD(model, norm=_norm(norm), eps=eps, steps=steps, n_restarts=restarts, seed=seed, loss="ce")
    return _run(attack, x, y)
