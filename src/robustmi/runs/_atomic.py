"""Atomic file writes: write a temporary file in the target's folder, fsync it, then ``os.replace`` it.

A reader never sees a half-written file: it sees either the old file or the new one, even if the process
dies mid-write. The temporary file lives in the same folder because ``os.replace`` is atomic only within
one filesystem. ``mkstemp`` creates it with mode 0600; it is given the mode any file the user writes gets
(0666 minus the umask, so 0644 under umask 022) before it replaces the target.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, then move it over ``path`` atomically.

    Args:
        path: destination file; its folder must exist.
        write: writes the content to the binary file object it is given.

    Raises:
        OSError: the folder is not writable (the temporary file is removed on any failure).
    """
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (read from /proc when possible; else set and restored, as POSIX only allows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # no /proc (not Linux) or an unexpected format: read it the racy way below
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))
