"""``train_probe``: a downstream head on a frozen encoder (paper §6.2, Tables 1, 3–5), or AFF fine-tuning.

- ``mode="standard"``: cross-entropy on clean inputs, head only.
- ``mode="robust"``: PGD adversarial training of the composed model ``head∘g``; the attack differentiates
  through the frozen encoder (hence ``requires_grad_(False)`` on its parameters, never ``torch.no_grad``),
  only the head is updated (the paper's "Robust" rows).
- ``mode="finetune"``: adversarial full fine-tuning (AFF): PGD-AT updating encoder and head.
- ``early_stop="adversarial"``: after every epoch, PGD accuracy on a held-out split of the training set; the
  epoch with the best one is the final model (the paper's "Standard (E.S.)" row, and the authors' choice for
  robust heads: they keep the best adversarial validation accuracy).

A standard head never needs the encoder's gradient and the encoder is frozen in eval mode, so its training set
is encoded once (``encode``) and the head trains on the cached (N, D) features: the same updates, a fraction
of the time (a converged MNIST head in seconds).

The frozen encoder is put in ``eval()`` at the start of every epoch (BatchNorm running statistics, no
dropout),
as lightly's linear-probe benchmark does; only the head trains in train mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from robustmi.attacks import evaluate_robustness
from robustmi.errors import ModelError
from robustmi.models import Classifier, create_head, resolve_model, save_model
from robustmi.training.config import ProbeRunConfig
from robustmi.training.distributed import wrap_ddp
from robustmi.training.engine import Engine
from robustmi.training.session import (
    Session,
    evaluation_summary,
    hold_out,
    load_test_split,
    load_train_split,
    lr_schedulers,
)
from robustmi.training.steps import ClassifierStep, CrossEntropyLoss
from robustmi.training.validation import adversarial_accuracy


def load_encoder(spec: str) -> nn.Module:
    """The representation of ``spec`` (a run folder or model file): an encoder, or a classifier's encoder.

    Raises:
        ModelError: empty spec, or a model without a ``feature_dim`` representation.
        CheckpointError: missing or unreadable run folder / model file.
    """
    if not spec:
        raise ModelError("a probe needs an encoder: pass --encoder RUN (an encoder run folder)")
    model = resolve_model(str(spec))
    if hasattr(model, "encoder") and hasattr(model, "head"):  # a classifier: probe its representation
        model = model.encoder
    if not isinstance(getattr(model, "feature_dim", None), int):
        raise ModelError(f"{spec} has no feature_dim representation; give an encoder run folder")
    return model


def build_probe(cfg: ProbeRunConfig, num_classes: int, encoder: nn.Module | None = None) -> Classifier:
    """``Classifier(encoder, head)`` with the encoder frozen (trainable in ``finetune`` mode).

    ``encoder`` defaults to :func:`load_encoder` of ``cfg.encoder``.
    """
    encoder = load_encoder(cfg.encoder) if encoder is None else encoder
    encoder.requires_grad_(cfg.mode == "finetune")
    head = create_head(cfg.head, encoder.feature_dim, num_classes)
    return Classifier(encoder, head)


@torch.no_grad()
def encode(encoder: nn.Module, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """(N, C, H, W) images -> (N, D) features of the frozen encoder in eval mode (on the encoder's device)."""
    device = next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    feats = [encoder(images[i:i + batch_size].to(device)) for i in range(0, images.shape[0], batch_size)]
    encoder.train(was_training)
    return torch.cat(feats)  # (N, D)


def train_probe(cfg: ProbeRunConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train a head on ``cfg.encoder`` (``cfg.mode``: standard, robust or finetune); write the run folder.

    Args:
        cfg: the run config (``get_preset("probe", "cpu", encoder="runs/enc", mode="robust")``).
        out_dir: run folder; refused if it holds another run, unless ``resume``.
        resume: continue from ``out_dir/checkpoints/last.pt``.

    Returns:
        results.json content: ``natural_accuracy``, ``adversarial_accuracy`` (paper-preset PGD on the
        test set), the full ``evaluation``, the training summary (best epoch for early stopping) and every
        protocol knob.

    Raises:
        ConfigError, DataError, CheckpointError, ModelError: bad config, missing data or encoder, the
            folder holds another run.
    """
    encoder = load_encoder(cfg.encoder)  # bad encoder or data: fail before the run folder is touched
    train, test = load_train_split(cfg), load_test_split(cfg)
    val = None
    if cfg.early_stop == "adversarial":
        train, val = hold_out(train, cfg.val_size)
    with Session(cfg, out_dir, resume) as session:
        model = build_probe(cfg, train.num_classes, encoder).to(session.device)
        session.after_models_built()
        finetune = cfg.mode == "finetune"
        trainable = model if finetune else model.head
        optimizer = torch.optim.Adam(trainable.parameters(), lr=cfg.lr)
        modules = {"encoder": model.encoder, "head": model.head} if finetune else {"head": model.head}
        engine = Engine(session.engine_config(), modules=modules, optimizers={"adam": optimizer},
                        schedulers=lr_schedulers(cfg, optimizer), run_dir=session.run, dist_info=session.dist)
        attack = None if cfg.mode == "standard" else cfg.attack
        # standard: the head learns from cached features (the frozen encoder in eval mode gives the same ones)
        trained, inputs = (model.head, encode(model.encoder, train.images)) if attack is None \
            else (model, train.images)
        step = ClassifierStep(trained, wrap_ddp(CrossEntropyLoss(trained), session.dist), attack,
                              engine.autocast, fast=cfg.fast, keep_best=cfg.train_iterate == "best",
                              generator=engine.step_generator)

        def freeze_encoder(epoch: int) -> None:
            if not finetune:
                model.encoder.eval()  # frozen representation: running BN statistics, no dropout

        def validate(epoch: int) -> dict[str, float]:
            return adversarial_accuracy(model, val.images, val.labels, cfg.attack,
                                        batch_size=cfg.eval_batch_size, info=session.dist, seed=cfg.seed)

        summary = engine.fit(inputs, train.labels, step, on_epoch_start=freeze_encoder,
                             on_epoch_end=validate if val is not None else None,
                             select="val_adversarial_accuracy" if val is not None else None, resume=resume)
        session.finish_training()
        if not session.dist.is_main:
            return {"training": summary}
        save_model(model.eval(), session.run.path / "model.pt")
        evaluation = evaluate_robustness(model, test, cfg.eval_attacks, batch_size=cfg.eval_batch_size,
                                         limit=cfg.eval_limit, seed=cfg.seed)
        extra = {"encoder": str(cfg.encoder), "head": cfg.head, "mode": cfg.mode,
                 "early_stop": cfg.early_stop, "fast": cfg.fast, "train_iterate": cfg.train_iterate,
                 "val_size": cfg.val_size if val is not None else 0, **evaluation_summary(evaluation)}
        results = session.results("probe", summary, extra)
        session.write_results(results)
    return results
