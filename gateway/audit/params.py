"""The parameters of an audit query, parsed and checked: filters, page size, order and cursor.

`single_values` refuses unknown and repeated parameters (a typo must not turn into an unfiltered
answer that looks filtered); `parse_filters` turns query-string values into `Filters`, and
`parse_limit`, `parse_order` and the opaque keyset cursors (`encode_cursor`, `decode_cursor`) do
the same for paging. A parameter that cannot be used raises `QueryError`, which names it; the HTTP
API answers 400 with its message and the CLI exits with it.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from typing import Any

from gateway.audit.chain import format_ts

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
RISK_TIERS = ("low", "medium", "high", "critical")
# What a hallucination check can conclude (gateway/hallucination/stage.py, CheckOutcome.verdict).
GROUNDING_VERDICTS = ("supported", "unsupported", "error", "uncertain", "skipped")

FILTER_PARAMS = ("since", "until", "key_id", "backend", "risk_tier", "status", "pii_type", "grounding",
                 "request_id", "kind", "endpoint", "blocked")
PAGE_PARAMS = ("limit", "cursor", "order")


class QueryError(ValueError):
    """A query parameter that cannot be used; `param` names it (the API answers 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


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
        verdict = v["grounding"].strip().lower()
        if verdict not in GROUNDING_VERDICTS:  # any other value would match nothing, and look filtered
            raise QueryError("grounding", f"'grounding' must be one of {', '.join(GROUNDING_VERDICTS)}.")
        out["grounding"] = verdict
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
