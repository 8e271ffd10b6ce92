"""Batched audit writes into the per-tenant hash chain.

Requests append to an in-memory queue; one task writes batches. Each chain's rows are linked
(seq, prev_hash, hash) under the chain head's row lock, inside the transaction that inserts them,
and the database's trigger accepts them only as the head's direct successors.

When the database is unreachable, queued rows move to the fsynced local spool (see spool.py) and
are replayed in order, ahead of anything newer, once it answers again. `strict` requests wait for
their own row to commit (`submit_durable`); if it cannot, the request is answered 503 and its row,
marked so, is kept for replay like the rest. `close()` writes or spools everything still queued.
Unauthenticated requests the spool had no room for are recorded as one summary event after it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid
from decimal import Decimal

from sqlalchemy import insert, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.audit.chain import GENESIS, chain_of, format_money, link
from gateway.audit.spool import Spool, SpoolFull
from gateway.db import JSON_CODEC
from gateway.models import AuditEvent, HallucinationCheck, utcnow
from gateway.telemetry import AUDIT_FAILURES, AUDIT_PENDING
from gateway.tenancy import scope

log = logging.getLogger("bulkhead.audit")

EVENT_COLUMNS = tuple(c.name for c in AuditEvent.__table__.columns if c.name != "id")
CHECK_COLUMNS = ("kind", "version", "backend", "score", "threshold", "verdict", "action", "claims", "latency_ms",
                 "error")


def _sqlstate(exc: Exception) -> str | None:
    """The SQLSTATE of a SQLAlchemy-wrapped or a raw asyncpg error (the Postgres insert path)."""
    orig = getattr(exc, "orig", None)
    state = (getattr(exc, "sqlstate", None) or getattr(orig, "sqlstate", None)
             or getattr(getattr(orig, "__cause__", None), "sqlstate", None))
    return state if isinstance(state, str) else None


def _refused(exc: Exception) -> bool:
    """The database rejected the data (SQLSTATE class 22 data, 23 integrity, 42 rule or syntax, RLS
    included), as opposed to being unreachable or failing; only the former is worth isolating."""
    if isinstance(exc, DataError | IntegrityError | ProgrammingError | TypeError | ValueError):
        return True  # TypeError/ValueError: a value that cannot be serialized, refused before the database
    if isinstance(exc, StatementError) and isinstance(exc.orig, TypeError | ValueError):
        return True
    state = _sqlstate(exc)
    return state is not None and state[:2] in ("22", "23", "42")


def _conflict(exc: Exception) -> bool:
    """Another writer advanced the chain between our head read and insert (it cannot, under the
    head lock, but the trigger says so if it ever does): re-read and retry at once."""
    return _sqlstate(exc) in ("40001", "40P01")


def _duplicate(exc: Exception) -> bool:
    unique = isinstance(exc, IntegrityError) or _sqlstate(exc) == "23505"
    return unique and "request_id" in str(getattr(exc, "orig", None) or exc)


def _minimal(row: dict) -> dict:
    """The record without its free-form JSON, for a row the database refused as it was: the request
    stays on record, with the refusal noted."""
    return {**row, "stages": {}, "detail": {"audit": "detail dropped: refused by the database"}, "pii": None,
            "risk": None, "route": None, "checks": None, "content": None}


def system_event(kind: str, detail: dict, *, tenant_id: str | None = None, key_id: str | None = None,
                 status: int = 200, error_code: str | None = None, policy_version: str | None = None) -> dict:
    """An audit record that is not an API request (a policy applied or rejected, say)."""
    return {
        "request_id": "evt_" + uuid.uuid4().hex,
        "ts": utcnow(),
        "tenant_id": tenant_id,
        "key_id": key_id,
        "method": "EVENT",
        "endpoint": kind,
        "requested_model": None,
        "backend": None,
        "provider_model": None,
        "status": status,
        "error_code": error_code,
        "stream": False,
        "tokens_in": 0,
        "tokens_out": 0,
        "cost_usd": Decimal(format_money(0)),
        "latency_ms": 0.0,
        "stages": {},
        "policy_version": policy_version,
        "attempts": 0,
        "kind": kind,
        "detail": detail,
        "pii": None,
        "risk": None,
        "route": None,
        "checks": None,
        "content": None,
    }


def unauthenticated_summary(overflow: dict) -> dict:
    """The one record for unauthenticated requests the spool kept no room for (spool.py): how many,
    between which times, per status and code."""
    return system_event("audit.unauthenticated_overflow",
                        {"requests": overflow["count"], "first": overflow["first"], "last": overflow["last"],
                         "by_code": overflow["by_code"],
                         "reason": "unauthenticated requests past their spool quota during a database outage"})


async def chain_head(conn: AsyncConnection, chain: str) -> tuple[int, str]:
    """The chain's head, locked for the rest of the transaction (created at 0 if new)."""
    if conn.dialect.name == "postgresql":
        row = (await conn.execute(text("SELECT seq, hash FROM bulkhead_chain_head(:c)"), {"c": chain})).one()
        return int(row.seq), row.hash
    # SQLite: this write takes the database's write lock, which serializes writers as the row lock does.
    await conn.execute(text("INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (:c, 0, :g) "
                            "ON CONFLICT (chain) DO NOTHING"), {"c": chain, "g": GENESIS})
    row = (await conn.execute(text("SELECT seq, hash FROM audit_chain_heads WHERE chain = :c"), {"c": chain})).one()
    return int(row.seq), row.hash


