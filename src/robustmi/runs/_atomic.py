"""Atomic file writes: write a temporary file in the target's folder, fsync it, then ``os.replace`` it.

A reader never sees a half-written file: it sees either the old file or the new one, even if the process
dies mid-write. The temporary file lives in the same folder because ``os.replace`` is atomic only within
one filesystem.
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
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write(path, lambda file: file.write(text.encode("utf-8")))
