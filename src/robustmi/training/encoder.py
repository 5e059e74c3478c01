"""``train_encoder``: an unsupervised encoder by Deep InfoMax or worst-case MI (paper §5, Algorithm 1).

The encoder (Baseline-H front by default: three 4×4 stride-2 convs 64/128/256, FC 1024, FC 64) and the DIM
critic (``robustmi.mi.DIMObjective``: its own conv x-branch, no shared parameters, paper S Table 2) are
trained together by one Adam over both parameter sets. The authors' code gives each sub-module its own Adam
with the same learning rate and no weight decay; Adam's update is per parameter, so that is the same update.

Run folder: config.yaml, metrics.jsonl (``mi`` per step/epoch; ``mi_clean``/``mi_worst`` per epoch on held-out
test images), checkpoints/last.pt, model.pt (the encoder, ``robustmi.models.save_model``), critic.pt
(``robustmi.mi.save_dim_objective``) and results.json.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch

from robustmi.data import get_dataset_info
from robustmi.mi import DIMObjective, save_dim_objective
from robustmi.models import create_model, save_model
from robustmi.training.config import EncoderRunConfig
from robustmi.training.distributed import DistInfo, wrap_ddp
from robustmi.training.engine import Engine
from robustmi.training.session import Session, load_test_split, load_train_split
from robustmi.training.steps import EncoderStep, MILoss
from robustmi.training.validation import clean_and_worst_mi


def build_encoder_and_critic(cfg: EncoderRunConfig) -> tuple[torch.nn.Module, DIMObjective]:
    """The encoder ``cfg.arch`` for ``cfg.dataset`` and a DIM critic sized to it."""
    encoder = create_model(cfg.arch, dataset=cfg.dataset)
    in_chans = get_dataset_info(cfg.dataset).image_shape[0]
    dim = DIMObjective(in_chans, encoder.feature_dim, estimator=cfg.estimator, critic_width=cfg.critic_width,
                       num_convs=cfg.num_convs)
    return encoder, dim


def train_encoder(cfg: EncoderRunConfig, out_dir: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train an encoder with ``cfg.objective`` (``mi`` or ``worst-case-mi``) and write the run folder.

    Args:
        cfg: the run config (``robustmi.training.get_preset("encoder", "cpu")`` for a start).
        out_dir: run folder; refused if it holds another run, unless ``resume``.
        resume: continue from ``out_dir/checkpoints/last.pt`` (a fresh start if there is none yet).

    Returns:
        The results.json content: training summary, final training MI, the last epochs' held-out clean and
        worst-case MI, every protocol knob. (On ranks other than 0 of a DDP run: the training summary only.)

    Raises:
        ConfigError, DataError, CheckpointError, ModelError: bad config, missing data, folder in use.

    Example:
        >>> cfg = get_preset("encoder", "smoke", objective="worst-case-mi")
        >>> results = train_encoder(cfg, "runs/enc")
    """
    train, test = load_train_split(cfg), load_test_split(cfg)  # no data: fail before touching the folder
    with Session(cfg, out_dir, resume) as session:
        encoder, dim = build_encoder_and_critic(cfg)
        encoder, dim = encoder.to(session.device), dim.to(session.device)
        session.after_models_built()
        groups = [{"params": encoder.parameters()}, {"params": dim.parameters()}]
        optimizer = torch.optim.Adam(groups, lr=cfg.lr)
        engine = Engine(session.engine_config(), modules={"encoder": encoder, "critic": dim},
                        optimizers={"adam": optimizer}, run_dir=session.run, dist_info=session.dist)
        loss = wrap_ddp(MILoss(encoder, dim, cfg.gather_negatives), session.dist)
        attack = cfg.attack if cfg.objective == "worst-case-mi" else None
        search_autocast = partial(torch.autocast, device_type=session.device.type, dtype=torch.bfloat16) \
            if cfg.search_bf16 else None
        step = EncoderStep(encoder, dim, loss, attack, engine.autocast, through_critic=cfg.through_critic,
                           generator=engine.step_generator, search_autocast=search_autocast)
        held_out = test.images[:cfg.mi_eval_samples]
        mi_batch = min(cfg.batch_size, max(cfg.mi_eval_samples, 1))

        def measure_mi(epoch: int) -> dict[str, float] | None:
            if cfg.mi_eval_samples == 0:
                return None
            return clean_and_worst_mi(encoder, dim, held_out, cfg.attack, batch_size=mi_batch,
                                      info=session.dist, through_critic=cfg.through_critic)

        summary = engine.fit(train.images, train.labels, step, on_epoch_end=measure_mi, resume=resume)
        session.finish_training()
        if not session.dist.is_main:
            return {"training": summary}
        alone = DistInfo(device=session.device)  # the process group is gone: rank 0 measures all images
        final = clean_and_worst_mi(encoder, dim, held_out, cfg.attack, batch_size=mi_batch, info=alone,
                                   through_critic=cfg.through_critic) \
            if cfg.mi_eval_samples else {}
        save_model(encoder, session.run.path / "model.pt")
        save_dim_objective(dim.cpu(), session.run.path / "critic.pt")
        extra = _mi_results(cfg, session.run, summary, final or {}, mi_batch)
        results = session.results("encoder", summary, extra)
        session.write_results(results)
    return results


def _mi_results(cfg: EncoderRunConfig, run: Any, summary: dict[str, Any], final: dict[str, float],
                mi_batch: int) -> dict[str, Any]:
    """Training MI of the last (possibly partial) epoch, the final held-out MI and the per-epoch history."""
    epochs = [r for r in run.read_metrics() if r.get("kind") == "epoch"]
    train_mi = summary["recent_metrics"].get("mi")
    if train_mi is None and epochs:  # e.g. a finished run resumed: no step in this session
        train_mi = epochs[-1].get("mi")
    return {"objective": cfg.objective, "arch": cfg.arch, "estimator": cfg.estimator,
            "critic_width": cfg.critic_width, "num_convs": cfg.num_convs,
            "through_critic": cfg.through_critic,
            "gather_negatives": cfg.gather_negatives, "train_mi": train_mi,
            "mi_clean": final.get("mi_clean"), "mi_worst": final.get("mi_worst"),
            "mi_eval_samples": cfg.mi_eval_samples, "mi_eval_batch": mi_batch,
            "mi_note": "train_mi: mean training-batch estimate over the last log_every steps (perturbed "
                       "batches for worst-case-mi); mi_clean/mi_worst: the final training critic on "
                       "held-out test images, clean and after Algorithm 1's search; not a representation-"
                       "vulnerability estimate (that needs separately trained critics: robustmi "
                       "vulnerability)",
            "history": [{k: r.get(k) for k in ("epoch", "mi", "mi_clean", "mi_worst")} for r in epochs]}
