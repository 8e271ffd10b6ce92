"""Key files the gateway creates once and keeps: the key-HMAC secret, the audit signing key.

Several workers start at once (`bulkhead serve --workers N`), and on a fresh data directory each
would generate its own value; with a plain exclusive create the losers crashed (one granian worker
exits and takes the server down) or could read the winner's file half-written.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from pathlib import Path


def write_once(path: Path, value: bytes) -> bytes:
    """Put `value` at `path` (owner-only) unless a file is there, and return what `path` holds:
    `value`, or the value another process wrote first. The value is written whole to a temporary
    file and hard-linked into place, so no reader ever sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(value)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
            return value
        except FileExistsError:
            return _read_whole(path)
        except OSError:  # a filesystem without hard links: an exclusive create, readers wait for content
            return _create_exclusive(path, value)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _create_exclusive(path: Path, value: bytes) -> bytes:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_whole(path)
    with os.fdopen(fd, "wb") as fh:
        fh.write(value)
    return value


def _read_whole(path: Path, wait_s: float = 5.0) -> bytes:
    # Without hard links the winner creates the file empty and then writes it: wait for its content.
    deadline = time.monotonic() + wait_s
    while True:
        data = path.read_bytes()
        if data or time.monotonic() > deadline:
            return data
        time.sleep(0.01)
