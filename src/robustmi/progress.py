"""Progress display for every long loop in robustmi: one tqdm-based system, quiet off a terminal.

- :func:`progress_bar`: a tqdm bar on stderr when stderr is an interactive terminal (and ``enabled``);
  otherwise a disabled tqdm that takes the same calls and prints nothing, so redirected logs hold no ``\\r``
  bars. Descriptions count from 1 (``epoch 1/10``); give ``total`` for the whole run and ``initial`` for what
  is already done, and tqdm's remaining-time estimate is the run's, not the current epoch's.
- :class:`StageLog`: the ``log`` callable of multi-run studies (``demo``, ``reproduce``): each message opens
  the next of ``total`` stages and is printed (into a redirected log too) with ``[k/N, elapsed, ~ETA left]``;
  on a terminal an overall bar sits above the bars of the run in progress.

Example:
    >>> bar = progress_bar(total=epochs * batches, desc=f"epoch {epoch + 1}/{epochs}", initial=steps_done)
    >>> for batch in batches_left:
    ...     bar.update(1)
    >>> bar.close()
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO

from tqdm import tqdm


def interactive(stream: IO[str] | None = None) -> bool:
    """True when ``stream`` (default ``sys.stderr``) is a terminal a person watches."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def progress_bar(total: int | None, desc: str, enabled: bool = True, *, initial: int = 0, unit: str = "it",
                 leave: bool = False) -> tqdm:
    """A tqdm bar on stderr, disabled (silent, same methods) unless ``enabled`` and stderr is a terminal.

    Args:
        total: iterations of the whole task (None: unknown, no ETA).
        desc: label, 1-based counts (``"epoch 3/10"``).
        enabled: the caller's switch (``progress=False`` settings, non-zero DDP ranks).
        initial: iterations already done (resumed runs); the rate and ETA count only this session's.
        unit: what one update counts (``"step"``, ``"batch"``, ``"run"``).
        leave: keep the finished bar on screen.
    """
    return tqdm(total=total, desc=desc, initial=initial, unit=unit, leave=leave, file=sys.stderr,
                dynamic_ncols=True, disable=not (enabled and interactive()))


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StageLog:
    """A ``log(message)`` callable that counts stages and estimates the time left of the whole study.

    Each call opens the next stage; calls after the last stage (a closing "done" line) print unnumbered and
    close the overall bar. The ETA assumes the remaining stages take as long on average as the finished ones.

    Args:
        total: number of stages (runs) the study will open.
        log: where messages go (default: stdout, written between the bars without breaking them).
        desc: label of the overall bar.
        clock: seconds since some fixed point (tests pass a fake one).
    """

    def __init__(self, total: int, log: Callable[[str], None] | None = None, desc: str = "overall",
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.log, self.clock = total, log, clock
        self.opened = 0
        self.started = clock()
        self.bar = progress_bar(total, desc, unit="run")

    def __call__(self, message: str) -> None:
        elapsed = self.clock() - self.started
        finished = self.opened  # every stage opened before this message is done
        if finished:
            self.bar.update(1)  # (a no-op once closed)
        if finished < self.total:
            eta = f", ~{_clock(elapsed / finished * (self.total - finished))} left" if finished else ""
            self.opened += 1
            message = f"[{self.opened}/{self.total}, {_clock(elapsed)} elapsed{eta}] {message}"
        else:
            self.bar.close()
        if self.log is None or self.log is print:
            tqdm.write(message, file=sys.stdout)
        else:
            self.log(message)
