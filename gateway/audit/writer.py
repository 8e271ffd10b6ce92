"""Batched, off-path audit writes.

Requests only append to an in-memory queue; one task writes batches in a single INSERT. A failed
write keeps its rows at the head of the queue and is retried with backoff, so a database hiccup
delays records but does not lose them; `close()` drains everything before the process exits.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import uuid

from sqlalchemy import insert
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.context import RequestContext
from gateway.models import AuditEvent, utcnow
from gateway.telemetry import AUDIT_FAILURES, AUDIT_PENDING
from gateway.tenancy import scope

log = logging.getLogger("bulkhead.audit")


def event_from(ctx: RequestContext) -> dict:
    p = ctx.principal
    return {
        "request_id": ctx.request_id,
        "ts": ctx.ts,
        "tenant_id": p.tenant_id if p else None,
        "key_id": p.key_id if p else None,
        "method": ctx.method,
        "endpoint": ctx.endpoint[:200],
        "requested_model": ctx.requested_model[:200] if ctx.requested_model else None,
        "backend": ctx.backend,
        "provider_model": ctx.provider_model,
        "status": ctx.status,
        "error_code": ctx.error_code,
        "stream": ctx.stream,
        "tokens_in": ctx.usage.prompt_tokens,
        "tokens_out": ctx.usage.completion_tokens,
        "cost_usd": round(ctx.cost_usd, 10),
        "latency_ms": round(ctx.elapsed_ms(), 3),
        "stages": ctx.stages,
        "policy_version": ctx.policy_version,
        "attempts": ctx.attempts,
        "kind": "request",
        "detail": ctx.detail or None,
        "pii": ctx.pii,
        "risk": ctx.risk,
        "route": _route(ctx.route),
    }


def _route(decision) -> dict | None:
    if decision is None:
        return None
    return {
        "chosen": decision.backend.name,
        "fallbacks": [b.name for b in decision.fallbacks],
        "reason": decision.reason,
        "difficulty": decision.difficulty,
        "rejected": {v.backend: v.reason for v in decision.verdicts if not v.accepted and v.code != "not_requested"},
    }


def _refused(exc: Exception) -> bool:
    """The database rejected the data (SQLSTATE class 22 data, 23 integrity, 42 rule or syntax, RLS
    included), as opposed to being unreachable or failing; only the former is worth isolating."""
    if isinstance(exc, DataError | IntegrityError | ProgrammingError):
        return True
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "__cause__", None), "sqlstate", None)
    return isinstance(state, str) and state[:2] in ("22", "23", "42")


def _minimal(row: dict) -> dict:
    """The record without its free-form JSON, for a row the database refused as it was: the request
    stays on record, with the refusal noted."""
    return {**row, "stages": {}, "detail": {"audit": "detail dropped: refused by the database"}, "pii": None,
            "risk": None, "route": None}


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
        "cost_usd": 0,
        "latency_ms": 0.0,
        "stages": {},
        "policy_version": policy_version,
        "attempts": 0,
        "kind": kind,
        "detail": detail,
        "pii": None,
        "risk": None,
        "route": None,
    }


class AuditWriter:
    def __init__(self, engine: AsyncEngine, *, flush_interval: float = 0.05, batch_max: int = 500) -> None:
        self._engine = engine
        self._interval = flush_interval
        self._batch_max = batch_max
        self._queue: collections.deque[dict] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._closing = False
        self.written = 0

    def submit(self, row: dict) -> None:
        self._queue.append(row)
        if len(self._queue) >= self._batch_max:
            self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._queue)

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
                backoff = min(backoff * 2, 5.0)
                await asyncio.sleep(backoff)

    async def _drain(self) -> bool:
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._batch_max, len(self._queue)))]
            by_tenant: dict[str | None, list[dict]] = {}
            for row in batch:
                by_tenant.setdefault(row["tenant_id"], []).append(row)
            try:
                await self._insert(by_tenant)
            except Exception as exc:
                if not _refused(exc):  # connection or server failure: keep the rows, retry later
                    self._queue.extendleft(reversed(batch))
                    AUDIT_FAILURES.inc()
                    log.warning("audit write failed (%s); %d rows pending", type(exc).__name__, len(self._queue))
                    return False
                # The database refused these rows, not the connection: retrying the batch would
                # block every later record behind it. Write them one by one instead.
                log.warning("audit batch refused (%s); writing its %d rows one by one", type(exc).__name__, len(batch))
                await self._insert_singly(batch)
                continue
            self.written += len(batch)
            AUDIT_PENDING.observe(len(batch))
        return True

    async def _insert(self, by_tenant: dict[str | None, list[dict]]) -> None:
        async with self._engine.begin() as conn:
            for tenant_id, rows in by_tenant.items():
                if tenant_id is not None:
                    await scope(conn, tenant_id)  # row-level security checks every row's tenant
                await conn.execute(insert(AuditEvent.__table__), rows)

    async def _insert_singly(self, batch: list[dict]) -> None:
        for row in batch:
            for attempt in (row, _minimal(row)):
                try:
                    await self._insert({attempt["tenant_id"]: [attempt]})
                    break
                except IntegrityError:
                    break  # already written (a replay): exactly once holds
                except Exception as exc:
                    log.error("audit row %s refused (%s)", row["request_id"], type(exc).__name__)
            else:
                AUDIT_FAILURES.inc()
                continue
            self.written += 1

    async def flush(self) -> bool:
        return await self._drain()

    async def close(self, timeout: float = 30.0) -> None:
        """Write everything still queued; give up only after `timeout` of continuous failure."""
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
        if self._queue:
            log.error("audit: %d rows could not be written before shutdown", len(self._queue))
