"""Critics T(x, z) for the MI bounds in :mod:`robustmi.mi.bounds`.

Every critic maps a batch of paired inputs to the scores of *all* B x B pairings, ``forward(x, z) -> scores``
with ``scores[i, j] = T(x_i, z_j)`` (positives on the diagonal):

- :class:`SeparableCritic`: ``f(x) . g(z)`` with two MLPs (Poole et al. 2019's "separable" critic), (B, B).
- :class:`ConcatCritic`: one MLP on the concatenation ``[x_i; z_j]`` for every pair (MINE's critic), (B, B).
- :class:`ImageCritic`: the paper's encode-and-dot-product critic (S Table 2; Hjelm et al. 2018), per-location
  scores (B, B, L); defined in :mod:`robustmi.mi.image_critic`.

:func:`create_critic` builds any of them by registry name.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import Tensor, nn

from robustmi.errors import ConfigError
from robustmi.mi.image_critic import ImageCritic

__all__ = ["ConcatCritic", "ImageCritic", "QuadraticForm", "SeparableCritic", "create_critic", "list_critics"]


def _mlp(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> nn.Sequential:
    """``layers`` hidden Linear+ReLU layers of width ``hidden``, then a Linear to ``out_dim``."""
    mods: list[nn.Module] = []
    width = in_dim
    for _ in range(layers):
        mods += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    mods.append(nn.Linear(width, out_dim))
    return nn.Sequential(*mods)


def _zero_init(layers: list[nn.Module | None]) -> None:
    """Zero the weights (and biases) of the layers that produce the scores: an untrained critic scores 0.

    Then every bound of the untrained critic is exactly 0 nats (JSD: 0 too), the honest "no dependence found"
    starting point that estimate_mi's best-step selection can always fall back to. With PyTorch's default
    initialisation the linear-skip separable critic started with scores of std ~2.6 on 30-d inputs and a DV
    estimate far below zero, which the held-out selection then could not escape on independent data
    (measured: -0.15 nats). Gradients still flow: the other factor of each score is non-zero.
    """
    for layer in layers:
        if layer is not None:
            nn.init.zeros_(layer.weight)
            if getattr(layer, "bias", None) is not None:
                nn.init.zeros_(layer.bias)


class QuadraticForm(nn.Module):
    """A learnable quadratic form of one variable, ``u(x) = (L x) . (R x)`` (any symmetric matrix of rank
    <= ``rank``), starting at 0 (``R`` zero-initialised, as the score layers of :func:`_zero_init`).

    Shapes:
        forward(x (B, dim)) -> (B,)
    """

    def __init__(self, dim: int, rank: int) -> None:
        super().__init__()
        self.left = nn.Linear(dim, rank, bias=False)
        self.right = nn.Linear(dim, rank, bias=False)
        _zero_init([self.right])

    def forward(self, x: Tensor) -> Tensor:
        return (self.left(x) * self.right(x)).sum(dim=-1)  # (B, rank) * (B, rank) -> (B,)


def _check_pair(x: Tensor, z: Tensor, x_dim: int, z_dim: int) -> None:
    """Raise ConfigError unless x is (B, x_dim) and z is (B, z_dim) with the same B."""
    if x.dim() != 2 or z.dim() != 2 or x.shape[1] != x_dim or z.shape[1] != z_dim:
        raise ConfigError(
            f"critic expects x (B, {x_dim}) and z (B, {z_dim}), got {tuple(x.shape)} and {tuple(z.shape)}; "
            "flatten inputs or build the critic with matching x_dim/z_dim"
        )
    if x.shape[0] != z.shape[0]:
        raise ConfigError(f"x and z batch sizes differ ({x.shape[0]} vs {z.shape[0]}); pass paired samples")


class SeparableCritic(nn.Module):
    """Separable critic ``T(x, z) = f(x) . g(z)`` for vectors.

    With ``linear=True`` each embedding adds a bias-free linear map of its input, ``f(x) = MLP(x) + A x``
    (likewise g): the score then holds a bilinear term ``x^T A^T B z`` that the MLPs need not learn. Linear
    dependence is found from far fewer pairs that way (estimate_mi's default critic; benchmarks/RESULTS.md).
    With ``quadratic=True`` the score adds a quadratic form of each variable alone, ``u(x) + v(z)``
    (:class:`QuadraticForm`): with the bilinear term that is the whole log density ratio of jointly Gaussian
    variables, which ``f(x) . g(z)`` alone can only approximate (a term of x alone needs a constant component
    of g).

    Args:
        x_dim: size of a flattened x.
        z_dim: size of a flattened z.
        hidden: width of the hidden layers of each MLP.
        embed: size of the shared embedding space of f and g.
        layers: hidden layers per MLP (>= 1).
        linear: add the linear skip path to both embeddings.
        quadratic: add a quadratic form of each variable alone, ``T = f(x) . g(z) + u(x) + v(z)``.

    Shapes:
        forward(x (B, x_dim), z (B, z_dim)) -> scores (B, B), ``scores[i, j] = f(x_i) . g(z_j)``.
    """

    def __init__(
        self,
        x_dim: int,
        z_dim: int,
        hidden: int = 256,
        embed: int = 128,
        layers: int = 2,
        linear: bool = False,
        quadratic: bool = False,
    ) -> None:
        super().__init__()
        if layers < 1:
            raise ConfigError(f"layers must be >= 1, got {layers}")
        self.x_dim, self.z_dim = x_dim, z_dim
        self.f = _mlp(x_dim, hidden, embed, layers)
        self.g = _mlp(z_dim, hidden, embed, layers)
        self.f_linear = nn.Linear(x_dim, embed, bias=False) if linear else None
        self.g_linear = nn.Linear(z_dim, embed, bias=False) if linear else None
        self.x_quadratic = QuadraticForm(x_dim, embed) if quadratic else None
        self.z_quadratic = QuadraticForm(z_dim, embed) if quadratic else None
        _zero_init([self.g[-1], self.g_linear])  # every initial score is 0 (see _zero_init)
        # A free score offset, never decayed and stepped faster than the rest (param_groups): NWJ's optimal
        # critic is 1 + log-ratio, whose constant part is 1 + I nats (DV and InfoNCE ignore any offset).
        self.offset = nn.Parameter(torch.zeros(()))

    OFFSET_LR_FACTOR = 100.0
    """The offset's learning rate over the others' (:meth:`param_groups`).

    Adam moves a parameter by about its learning rate per step, so at 1e-3 with a cosine schedule the offset
    travels at most ~0.5 in 1000 steps, while NWJ's optimal critic needs a constant of 1 + I (2 nats at 1 nat
    of MI, 5 at 4). Short of it, NWJ's negative term holds every score down and the critic stays tempered:
    DV read on 20 000 fresh pairs of the NWJ-trained critic was 0.87-0.90 of the truth at 30-d, 8000
    training pairs, 1 and 4 nats, against 0.90-0.97 for the DV-trained one. With the offset at 100 x the rate
    (0.1) it read 0.90-0.97, the DV critic's level (30 x: 0.90-0.95; lr, decay and batch-size changes moved
    nothing; benchmarks/RESULTS.md). A scalar whose optimum is a whole number of nats away can take the larger
    steps; for offset-invariant bounds (DV, InfoNCE) its gradient is 0 and it does not matter.
    """

    def param_groups(self, weight_decay: float, lr: float) -> list[dict]:
        """Optimiser groups: weight decay on the MLPs only, never on the linear skip path, the quadratic
        forms or the offset; the offset at ``OFFSET_LR_FACTOR`` x ``lr``.

        The MLPs are what memorise training pairs; the skip path and the quadratic forms carry the
        second-order part of the dependence, whose score scale the NWJ bound needs in absolute terms
        (decaying the skip path too cost NWJ 15 % at 4 nats, measured).
        """
        paths = (self.f_linear, self.g_linear, self.x_quadratic, self.z_quadratic)
        skip = [p for m in paths if m is not None for p in m.parameters()]
        mlp = [*self.f.parameters(), *self.g.parameters()]
        return [
            {"params": mlp, "weight_decay": weight_decay},
            {"params": skip, "weight_decay": 0.0},
            {"params": [self.offset], "weight_decay": 0.0, "lr": self.OFFSET_LR_FACTOR * lr},
        ]

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Score every x_i against every z_j: (B, x_dim), (B, z_dim) -> (B, B)."""
        _check_pair(x, z, self.x_dim, self.z_dim)
        fx, gz = self.f(x), self.g(z)  # (B, E) each
        if self.f_linear is not None and self.g_linear is not None:
            fx, gz = fx + self.f_linear(x), gz + self.g_linear(z)
        scores = fx @ gz.t() + self.offset  # (B, E) @ (E, B) -> (B, B)
        if self.x_quadratic is not None and self.z_quadratic is not None:
            # (B,) -> (B, 1) rows and (B,) -> (1, B) columns: u(x_i) + v(z_j) added to every pairing
            scores = scores + self.x_quadratic(x).unsqueeze(1) + self.z_quadratic(z).unsqueeze(0)
        return scores


