"""``train_supervised``: fully supervised classifiers, standard or adversarially trained (PGD-AT, FGSM-RS).

The paper's "Fully-supervised" rows (Baseline-H with MLP or linear top, Adam 1e-4) and the CIFAR-10 models of
its Fig. 1 (ResNet18/50, VGG16, DenseNet121: SGD 0.1 with momentum, ÷10 every 50 of 200 epochs; random crop
and flip). ``mode="robust"`` is Madry et al.'s PGD-AT with the dataset's threat model; ``fast=true``
replaces PGD by one FGSM step from a random start (Wong et al. 2020).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from robustmi.attacks import evaluate_robustness
from robustmi.data import horizontal_flip, random_crop
from robustmi.errors import ModelError
from robustmi.models import create_model, list_models, save_model
from robustmi.training.config import SupervisedRunConfig
from robustmi.training.distributed import wrap_ddp
from robustmi.training.engine import Engine
from robustmi.training.session import (
    Session,
    evaluation_summary,
    load_test_split,
    load_train_split,
    lr_schedulers,
)
from robustmi.training.steps import ClassifierStep, CrossEntropyLoss


def crop_and_flip(x: Tensor, generator: torch.Generator | None) -> Tensor:
    """CIFAR-style augmentation of a (B, C, H, W) batch: 4-pixel zero-padded random crop, random mirror."""
    return horizontal_flip(random_crop(x, 4, generator=generator), generator=generator)


def build_optimizer(cfg: SupervisedRunConfig, params) -> tuple[torch.optim.Optimizer, dict[str, Any]]:
    """Adam or SGD (momentum) at ``cfg.lr``, and a MultiStepLR scheduler if ``lr_milestones`` is set."""
    if cfg.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                                           weight_decay=cfg.weight_decay)
    else:
        optimizer = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return optimizer, lr_schedulers(cfg, optimizer)


def train_supervised(cfg: SupervisedRunConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train classifier ``cfg.arch`` on labelled ``cfg.dataset`` (``cfg.mode``: standard or robust).

    Args:
        cfg: the run config (``get_preset("supervised", "cpu", arch="baseline-h", mode="robust")``).
        out_dir: run folder; refused if it holds another run, unless ``resume``.
        resume: continue from ``out_dir/checkpoints/last.pt``.

    Returns:
        results.json content: ``natural_accuracy``, ``adversarial_accuracy`` (paper-preset PGD on the
        test set), the full ``evaluation``, training summary and every protocol knob.

    Raises:
        ConfigError, DataError, CheckpointError, ModelError: bad config, missing data, unknown arch, the
            folder holds another run.
    """
    if cfg.arch not in list_models():
        raise ModelError(f"unknown arch {cfg.arch!r}; choose one of: {', '.join(list_models())}")
    train, test = load_train_split(cfg), load_test_split(cfg)  # no data: fail before touching the folder
    with Session(cfg, out_dir, resume) as session:
        model = create_model(cfg.arch, dataset=cfg.dataset).to(session.device)
        session.after_models_built()
        optimizer, schedulers = build_optimizer(cfg, model.parameters())
        engine = Engine(session.engine_config(), modules={"model": model}, optimizers={"opt": optimizer},
                        schedulers=schedulers, run_dir=session.run, dist_info=session.dist)
        attack = cfg.attack if cfg.mode == "robust" else None
        step = ClassifierStep(model, wrap_ddp(CrossEntropyLoss(model), session.dist), attack, engine.autocast,
                              fast=cfg.fast, keep_best=cfg.train_iterate == "best",
                              augment=crop_and_flip if cfg.augment else None,
                              generator=engine.step_generator)
        summary = engine.fit(train.images, train.labels, step, resume=resume)
        session.finish_training()
        if not session.dist.is_main:
            return {"training": summary}
        save_model(model.eval(), session.run.path / "model.pt")
        evaluation = evaluate_robustness(model, test, cfg.eval_attacks, batch_size=cfg.eval_batch_size,
                                         limit=cfg.eval_limit, seed=cfg.seed)
        extra = {"arch": cfg.arch, "mode": cfg.mode, "fast": cfg.fast, "train_iterate": cfg.train_iterate,
                 "optimizer": cfg.optimizer,
                 "augment": cfg.augment, **evaluation_summary(evaluation)}
        results = session.results("supervised", summary, extra)
        session.write_results(results)
    return results
