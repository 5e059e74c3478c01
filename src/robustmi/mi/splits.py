"""How :func:`robustmi.mi.estimate_mi` divides its pairs: one held-out split, or K cross-fitting folds.

- ``folds=1``: one shuffled split into training, validation (with best-step selection) and test pairs; the
  test pairs, a ``holdout`` fraction (half of it with a validation part), are the only ones reported.
- ``folds=K >= 2`` (cross-fitting, as in double/debiased machine learning, Chernozhukov et al. 2018): the
  shuffled pairs are cut into K test folds of whole batches; fold k's critic trains on the other folds, its
  validation part taken from them, and scores fold k. Every pair is reported once (all but a remainder of
  fewer than ``batch_size`` pairs), by a critic that never saw it, so the report averages over K times more
  test pairs at the price of K critics.

Each split carries its own seed (critic initialisation and batch order); the first split's is the caller's
``seed``, so ``folds=1`` is exactly the single split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from robustmi.errors import ConfigError

__all__ = ["Split", "plan_splits"]


@dataclass(frozen=True)
class Split:
    """Pair indices of one critic's training, validation and test parts, and the critic's seed.

    Attributes:
        train, val, test: (n_train,), (n_val,), (n_test,) int64 indices into the pairs; ``val`` is empty
            without a validation part (``selection="last"``).
        seed: seeds this split's critic initialisation and batch order.
    """

    train: Tensor
    val: Tensor
    test: Tensor
    seed: int


def _check(n: int, batch_size: int, holdout: float, folds: int) -> None:
    if batch_size < 2:
        raise ConfigError(f"batch_size must be >= 2 to form negative pairs, got {batch_size}")
    if not 0.0 < holdout < 1.0:
        raise ConfigError(f"holdout must be a fraction in (0, 1), got {holdout}")
    if folds < 1:
        raise ConfigError(f"folds must be >= 1 (1: one held-out split; K >= 2: cross-fitting), got {folds}")
    if folds > 1 and n // batch_size < folds:
        raise ConfigError(
            f"too few samples: {n} pairs hold {n // batch_size} batches of {batch_size}, fewer than folds "
            f"({folds}); pass more samples, fewer folds or a smaller batch_size"
        )


def _single(perm: Tensor, batch_size: int, holdout: float, validate: bool, seed: int) -> Split:
    """One split: a ``holdout`` fraction held out (halved into validation and test when ``validate``)."""
    n, parts = perm.shape[0], 2 if validate else 1
    n_part = int(round(n * holdout)) // parts
    n_train = n - parts * n_part
    if n_part < batch_size or n_train < batch_size:
        raise ConfigError(
            f"too few samples: {n} pairs give {n_train} train / {parts} x {n_part} held-out, each needs >= "
            f"batch_size ({batch_size}); pass more samples or a smaller batch_size"
        )
    val = perm[n_train : n_train + n_part] if validate else perm[:0]
    return Split(perm[:n_train], val, perm[n_train:][-n_part:], seed)


def _cross_fit(perm: Tensor, batch_size: int, n_val: int, seeds: list[int]) -> list[Split]:
    """K folds of whole test batches (sizes differ by at most one batch); ``n_val`` validation pairs (0: none)
    from the other folds."""
    folds = len(seeds)
    n_batches = perm.shape[0] // batch_size
    sizes = [n_batches // folds + (1 if k < n_batches % folds else 0) for k in range(folds)]
    splits, start = [], 0
    for size, seed in zip(sizes, seeds, strict=True):
        end = start + size * batch_size
        rest = torch.cat([perm[end:], perm[:start]])  # the other folds and the remainder, in permuted order
        if 0 < n_val < batch_size or rest.shape[0] - n_val < batch_size:
            raise ConfigError(
                f"too few samples: {perm.shape[0]} pairs in {folds} folds leave {rest.shape[0] - n_val} "
                f"train / {n_val} validation pairs per fold, each needs >= batch_size ({batch_size}); pass "
                "more samples, fewer folds or a smaller batch_size"
            )
        splits.append(Split(rest[n_val:], rest[:n_val], perm[start:end], seed))
        start = end
    return splits


def plan_splits(
    n: int, batch_size: int, holdout: float, folds: int, validate: bool, seed: int, device: torch.device
) -> list[Split]:
    """Shuffle ``n`` pairs (``seed``) and divide them for one critic (``folds=1``) or K cross-fitted ones.

    Args:
        n: number of pairs.
        batch_size: pairs per batch; test folds hold whole batches.
        holdout: with ``folds=1`` the held-out fraction (validation + test, or test alone without
            validation); with ``folds >= 2`` the validation part of each fold's training pairs is
            ``holdout / 2`` of all pairs, the size of the single split's validation part.
        folds: 1 (one split) or K >= 2 (cross-fitting).
        validate: whether a validation part is taken (best-step selection).
        seed: seeds the permutation; the first split's critic seed; later folds' seeds are drawn from it.
        device: where the index tensors live (the inputs' device).

    Returns:
        ``folds`` :class:`Split` s; with K >= 2 their test parts are disjoint and cover all pairs but the
        last ``n mod batch_size`` of the permutation.

    Raises:
        ConfigError: batch_size < 2, holdout outside (0, 1), folds < 1, or too few pairs for the parts.
    """
    _check(n, batch_size, holdout, folds)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g).to(device)
    if folds == 1:
        return [_single(perm, batch_size, holdout, validate, seed)]
    n_val = max(int(round(n * holdout)) // 2, 1) if validate else 0
    seeds = [seed, *torch.randint(2**31 - 1, (folds - 1,), generator=g).tolist()]
    return _cross_fit(perm, batch_size, n_val, seeds)
