"""The run folder of a measurement (``evaluate``, ``vulnerability``): opened, checked and closed in one place.

A measurement writes the same folder a training run does (``robustmi.runs.run_dir``): ``config.yaml``,
``metrics.jsonl``, ``results.json`` with the environment, and its resumable state under ``checkpoints/``.
:func:`measurement_run` does what every measurement does around its own work: it refuses a folder holding
another run (unless resuming) or in use by another process, refuses to resume a run started with other
settings (naming them), writes the resolved config (when resuming, only once the run really continues),
removes a folder it created if the start fails, and releases the folder's lock at the end.
:func:`finished_results` lets a study reuse a finished measurement instead of computing it again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from robustmi.runs.run_config import require_same_settings
from robustmi.runs.run_dir import RunDir, read_results

# where the data lives is not part of what a measurement computes
LOCATION_KEYS = ("data_dir", "num_threads")  # where the data is and how fast it runs: not what was measured


@contextmanager
def measurement_run(out: str | Path, cfg: Any, *, resume: bool = False,
                    may_change: Collection[str] = LOCATION_KEYS) -> Iterator[RunDir]:
    """Open ``out`` as the run folder of a measurement configured by ``cfg`` (see the module docstring).

    Args:
        out: the run folder.
        cfg: the measurement's resolved config dataclass (written to ``config.yaml``).
        resume: continue the measurement already in ``out``.
        may_change: config keys a resumed run may change (default: where the data lives).

    Raises:
        CheckpointError: ``out`` holds another run and ``resume`` is False, or another process writes it.
        ConfigError: resuming a run whose ``config.yaml`` differs from ``cfg`` in other keys.

    Example:
        >>> with measurement_run("runs/eval", cfg, resume=True) as run:  # doctest: +SKIP
        ...     run.log_metrics({"batch": 1}); run.write_results({"accuracy": 0.9})
    """
    run = RunDir(out, resume=resume)
    try:
        if resume:
            run.require_same_config(cfg, may_change)
        run.write_config(cfg)
        yield run
    except BaseException:
        run.discard_if_unstarted()  # a failed start leaves no half-made folder (saved state stays)
        raise
    finally:
        run.close()


def finished_results(out: str | Path, cfg: Any, may_change: Collection[str] = LOCATION_KEYS) -> dict | None:
    """The results.json of the finished measurement in ``out``, if it was computed with ``cfg``.

    Returns:
        The results, or None when ``out`` holds no finished run (then measure, with ``resume=True`` to
        continue an interrupted one).

    Raises:
        ConfigError: ``out`` holds a run with other settings (names them).
        CheckpointError: its results.json is unreadable.
    """
    results = read_results(out)
    if results is not None:
        require_same_settings(out, cfg, may_change)
    return results
