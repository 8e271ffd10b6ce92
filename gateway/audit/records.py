"""An audit event as the API and its exports show it: a JSON record, a CSV row, a decision trace.

`event_record` gives every chained field plus `hash`, formatted exactly as the chain hashes them, so
JSON lines of a contiguous export verify offline; `csv_row` flattens an event into `CSV_COLUMNS`
(counts and verdicts as `key=value` lists, text a spreadsheet would run as a formula quoted);
`outcome` and `blocked_by` say whether a request was served, failed or refused by policy and why.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from gateway.audit.chain import CHAIN_FIELDS, format_money, format_ts

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


def plain_money(value: Any) -> str:
    """Money as a spreadsheet reads it: the chain's ten decimal places, never an exponent
    (`format_money` gives `0E-10` for zero, which is how the chain hashes it, not how people read it)."""
    return f"{Decimal(format_money(value or 0)):f}"


def csv_row(row: Mapping[str, Any]) -> list:
    risk = row.get("risk") if isinstance(row.get("risk"), dict) else {}
    pii = row.get("pii") if isinstance(row.get("pii"), dict) else {}
    route = row.get("route") if isinstance(row.get("route"), dict) else {}
    checks = row.get("checks") if isinstance(row.get("checks"), list) else []
    values = {
        **{k: row.get(k) for k in CSV_COLUMNS if k in row},
        "ts": format_ts(row["ts"]),
        "cost_usd": plain_money(row.get("cost_usd")),
        "outcome": outcome(row),
        "stream": "true" if row.get("stream") else "false",
        "risk_tier": risk.get("tier"),
        "risk_action": risk.get("action"),
        "pii_detected": _counts(pii.get("detected")),
        "route_reason": route.get("reason"),
        "checks": ";".join(f"{c.get('kind')}={c.get('verdict')}" for c in checks if isinstance(c, dict)),
    }
    return [_spreadsheet_safe("" if values.get(k) is None else values[k]) for k in CSV_COLUMNS]


def csv_bytes(rows: Iterable[list]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerows(rows)
    return buf.getvalue().encode()


def trace(stages: Any) -> list[dict]:
    """The stages of one request, in pipeline order, with the milliseconds each took."""
    if not isinstance(stages, dict):
        return []
    rank = {name: i for i, name in enumerate(STAGE_ORDER)}
    names = sorted(stages, key=lambda n: rank.get(n, len(rank)))
    return [{"stage": name, "ms": stages[name]} for name in names]
