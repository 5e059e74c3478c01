"""Run under ``torchrun --nproc_per_node 2``: the DDP gradient of the DIM loss with gathered negatives.

Each rank builds the same encoder and critic (seed 0), puts them in eval mode (BatchNorm running statistics,
so per-rank batches do not change the math), takes its half of a fixed batch of real MNIST images, computes
``MILoss(gather_negatives=True)`` through a DDP wrapper and backpropagates. Rank 0 saves the (DDP-averaged)
gradients to ``argv[1]``; test_ddp.py compares them with one process's gradient on the whole batch.
"""

from __future__ import annotations

import sys

import torch

from robustmi.data import load_dataset
from robustmi.training import build_encoder_and_critic, get_preset, setup_distributed, teardown_distributed
from robustmi.training.distributed import shard_batch, wrap_ddp
from robustmi.training.steps import MILoss

BATCH = 32


def main(out: str) -> None:
    torch.set_num_threads(1)
    info = setup_distributed()
    torch.manual_seed(0)
    encoder, dim = build_encoder_and_critic(get_preset("encoder", "smoke"))
    encoder.eval(), dim.eval()  # running BN statistics: the per-rank split does not change any output
    x = load_dataset("mnist", "train").images[:BATCH]
    loss = wrap_ddp(MILoss(encoder, dim, gather_negatives=True), info)
    loss(x[shard_batch(torch.arange(BATCH), info)]).backward()
    if info.is_main:
        grads = {f"encoder.{n}": p.grad for n, p in encoder.named_parameters()}
        grads.update({f"critic.{n}": p.grad for n, p in dim.named_parameters()})
        torch.save(grads, out)
    teardown_distributed(info)


if __name__ == "__main__":
    main(sys.argv[1])