class ConcatCritic(nn.Module):
    """Concatenated critic ``T(x, z) = MLP([x; z])`` evaluated on all B x B pairs (MINE's critic).

    Costs B^2 MLP evaluations per batch; prefer :class:`SeparableCritic` for large batches.

    Args:
        x_dim: size of a flattened x.
        z_dim: size of a flattened z.
        hidden: width of the two hidden layers.

    Shapes:
        forward(x (B, x_dim), z (B, z_dim)) -> scores (B, B), ``scores[i, j] = MLP([x_i; z_j])``.
    """

    def __init__(self, x_dim: int, z_dim: int, hidden: int = 256) -> None:
        super().__init__()
        self.x_dim, self.z_dim = x_dim, z_dim
        self.net = _mlp(x_dim + z_dim, hidden, 1)
        _zero_init([self.net[-1]])  # every initial score is 0 (see _zero_init)

    def forward(self, x: Tensor, z: Tensor) -> Tensor:
        """Score every x_i against every z_j: (B, x_dim), (B, z_dim) -> (B, B)."""
        _check_pair(x, z, self.x_dim, self.z_dim)
        b = x.shape[0]
        xx = x.unsqueeze(1).expand(b, b, self.x_dim)  # (B, x_dim) -> (B, B, x_dim), row i = x_i
        zz = z.unsqueeze(0).expand(b, b, self.z_dim)  # (B, z_dim) -> (B, B, z_dim), column j = z_j
        pairs = torch.cat([xx, zz], dim=-1)  # (B, B, x_dim + z_dim)
        return self.net(pairs).squeeze(-1)  # (B, B, 1) -> (B, B)


