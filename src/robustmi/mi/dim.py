"""Deep InfoMax objective: the MI lower bound between images and their representation (PAPER.md §2.1–2.4).

``DIMObjective`` holds the critic parameters only (the encoder is separate; unlike Hjelm et al. 2018 the
critic shares nothing with it and sees the raw image through its own conv stack, S Table 2). ``mi(x, z)`` is
the training signal of every encoder run:

- standard DIM (paper eq. 5.1): maximise ``mi(x, g(x))`` over encoder g and critic;
- worst-case MI (eq. 5.3/5.4, Algorithm 1): the inner search *minimises* ``mi(x', g(x'))`` over x' in the
  eps-ball, then encoder and critic maximise it on x'.

Defaults: the image critic with per-location scores (two 4x4 stride-2 convs as in the authors' released
code, which produced the tables; the paper's Table 2 lists three, ``num_convs=3``; docs/fidelity.md), 1x1
residual blocks of width 2048 with LayerNorm, DV bound averaged over locations with the positive pair excluded
from the negatives ("local" term only). Options: another bound (``estimator``), a "global" term that scores
the location-averaged x-embedding against z, and the authors' negative term with the positive left in
(``include_positive_in_negatives``). The worst-case search itself (and whether its gradient passes through
the critic's image branch) lives in :mod:`robustmi.mi.worst_case`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from robustmi.errors import CheckpointError, ConfigError
from robustmi.mi.bounds import dv_bound, get_bound
from robustmi.mi.image_critic import ImageCritic, pair_scores

__all__ = ["DIMObjective", "load_dim_objective", "save_dim_objective"]

_KIND = "dim_objective"


class DIMObjective(nn.Module):
    """Deep InfoMax critic + bound: a scalar MI lower bound of (image, representation) pairs.

    Args:
        in_chans: image channels.
        z_dim: representation size D (z is (B, D)).
        estimator: bound, one of :func:`robustmi.mi.list_bounds` (paper: "dv"; nats for dv/infonce/nwj, the
            JSD objective for "jsd").
        critic_width: width of the critic's 1x1 residual blocks (paper: 2048).
        num_convs: strided convs of the critic's x-branch (authors' code: 2, the default; paper Table 2: 3).
        local_weight: weight of the local term (per-location scores, the paper's objective).
        global_weight: weight of the global term (location-averaged x-embedding vs z; 0 = off, the paper).
            The two terms are combined as a weighted *average*,
            ``(w_l * local + w_g * global) / (w_l + w_g)``: both lower-bound I(X; Z), so the result is still
            a lower bound in nats.
        include_positive_in_negatives: DV only; the authors' biased negative term (see
            :func:`robustmi.mi.dv_bound`).
        z_branch: ``"mlp"`` or ``"identity"`` (see :class:`robustmi.mi.ImageCritic`).
        mean: per-channel (or scalar) mean for the critic's input normalisation.
        std: per-channel (or scalar) std for the critic's input normalisation.

    Example:
        >>> dim = DIMObjective(1, 64, critic_width=128)
        >>> x, z = torch.rand(8, 1, 28, 28), torch.randn(8, 64)
        >>> loss = -dim.mi(x, z)   # minimise w.r.t. encoder + critic
    """

    def __init__(
        self,
        in_chans: int,
        z_dim: int,
        estimator: str = "dv",
        critic_width: int = 2048,
        num_convs: int = 2,
        *,
        local_weight: float = 1.0,
        global_weight: float = 0.0,
        include_positive_in_negatives: bool = False,
        z_branch: str = "mlp",
        mean: float | Sequence[float] = 0.5,
        std: float | Sequence[float] = 0.5,
    ) -> None:
        super().__init__()
        get_bound(estimator)  # validates the name
        if local_weight < 0 or global_weight < 0 or local_weight + global_weight <= 0:
            raise ConfigError(
                f"DIM term weights must be >= 0 with a positive sum, got local={local_weight}, "
                f"global={global_weight}"
            )
        self.config: dict[str, Any] = {
            "in_chans": in_chans, "z_dim": z_dim, "estimator": estimator, "critic_width": critic_width,
            "num_convs": num_convs, "local_weight": local_weight, "global_weight": global_weight,
            "include_positive_in_negatives": include_positive_in_negatives,
            "z_branch": z_branch,
            "mean": mean if isinstance(mean, int | float) else list(mean),
            "std": std if isinstance(std, int | float) else list(std),
        }  # fmt: skip
        self.estimator = estimator
        self.local_weight, self.global_weight = float(local_weight), float(global_weight)
        self.include_positive_in_negatives = include_positive_in_negatives
        self.critic = ImageCritic(in_chans, z_dim, num_convs, critic_width, z_branch, mean, std)

    def _bound(self, estimator: str | None) -> Callable[[Tensor], Tensor]:
        """The bound function for ``estimator`` (default: the training one), with the DV switch applied."""
        name = self.estimator if estimator is None else estimator
        if name == "dv":
            authors_variant = self.include_positive_in_negatives
            return functools.partial(dv_bound, include_positive_in_negatives=authors_variant)
        return get_bound(name)

    def _embed(self, x: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        """(B, C, H, W), (B, ...) -> x embeddings (B, E, L) and z embeddings (B, E)."""
        if x.shape[0] != z.shape[0]:
            raise ConfigError(f"x and z batch sizes differ ({x.shape[0]} vs {z.shape[0]}); pass pairs")
        z = z.flatten(1)  # (B, ...) -> (B, D)
        return self.critic.embed_x(x), self.critic.embed_z(z)

    def scores(self, x: Tensor, z: Tensor) -> Tensor:
        """Local critic scores: (B, C, H, W), (B, D) -> (B, B, L); ``[i, j, l]``: x_i at location l vs z_j."""
        return pair_scores(*self._embed(x, z))  # (B, E, L), (B, E) -> (B, B, L)

    def mi(self, x: Tensor, z: Tensor, estimator: str | None = None) -> Tensor:
        """MI lower bound of the pairs (x_i, z_i): maximise it to train, minimise it w.r.t. x to search.

        Args:
            x: (B, C, H, W) images in [0, 1].
            z: (B, D) representations g(x) (any (B, ...) is flattened).
            estimator: evaluate with another bound than the training one (e.g. "dv" to read nats from a
                JSD-trained critic); None uses ``self.estimator``.

        Returns:
            Scalar tensor: the weighted average of the local (per-location, averaged) and global bounds.
            Scores are cast to float32 before the bound, so it is stable under bf16 autocast.

        Raises:
            ConfigError: mismatched batch sizes, wrong shapes, unknown estimator, B < 2.
        """
        bound = self._bound(estimator)
        ex, ez = self._embed(x, z)
        total = x.new_zeros(()).float()
        if self.local_weight > 0:
            local = pair_scores(ex, ez)  # (B, E, L), (B, E) -> (B, B, L)
            total = total + self.local_weight * bound(local.float())
        if self.global_weight > 0:
            pooled = ex.mean(dim=-1)  # (B, E, L) -> (B, E): the whole image's embedding
            total = total + self.global_weight * bound(pair_scores(pooled, ez).float())  # (B, B)
        return total / (self.local_weight + self.global_weight)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Same as :meth:`mi` with the training estimator."""
        return self.mi(x, z)


