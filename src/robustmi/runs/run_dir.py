"""The run folder every command writes (layout in docs/architecture.md, "Run folders").

```
RUN/config.yaml        resolved config; the command line (argv) as a comment on top, so the file reloads
RUN/metrics.jsonl      one JSON object per logged step/epoch, appended and flushed line by line
RUN/results.json       final metrics + "environment" (versions, device, git commit, time), written atomically
RUN/checkpoints/       training state (last.pt + last.json) for --resume
```

A folder holding a finished run (``results.json``) or a resumable one (``checkpoints/last.pt``) is never
overwritten: without ``resume=True`` :class:`RunDir` refuses it. In a distributed run every process may build
the ``RunDir``, but only rank 0 writes (the writing methods are no-ops elsewhere).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from robustmi.errors import CheckpointError
from robustmi.runs._atomic import atomic_write_text
from robustmi.runs.config import config_to_dict, load_config, save_config_yaml
from robustmi.runs.environment import environment_info, is_main_process


class RunDir:
    """A run's output folder: config, metrics log, results and checkpoints.

    Args:
        path: the folder (``--out``); created with its parents if missing.
        resume: continue the run already in the folder: metrics are appended and nothing is refused.

    Raises:
        CheckpointError: ``path`` is a file, cannot be created, or already holds a finished or resumable run
            and ``resume`` is False.

    Example:
        >>> run = RunDir("runs/enc")  # doctest: +SKIP
        >>> run.write_config(cfg); run.log_metrics({"epoch": 1, "loss": 0.3})  # doctest: +SKIP
        >>> run.write_results({"natural_accuracy": 0.97, "eps": 0.3})  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.resume = resume
        self.checkpoint_dir = self.path / "checkpoints"
        self.config_path = self.path / "config.yaml"
        self.metrics_path = self.path / "metrics.jsonl"
        self.results_path = self.path / "results.json"
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"--out {str(self.path)!r} is a file, not a folder; choose another --out")
        if not resume:
            self._refuse_existing_run()
        if not is_main_process():
            return
        try:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise CheckpointError(f"cannot create run folder {str(self.path)!r} ({error}); "
                                  f"choose a writable --out") from None
        if resume:
            _drop_partial_last_line(self.metrics_path)
        else:
            self.metrics_path.unlink(missing_ok=True)  # a fresh run never mixes in a dead run's log

    def _refuse_existing_run(self) -> None:
        for name, what in (("results.json", "a finished run"), ("checkpoints/last.pt", "an unfinished run")):
            if (self.path / name).exists():
                raise CheckpointError(f"run folder {str(self.path)!r} already holds {what} ({name}); "
                                      f"pass --resume to continue it or choose another --out "
                                      f"(nothing was changed)")

    def write_config(self, cfg: Any, argv: Sequence[str] | None = None) -> None:
        """Write the resolved config to ``config.yaml``, with ``argv`` (default ``sys.argv``) as a comment.

        The file reloads with ``load_config(type(cfg), run.config_path)`` or :meth:`read_config`.
        """
        if not is_main_process():
            return
        command = list(sys.argv if argv is None else argv)
        save_config_yaml(cfg, self.config_path, header=f"argv: {json.dumps(command)}")

    def read_config(self, cls: type) -> Any:
        """The config saved by :meth:`write_config`, rebuilt as ``cls`` (``None`` if there is none)."""
        return load_config(cls, self.config_path) if self.config_path.is_file() else None

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one JSON line to ``metrics.jsonl`` and flush it.

        Tensors and NumPy values are converted to numbers/lists; NaN and inf are written as ``NaN`` and
        ``Infinity`` (Python's ``json`` reads them back).
        """
        if not is_main_process():
            return
        line = json.dumps(record, default=_json_default)
        with self.metrics_path.open("a", encoding="utf-8") as file:  # closing flushes every line
            file.write(line + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        """All records in ``metrics.jsonl`` (empty if none), ignoring a last line cut short by a crash."""
        if not self.metrics_path.is_file():
            return []
        lines = self.metrics_path.read_text(encoding="utf-8").split("\n")
        records = []
        for number, line in enumerate(lines[:-1], start=1):  # lines[-1] is "" or an unterminated line
            try:
                records.append(json.loads(line))
            except ValueError:
                raise CheckpointError(f"{str(self.metrics_path)!r} line {number} is not JSON; "
                                      f"repair or delete the line") from None
        return records

    def write_results(self, results: dict[str, Any]) -> None:
        """Write ``results`` plus an ``"environment"`` block (:func:`environment_info`) to results.json."""
        if not is_main_process():
            return
        payload = {**results, "environment": environment_info()}
        atomic_write_text(self.results_path, json.dumps(payload, indent=2, default=_json_default) + "\n")

    def read_results(self) -> dict[str, Any] | None:
        """The contents of ``results.json``, or ``None`` if the run has not finished."""
        if not self.results_path.is_file():
            return None
        try:
            return json.loads(self.results_path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise CheckpointError(f"{str(self.results_path)!r} is not valid JSON ({error}); "
                                  f"delete it and re-run") from None

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, resume={self.resume})"


def _json_default(value: Any) -> Any:
    """Turn tensors, NumPy values, paths and config dataclasses into JSON data (``json.dumps`` hook)."""
    if hasattr(value, "tolist") and callable(value.tolist):  # torch.Tensor, numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    data = config_to_dict(value)
    if data is not value:
        return data
    raise TypeError(f"cannot write a {type(value).__name__} to JSON: {value!r}")


def _drop_partial_last_line(path: Path) -> None:
    """Cut a metrics line left unterminated by a crash, so the next appended record starts on its own line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])

