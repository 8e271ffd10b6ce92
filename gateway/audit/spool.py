"""A bounded, fsynced local spool for audit events the database cannot take right now.

One JSON line per event, appended and fsynced before the writer forgets them. Replay reads from a
persisted offset (`<spool>.offset`, written atomically after each replayed batch), so a crash during
replay resends at most one batch, and the database's unique (tenant, request_id) turns that into
exactly once. When everything is replayed both files are truncated. When the spool would exceed
`max_bytes`, `append` refuses and the gateway stops taking traffic (503) rather than serve requests
it cannot record.

Unauthenticated requests (no key vouched for them: anyone who can reach the port can send as many
as they like) may take only `unauthenticated_max_bytes` of it, so they cannot fill the spool and
stop every tenant's traffic. Past that they are counted, not kept: one aggregate (how many, first
and last time, how many per status and code) in `<spool>.unauthenticated`, rewritten atomically,
which the writer records as one event after the spooled rows. Every request stays accounted for.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

log = logging.getLogger("bulkhead.audit")

UNAUTHENTICATED_SHARE = 16  # unauthenticated events may use 1/16 of the spool by default
_MAX_CODES = 32  # distinct (status, code) pairs kept in the aggregate; the rest count as "other"


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


def unauthenticated(row: dict) -> bool:
    """A request no key vouched for (system events have no tenant either, but the gateway makes those)."""
    return row.get("tenant_id") is None and row.get("method") != "EVENT"


def _replace_durably(path: Path, data: bytes) -> None:
    """Write, fsync and rename into place: a crash leaves the old file or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class Spool:
    def __init__(self, path: Path, max_bytes: int, unauthenticated_max_bytes: int | None = None) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.unauthenticated_max_bytes = (max_bytes // UNAUTHENTICATED_SHARE if unauthenticated_max_bytes is None
                                          else unauthenticated_max_bytes)
        self._offset_path = self.path.with_name(self.path.name + ".offset")
        self._overflow_path = self.path.with_name(self.path.name + ".unauthenticated")
        self._lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._offset = self._read_offset()
        self._unauthenticated_bytes = self._count_unauthenticated()
        self.overflow: dict | None = self._read_overflow()

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

    def _count_unauthenticated(self) -> int:
        """What unauthenticated rows already use of their quota (a restart during an outage)."""
        if not self.size():
            return 0
        with open(self.path, "rb") as fh:
            return sum(len(line) for line in fh if unauthenticated(orjson.loads(line)))

    def _read_overflow(self) -> dict | None:
        try:
            return orjson.loads(self._overflow_path.read_bytes())
        except FileNotFoundError:
            return None

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def unread(self) -> bool:
        return self.size() > self._offset

    def pending(self) -> bool:
        return self.unread() or self.overflow is not None

    def has_room(self, extra: int = 0) -> bool:
        return self.size() + extra < self.max_bytes

    def append(self, rows: list[dict]) -> None:
        """All of `rows` or, raising SpoolFull, none; unauthenticated rows past their quota are counted
        in the aggregate instead of kept."""
        with self._lock:
            lines, folded, unauthenticated_bytes = [], [], 0
            for row in rows:
                line = _encode(row)
                if unauthenticated(row):
                    if self._unauthenticated_bytes + unauthenticated_bytes + len(line) > self.unauthenticated_max_bytes:
                        folded.append(row)
                        continue
                    unauthenticated_bytes += len(line)
                lines.append(line)
            data = b"".join(lines)
            if self.size() + len(data) > self.max_bytes:
                raise SpoolFull(f"audit spool full ({self.size()} of {self.max_bytes} bytes)")
            if data:
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            self._unauthenticated_bytes += unauthenticated_bytes
            if folded:
                self._fold(folded)

    def _fold(self, rows: list[dict]) -> None:
        agg = self.overflow or {"count": 0, "first": None, "last": None, "by_code": {}}
        for row in rows:
            ts = row["ts"].isoformat() if isinstance(row["ts"], datetime) else str(row["ts"])
            agg["count"] += 1
            agg["first"] = min(agg["first"] or ts, ts)
            agg["last"] = max(agg["last"] or ts, ts)
            code = f"{row.get('status')} {row.get('error_code') or '-'}"
            if code not in agg["by_code"] and len(agg["by_code"]) >= _MAX_CODES:
                code = "other"
            agg["by_code"][code] = agg["by_code"].get(code, 0) + 1
        self.overflow = agg
        try:
            _replace_durably(self._overflow_path, orjson.dumps(agg))
        except OSError as exc:
            # The rows are appended already: raising would spool them twice. The count stays in
            # memory and is recorded when the database is back (lost only if the process dies too).
            log.error("audit: could not persist the unauthenticated-request count (%s)", type(exc).__name__)

    def clear_overflow(self) -> None:
        """The aggregate is on record."""
        with self._lock:
            self.overflow = None
            self._overflow_path.unlink(missing_ok=True)

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
                self._unauthenticated_bytes = 0
            _replace_durably(self._offset_path, str(offset).encode())
            self._offset = offset