def _pg_array_types() -> list[str]:
    dialect = postgresql.dialect()
    return [AuditEvent.__table__.c[name].type.compile(dialect=dialect) + "[]" for name in EVENT_COLUMNS]


_JSON_COLUMNS = {c.name for c in AuditEvent.__table__.columns if c.type.__class__.__name__ == "JSON"}
_UNNEST_SQL = None


async def _insert_unnest(conn: AsyncConnection, rows: list[dict]) -> None:
    """One INSERT ... SELECT FROM unnest(arrays) per chain and batch, prepared once per connection:
    an executemany would run one statement (and one chain-trigger check) per row, and a multi-row
    VALUES list is recompiled for every batch size."""
    global _UNNEST_SQL
    if _UNNEST_SQL is None:
        args = ", ".join(f"${i}::{t}" for i, t in enumerate(_pg_array_types(), 1))
        _UNNEST_SQL = f"INSERT INTO audit_events ({', '.join(EVENT_COLUMNS)}) SELECT * FROM unnest({args})"
    columns = []
    for name in EVENT_COLUMNS:
        values = [r.get(name) for r in rows]
        if name in _JSON_COLUMNS:
            values = [None if v is None else _json_text(v) for v in values]
        columns.append(values)
    raw = (await conn.get_raw_connection()).driver_connection
    await raw.execute(_UNNEST_SQL, *columns)


_json_text = JSON_CODEC["json_serializer"]  # the engine's own: stored text is the chain's canonical JSON


def check_rows(row: dict) -> list[dict]:
    if not row.get("checks") or row["tenant_id"] is None:
        return []
    base = {"tenant_id": row["tenant_id"], "request_id": row["request_id"], "ts": row["ts"]}
    return [{**base, **{k: c.get(k) for k in CHECK_COLUMNS}} for c in row["checks"]]


async def append_events(conn: AsyncConnection, rows: list[dict]) -> dict[str, tuple[int, str]]:
    """Link and insert rows (with their hallucination-check rows) inside the caller's transaction;
    returns each chain's new head. Sets the tenant scope per chain as it goes."""
    by_chain: dict[str, list[dict]] = {}
    for row in rows:
        row["chain"] = chain_of(row["tenant_id"])
        by_chain.setdefault(row["chain"], []).append(row)
    heads = {}
    for chain, chained in by_chain.items():
        await scope(conn, chain)  # row-level security checks every row's tenant
        seq, head = await chain_head(conn, chain)
        heads[chain] = link(chained, seq, head)
        if conn.dialect.name == "postgresql":
            await _insert_unnest(conn, chained)
        else:
            await conn.execute(insert(AuditEvent.__table__), [{k: r.get(k) for k in EVENT_COLUMNS} for r in chained])
        checks = [c for r in chained for c in check_rows(r)]
        if checks:
            await conn.execute(insert(HallucinationCheck.__table__), checks)
    return heads


