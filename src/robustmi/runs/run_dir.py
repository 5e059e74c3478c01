"""The run folder every command writes (layout in docs/architecture.md, "Run folders").

```
RUN/config.yaml        resolved config; the command line (argv) as a comment on top, so the file reloads
RUN/metrics.jsonl      one JSON object per logged step/epoch, appended and flushed line by line
RUN/results.json       final metrics + "environment" (versions, device, git commit, time), written atomically
RUN/checkpoints/       training state (last.pt + last.json) for --resume
RUN/.lock              the pid of the process writing the folder (an flock held while it runs)
```

A folder holding a finished run (``results.json``) or a resumable one (any ``checkpoints/*.pt``) is never
overwritten: without ``resume=True`` :class:`RunDir` refuses it. One process writes a folder at a time: the
writer holds an exclusive ``flock`` on ``RUN/.lock`` (released by the kernel when it exits, however it dies,
so a dead process never leaves a stale lock); a second writer is refused, naming the holder's pid. When
resuming, ``config.yaml`` is written only once the run has really started (:meth:`RunDir.flush_config`), so a
refused resume leaves it byte-identical. A folder this ``RunDir`` created is removed again by
:meth:`RunDir.discard_if_unstarted` when the start fails. In a distributed run every process may build
the ``RunDir``, but only rank 0 writes (the writing methods are no-ops elsewhere).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

from robustmi.errors import CheckpointError
from robustmi.runs._atomic import atomic_write_text, current_umask
from robustmi.runs.config import config_to_dict, load_config, save_config_yaml
from robustmi.runs.environment import environment_info, is_main_process
from robustmi.runs.run_config import require_same_settings

LOCK_FILE = ".lock"


class RunDir:
    """A run's output folder: config, metrics log, results and checkpoints.

    Args:
        path: the folder (``--out``); created with its parents if missing.
        resume: continue the run already in the folder: metrics are appended and nothing is refused.

    Raises:
        CheckpointError: ``path`` is a file, cannot be created, is being written by another process, or
            already holds a finished or resumable run and ``resume`` is False.

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
        self.created = False
        self._locked = False
        self._pending_config: str | None = None
        if self.path.exists() and not self.path.is_dir():
            raise CheckpointError(f"--out {str(self.path)!r} is a file, not a folder; choose another --out")
        if not resume:
            self._refuse_existing_run()
        if not is_main_process():
            return
        self.created = not self.path.exists()
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._locked = _lock(self.path)  # refuses a folder another process is writing
            try:
                if not resume:
                    self._refuse_existing_run()  # again, under the lock: a writer may have just finished
                self.checkpoint_dir.mkdir(exist_ok=True)
            except BaseException:
                self.discard_if_unstarted()
                raise
        except OSError as error:
            self.discard_if_unstarted()
            raise CheckpointError(f"cannot create run folder {str(self.path)!r} ({error}); "
                                  f"choose a writable --out") from None
        if resume:
            _drop_partial_last_line(self.metrics_path)
        else:
            self.metrics_path.unlink(missing_ok=True)  # a fresh run never mixes in a dead run's log

    def _refuse_existing_run(self) -> None:
        saved = sorted(self.checkpoint_dir.glob("*.pt"), key=lambda p: (p.name != "last.pt", p.name)) \
            if self.checkpoint_dir.is_dir() else []
        if self.results_path.exists():
            name, what = "results.json", "a finished run"
        elif saved:  # any saved state: training's last.pt, a measurement's critics
            name, what = f"checkpoints/{saved[0].name}", "an unfinished run"
        else:
            return
        raise CheckpointError(f"run folder {str(self.path)!r} already holds {what} ({name}); pass --resume "
                              f"to continue it or choose another --out (nothing was changed)")

    def close(self) -> None:
        """Release the folder's lock (also released when the process exits)."""
        if self._locked:
            _unlock(self.path)
            self._locked = False

    def discard_if_unstarted(self) -> None:
        """After a failed start: remove the folder if this ``RunDir`` created it and nothing resumable or
        finished is in it (an empty ``checkpoints/``, no results), so a failed start leaves no half-made
        folder."""
        self.close()
        if not self.created or not self.path.is_dir():
            return
        saved = self.checkpoint_dir.is_dir() and any(self.checkpoint_dir.iterdir())
        if saved or self.results_path.exists():  # any checkpoint (training's, or vulnerability's critics)
            return
        shutil.rmtree(self.path, ignore_errors=True)
        self.created = False

    def write_config(self, cfg: Any, argv: Sequence[str] | None = None) -> None:
        """Write the resolved config to ``config.yaml``, with ``argv`` (default ``sys.argv``) as a comment.

        The file reloads with ``load_config(type(cfg), run.config_path)`` or :meth:`read_config`.
        """
        if not is_main_process():
            return
        command = list(sys.argv if argv is None else argv)
        if self.resume:  # written once the resume is known to work (flush_config): a refusal changes nothing
            self._pending_config = (cfg, command)
            return
        save_config_yaml(cfg, self.config_path, header=f"argv: {json.dumps(command)}")

    def flush_config(self) -> None:
        """Write a config :meth:`write_config` held back while resuming (called once the run has started)."""
        if self._pending_config is not None and is_main_process():
            cfg, command = self._pending_config
            save_config_yaml(cfg, self.config_path, header=f"argv: {json.dumps(command)}")
        self._pending_config = None

    def read_config(self, cls: type) -> Any:
        """The config saved by :meth:`write_config`, rebuilt as ``cls`` (``None`` if there is none)."""
        return load_config(cls, self.config_path) if self.config_path.is_file() else None

    def require_same_config(self, cfg: Any, may_change: Collection[str] = ()) -> None:
        """Refuse to continue a run whose config.yaml holds other settings than ``cfg`` (ConfigError naming
        them); keys in ``may_change`` may differ (``robustmi.runs.run_config.require_same_settings``)."""
        require_same_settings(self.path, cfg, may_change)

    def log_metrics(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one JSON line to ``metrics.jsonl`` and flush it.

        Tensors and NumPy values are converted to numbers/lists; NaN and inf are written as ``NaN`` and
        ``Infinity`` (Python's ``json`` reads them back).
        """
        if not is_main_process():
            return
        self.flush_config()
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

    def drop_metrics(self, drop: Callable[[dict[str, Any]], bool]) -> int:
        """Rewrite ``metrics.jsonl`` without the records for which ``drop(record)`` is true (atomic).

        A resumed run drops the records logged after its checkpoint, which it is about to log again.

        Returns:
            How many records were dropped.
        """
        if not is_main_process() or not self.metrics_path.is_file():
            return 0
        records = self.read_metrics()
        kept = [r for r in records if not drop(r)]
        if len(kept) != len(records):
            text = "".join(json.dumps(r, default=_json_default) + "\n" for r in kept)
            atomic_write_text(self.metrics_path, text)
        return len(records) - len(kept)

    def write_results(self, results: dict[str, Any]) -> None:
        """Write ``results`` plus an ``"environment"`` block (:func:`environment_info`) to results.json."""
        if not is_main_process():
            return
        self.flush_config()
        payload = {**results, "environment": environment_info()}
        atomic_write_text(self.results_path, json.dumps(payload, indent=2, default=_json_default) + "\n")

    def read_results(self) -> dict[str, Any] | None:
        """The contents of ``results.json``, or ``None`` if the run has not finished."""
        return read_results(self.path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r}, resume={self.resume})"


def read_results(folder: str | Path) -> dict[str, Any] | None:
    """The contents of ``folder/results.json``, or ``None`` if the run there has not finished.

    Raises:
        CheckpointError: the file is not valid JSON (names it and the fix).
    """
    path = Path(folder) / "results.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise CheckpointError(f"{str(path)!r} is not valid JSON ({error}); delete it and re-run") from None


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


# folders this process holds: resolved path -> [lock file descriptor, number of RunDirs using it]
_HELD: dict[str, list[int]] = {}


def _lock(path: Path) -> bool:
    """Take the exclusive lock of run folder ``path`` for this process (re-entrant within the process).

    Raises:
        CheckpointError: another process holds it (names its pid).
    """
    key = str(path.resolve())
    if key in _HELD:
        _HELD[key][1] += 1
        return True
    lock_path = path / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~current_umask())
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.read(fd, 64).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise CheckpointError(f"run folder {str(path)!r} is in use by another robustmi process (pid "
                              f"{holder}); wait for it to finish or choose another --out") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))  # a dead holder's pid is simply overwritten
    _HELD[key] = [fd, 1]
    return True


def _unlock(path: Path) -> None:
    key = str(path.resolve())
    held = _HELD.get(key)
    if held is None:
        return
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.close(held[0])  # closing the descriptor releases the flock


def _drop_partial_last_line(path: Path) -> None:
    """Cut a metrics line left unterminated by a crash, so the next appended record starts on its own line."""
    if not path.is_file():
        return
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])

