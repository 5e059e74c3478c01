"""Small shared layers: input normalisation (the first layer of every model) and size helpers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robustmi.errors import ModelError


def to_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``28`` -> ``(28, 28)``; ``(28, 32)`` -> ``(28, 32)``."""
    if isinstance(size, int):
        return (size, size)
    pair = tuple(int(s) for s in size)
    if len(pair) != 2:
        raise ModelError(f"input_size must be an int or (H, W), got {size!r}")
    return pair  # type: ignore[return-value]


def _per_channel(values: float | Sequence[float] | None, fill: float, chans: int, what: str) -> list[float]:
    """Expand ``None``/a scalar/a length-1 sequence to one value per channel."""
    if values is None:
        return [fill] * chans
    if isinstance(values, (int, float)):
        return [float(values)] * chans
    out = [float(v) for v in values]
    if len(out) == 1:
        return out * chans
    if len(out) != chans:
        raise ModelError(
            f"{what} has {len(out)} values but the model has in_chans={chans}; give one per channel"
        )
    return out


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std``; models take inputs in [0, 1] and own their normalisation.

    ``mean`` and ``std`` are buffers (saved in the state_dict, moved with ``.to()``, never trained). ``None``
    means identity (mean 0, std 1). The forward also checks the input layout, so a wrong dataset/model pairing
    gives a one-line ``ModelError`` instead of a shape error deep inside a conv.

    Args:
        mean: per-channel mean (a scalar or length-1 sequence broadcasts), or None.
        std: per-channel standard deviation, or None.
        in_chans: number of input channels.
    """

    def __init__(
        self,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        self.in_chans = in_chans
        mean_v = _per_channel(mean, 0.0, in_chans, "mean")
        std_v = _per_channel(std, 1.0, in_chans, "std")
        if min(std_v) <= 0:
            raise ModelError(f"std must be positive, got {std_v}")
        self.register_buffer("mean", torch.tensor(mean_v).view(1, in_chans, 1, 1))  # (1, C, 1, 1)
        self.register_buffer("std", torch.tensor(std_v).view(1, in_chans, 1, 1))  # (1, C, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) in [0, 1] -> (B, C, H, W) normalised."""
        if x.dim() != 4 or x.shape[1] != self.in_chans:
            raise ModelError(
                f"model expects images (B, {self.in_chans}, H, W), got shape {tuple(x.shape)}; "
                "build the model with the dataset's in_chans (create_model(..., dataset=...))"
            )
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
