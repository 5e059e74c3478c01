"""Many processes: process-group setup from ``torchrun`` env vars, DDP wrapping, and gathers for the engine.

A run started by ``python -m torch.distributed.run --nproc_per_node N -m robustmi train-...`` finds
``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment and joins a process group (gloo on CPU, nccl when
CUDA is available). Every rank builds the same models from the same seed, takes its share of each global batch
(:func:`shard_batch`) and trains a DDP-wrapped copy; rank 0 alone logs and checkpoints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robustmi.errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, and its device."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """True on the process that logs, checkpoints and evaluates."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        """True when more than one process trains together."""
        return self.world_size > 1


def setup_distributed() -> DistInfo:
    """Join the process group described by torchrun's env vars (no-op and rank 0 of 1 without them).

    Returns:
        This process's :class:`DistInfo`. Under torchrun with CUDA, each process takes ``cuda:LOCAL_RANK``.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if world_size <= 1:
        return DistInfo(0, 1, device)
    if cuda:
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), device)


def teardown_distributed(info: DistInfo) -> None:
    """Leave the process group; the barrier keeps a fast rank from exiting while others still talk to it."""
    if info.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    """Wait for every rank (no-op in one process)."""
    if info.enabled:
        dist.barrier()


def shard_batch(indices: Tensor, info: DistInfo) -> Tensor:
    """This rank's slice of a global batch of ``indices`` (B,) -> (B / world_size,).

    Rank r takes the r-th contiguous block, so the ranks together see exactly the global batch a single
    process would, and the DDP-averaged gradient of per-rank mean losses equals the single-process gradient.
    """
    if not info.enabled:
        return indices
    per_rank = indices.shape[0] // info.world_size
    return indices[info.rank * per_rank:(info.rank + 1) * per_rank]


def check_batch_size(batch_size: int, info: DistInfo) -> None:
    """The global batch must split evenly over the ranks."""
    if batch_size % info.world_size:
        raise ConfigError(f"batch_size={batch_size} does not split over {info.world_size} processes; "
                          f"choose a multiple of {info.world_size}")


def wrap_ddp(module: nn.Module, info: DistInfo) -> nn.Module:
    """``module`` wrapped in ``DistributedDataParallel`` when several processes train (else itself).

    Frozen parameters (``requires_grad=False``, e.g. a probe's encoder) are not synchronised. Buffers
    (BatchNorm running statistics) are broadcast from rank 0 at each forward, so every rank evaluates the same
    model. No SyncBatchNorm: batch statistics stay per rank (cheap on CPU, and what gloo supports well).
    """
    if not info.enabled or not any(p.requires_grad for p in module.parameters()):
        return module
    device_ids = [info.device.index] if info.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=device_ids)


def all_reduce_mean(values: dict[str, float], info: DistInfo) -> dict[str, float]:
    """Average a dict of floats over the ranks (same keys on every rank); identity in one process."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    # on the rank's device: NCCL reduces only CUDA tensors, gloo takes CPU ones
    packed = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    dist.all_reduce(packed)
    return {k: float(v) / info.world_size for k, v in zip(keys, packed.tolist(), strict=True)}


def all_gather_objects(obj: object, info: DistInfo) -> list[object]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` in one process."""
    if not info.enabled:
        return [obj]
    out: list[object] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient for each slice and returns this rank's slice.

    Every rank computes the same loss on the gathered tensor; summing the ranks' gradients for the local slice
    (all_reduce, which every backend has, unlike reduce_scatter/all_to_all on gloo) gives ``world_size`` times
    the single-process gradient, which DDP's averaging divides back out.
    """

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:  # type: ignore[override]
        ctx.rank, ctx.world_size, ctx.size = dist.get_rank(), dist.get_world_size(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(ctx.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)  # (W·b, ...)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.size:(ctx.rank + 1) * ctx.size]


def gather_with_grad(tensor: Tensor) -> Tensor:
    """(b, ...) per rank -> (W·b, ...) on every rank, differentiable (see :class:`_GatherWithGrad`).

    Without a process group it returns ``tensor`` unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def gather_no_grad(tensor: Tensor) -> Tensor:
    """(b, ...) per rank -> (W·b, ...) on every rank, outside autograd (inputs that need no gradient)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, tensor.detach().contiguous())
    return torch.cat(parts)