def _critic_path(path: str | Path) -> Path:
    """A run folder means RUN/critic.pt; anything else is the file itself."""
    path = Path(path)
    return path / "critic.pt" if path.is_dir() else path


def save_dim_objective(obj: DIMObjective, path: str | Path) -> None:
    """Save a DIM objective: its state_dict plus constructor kwargs (JSON sidecar), atomically.

    Args:
        obj: the objective to save.
        path: a ``.pt`` file, or a run folder (then ``RUN/critic.pt``, as encoder runs write it).

    Raises:
        CheckpointError: the destination cannot be written.
    """
    from robustmi.runs import save_checkpoint  # runs sits below mi; imported here to keep import time low

    if not isinstance(obj, DIMObjective):
        raise CheckpointError(f"save_dim_objective needs a DIMObjective, got {type(obj).__name__}")
    meta = {"kind": _KIND, "kwargs": obj.config}
    save_checkpoint(_critic_path(path), {"state_dict": obj.state_dict()}, meta)


def load_dim_objective(path: str | Path) -> DIMObjective:
    """Load a DIM objective written by :func:`save_dim_objective`, on the CPU.

    Args:
        path: the ``.pt`` file, or a run folder holding ``critic.pt``.

    Returns:
        The rebuilt :class:`DIMObjective` with its weights, in train mode.

    Raises:
        CheckpointError: no critic there (only encoder runs save one), or a file that is not a DIM critic.
    """
    from robustmi.runs import load_checkpoint

    file = _critic_path(path)
    if not file.is_file():
        raise CheckpointError(
            f"no DIM critic at {str(file)!r}; pass an encoder run folder (train-encoder writes critic.pt) "
            "or the critic .pt file"
        )
    tensors, meta = load_checkpoint(file, require_meta=True)
    if meta.get("kind") != _KIND or "state_dict" not in tensors:
        raise CheckpointError(f"{str(file)!r} is not a DIM critic checkpoint; pass an encoder run's critic")
    obj = DIMObjective(**meta["kwargs"])
    try:
        obj.load_state_dict(tensors["state_dict"])
    except RuntimeError as error:  # shape or key mismatch; keep the first line of torch's message
        reason = str(error).splitlines()[0]
        raise CheckpointError(f"DIM critic {str(file)!r} does not match its settings ({reason})") from None
    return obj
