"""A bounded, fsynced local spool for audit events the database cannot take right now.

One JSON line per event, appended and fsynced before the writer forgets them. Replay reads from a
persisted offset (`<spool>.offset`, written atomically after each replayed batch), so a crash during
replay resends at most one batch, and the database's unique (tenant, request_id) turns that into
exactly once. When everything is replayed both files are truncated. When the spool would exceed
`max_bytes`, `append` refuses and the gateway stops taking traffic (503) rather than serve requests
it cannot record.
"""

from __future__ import annotations

import os
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson


class SpoolFull(Exception):
    pass


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


def _encode(row: dict) -> bytes:
    return orjson.dumps(row, default=_default) + b"\n"


def _decode(line: bytes) -> dict:
    row = orjson.loads(line)
    row["ts"] = datetime.fromisoformat(row["ts"])
    row["cost_usd"] = Decimal(row["cost_usd"]) if isinstance(row.get("cost_usd"), str) else row.get("cost_usd")
    return row


class Spool:
    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._offset_path = self.path.with_name(self.path.name + ".offset")
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._offset = self._read_offset()

    def _drop_torn_tail(self) -> None:
        """A crash mid-append leaves a partial last line that was never acknowledged; cut it so the
        next append does not glue onto it."""
        size = self.size()
        if not size:
            return
        with open(self.path, "rb") as fh:
            fh.seek(max(0, size - 1))
            if fh.read(1) == b"\n":
                return
            data = fh.seek(0) or fh.read()
        os.truncate(self.path, data.rfind(b"\n") + 1)

    def _read_offset(self) -> int:
        try:
            return int(self._offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def pending(self) -> bool:
        return self.size() > self._offset

    def has_room(self, extra: int = 0) -> bool:
        return self.size() + extra < self.max_bytes

    def append(self, rows: list[dict]) -> None:
        data = b"".join(_encode(r) for r in rows)
        with self._lock:
            if self.size() + len(data) > self.max_bytes:
                raise SpoolFull(f"audit spool full ({self.size()} of {self.max_bytes} bytes)")
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)

    def read(self, limit: int) -> tuple[list[dict], int]:
        """Up to `limit` events from the replay offset, and the offset after them."""
        rows: list[dict] = []
        with self._lock, open(self.path, "rb") as fh:
            fh.seek(self._offset)
            end = self._offset
            for line in fh:
                if not line.endswith(b"\n"):
                    break  # a torn last line (crash mid-append) was never acknowledged
                end += len(line)
                rows.append(_decode(line))
                if len(rows) >= limit:
                    break
        return rows, end

    def advance(self, offset: int) -> None:
        with self._lock:
            if offset >= self.size():
                # Everything replayed: start both files afresh.
                os.truncate(self.path, 0)
                offset = 0
            tmp = self._offset_path.with_suffix(".tmp")
            tmp.write_text(str(offset))
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self._offset_path)
            self._offset = offset
