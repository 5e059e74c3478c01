"""``saliency_report``: maps of several models on the same samples, a PNG grid, raw maps and alignment scores.

The library side of ``robustmi saliency`` (paper §4.3, Fig. 4-6). For each model it picks the target
(``auto``: the DIM loss for encoder run folders, which hold ``critic.pt``; the cross-entropy for classifiers),
computes the maps of the same ``samples`` test images with one method, scores how image-aligned they are
(:mod:`robustmi.saliency.alignment`) and writes, into the run folder ``out_dir``:

- ``saliency.png``: rows = samples (the first ``grid_rows``), columns = the input then each model
  (:mod:`robustmi.saliency.plot`);
- ``saliency.npz``: ``inputs`` (N, C, H, W), ``labels`` (N,), ``indices`` (N,) into the split, and one
  (N, C, H, W) array per model, keyed by the model's name;
- ``results.json``: every setting, the sample indices, and per model its target and alignment numbers;
- ``config.yaml``: the resolved :class:`SaliencyConfig`.

Deterministic for a seed: the samples are a seeded permutation of the split, and SmoothGrad draws its noise
from a generator seeded with the same seed (the same noise for every model, so they are compared on equal
terms).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from robustmi.data import Dataset, load_dataset
from robustmi.errors import ConfigError, ModelError
from robustmi.mi import load_dim_objective
from robustmi.models import resolve_model
from robustmi.runs import RunDir, config_from_dict, config_to_dict
from robustmi.saliency.alignment import alignment_scores, foreground_fraction
from robustmi.saliency.methods import METHODS, compute_saliency
from robustmi.saliency.plot import SCALES, save_grid
from robustmi.saliency.targets import (
    TARGETS,
    SaliencyTarget,
    classifier_target,
    is_classifier,
    mi_target,
    neuron_target,
)

CRITIC_FILE = "critic.pt"
RESERVED_NAMES = ("inputs", "labels", "indices")
ALIGNMENT_METRIC = "edge_spearman"


@dataclass(frozen=True)
class SaliencyConfig:
    """Every knob of a saliency report (the same names in library, YAML, CLI and results.json).

    Attributes:
        models: the model specs, for the record (the CLI's ``--model`` values).
        weights: state_dict files loaded into the models, one per model in order (``"-"``: none), or empty
            (the CLI's ``--weights`` values; for ``module:factory`` or ``file.py:factory`` models).
        dataset: dataset name; split: its split; data_dir: where its files are (None: the usual places).
        samples: how many images to show (rows), a seeded random choice from the split.
        method: ``"grad"``, ``"smoothgrad"`` or ``"ig"``.
        target: ``"auto"``, ``"mi"``, ``"ce"``, ``"logit"`` or ``"neuron"`` (needs ``layer`` and ``channel``).
        seed: picks the samples and seeds SmoothGrad's noise.
        ig_steps: Integrated-Gradients intervals; baseline: its constant baseline image (0 = black).
        smoothgrad_samples: SmoothGrad's noisy copies; noise: its noise level (fraction of the input range).
        scale: grid colour scaling, ``"absolute"`` or ``"signed"``.
        threshold: foreground intensity threshold of the foreground-mass score.
        grid_rows: the PNG shows the first ``grid_rows`` samples (all of them go into the npz and the scores,
            so many samples can be scored while the figure stays readable).
    """

    models: list[str] = field(default_factory=list)
    weights: list[str] = field(default_factory=list)
    dataset: str = "mnist"
    split: str = "test"
    data_dir: str | None = None
    samples: int = 8
    method: str = "grad"
    target: str = "auto"
    layer: str | None = None
    channel: int | None = None
    seed: int = 0
    ig_steps: int = 50
    baseline: float = 0.0
    smoothgrad_samples: int = 50
    noise: float = 0.15
    scale: str = "absolute"
    threshold: float = 0.1
    grid_rows: int = 16

    def __post_init__(self) -> None:
        choices = {"method": METHODS, "target": TARGETS, "scale": SCALES}
        for name, valid in choices.items():
            if getattr(self, name) not in valid:
                raise ConfigError(f"unknown {name} {getattr(self, name)!r}; use one of {', '.join(valid)}")
        for name in ("samples", "ig_steps", "smoothgrad_samples", "grid_rows"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noise < 0:
            raise ConfigError(f"noise must be >= 0 (a fraction of the input range), got {self.noise}")
        if self.target == "neuron" and (self.layer is None or self.channel is None):
            raise ConfigError("target 'neuron' needs a layer and a channel; pass --layer NAME --channel K")
        if self.channel is not None and self.channel < 0:
            raise ConfigError(f"channel must be >= 0, got {self.channel}")
        if self.weights and len(self.weights) != len(self.models):
            raise ConfigError(
                f"{len(self.weights)} weights for {len(self.models)} models; give one --weights per --model "
                "in the same order, '-' for a model without"
            )


@dataclass
class _Entry:
    """One column of the report: the model, its DIM objective if it is an encoder run, where it came from."""

    name: str
    model: nn.Module
    dim: nn.Module | None
    spec: str
    weights: str | None = None


def _resolve_entry(name: str, value: Any) -> _Entry:
    """``value``: a module, a ``(module, DIMObjective)`` pair, a spec string/path for ``resolve_model``, or a
    ``(spec, weights)`` pair of strings (weights: a state_dict file, None or ``"-"`` for none)."""
    if name in RESERVED_NAMES or not name:
        reserved = ", ".join(RESERVED_NAMES)
        raise ConfigError(f"model name {name!r} is empty or reserved ({reserved}); give it another name")
    if isinstance(value, nn.Module):
        return _Entry(name, value, None, type(value).__name__)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, nn.Module) for v in value):
        return _Entry(name, value[0], value[1], type(value[0]).__name__)
    spec, weights = _spec_and_weights(value)
    if spec is not None:
        critic = Path(spec) / CRITIC_FILE
        dim = load_dim_objective(spec) if Path(spec).is_dir() and critic.is_file() else None
        return _Entry(name, resolve_model(spec, weights), dim, spec, weights)
    raise ModelError(f"model {name!r} is a {type(value).__name__}; give a module, a run folder or a spec")


def _spec_and_weights(value: Any) -> tuple[str | None, str | None]:
    """``(spec, weights)`` of a spec string/path or a ``(spec, weights)`` pair; ``(None, None)`` otherwise."""
    if isinstance(value, (str, Path)):
        return str(value), None
    pair = isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], (str, Path))
    if pair and (value[1] is None or isinstance(value[1], (str, Path))):
        return str(value[0]), None if value[1] in (None, "", "-") else str(value[1])
    return None, None


def build_target(entry_model: nn.Module, dim: nn.Module | None, labels: Tensor, cfg: SaliencyConfig,
                 name: str = "model") -> SaliencyTarget:
    """The target ``cfg.target`` of one model; ``"auto"`` = ``"mi"`` with a DIM objective, else ``"ce"``.

    Raises:
        ModelError: the target does not fit the model (e.g. ``mi`` without a critic, ``ce`` on an encoder).
    """
    kind = cfg.target
    if kind == "auto":
        if dim is None and not is_classifier(entry_model):
            raise ModelError(
                f"model {name!r} is neither a classifier nor an encoder run folder with {CRITIC_FILE}; "
                "pass --target neuron --layer NAME --channel K or an encoder run folder"
            )
        kind = "mi" if dim is not None else "ce"
    if kind == "mi":
        if dim is None:
            raise ModelError(
                f"model {name!r} has no DIM critic ({CRITIC_FILE}); give an encoder run folder from "
                "train-encoder or use --target ce|logit|neuron"
            )
        if labels.numel() < 2:
            raise ConfigError("target 'mi' needs samples >= 2: the DIM loss contrasts samples with others")
        return mi_target(entry_model, dim)
    if kind == "neuron":
        return neuron_target(entry_model, str(cfg.layer), int(cfg.channel))  # type: ignore[arg-type]
    return classifier_target(entry_model, labels, kind)


def pick_samples(n: int, samples: int, seed: int) -> Tensor:
    """``(samples,)`` distinct indices out of ``n``: the start of a permutation seeded with ``seed``."""
    if samples > n:
        raise ConfigError(f"samples={samples} exceeds the {n} images of the split; use --samples <= {n}")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:samples]


def _model_maps(entry: _Entry, x: Tensor, y: Tensor, cfg: SaliencyConfig) -> tuple[Tensor, SaliencyTarget]:
    """Maps ``(N, C, H, W)`` (on the CPU) of one model on the batch ``x``, and the target used."""
    param = next(entry.model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    target = build_target(entry.model, entry.dim, y.to(device), cfg, entry.name)
    maps = compute_saliency(
        target,
        x.to(device),
        cfg.method,
        ig_steps=cfg.ig_steps,
        samples=cfg.smoothgrad_samples,
        noise=cfg.noise,
        baseline=cfg.baseline,
        generator=torch.Generator().manual_seed(cfg.seed),  # same noise for every model
    )
    return maps.cpu(), target


def _make_config(
    dataset: str | Dataset, samples: int, method: str, settings: Mapping[str, Any]
) -> SaliencyConfig:
    name = dataset.name if isinstance(dataset, Dataset) else str(dataset)
    raw = {"dataset": name, "samples": samples, "method": method, **settings}
    return config_from_dict(SaliencyConfig, raw)


def saliency_report(
    models: Mapping[str, Any],
    dataset: str | Dataset = "mnist",
    samples: int = 8,
    method: str = "grad",
    out_dir: str | Path = "saliency",
    **settings: Any,
) -> dict:
    """Saliency maps of ``models`` on the same samples; writes the grid, the raw maps and results.json.

    Args:
        models: column name -> a module (a registry model or any classifier returning logits), an
            ``(encoder, DIMObjective)`` pair, a spec string for ``robustmi.models.resolve_model``, or a
            ``(spec, weights)`` pair whose state_dict file is loaded into the model (a run folder: an
            encoder run folder with ``critic.pt`` gets the
            DIM-loss target under ``target="auto"``).
        dataset: a dataset name (loaded with ``split``/``data_dir`` of ``settings``) or a loaded ``Dataset``.
        samples: number of images (rows), a seeded random choice.
        method: ``"grad"``, ``"smoothgrad"`` or ``"ig"``.
        out_dir: the run folder to create (an existing finished run is not overwritten).
        **settings: any other :class:`SaliencyConfig` field (``target``, ``layer``, ``channel``, ``seed``,
            ``ig_steps``, ``baseline``, ``smoothgrad_samples``, ``noise``, ``scale``, ``threshold``,
            ``split``, ``data_dir``).

    Returns:
        The results.json content.

    Raises:
        ConfigError: bad settings or sample count. ModelError: a model or target that does not fit.
        DataError: missing dataset. CheckpointError: unreadable run folder or an existing finished run.

    Example:
        >>> models = {"standard": "runs/sup-std", "robust": "runs/sup-robust"}
        >>> results = saliency_report(models, "mnist", 8, "grad", "figs/saliency")
    """
    if not models:
        raise ConfigError("no models given; pass at least one --model RUN")
    settings = dict(settings)
    specs = {k: _spec_and_weights(v) for k, v in models.items()}
    settings.setdefault("models", [spec or k for k, (spec, _) in specs.items()])
    if any(weights for _, weights in specs.values()):
        settings.setdefault("weights", [weights or "-" for _, weights in specs.values()])
    cfg = _make_config(dataset, samples, method, settings)
    data = dataset if isinstance(dataset, Dataset) else load_dataset(cfg.dataset, cfg.split, cfg.data_dir)
    entries = [_resolve_entry(name, value) for name, value in models.items()]
    indices = pick_samples(len(data), cfg.samples, cfg.seed)
    x, y = data.images[indices].float(), data.labels[indices]
    run = RunDir(out_dir)
    run.write_config(cfg)
    maps, targets = {}, {}
    for entry in entries:
        maps[entry.name], targets[entry.name] = _model_maps(entry, x, y, cfg)
    results = _results(cfg, entries, targets, maps, x, y, indices)
    _write_outputs(run.path, cfg, x, y, indices, maps, results)
    run.write_results(results)
    return results


def _results(cfg, entries, targets, maps, x, y, indices) -> dict:
    per_model = {}
    for entry in entries:
        target = targets[entry.name]
        scores = alignment_scores(maps[entry.name], x, cfg.threshold)
        per_model[entry.name] = {"spec": entry.spec, "weights": entry.weights, "target": target.name,
                                 "per_sample_target": target.per_sample, **scores}
    defined = [n for n in per_model if per_model[n][ALIGNMENT_METRIC] is not None]
    return {
        **config_to_dict(cfg),
        "alignment_metric": ALIGNMENT_METRIC,
        "foreground_fraction": foreground_fraction(x, cfg.threshold),
        "sample_indices": indices.tolist(),
        "labels": y.tolist(),
        "per_model": per_model,
        "ranking": sorted(defined, key=lambda n: per_model[n][ALIGNMENT_METRIC], reverse=True),
        "files": {"grid": "saliency.png", "maps": "saliency.npz"},
        "implementation": "robustmi.saliency (own gradient / SmoothGrad / Integrated Gradients)",
    }


def _write_outputs(path: Path, cfg, x, y, indices, maps, results) -> None:
    arrays = {name: m.numpy() for name, m in maps.items()}
    np.savez(path / "saliency.npz", inputs=x.numpy(), labels=y.numpy(), indices=indices.numpy(), **arrays)
    edge = {name: r[ALIGNMENT_METRIC] for name, r in results["per_model"].items()}
    rows = slice(0, cfg.grid_rows)
    shown = {name: m[rows] for name, m in maps.items()}
    save_grid(path / "saliency.png", x[rows], y[rows], shown, scale=cfg.scale,
              row_names=[f"#{int(i)}" for i in indices[rows]], scores=edge)

