"""What a compliance export and an audit query accept and write, without a gateway: money in CSV as
a plain decimal (never `0E-10`), and the grounding filter taking only the verdicts a check gives."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.audit.params import QueryError, parse_filters
from gateway.audit.records import CSV_COLUMNS, csv_bytes, csv_row

VERDICTS = ("supported", "unsupported", "error", "uncertain", "skipped")  # hallucination/stage.py


def _row(cost) -> dict:
    return {"seq": 1, "request_id": "req_1", "ts": datetime(2026, 1, 31, 8, tzinfo=UTC), "kind": "request",
            "method": "POST", "endpoint": "/v1/chat/completions", "status": 200, "cost_usd": cost,
            "latency_ms": 1.0, "prev_hash": "0" * 64, "hash": "1" * 64}


@pytest.mark.parametrize("cost, shown", [
    (Decimal("0E-10"), "0.0000000000"),         # what Numeric(18, 10) gives back for a free request
    (Decimal("0.0000000000"), "0.0000000000"),
    (0, "0.0000000000"),
    (None, "0.0000000000"),
    (Decimal("1E-10"), "0.0000000001"),
    (1e-10, "0.0000000001"),
    (Decimal("0.0020000000"), "0.0020000000"),
    (12.5, "12.5000000000"),
])
def test_csv_cost_is_a_plain_decimal(cost, shown):
    assert _csv_cost(cost) == shown and Decimal(shown) == Decimal(str(cost or 0))


def _csv_cost(cost) -> str:
    text = csv_bytes([list(CSV_COLUMNS), csv_row(_row(cost))]).decode()
    [record] = csv.DictReader(io.StringIO(text))
    return record["cost_usd"]


def test_money_is_never_written_with_an_exponent():
    for exp in range(-10, 8):
        for digit in (1, 5, 9):
            assert re.fullmatch(r"\d+\.\d{10}", _csv_cost(Decimal(digit).scaleb(exp)))


@pytest.mark.parametrize("value", VERDICTS + ("Unsupported", " supported "))
def test_grounding_filter_takes_a_checks_verdicts(value):
    assert parse_filters({"grounding": value}).grounding == value.strip().lower()


@pytest.mark.parametrize("value", ["fail", "pass", "grounded", "nonsense", "support"])
def test_grounding_filter_refuses_what_no_check_gives(value):
    """Such a value used to match nothing, which looked like a filter that found no events."""
    with pytest.raises(QueryError) as err:
        parse_filters({"grounding": value})
    assert err.value.param == "grounding"
    assert all(v in err.value.message for v in VERDICTS)
