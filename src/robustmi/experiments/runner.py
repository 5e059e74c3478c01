"""How experiments run their steps: a training run or a vulnerability measurement, each cached on disk.

A finished step is read back instead of recomputed and an interrupted training run resumes from its
checkpoint, so every experiment can be re-run to continue where it stopped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunSpec:
    """One training run of a protocol: its folder name, run kind, config fields and time-budget key."""

    name: str
    kind: str  # "encoder" | "probe" | "supervised"
    fields: dict[str, Any]
    budget_key: str
    encoder_run: str | None = None  # probes: the encoder run they sit on


def run_one(spec: RunSpec, cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Train ``spec`` into ``run_dir``, reusing a finished run and resuming an interrupted one."""
    from robustmi.training import train_encoder, train_probe, train_supervised

    results_path = run_dir / "results.json"
    if results_path.is_file():
        return json.loads(results_path.read_text(encoding="utf-8"))
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    train = {"encoder": train_encoder, "probe": train_probe, "supervised": train_supervised}[spec.kind]
    return train(cfg, run_dir, resume=resume)


def measure_vulnerability(
    run_dir: Path, dataset: str, data_dir: str | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """Algorithm 2 on the model in ``run_dir`` (``settings``: VulnerabilityConfig fields), cached in
    ``run_dir/vulnerability.json``; its critics checkpoint to ``run_dir/vulnerability/`` and resume."""
    cached = run_dir / "vulnerability.json"
    if cached.is_file():
        return json.loads(cached.read_text(encoding="utf-8"))
    from robustmi.data import load_dataset
    from robustmi.models import load_model
    from robustmi.vulnerability import representation_vulnerability

    result = representation_vulnerability(
        load_model(run_dir),
        load_dataset(dataset, "train", data_dir),
        test_dataset=load_dataset(dataset, "test", data_dir),
        checkpoint_dir=run_dir / "vulnerability",
        resume=True,  # an interrupted measurement continues from its critic checkpoints
        progress=False,
        **settings,
    )
    payload = result.to_dict()
    cached.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return payload
