"""Compliance queries over one tenant's audit trail: filter, page, export, summarize, prove.

Every query runs inside a transaction that first calls `scope()` (row-level security on Postgres)
and also names the tenant in its WHERE clause (SQLite has no RLS), so a tenant's staff can only
ever read their own tenant's rows, on either database.

Filters are all SQL (the JSON ones through portable JSON path operators, the grounding verdict
through the `hallucination_checks` table), so keyset pagination on the chain's `seq` stays exact:
a page is `limit` matching rows after the cursor, never a page thinned out afterwards. Exports
and proofs walk the same keyset in batches, so memory stays bounded however large the range.

What comes back is what is stored: counts of PII by type, risk signals, routing decisions,
content as per-tenant HMACs. No query here can return a prompt or an answer, because none is kept.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime
from typing import Any

import orjson
from sqlalchemy import Numeric, Text, and_, case, cast, exists, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.audit.chain import CHAIN_FIELDS, format_money, format_ts, row_hash
from gateway.audit.content import matches
from gateway.models import AuditEvent, HallucinationCheck
from gateway.tenancy import scope

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
BATCH = 500
RISK_TIERS = ("low", "medium", "high", "critical")
GROUNDING_KIND = "grounding"

# Error codes that mean the gateway refused a request (or withheld an answer) by policy, and why.
BLOCK_CODES = {
    "request_blocked": "risk",        # 403: the risk tier's action is block
    "pii_blocked": "pii",             # 400: the PII policy blocks an entity type
    "model_not_allowed": "policy",    # 403: the tenant or key may not use the model
    "answer_blocked": "pii_output",   # 502: the answer carried PII the output scan blocks
}

# The pipeline's stages in the order they run (gateway/pipeline.py). Stored JSON has sorted keys, so
# the decision trace is put back in this order; a stage not listed here goes last.
STAGE_ORDER = ("authenticate", "parse", "inspect", "risk", "decide", "transform", "cache", "admit", "call",
               "restore", "verify", "record")

FILTER_PARAMS = ("since", "until", "key_id", "backend", "risk_tier", "status", "pii_type", "grounding",
                 "request_id", "kind", "endpoint", "blocked")
PAGE_PARAMS = ("limit", "cursor", "order")

EVENTS = AuditEvent.__table__
CHECKS = HallucinationCheck.__table__
E = EVENTS.c
HC = CHECKS.c
EVENT_COLUMNS = [c for c in AuditEvent.__table__.columns if c.name != "id"]
CHECK_COLUMNS = [HC.kind, HC.version, HC.backend, HC.score, HC.threshold, HC.verdict, HC.action, HC.claims,
                 HC.latency_ms, HC.error]


class QueryError(ValueError):
    """A query parameter that cannot be used; `param` names it (the API answers 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


# -- parameters -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Filters:
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    key_id: str | None = None
    backend: str | None = None
    risk_tier: str | None = None
    status: int | None = None
    status_class: int | None = None  # 4 for "4xx"
    pii_type: str | None = None
    grounding: str | None = None
    request_id: str | None = None
    kind: str | None = None
    endpoint: str | None = None
    blocked: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        """The filters as given (normalized), for responses and for the audit record of the query.
        Only identifiers, codes and times: nothing here is personal data."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            if f.name == "status_class":
                out["status"] = f"{value}xx"
            elif isinstance(value, datetime):
                out[f.name] = format_ts(value)
            else:
                out[f.name] = value
        return out


def single_values(params: Any, allowed: Iterable[str]) -> dict[str, str]:
    """Query parameters as a dict, refusing unknown names and repeated ones: a typo must not turn
    into an unfiltered answer that looks filtered."""
    allowed = set(allowed)
    items = params.multi_items() if hasattr(params, "multi_items") else list(params.items())
    out: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            shown = name if _PRINTABLE.fullmatch(name or "") and len(name) <= 40 else "(unprintable)"
            raise QueryError(name[:40], f"Unknown query parameter '{shown}'. Known: {', '.join(sorted(allowed))}.")
        if name in out:
            raise QueryError(name, f"The query parameter '{name}' is given more than once.")
        out[name] = value
    return out


_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_TEXT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
_OFFSET_SPACE = re.compile(r"(.*\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d:?\d\d)")


def valid_text(value: str) -> bool:
    """1 to 200 characters, none of them control characters (NUL would fail on Postgres)."""
    return bool(_TEXT.fullmatch(value))


def _text(name: str, value: str) -> str:
    if not _TEXT.fullmatch(value):
        raise QueryError(name, f"'{name}' must be 1 to 200 characters without control characters.")
    return value


def _pattern(name: str, value: str, pattern: str, what: str) -> str:
    if not re.fullmatch(pattern, value):
        raise QueryError(name, f"'{name}' must be {what}.")
    return value


def parse_time(name: str, value: str) -> datetime:
    """ISO-8601 date or timestamp; UTC when no offset is given. A '+' of an offset that arrived
    unencoded in a URL (and so became a space) is taken back."""
    raw = value.strip()
    m = _OFFSET_SPACE.fullmatch(raw)
    if m:
        raw = f"{m.group(1)}+{m.group(2)}"
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            d = date.fromisoformat(raw)
            parsed = datetime(d.year, d.month, d.day, tzinfo=UTC)
        else:
            parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise QueryError(name, f"'{name}' must be an ISO-8601 date or timestamp, e.g. 2026-01-31 or "
                         "2026-01-31T08:00:00Z.") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise QueryError(name, f"'{name}' is out of range.") from None


def parse_filters(values: Mapping[str, str]) -> Filters:
    """Filters from query-string values (other keys are ignored; empty values mean no filter, as an
    HTML form sends them)."""
    v = {k: s for k, s in values.items() if k in FILTER_PARAMS and s is not None and s.strip() != ""}
    out: dict[str, Any] = {}
    for name in ("since", "until"):
        if name in v:
            out[name] = parse_time(name, v[name])
    if "since" in out and "until" in out and out["since"] >= out["until"]:
        raise QueryError("until", "'until' must be later than 'since'.")
    for name in ("key_id", "backend", "request_id", "endpoint"):
        if name in v:
            out[name] = _text(name, v[name].strip())
    if "risk_tier" in v:
        tier = v["risk_tier"].strip().lower()
        if tier not in RISK_TIERS:
            raise QueryError("risk_tier", f"'risk_tier' must be one of {', '.join(RISK_TIERS)}.")
        out["risk_tier"] = tier
    if "status" in v:
        s = v["status"].strip().lower()
        if re.fullmatch(r"[1-5]xx", s):
            out["status_class"] = int(s[0])
        elif re.fullmatch(r"[1-5]\d\d", s):
            out["status"] = int(s)
        else:
            raise QueryError("status", "'status' must be an HTTP status code (403) or a class (4xx).")
    if "pii_type" in v:
        out["pii_type"] = _pattern("pii_type", v["pii_type"].strip().upper(), r"[A-Z][A-Z0-9_]{0,63}",
                                   "an entity type such as EMAIL_ADDRESS")
    if "grounding" in v:
        out["grounding"] = _pattern("grounding", v["grounding"].strip().lower(), r"[a-z][a-z_]{0,15}",
                                    "a check verdict such as pass or fail")
    if "kind" in v:
        out["kind"] = _pattern("kind", v["kind"].strip(), r"[a-z][a-z0-9_.]{0,31}",
                               "an event kind such as request or policy.applied")
    if "blocked" in v:
        b = v["blocked"].strip().lower()
        if b not in ("true", "false", "1", "0", "yes", "no"):
            raise QueryError("blocked", "'blocked' must be true or false.")
        out["blocked"] = b in ("true", "1", "yes")
    return Filters(**out)


def parse_limit(value: str | None, default: int | None = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int | None:
    if value is None or value.strip() == "":
        return default
    if not re.fullmatch(r"\d{1,9}", value.strip()) or not 1 <= int(value) <= maximum:
        raise QueryError("limit", f"'limit' must be an integer from 1 to {maximum}.")
    return int(value)


def parse_order(value: str | None, default: str = "desc") -> str:
    if value is None or value.strip() == "":
        return default
    if value not in ("asc", "desc"):
        raise QueryError("order", "'order' must be asc or desc.")
    return value


def encode_cursor(seq: int, order: str) -> str:
    return base64.urlsafe_b64encode(f"v1.{order}.{seq}".encode()).decode().rstrip("=")


def decode_cursor(value: str | None, order: str) -> int | None:
    """The seq after which the next page starts; the cursor is opaque to clients."""
    if value is None or value == "":
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode("ascii")
    except (binascii.Error, ValueError):
        raw = ""
    m = re.fullmatch(r"v1\.(asc|desc)\.(\d{1,19})", raw) if len(value) <= 64 else None
    if m is None:
        raise QueryError("cursor", "'cursor' is not a cursor this API returned.")
    if m.group(1) != order:
        raise QueryError("cursor", f"This cursor pages order={m.group(1)}; pass the same order with it.")
    return int(m.group(2))


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


# -- records --------------------------------------------------------------------------------------


def event_record(row: Mapping[str, Any]) -> dict:
    """One event as the API returns it: every chained field plus `hash`, timestamps as UTC ISO-8601
    and money as a decimal string, exactly as the chain hashes them, so JSON lines of a contiguous
    export verify offline (`bulkhead audit verify --export`)."""
    out = {name: row.get(name) for name in CHAIN_FIELDS}
    out["ts"] = format_ts(row["ts"])
    out["cost_usd"] = format_money(row.get("cost_usd") or 0)
    out["latency_ms"] = float(row.get("latency_ms") or 0)
    out["hash"] = row["hash"]
    return out


def blocked_by(error_code: str | None) -> str | None:
    return BLOCK_CODES.get(error_code or "")


def outcome(row: Mapping[str, Any]) -> str:
    if blocked_by(row.get("error_code")):
        return "blocked"
    status = int(row.get("status") or 0)
    return "ok" if 0 < status < 400 else "error"


CSV_COLUMNS = ("seq", "request_id", "ts", "kind", "method", "endpoint", "key_id", "requested_model", "backend",
               "provider_model", "status", "error_code", "outcome", "stream", "tokens_in", "tokens_out", "cost_usd",
               "latency_ms", "policy_version", "attempts", "risk_tier", "risk_action", "pii_detected",
               "route_reason", "checks", "prev_hash", "hash")


def _spreadsheet_safe(value: Any) -> Any:
    """Text that a spreadsheet would run as a formula (a client chose the model name, say) is
    quoted so that it stays text."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _counts(d: Any) -> str:
    if not isinstance(d, dict):
        return ""
    return ";".join(f"{k}={d[k]}" for k in sorted(d))


def csv_row(row: Mapping[str, Any]) -> list:
    risk = row.get("risk") if isinstance(row.get("risk"), dict) else {}
    pii = row.get("pii") if isinstance(row.get("pii"), dict) else {}
    route = row.get("route") if isinstance(row.get("route"), dict) else {}
    checks = row.get("checks") if isinstance(row.get("checks"), list) else []
    values = {
        **{k: row.get(k) for k in CSV_COLUMNS if k in row},
        "ts": format_ts(row["ts"]),
        "cost_usd": format_money(row.get("cost_usd") or 0),
        "outcome": outcome(row),
        "stream": "true" if row.get("stream") else "false",
        "risk_tier": risk.get("tier"),
        "risk_action": risk.get("action"),
        "pii_detected": _counts(pii.get("detected")),
        "route_reason": route.get("reason"),
        "checks": ";".join(f"{c.get('kind')}={c.get('verdict')}" for c in checks if isinstance(c, dict)),
    }
    return [_spreadsheet_safe("" if values.get(k) is None else values[k]) for k in CSV_COLUMNS]


def _csv_bytes(rows: Iterable[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows(rows)
    return buf.getvalue().encode()


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
        yield _csv_bytes([list(CSV_COLUMNS)])
    async for rows in iter_rows(engine, tenant_id, f, order=order, limit=limit, after=after):
        if fmt == "csv":
            yield _csv_bytes(csv_row(r) for r in rows)
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
    if not _TEXT.fullmatch(request_id):
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


def trace(stages: Any) -> list[dict]:
    """The stages of one request, in pipeline order, with the milliseconds each took."""
    if not isinstance(stages, dict):
        return []
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    names = sorted(stages, key=lambda n: rank.get(n, len(rank)))
    return [{"stage": name, "ms": stages[name]} for name in names]


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
