"""Compliance queries over one tenant's audit trail: filter, page, export, summarize, prove.

Every query runs inside a transaction that first calls `scope()` (row-level security on Postgres)
and also names the tenant in its WHERE clause (SQLite has no RLS), so a tenant's staff can only
ever read their own tenant's rows, on either database.

Filters (parsed in `params.py`) are all SQL (the JSON ones through portable JSON path operators, the
grounding verdict through the `hallucination_checks` table), so keyset pagination on the chain's
`seq` stays exact: a page is `limit` matching rows after the cursor, never a page thinned out
afterwards. Exports and proofs walk the same keyset in batches, so memory stays bounded however
large the range; each event is rendered by `records.py`.

What comes back is what is stored: counts of PII by type, risk signals, routing decisions,
content as per-tenant HMACs. No query here can return a prompt or an answer, because none is kept.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import orjson
from sqlalchemy import Numeric, Text, and_, case, cast, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import format_ts, row_hash
from gateway.audit.content import matches
from gateway.audit.params import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    RISK_TIERS,
    Filters,
    QueryError,
    decode_cursor,
    encode_cursor,
    parse_filters,
    valid_text,
)
from gateway.audit.records import (
    BLOCK_CODES,
    CSV_COLUMNS,
    blocked_by,
    csv_bytes,
    csv_row,
    event_record,
    outcome,
    trace,
)
from gateway.models import AuditEvent, HallucinationCheck
from gateway.tenancy import scope

BATCH = 500
GROUNDING_KIND = "grounding"

EVENTS = AuditEvent.__table__
CHECKS = HallucinationCheck.__table__
E = EVENTS.c
HC = CHECKS.c
EVENT_COLUMNS = [c for c in AuditEvent.__table__.columns if c.name != "id"]
CHECK_COLUMNS = [HC.kind, HC.version, HC.backend, HC.score, HC.threshold, HC.verdict, HC.action, HC.claims,
                 HC.latency_ms, HC.error]


# -- SQL ------------------------------------------------------------------------------------------


def conditions(tenant_id: str, f: Filters) -> list:
    """The WHERE clause: the tenant, always (besides RLS), and each filter given."""
    where = [E.tenant_id == tenant_id, E.chain == tenant_id]
    if f.since is not None:
        where.append(E.ts >= f.since)
    if f.until is not None:
        where.append(E.ts < f.until)
    for name in ("key_id", "backend", "request_id", "kind", "endpoint"):
        value = getattr(f, name)
        if value is not None:
            where.append(E[name] == value)
    if f.status is not None:
        where.append(E.status == f.status)
    if f.status_class is not None:
        where.append(and_(E.status >= f.status_class * 100, E.status < f.status_class * 100 + 100))
    if f.risk_tier is not None:
        where.append(E.risk["tier"].as_string() == f.risk_tier)
    if f.pii_type is not None:
        where.append(or_(E.pii[("detected", f.pii_type)].as_string().is_not(None),
                         E.pii[("leaked", f.pii_type)].as_string().is_not(None)))
    if f.grounding is not None:
        where.append(exists().where(HC.tenant_id == tenant_id, HC.request_id == E.request_id,
                                    HC.kind == GROUNDING_KIND, HC.verdict == f.grounding))
    if f.blocked is not None:
        blocked = E.error_code.in_(tuple(BLOCK_CODES))
        where.append(blocked if f.blocked else or_(E.error_code.is_(None), ~blocked))
    return where


async def _rows(engine: AsyncEngine, tenant_id: str, query) -> list[dict]:
    async with engine.connect() as conn:
        await scope(conn, tenant_id)
        return [dict(r._mapping) for r in (await conn.execute(query)).all()]


def _page_query(tenant_id: str, f: Filters, after: int | None, order: str, n: int, extra=()):
    q = select(*EVENT_COLUMNS).where(*conditions(tenant_id, f), *extra)
    if after is not None:
        q = q.where(E.seq < after if order == "desc" else E.seq > after)
    return q.order_by(E.seq.desc() if order == "desc" else E.seq.asc()).limit(n)


async def iter_rows(engine: AsyncEngine, tenant_id: str, f: Filters, *, order: str = "asc",
                    limit: int | None = None, batch: int = BATCH, after: int | None = None,
                    extra=()) -> AsyncIterator[list[dict]]:
    """Matching rows in keyset batches, each batch its own short transaction (no long-held
    snapshot, bounded memory)."""
    left = limit
    while left is None or left > 0:
        n = batch if left is None else min(batch, left)
        rows = await _rows(engine, tenant_id, _page_query(tenant_id, f, after, order, n, extra))
        if not rows:
            return
        yield rows
        if left is not None:
            left -= len(rows)
        if len(rows) < n:
            return
        after = rows[-1]["seq"]


# -- the queries ----------------------------------------------------------------------------------


@dataclass(slots=True)
class Page:
    data: list[dict]
    next_cursor: str | None


async def list_events(engine: AsyncEngine, tenant_id: str, f: Filters, *, limit: int = DEFAULT_LIMIT,
                      cursor: str | None = None, order: str = "desc") -> Page:
    """One page of matching events and the cursor of the next (None on the last page)."""
    after = decode_cursor(cursor, order)
    limit = max(1, min(limit, MAX_LIMIT))
    rows = await _rows(engine, tenant_id, _page_query(tenant_id, f, after, order, limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page([event_record(r) for r in rows], encode_cursor(rows[-1]["seq"], order) if more and rows else None)


async def export(engine: AsyncEngine, tenant_id: str, f: Filters, fmt: str, *, order: str = "asc",
                 limit: int | None = None, after: int | None = None) -> AsyncIterator[bytes]:
    """CSV (with a header row) or JSON lines of every matching event, a batch at a time."""
    if fmt not in ("csv", "jsonl"):
        raise QueryError("format", "'format' must be json, csv or jsonl.")
    if fmt == "csv":
        yield csv_bytes([list(CSV_COLUMNS)])
    async for rows in iter_rows(engine, tenant_id, f, order=order, limit=limit, after=after):
        if fmt == "csv":
            yield csv_bytes(csv_row(r) for r in rows)
        else:
            yield b"".join(orjson.dumps(event_record(r)) + b"\n" for r in rows)


async def cli_export(engine: AsyncEngine, tenant_id: str, filters: Mapping[str, str], fmt: str,
                     limit: int | None, order: str = "desc") -> AsyncIterator[bytes]:
    """`bulkhead audit query`: the same filters as the HTTP API; a bad one exits with its message."""
    try:
        f = parse_filters(filters)
    except QueryError as exc:
        raise SystemExit(f"--{exc.param.replace('_', '-')}: {exc.message}") from None
    if limit is not None and limit < 1:
        raise SystemExit("--limit must be at least 1")
    async for chunk in export(engine, tenant_id, f, fmt, order=order, limit=limit):
        yield chunk


async def event_detail(engine: AsyncEngine, tenant_id: str, request_id: str) -> dict | None:
    """Everything on record about one request: the decision trace (stages with their times, the
    route with every rejected candidate and why, risk signals, PII counts and treatment), the
    hallucination-check rows, and where the event sits in the chain (and whether it still
    matches its hash and links to its neighbours). None if this tenant has no such request."""
    if not valid_text(request_id):
        return None
    async with engine.connect() as conn:
        await scope(conn, tenant_id)
        row = (await conn.execute(select(*EVENT_COLUMNS).where(
            E.tenant_id == tenant_id, E.chain == tenant_id, E.request_id == request_id))).first()
        if row is None:
            return None
        row = dict(row._mapping)
        checks = [dict(r._mapping) for r in (await conn.execute(
            select(*CHECK_COLUMNS).where(HC.tenant_id == tenant_id, HC.request_id == request_id)
            .order_by(HC.id))).all()]
        neighbours = {r.seq: r for r in (await conn.execute(
            select(E.seq, E.hash, E.prev_hash).where(
                E.tenant_id == tenant_id, E.chain == tenant_id, E.seq.in_((row["seq"] - 1, row["seq"] + 1))))).all()}
    before, after = neighbours.get(row["seq"] - 1), neighbours.get(row["seq"] + 1)
    record = event_record(row)
    record["object"] = "audit.event"
    record["outcome"] = outcome(row)
    record["blocked_by"] = blocked_by(row.get("error_code"))
    record["trace"] = trace(row.get("stages"))
    record["hallucination_checks"] = checks
    record["integrity"] = {
        "hash_matches": row_hash(row) == row["hash"],
        "previous_links": None if before is None else before.hash == row["prev_hash"],
        "next_links": None if after is None else after.prev_hash == row["hash"],
    }
    return record


async def event_exists(engine: AsyncEngine, tenant_id: str, request_id: str) -> bool:
    rows = await _rows(engine, tenant_id, select(E.seq).where(
        E.tenant_id == tenant_id, E.chain == tenant_id, E.request_id == request_id).limit(1))
    return bool(rows)


def _day(dialect: str, column):
    if dialect == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)


def _pii_each(dialect: str):
    """(key, count) per detected entity type of each event, as a table-valued function."""
    if dialect == "postgresql":
        # json_each raises on anything but an object, and a cast on anything but a number: guard
        # both, so that one odd row cannot fail the whole summary.
        detected = E.pii["detected"]
        each = func.json_each(case((func.json_typeof(detected) == "object", detected))).table_valued("key", "value")
        return each, case((func.json_typeof(each.c.value) == "number", cast(cast(each.c.value, Text), Numeric)),
                          else_=0)
    each = func.json_each(case((func.json_type(E.pii, "$.detected") == "object", E.pii)), "$.detected") \
        .table_valued("key", "value", "type")
    return each, case((each.c.type == "integer", each.c.value), else_=0)


def _money(value: Any) -> float:
    return round(float(value or 0), 6)


async def summary(engine: AsyncEngine, tenant_id: str, f: Filters) -> dict:
    """Counts and cost by day and backend, risk tiers by day, PII detections by type, blocked
    requests by reason, check verdicts, status classes: all GROUP BY in the database."""
    where = conditions(tenant_id, f)
    dialect = engine.dialect.name
    day = _day(dialect, E.ts).label("day")
    tier = E.risk["tier"].as_string().label("tier")
    async with engine.connect() as conn:
        await scope(conn, tenant_id)

        async def q(query) -> list:
            return (await conn.execute(query)).all()

        by_day_backend = await q(
            select(day, E.backend, func.count().label("n"), func.sum(E.cost_usd), func.sum(E.tokens_in),
                   func.sum(E.tokens_out)).where(*where).group_by("day", E.backend).order_by("day"))
        by_day_tier = await q(select(day, tier, func.count()).where(*where).group_by("day", "tier").order_by("day"))
        statuses = await q(select(E.status, func.count()).where(*where).group_by(E.status))
        blocked = await q(select(E.error_code, func.count()).where(*where, E.error_code.in_(tuple(BLOCK_CODES)))
                          .group_by(E.error_code))
        each, value = _pii_each(dialect)
        pii = await q(select(each.c.key, func.count(), func.sum(value)).select_from(EVENTS)
                      .join(each, true()).where(*where).group_by(each.c.key).order_by(each.c.key))
        checks = await q(select(HC.kind, HC.verdict, func.count()).select_from(CHECKS)
                         .join(EVENTS, and_(E.tenant_id == HC.tenant_id, E.request_id == HC.request_id))
                         .where(HC.tenant_id == tenant_id, *where).group_by(HC.kind, HC.verdict)
                         .order_by(HC.kind, HC.verdict))

    days: dict[str, dict] = {}
    backends: dict[str, dict] = {}
    totals = {"events": 0, "cost_usd": 0.0, "tokens_in": 0, "tokens_out": 0}
    for d, backend, n, cost, tin, tout in by_day_backend:
        name = backend or "none"
        entry = days.setdefault(d, {"day": d, "events": 0, "cost_usd": 0.0, "by_backend": {}, "by_risk_tier": {}})
        entry["events"] += n
        entry["cost_usd"] = _money(entry["cost_usd"] + float(cost or 0))
        entry["by_backend"][name] = {"events": n, "cost_usd": _money(cost)}
        b = backends.setdefault(name, {"backend": name, "events": 0, "cost_usd": 0.0, "tokens_in": 0,
                                       "tokens_out": 0})
        b["events"] += n
        b["cost_usd"] = _money(b["cost_usd"] + float(cost or 0))
        b["tokens_in"] += int(tin or 0)
        b["tokens_out"] += int(tout or 0)
        totals["events"] += n
        totals["cost_usd"] += float(cost or 0)
        totals["tokens_in"] += int(tin or 0)
        totals["tokens_out"] += int(tout or 0)
    totals["cost_usd"] = _money(totals["cost_usd"])
    tiers: dict[str, int] = {}
    for d, t, n in by_day_tier:
        name = t or "none"
        days.setdefault(d, {"day": d, "events": 0, "cost_usd": 0.0, "by_backend": {}, "by_risk_tier": {}})
        days[d]["by_risk_tier"][name] = n
        tiers[name] = tiers.get(name, 0) + n
    status_classes: dict[str, int] = {}
    for status, n in statuses:
        key = f"{int(status) // 100}xx" if status else "none"
        status_classes[key] = status_classes.get(key, 0) + n
    blocked_by_code = {code: n for code, n in sorted(blocked)}
    by_reason: dict[str, int] = {}
    for code, n in blocked_by_code.items():
        by_reason[BLOCK_CODES[code]] = by_reason.get(BLOCK_CODES[code], 0) + n
    grounding = {verdict: n for kind, verdict, n in checks if kind == GROUNDING_KIND}
    return {
        "object": "audit.summary",
        "filters": f.as_dict(),
        "totals": {**totals, "blocked": sum(blocked_by_code.values()),
                   "errors": sum(n for k, n in status_classes.items() if k in ("4xx", "5xx"))},
        "by_day": [days[d] for d in sorted(days)],
        "by_backend": sorted(backends.values(), key=lambda b: (-b["events"], b["backend"])),
        "risk_tiers": {t: tiers[t] for t in (*RISK_TIERS, "none") if t in tiers},
        "pii_detections": {key: {"events": n, "detections": int(total or 0)} for key, n, total in pii},
        "blocked": {"total": sum(blocked_by_code.values()), "by_code": blocked_by_code, "by_reason": by_reason},
        "status": dict(sorted(status_classes.items())),
        "checks": [{"kind": kind, "verdict": verdict, "events": n} for kind, verdict, n in checks],
        "grounding": grounding,
    }


async def prove(engine: AsyncEngine, tenant_id: str, digest: str, *, request_id: str | None = None,
                f: Filters | None = None, max_matches: int = 100) -> dict:
    """The events whose stored content HMACs include `digest` (from `content.content_hmac`). The
    database pre-filters on the digest's text; each candidate is then checked field by field."""
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError("digest must be 64 lowercase hex characters")
    f = f or Filters()
    if request_id is not None:
        f = replace(f, request_id=request_id)
    extra = (E.content.is_not(None), cast(E.content, Text).contains(digest))
    found: list[dict] = []
    async for rows in iter_rows(engine, tenant_id, f, order="desc", extra=extra):
        for row in rows:
            where = matches(row.get("content"), digest)
            if where:
                found.append({"request_id": row["request_id"], "seq": row["seq"], "ts": format_ts(row["ts"]),
                              "fields": where})
        if len(found) >= max_matches:
            break
    return {"object": "audit.proof", "match": bool(found), "matches": found[:max_matches],
            "truncated": len(found) > max_matches}
