"""The per-tenant hash chain over audit events.

Each event carries `seq` (1, 2, 3, ... per chain, no gaps), `prev_hash` (the previous event's hash;
GENESIS for the first) and `hash` = SHA-256 of its canonical serialization. The chain of a tenant
is named by its tenant id; events that never authenticated share the chain named "".

Canonical serialization: a JSON array of the fields in CHAIN_FIELDS order, keys of objects sorted,
no whitespace, UTF-8; timestamps as UTC ISO-8601 with exactly six fractional digits (what both
databases store), money as a decimal string with ten places (the column's scale). The same
function hashes on the way in (the writer), in the database's export and offline, so any change
here is a new chain version (CHAIN_VERSION is part of every hash).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

CHAIN_VERSION = "bh-audit-v1"
GENESIS = "0" * 64

# Every stored column but the surrogate id and the hash itself. Order is part of the format.
CHAIN_FIELDS = (
    "chain", "seq", "prev_hash", "request_id", "ts", "tenant_id", "key_id", "method", "endpoint",
    "requested_model", "backend", "provider_model", "status", "error_code", "stream", "tokens_in",
    "tokens_out", "cost_usd", "latency_ms", "stages", "policy_version", "attempts", "kind", "detail",
    "pii", "risk", "route", "checks", "content",
)


def chain_of(tenant_id: str | None) -> str:
    return tenant_id or ""


def format_ts(value: datetime | str) -> str:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    elif value.utcoffset():
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_TEN = Decimal("1e-10")


def format_money(value: Any) -> str:
    if not isinstance(value, Decimal):
        value = Decimal(str(value))
    return str(value.quantize(_TEN))


_TS = CHAIN_FIELDS.index("ts") + 1  # +1: the version string leads
_COST = CHAIN_FIELDS.index("cost_usd") + 1
_LATENCY = CHAIN_FIELDS.index("latency_ms") + 1


def canonical(row: dict[str, Any]) -> bytes:
    values = [CHAIN_VERSION, *map(row.get, CHAIN_FIELDS)]
    values[_TS] = format_ts(values[_TS])
    values[_COST] = format_money(values[_COST] or 0)
    values[_LATENCY] = float(values[_LATENCY])
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)


def row_hash(row: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(row)).hexdigest()


def link(rows: list[dict[str, Any]], head_seq: int, head_hash: str) -> tuple[int, str]:
    """Assign seq, prev_hash and hash to rows of one chain, in order, after the given head.
    Returns the new head."""
    for row in rows:
        head_seq += 1
        row["seq"] = head_seq
        row["prev_hash"] = head_hash
        row["hash"] = head_hash = row_hash(row)
    return head_seq, head_hash
