"""How experiments run their steps: a training run or a vulnerability measurement, each cached on disk.

A finished step is read back instead of recomputed and an interrupted training run resumes from its
checkpoint, so every experiment can be re-run to continue where it stopped. Only a step computed with the
requested settings is reused or resumed: a folder holding another budget's run (or another seed, eps, ...) is
refused with a ConfigError naming the differences, never relabelled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustmi.errors import ConfigError
from robustmi.runs.run_config import config_differences, field_defaults, read_run_config
from robustmi.runs.run_dir import read_results

# where the data is and how fast it runs: not part of what a run computed
_IGNORED_KEYS = frozenset({"data_dir", "num_threads", "tensorboard"})


@dataclass(frozen=True)
class RunSpec:
    """One training run of a protocol: its folder name, run kind, config fields and time-budget key."""

    name: str
    kind: str  # "encoder" | "probe" | "supervised"
    fields: dict[str, Any]
    budget_key: str
    encoder_run: str | None = None  # probes: the encoder run they sit on


def _override_key(override: str) -> str:
    return override.partition("=")[0].split(".")[0].strip()


def _kind_fields(kind: str) -> set[str]:
    from robustmi.training.presets import RUN_KINDS

    return {f.name for f in dataclasses.fields(RUN_KINDS[kind])}


def check_overrides(overrides: Sequence[str], kinds: Iterable[str]) -> None:
    """Refuse a ``key=value`` that no run of the experiment (of run ``kinds``) has, before anything trains."""
    known = set().union(*(_kind_fields(kind) for kind in kinds))
    for override in overrides:
        if "=" not in override or not _override_key(override):
            raise ConfigError(f"malformed override {override!r}; write key=value, e.g. num_threads=1")
        if _override_key(override) not in known:
            raise ConfigError(f"override {override!r}: no run of this experiment has "
                              f"{_override_key(override)!r}; choose from: {', '.join(sorted(known))}")


def run_config(kind: str, budget: str, *, dataset: str, fields: Mapping[str, Any],
               overrides: Sequence[str] = ()) -> Any:
    """One run's config in an experiment: the budget's preset, the protocol's ``fields``, then the user's
    ``key=value`` overrides that this run kind has (others belong to other runs of the experiment)."""
    from robustmi.training import build_config

    mine = [o for o in overrides if _override_key(o) in _kind_fields(kind)]
    return build_config(kind, budget, dataset=dataset,
                        fields={k: v for k, v in fields.items() if v is not None}, overrides=mine)


def print_line(message: str) -> None:
    """A picklable ``log`` for worker processes: one flushed line on stdout."""
    print(message, flush=True)


def _exit_with_parent(parent: int) -> None:
    """Stop this worker when the process that started it is gone (killed, not just interrupted: a terminal's
    Ctrl-C reaches every process of the group anyway), so no orphan keeps writing its run folder."""
    import os
    import time

    while os.getppid() == parent:
        time.sleep(2)
    os._exit(1)


def _call_with_threads(threads: int, parent: int, function: Callable[..., Any], *args: Any) -> Any:
    import threading

    import torch

    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    torch.set_num_threads(threads)
    return function(*args)


def run_in_processes(calls: Sequence[tuple[Callable[..., Any], tuple[Any, ...]]], jobs: int) -> list[Any]:
    """``function(*args)`` of each call, ``jobs`` at a time in spawned processes with ``cores // jobs`` torch
    threads each (independent runs on 1 thread each use 2 cores better than 2 threads each: README); results
    in call order. ``jobs`` 1 runs them here, in order, with torch's current threads."""
    if jobs <= 1 or len(calls) <= 1:
        return [function(*args) for function, args in calls]
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_call_with_threads, threads, os.getpid(), function, *args)
                   for function, args in calls]
        return [future.result() for future in futures]


def run_one(spec: RunSpec, cfg: Any, run_dir: Path) -> dict[str, Any]:
    """Train ``spec`` into ``run_dir``, reusing a finished run and resuming an interrupted one."""
    from robustmi.runs import config_to_dict
    from robustmi.training import train_encoder, train_probe, train_supervised

    wanted = config_to_dict(cfg)
    results = read_results(run_dir)
    if results is not None:
        _require_same(run_dir, results.get("config") if isinstance(results, dict) else None, wanted,
                      field_defaults(cfg))
        return results
    resume = (run_dir / "checkpoints" / "last.pt").is_file()
    if resume:
        _require_same(run_dir, read_run_config(run_dir) or None, wanted, field_defaults(cfg))
    train = {"encoder": train_encoder, "probe": train_probe, "supervised": train_supervised}[spec.kind]
    return train(cfg, run_dir, resume=resume)


def measure_vulnerability(
    run_dir: Path, dataset: str, data_dir: str | None, settings: dict[str, Any]
) -> dict[str, Any]:
    """Algorithm 2 on the model in ``run_dir`` (``settings``: VulnerabilityConfig fields) as a vulnerability
    run in ``run_dir/vulnerability``: a finished one with these settings is read back, an interrupted one
    resumes from its critic checkpoints, one with other settings is refused."""
    from robustmi.runs.config import config_from_dict
    from robustmi.runs.measurement import finished_results
    from robustmi.vulnerability.vulnerability_run import VulnerabilityRunConfig

    cfg = config_from_dict(VulnerabilityRunConfig,
                           {**settings, "model": str(run_dir), "dataset": dataset, "data_dir": data_dir})
    out = run_dir / "vulnerability"
    done = finished_results(out, cfg)
    if done is not None:
        return done
    from robustmi.data import load_dataset
    from robustmi.models import load_model
    from robustmi.vulnerability.vulnerability_run import run_vulnerability

    return run_vulnerability(load_model(run_dir), load_dataset(dataset, "train", data_dir),
                             load_dataset(dataset, "test", data_dir), cfg, out, resume=True, progress=False)


def _require_same(where: Path, saved: Any, wanted: dict[str, Any], defaults: dict[str, Any]) -> None:
    """Refuse to reuse ``where`` unless it was computed with ``wanted`` (ConfigError naming differences)."""
    if not isinstance(saved, dict):
        raise ConfigError(f"{where} holds a result whose settings are not recorded, so it cannot be reused; "
                          f"delete it to recompute, or choose another --out")
    diff = config_differences(saved, wanted, _IGNORED_KEYS, defaults=defaults)
    if diff:
        shown = "; ".join(diff[:4]) + (f"; and {len(diff) - 4} more" if len(diff) > 4 else "")
        raise ConfigError(f"{where} holds a run with other settings ({shown}); choose another --out, "
                          f"or delete it to recompute")