_CRITICS: dict[str, Callable[..., nn.Module]] = {
    "separable": SeparableCritic,
    "concat": ConcatCritic,
    "image": ImageCritic,
}


def list_critics() -> list[str]:
    """Names accepted by :func:`create_critic`: separable, concat, image."""
    return list(_CRITICS)


def create_critic(name: str, **kwargs: object) -> nn.Module:
    """Build a critic by name.

    Args:
        name: one of :func:`list_critics`.
        **kwargs: constructor arguments of the critic class (``None`` values are dropped so unset options keep
            their defaults), e.g. ``x_dim``/``z_dim`` for vector critics, ``in_chans``/``z_dim``/``width`` for
            ``"image"``.

    Returns:
        The critic module, ``forward(x, z) -> scores``.

    Raises:
        ConfigError: unknown name (the message lists the valid ones), an argument the critic does not take, or
            a missing required one.

    Example:
        >>> critic = create_critic("separable", x_dim=10, z_dim=10)
        >>> critic(torch.randn(4, 10), torch.randn(4, 10)).shape
        torch.Size([4, 4])
    """
    if name not in _CRITICS:
        raise ConfigError(f"unknown critic {name!r}; choose one of {', '.join(_CRITICS)}")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    cls = _CRITICS[name]
    params = inspect.signature(cls).parameters
    unknown = sorted(set(kwargs) - set(params))
    if unknown:
        raise ConfigError(
            f"critic {name!r} does not take {', '.join(unknown)}; valid arguments: {', '.join(params)}"
        )
    missing = [k for k, p in params.items() if p.default is inspect.Parameter.empty and k not in kwargs]
    if missing:
        raise ConfigError(f"critic {name!r} needs {', '.join(missing)}; pass them as keyword arguments")
    return cls(**kwargs)
