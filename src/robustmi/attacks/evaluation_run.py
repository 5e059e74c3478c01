"""Robustness evaluation as a run kind: a run folder with config, per-batch metrics, results and resume.

``run_evaluation`` runs :class:`robustmi.attacks.evaluate.RobustnessEvaluation` into a run folder
(``robustmi.runs.measurement``):

```
RUN/config.yaml           the resolved EvaluationConfig (reloads with --config)
RUN/metrics.jsonl         one record per batch: batch, points done, correct, broken per attack, robust
RUN/checkpoints/last.pt   the evaluation's state after the last finished batch (+ last.json)
RUN/results.json          natural / per-attack / worst-case accuracy, every attack's settings and
                          implementation, flags, the config, the environment
```

After every batch the state is saved atomically; ``resume=True`` continues at the next batch and gives the
same numbers as an uninterrupted run (the state holds every point's tally and the PGD generator; AutoAttack
reseeds per batch). A resume with other settings is refused, naming them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from robustmi.attacks.evaluate import RobustnessEvaluation, resolve_attacks
from robustmi.attacks.presets import AttackConfig, with_threat
from robustmi.errors import ConfigError
from robustmi.progress import progress_bar
from robustmi.runs.checkpoint import load_checkpoint, save_checkpoint
from robustmi.runs.config import config_to_dict
from robustmi.runs.measurement import measurement_run

STATE_FILE = "last.pt"


@dataclass(frozen=True)
class ThreatChanges:
    """Threat knobs set on every selected attack (``attack.eps=0.1``); None keeps each preset's own."""

    eps: float | None = None
    norm: str | None = None
    steps: int | None = None
    step_size: float | None = None
    random_start: bool | None = None

    def given(self) -> dict[str, Any]:
        """The knobs that were set."""
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class EvaluationConfig:
    """Everything an evaluation run computes from (``robustmi evaluate``'s settings, saved as config.yaml).

    Attributes:
        model: run folder, model file or ``module:factory`` (what ``robustmi.models.resolve_model`` reads).
        dataset: dataset name; split: which split is evaluated.
        weights: state_dict loaded into a factory-built model.
        data_dir: folder searched first for dataset files.
        attacks: attack presets (``robustmi.attacks.list_attack_presets``), run in this order.
        attack: threat knobs set on every attack (eps, norm, steps, step_size, random_start).
        limit: evaluate only the first ``limit`` points; batch_size: points per batch.
        seed: seed of random starts (robustmi's PGD, torchattacks' attacks).
        cascade: each attack only on points still robust (False: on every naturally correct point).
    """

    model: str
    dataset: str
    weights: str | None = None
    split: str = "test"
    data_dir: str | None = None
    attacks: tuple[str, ...] = ("paper",)
    attack: ThreatChanges = field(default_factory=ThreatChanges)
    limit: int | None = None
    batch_size: int = 256
    seed: int = 0
    cascade: bool = True

    def __post_init__(self) -> None:
        if not self.attacks:
            raise ConfigError("attacks must name at least one attack preset, e.g. attacks=[paper]")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be a positive integer or null, got {self.limit}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be a positive integer, got {self.batch_size}")
        if self.seed < 0:
            raise ConfigError(f"seed {self.seed} must be >= 0 (it seeds random starts)")

    def attack_configs(self) -> list[AttackConfig]:
        """The attacks: presets at the dataset's threat, with ``attack``'s knobs set on each."""
        return with_threat(resolve_attacks(list(self.attacks), self.dataset), self.attack.given())


def run_evaluation(model: nn.Module, dataset, cfg: EvaluationConfig, out: str | Path, *, resume: bool = False,
                   progress: bool = True) -> dict[str, Any]:
    """Evaluate ``model`` on ``dataset`` as ``cfg`` says, into the run folder ``out`` (module docstring).

    Args:
        model: the classifier ``cfg.model`` names (logits for inputs in [0, 1]).
        dataset: the split ``cfg.dataset`` / ``cfg.split`` names (``robustmi.data.load_dataset``).
        cfg: the settings, written to ``config.yaml``.
        out: the run folder.
        resume: continue the evaluation saved in ``out`` (same settings; ``data_dir`` may differ).
        progress: show a progress bar (on a terminal only).

    Returns:
        The results.json content (without the environment block): ``evaluate_robustness``'s dict plus
        ``kind``, ``model``, ``weights``, ``split``, ``config`` and ``resumed_at_batch``.

    Raises:
        CheckpointError: ``out`` holds another run (without ``resume``), is in use, or its state is corrupt.
        ConfigError: resuming a run started with other settings; AttackError: bad attacks or data.

    Example:
        >>> cfg = EvaluationConfig(model="runs/probe", dataset="mnist", attacks=("paper", "autoattack"))
        >>> results = run_evaluation(load_model("runs/probe"), load_dataset("mnist", "test"), cfg,
        ...                          "runs/probe/eval", resume=True)  # doctest: +SKIP
    """
    evaluation = RobustnessEvaluation(model, dataset, cfg.attack_configs(), batch_size=cfg.batch_size,
                                      limit=cfg.limit, seed=cfg.seed, cascade=cfg.cascade)
    with measurement_run(out, cfg, resume=resume) as run:
        state = run.checkpoint_dir / STATE_FILE
        if resume and state.is_file():
            evaluation.load_state_dict(load_checkpoint(state)[0]["evaluation"])
            done = evaluation.batches_done  # records after the saved state are logged again
            run.drop_metrics(lambda record: record.get("batch", 0) > done)
        resumed_at = evaluation.batches_done
        bar = progress_bar(evaluation.num_batches, "evaluate", progress, initial=resumed_at, unit="batch")
        while not evaluation.finished:
            run.log_metrics(evaluation.step())
            meta = {"batches_done": evaluation.batches_done, "num_batches": evaluation.num_batches,
                    "points_done": evaluation.done}
            save_checkpoint(state, {"evaluation": evaluation.state_dict()}, meta)
            bar.update(1)
        bar.close()
        results = {"kind": "evaluate", **evaluation.results(), "model": cfg.model, "weights": cfg.weights,
                   "split": cfg.split, "config": config_to_dict(cfg), "resumed_at_batch": resumed_at}
        run.write_results(results)
    return results