class AuditWriter:
    def __init__(self, engine: AsyncEngine, *, flush_interval: float = 0.05, batch_max: int = 500,
                 spool: Spool | None = None) -> None:
        self._engine = engine
        self._interval = flush_interval
        self._batch_max = batch_max
        self._spool = spool
        self._queue: collections.deque[tuple[dict, asyncio.Future | None]] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self._spool_full = False
        self.healthy = True
        self.written = 0
        self.heads: dict[str, tuple[int, str]] = {}  # last head this process wrote, per chain

    # -- submitting -------------------------------------------------------------------------------

    def submit(self, row: dict) -> None:
        self._queue.append((row, None))
        if len(self._queue) >= self._batch_max:
            self._wake.set()

    async def submit_durable(self, row: dict, timeout: float) -> bool:
        """Queue the row and wait until it is committed. False when it could not be within
        `timeout`: the row is then recorded as answered 503 (`audit_unavailable`) and kept."""
        fut = asyncio.get_running_loop().create_future()
        entry = (row, fut)
        self._queue.append(entry)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            if fut.done():
                return fut.result()
            _mark_unavailable(row)
            fut.set_result(False)
            return False

    @property
    def accepting(self) -> bool:
        """False while nothing more can be recorded (database down and spool full): serve no traffic."""
        return not self._spool_full

    @property
    def pending(self) -> int:
        return len(self._queue) + (1 if self._spool is not None and self._spool.pending() else 0)

    # -- the writing task -------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def _run(self) -> None:
        backoff = self._interval
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
            except TimeoutError:
                pass
            self._wake.clear()
            ok = await self._drain()
            if self._closing and (not self._queue or not ok):
                return
            if ok:
                backoff = self._interval
            else:
                backoff = min(backoff * 2, 2.0)
                await asyncio.sleep(backoff)

    async def _drain(self) -> bool:
        if self._spool is not None and self._spool.pending() and not await self._replay():
            self._spill()
            return False
        conflicts = 0
        while self._queue:
            entries = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
            rows = [row for row, _ in entries]
            try:
                await self._insert(rows)
            except Exception as exc:
                if _conflict(exc) and conflicts < 5:
                    conflicts += 1
                    self._queue.extendleft(reversed(entries))
                    continue
                if not _refused(exc):  # connection or server failure
                    self._queue.extendleft(reversed(entries))
                    self._failed(exc)
                    self._spill()
                    return False
                # The database refused these rows, not the connection: retrying the batch would
                # block every later record behind it. Write them one by one instead.
                log.warning("audit batch refused (%s); writing its %d rows one by one", type(exc).__name__, len(rows))
                if not await self._insert_singly(rows):
                    self._queue.extendleft(reversed(entries))
                    self._spill()
                    return False
            for _, fut in entries:
                if fut is not None and not fut.done():
                    fut.set_result(True)
            self.written += len(rows)
            self.healthy = True
            AUDIT_PENDING.observe(len(rows))
        return True

    async def _replay(self) -> bool:
        """Spooled rows go first, in their order, so the chain keeps the order requests finished in."""
        while self._spool.unread():
            rows, end = self._spool.read(self._batch_max)
            if not rows:
                break
            try:
                await self._insert(rows)
            except Exception as exc:
                if not _refused(exc) and not _conflict(exc):
                    self._failed(exc)
                    return False
                if not await self._insert_singly(rows):
                    return False
            self._spool.advance(end)
            self.written += len(rows)
            log.info("audit: replayed %d spooled rows", len(rows))
        if self._spool.overflow is not None:
            if not await self._insert_singly([unauthenticated_summary(self._spool.overflow)]):
                return False
            self._spool.clear_overflow()
        self._spool_full = False
        self.healthy = True
        return True

    def _failed(self, exc: Exception) -> None:
        self.healthy = False
        AUDIT_FAILURES.inc()
        log.warning("audit write failed (%s); %d rows pending", type(exc).__name__, len(self._queue))

    def _spill(self) -> None:
        """Move what is queued to the fsynced spool, oldest first. Strict requests still waiting
        are answered 503 now, and recorded so."""
        if self._spool is None or not self._queue:
            return
        entries = list(self._queue)
        for row, fut in entries:
            if fut is not None and not fut.done():
                _mark_unavailable(row)
                fut.set_result(False)
        try:
            self._spool.append([row for row, _ in entries])
        except (SpoolFull, OSError) as exc:
            self._spool_full = True
            log.error("audit spool refused %d rows (%s): refusing traffic until the database is back",
                      len(entries), exc)
            return
        self._queue.clear()

    async def _insert(self, rows: list[dict]) -> None:
        async with self._engine.begin() as conn:
            heads = await append_events(conn, rows)
        self.heads.update(heads)

    async def _insert_singly(self, rows: list[dict]) -> bool:
        """False if the database stopped answering part-way (the caller keeps the rows)."""
        for row in rows:
            for attempt in (row, _minimal(row)):
                try:
                    await self._insert([attempt])
                    break
                except Exception as exc:
                    if _duplicate(exc):
                        break  # already written (a replay): exactly once holds
                    if not _refused(exc):
                        self._failed(exc)
                        return False
                    log.error("audit row %s refused (%s)", row["request_id"], type(exc).__name__)
            else:
                AUDIT_FAILURES.inc()
        return True

    async def flush(self) -> bool:
        return await self._drain()

    async def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued; after `timeout` of failure, spool it (nothing is dropped
        while the spool has room)."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=timeout)
            except TimeoutError:
                self._task.cancel()
        deadline = asyncio.get_running_loop().time() + timeout
        while self._queue and asyncio.get_running_loop().time() < deadline:
            if not await self._drain():
                await asyncio.sleep(0.5)
        self._spill()
        if self._queue:
            log.error("audit: %d rows could not be written or spooled before shutdown", len(self._queue))


def _mark_unavailable(row: dict) -> None:
    row["status"] = 503
    row["error_code"] = "audit_unavailable"
