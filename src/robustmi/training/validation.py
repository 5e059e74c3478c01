"""Per-epoch measurements on held-out images: adversarial accuracy (early stopping) and clean/worst-case MI.

Both split their images over the ranks of a distributed run and average the results, so every rank gets the
same numbers (and takes the same early-stopping decision) at 1/W of the cost. Models are measured in eval mode
with frozen parameters and fp32, like the final evaluation; their modes and flags are restored afterwards.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustmi.attacks import AttackSettings, classifier_objective, frozen_eval, pgd
from robustmi.training.distributed import DistInfo
from robustmi.training.steps import search_worst_case


def _rank_slice(n: int, info: DistInfo) -> slice:
    """This rank's contiguous share of ``n`` items (the first ``n % W`` ranks take one more)."""
    base, extra = divmod(n, info.world_size)
    start = info.rank * base + min(info.rank, extra)
    return slice(start, start + base + (1 if info.rank < extra else 0))


def _sum_over_ranks(values: Tensor, info: DistInfo) -> Tensor:
    """Sum a small CPU tensor over the ranks (through the rank's device: NCCL reduces CUDA tensors only)."""
    if not info.enabled:
        return values
    values = values.to(info.device)
    dist.all_reduce(values)
    return values.cpu()


def adversarial_accuracy(model: nn.Module, images: Tensor, labels: Tensor, attack: AttackSettings, *,
                         batch_size: int, info: DistInfo, seed: int = 0) -> dict[str, float]:
    """Natural and PGD accuracy of ``model`` on (N, C, H, W) ``images`` and (N,) ``labels``.

    Returns:
        ``{"val_natural_accuracy", "val_adversarial_accuracy"}`` as fractions over all N images.
    """
    part = _rank_slice(images.shape[0], info)
    x_all, y_all = images[part], labels[part]
    generator = torch.Generator(device=info.device).manual_seed(seed + info.rank)
    counts = torch.zeros(3, dtype=torch.float64)  # natural correct, adversarial correct, seen
    with frozen_eval(model):
        for start in range(0, x_all.shape[0], batch_size):
            x = x_all[start:start + batch_size].to(info.device)
            y = y_all[start:start + batch_size].to(info.device)
            with torch.no_grad():
                natural = (model(x).argmax(dim=1) == y).sum()
            x_adv = pgd(classifier_objective(model, y), x, eps=attack.eps, steps=attack.steps,
                        step_size=attack.step_size, norm=attack.norm, random_start=attack.random_start,
                        generator=generator)
            with torch.no_grad():
                robust = (model(x_adv).argmax(dim=1) == y).sum()
            counts += torch.tensor([float(natural), float(robust), float(y.shape[0])], dtype=torch.float64)
    counts = _sum_over_ranks(counts, info)
    seen = max(counts[2].item(), 1.0)
    return {"val_natural_accuracy": counts[0].item() / seen,
            "val_adversarial_accuracy": counts[1].item() / seen}


def clean_and_worst_mi(encoder: nn.Module, dim: nn.Module, images: Tensor, attack: AttackSettings, *,
                       batch_size: int, info: DistInfo, through_critic: bool = False) -> dict[str, float]:
    """Batch-averaged MI estimate of (x, g(x)) on clean images and on Algorithm 1's worst case, same critic.

    A quick diagnostic of the training critic on held-out images, not a representation-vulnerability estimate
    (that needs separately trained critics, ``robustmi.vulnerability``): a critic trained on clean inputs can
    score perturbed ones oddly, and vice versa.

    Returns:
        ``{"mi_clean", "mi_worst"}`` in nats, averaged over batches of ``batch_size`` (an MI bound depends
        on the batch size through its negatives: compare numbers taken at the same size).
    """
    part = _rank_slice(images.shape[0], info)
    x_all = images[part]
    sums = torch.zeros(3, dtype=torch.float64)  # clean, worst, batches
    for start in range(0, x_all.shape[0] - batch_size + 1, batch_size):  # full batches only
        x = x_all[start:start + batch_size].to(info.device)
        x_worst = search_worst_case(encoder, dim, x, attack, through_critic=through_critic)
        with frozen_eval(encoder, dim), torch.no_grad():
            clean, worst = dim.mi(x, encoder(x)), dim.mi(x_worst, encoder(x_worst))
        sums += torch.tensor([float(clean), float(worst), 1.0], dtype=torch.float64)
    sums = _sum_over_ranks(sums, info)
    batches = max(sums[2].item(), 1.0)
    return {"mi_clean": sums[0].item() / batches, "mi_worst": sums[1].item() / batches}
