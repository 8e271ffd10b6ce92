"""The compliance API (/v1/bulkhead/audit/*) through a running gateway, on Postgres (as the
row-level-security-bound role) and on SQLite: filters, cursor pagination, CSV and JSONL exports,
event detail, summary, chain verification and content proofs; tenant isolation, roles, 400s on
bad parameters, and an audit row for every query."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from gateway.audit.content import content_record
from gateway.audit.writer import append_events, system_event
from gateway.db import create_engine
from gateway.models import Tenant
from tests.conftest import TEST_SECRET, e2e_policy, start_gateway

# The e2e policy without the model-backed stages (spaCy, MiniLM): this file is about the audit
# API, and seeded events carry the PII and check outcomes it queries.
FAST = "\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n"
API = "/v1/bulkhead/audit"


def seed_rows(tenant_id: str, key_id: str, backend: str, now: datetime, n: int = 24) -> list[dict]:
    """Varied events: four risk tiers, e-mail addresses in every third, grounding checks in every
    fourth (supported/unsupported), a blocked request in every fifth, content HMACs in all."""
    rows = []
    for i in range(n):
        row = system_event("request", {}, tenant_id=tenant_id, key_id=key_id)
        blocked = i % 5 == 0
        row.update(
            method="POST", endpoint="/v1/chat/completions", kind="request", ts=now - timedelta(days=i % 3, minutes=i),
            requested_model="=HYPERLINK(\"http://x\")" if i == 1 else "gpt-x", backend=None if blocked else backend,
            status=403 if blocked else 200, error_code="request_blocked" if blocked else None,
            tokens_in=10 + i, tokens_out=5, cost_usd=Decimal("0.0001000000"), latency_ms=12.5,
            stages={"authenticate": 0.2, "inspect": 1.1, "risk": 0.7, "decide": 0.1, "call": 9.0},
            risk={"tier": ("low", "medium", "high", "critical")[i % 4], "action": "block" if blocked else "allow",
                  "signals": {"pii": 1}, "injection_score": 0.01, "domains": [], "reasons": ["seeded"]},
            pii={"detected": {"EMAIL_ADDRESS": 2}, "treatment": {"EMAIL_ADDRESS": {"pseudonymize": 2}},
                 "zone": "external"} if i % 3 == 0 else {"detected": {}},
            route=None if blocked else {"chosen": backend, "fallbacks": [], "reason": "cheapest allowed",
                                        "difficulty": None, "rejected": {"local": "tier forbids"}},
            checks=[{"kind": "grounding", "version": "g1", "backend": backend, "score": 0.8 if i % 8 else 0.2,
                     "threshold": 0.5, "verdict": "supported" if i % 8 else "unsupported", "action": "flag",
                     "claims": None, "latency_ms": 3.0, "error": None}] if i % 4 == 0 else None,
            content=content_record(TEST_SECRET.encode(), tenant_id, [f"question {i}", "shared prompt"],
                                   f"answer {i}"),
        )
        rows.append(row)
    return rows


async def _tenant_id(engine, name: str) -> str:
    async with engine.connect() as conn:
        return (await conn.execute(select(Tenant.id).where(Tenant.name == name))).scalar_one()


async def _seed(database_url: str, now: datetime) -> dict:
    engine = create_engine(database_url)
    try:
        a, b = await _tenant_id(engine, "acme"), await _tenant_id(engine, "globex")
        rows_a = seed_rows(a, "key_seeded_a", "seed-a", now)
        rows_b = seed_rows(b, "key_seeded_b", "seed-b", now, n=6)
        for r in rows_b:
            r["pii"] = {"detected": {"PERSON": 1}}
        async with engine.begin() as conn:
            await append_events(conn, rows_a + rows_b)
    finally:
        await engine.dispose()
    return {"a": a, "b": b, "rows_a": rows_a, "rows_b": rows_b}


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def gw(request, standin, tmp_path_factory, pg_database_factory):
    tmp = tmp_path_factory.mktemp("audit-api")
    url = pg_database_factory() if request.param == "postgres" else f"sqlite+aiosqlite:///{tmp / 'a.db'}"
    policy = e2e_policy(standin, FAST)
    gateway = start_gateway(tmp, url, standin, redis=False, policy=policy,
                            extra_env={"BULKHEAD_POLICY_WATCH_SECONDS": "0"})
    gateway.cli("tenants", "create", "acme")
    gateway.cli("tenants", "create", "globex")
    gateway.keys.update(
        compliance=gateway.new_key("acme", "compliance"),
        app=gateway.new_key("acme", "app"),
        admin=gateway.new_key("acme", "admin"),
        globex=gateway.new_key("globex", "compliance"),
    )
    gateway.seed = asyncio.run(_seed(url, datetime.now(UTC)))
    yield gateway
    assert gateway.stop() == 0, gateway.log.read_text()[-4000:]


def get(gw, path: str, who: str = "compliance", **params) -> httpx.Response:
    return httpx.get(gw.base_url + API + path, params=params, headers={"authorization": f"Bearer {gw.keys[who]}"},
                     timeout=60)


def post(gw, path: str, body=None, who: str = "compliance") -> httpx.Response:
    return httpx.post(gw.base_url + API + path, json=body, headers={"authorization": f"Bearer {gw.keys[who]}"},
                      timeout=60)


def ids(resp: httpx.Response) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [e["request_id"] for e in resp.json()["data"]]


def seeded(gw, tenant: str = "a", pred=lambda i, r: True) -> set[str]:
    return {r["request_id"] for i, r in enumerate(gw.seed[f"rows_{tenant}"]) if pred(i, r)}


def wait_for_event(gw, request_id: str, who: str = "compliance", timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        r = get(gw, f"/events/{request_id}", who)
        if r.status_code == 200 or time.monotonic() > deadline:
            assert r.status_code == 200, r.text
            return r.json()
        time.sleep(0.1)


def test_roles(gw):
    for who in ("app", "admin"):
        r = get(gw, "/events", who)
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_role"
        assert post(gw, "/verify", who=who).status_code == 403
    r = httpx.get(gw.base_url + API + "/summary")
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert get(gw, "/events").status_code == 200


def test_filters(gw):
    seed_ids = seeded(gw)

    def matching(**params) -> set[str]:
        return set(ids(get(gw, "/events", limit=500, **params))) & seed_ids

    assert matching() == seed_ids
    assert matching(backend="seed-a") == seeded(gw, pred=lambda i, r: i % 5 != 0)
    assert matching(risk_tier="critical") == seeded(gw, pred=lambda i, r: i % 4 == 3)
    assert matching(risk_tier="HIGH") == seeded(gw, pred=lambda i, r: i % 4 == 2)
    # PII and grounding filters can only match seeded events: exact, not just within them
    assert set(ids(get(gw, "/events", pii_type="EMAIL_ADDRESS", limit=500))) == seeded(gw, pred=lambda i, r: i % 3 == 0)
    assert set(ids(get(gw, "/events", pii_type="email_address", limit=500))) == seeded(gw, pred=lambda i, r: i % 3 == 0)
    assert ids(get(gw, "/events", pii_type="PERSON")) == []  # globex's entity type, not acme's
    assert set(ids(get(gw, "/events", grounding="unsupported"))) == seeded(gw, pred=lambda i, r: i % 8 == 0)
    assert set(ids(get(gw, "/events", grounding="supported"))) == seeded(gw, pred=lambda i, r: i % 4 == 0 and i % 8)
    assert matching(status="403") == matching(status="4xx") == seeded(gw, pred=lambda i, r: i % 5 == 0)
    assert matching(blocked="true") == seeded(gw, pred=lambda i, r: i % 5 == 0)
    assert matching(blocked="false") == seeded(gw, pred=lambda i, r: i % 5 != 0)
    assert matching(key_id="key_seeded_a") == seed_ids
    one = gw.seed["rows_a"][7]["request_id"]
    assert ids(get(gw, "/events", request_id=one)) == [one]
    assert matching(kind="request") == seed_ids
    assert matching(kind="policy.applied") == set()
    # time range: since inclusive, until exclusive; the seeded days are today, -1 and -2
    now = datetime.now(UTC)
    recent = matching(since=(now - timedelta(hours=12)).isoformat())
    assert recent == seeded(gw, pred=lambda i, r: r["ts"] >= now - timedelta(hours=12))
    old = matching(until=(now - timedelta(days=1, hours=-1)).isoformat().replace("+00:00", "Z"))
    assert old and old == seeded(gw, pred=lambda i, r: r["ts"] < now - timedelta(days=1, hours=-1))
    assert matching(backend="seed-a", risk_tier="low", since=(now - timedelta(days=5)).date().isoformat()) == \
        seeded(gw, pred=lambda i, r: i % 4 == 0 and i % 5 != 0)


def test_cursor_pagination(gw):
    expected = seeded(gw, pred=lambda i, r: i % 5 != 0)
    for order in ("desc", "asc"):
        seen, seqs, cursor, pages = [], [], None, 0
        while True:
            params = {"backend": "seed-a", "limit": 4, "order": order}
            if cursor:
                params["cursor"] = cursor
            body = get(gw, "/events", **params).json()
            assert body["object"] == "list" and len(body["data"]) <= 4
            seen += [e["request_id"] for e in body["data"]]
            seqs += [e["seq"] for e in body["data"]]
            pages += 1
            cursor = body["next_cursor"]
            assert body["has_more"] == (cursor is not None)
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) and set(seen) == expected
        assert seqs == sorted(seqs, reverse=order == "desc")
        assert pages == -(-len(expected) // 4)
    first = get(gw, "/events", backend="seed-a", limit=2).json()
    r = get(gw, "/events", backend="seed-a", limit=2, cursor=first["next_cursor"], order="asc")
    assert r.status_code == 400 and r.json()["error"]["param"] == "cursor"


def test_csv_and_jsonl_exports(gw):
    expected = seeded(gw, pred=lambda i, r: i % 5 != 0)
    r = get(gw, "/events", backend="seed-a", format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"].startswith('attachment; filename="audit-acme-')
    assert r.headers["cache-control"] == "no-store"
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert {row["request_id"] for row in table} == expected
    seqs = [int(row["seq"]) for row in table]
    assert seqs == sorted(seqs)  # exports run oldest first
    by_id = {row["request_id"]: row for row in table}
    first = gw.seed["rows_a"][3]
    assert by_id[first["request_id"]]["pii_detected"] == "EMAIL_ADDRESS=2"
    assert by_id[first["request_id"]]["risk_tier"] == "critical"
    # a client-chosen value that a spreadsheet would run as a formula stays text
    assert by_id[gw.seed["rows_a"][1]["request_id"]]["requested_model"].startswith("'=")

    r = get(gw, "/events", backend="seed-a", format="jsonl", limit=5)
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 5 and all(line["backend"] == "seed-a" for line in lines)

    # the whole chain as JSON lines verifies offline, like `bulkhead audit export`
    verify = pytest.importorskip("gateway.audit.export")
    r = get(gw, "/events", format="jsonl")
    rows = [json.loads(line) for line in r.text.splitlines()]
    assert {row["request_id"] for row in rows} >= seeded(gw)
    [report] = verify.verify_export(rows)
    assert report.ok and report.chain == gw.seed["a"] and report.events == len(rows)


def test_event_detail(gw):
    row = gw.seed["rows_a"][8]
    e = get(gw, f"/events/{row['request_id']}").json()
    assert e["object"] == "audit.event" and e["request_id"] == row["request_id"]
    assert [t["stage"] for t in e["trace"]] == ["authenticate", "inspect", "risk", "decide", "call"]
    assert e["route"]["chosen"] == "seed-a" and e["route"]["rejected"] == {"local": "tier forbids"}
    assert e["risk"]["tier"] == "low" and e["risk"]["signals"] == {"pii": 1}
    assert e["pii"]["detected"] == {} and e["outcome"] == "ok"
    assert e["hallucination_checks"][0]["verdict"] == "unsupported" and e["checks"][0]["kind"] == "grounding"
    assert e["integrity"] == {"hash_matches": True, "previous_links": True, "next_links": True}
    assert len(e["hash"]) == 64 and len(e["prev_hash"]) == 64 and e["chain"] == gw.seed["a"]
    assert set(e["content"]["hmac"]) == {"messages", "answer"}
    blocked = get(gw, f"/events/{gw.seed['rows_a'][5]['request_id']}").json()
    assert blocked["outcome"] == "blocked" and blocked["blocked_by"] == "risk" and blocked["route"] is None

    r = get(gw, "/events/req_does_not_exist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "event_not_found"


def test_a_real_request_has_its_decision_trace(gw):
    r = httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {gw.keys['app']}"},
                   json={"model": "echo", "messages": [{"role": "user", "content": "hello audit"}]}, timeout=60)
    assert r.status_code == 200, r.text
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["backend"] == "echo" and e["route"]["chosen"] == "echo" and e["status"] == 200
    assert {"authenticate", "decide", "call"} <= {t["stage"] for t in e["trace"]}
    assert e["risk"]["tier"] in ("low", "medium", "high", "critical")
    assert "hello audit" not in json.dumps(e)


def test_summary(gw):
    s = get(gw, "/summary").json()
    assert s["object"] == "audit.summary"
    seed_a = next(b for b in s["by_backend"] if b["backend"] == "seed-a")
    assert seed_a["events"] == 19 and seed_a["cost_usd"] == pytest.approx(0.0019)
    assert not any(b["backend"] == "seed-b" for b in s["by_backend"])
    assert s["pii_detections"] == {"EMAIL_ADDRESS": {"events": 8, "detections": 16}}
    assert s["grounding"] == {"unsupported": 3, "supported": 3}
    assert s["blocked"]["by_code"] == {"request_blocked": 5} and s["blocked"]["by_reason"] == {"risk": 5}
    assert s["risk_tiers"]["critical"] >= 6
    days = {d["day"] for d in s["by_day"]}
    assert datetime.now(UTC).date().isoformat() in days and len(days) >= 3
    assert sum(d["by_backend"].get("seed-a", {}).get("events", 0) for d in s["by_day"]) == 19
    narrowed = get(gw, "/summary", backend="seed-a", risk_tier="critical").json()
    assert narrowed["totals"]["events"] == 5 and narrowed["filters"] == {"backend": "seed-a",
                                                                        "risk_tier": "critical"}


def test_tenant_isolation(gw):
    b_ids = seeded(gw, "b")
    theirs = set(ids(get(gw, "/events", who="globex", limit=500)))
    assert b_ids <= theirs and not theirs & seeded(gw)
    ours = set(ids(get(gw, "/events", limit=500)))
    assert not ours & b_ids
    one_b = next(iter(b_ids))
    assert ids(get(gw, "/events", request_id=one_b)) == []
    assert get(gw, f"/events/{one_b}").status_code == 404
    assert get(gw, f"/events/{one_b}", who="globex").status_code == 200
    s = get(gw, "/summary", who="globex").json()
    assert s["pii_detections"] == {"PERSON": {"events": 6, "detections": 6}}
    assert [b["backend"] for b in s["by_backend"] if b["backend"].startswith("seed")] == ["seed-b"]
    # exports too
    exported = get(gw, "/events", who="globex", format="jsonl").text
    assert gw.seed["a"] not in exported and all(json.loads(x)["tenant_id"] == gw.seed["b"]
                                                for x in exported.splitlines())
    # proofs see the caller's own tenant only (its rows, its HMAC key)
    shared = post(gw, "/prove", {"text": "shared prompt"}, who="globex").json()
    assert {m["request_id"] for m in shared["matches"]} == b_ids
    assert post(gw, "/prove", {"text": "answer 6"}, who="globex").json()["match"] is False  # acme's only


@pytest.mark.parametrize("params, param", [
    ({"since": "yesterday"}, "since"),
    ({"since": "2026-02-01", "until": "2026-01-01"}, "until"),
    ({"status": "99x"}, "status"),
    ({"status": "600"}, "status"),
    ({"risk_tier": "extreme"}, "risk_tier"),
    ({"limit": "0"}, "limit"),
    ({"limit": "501"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"order": "sideways"}, "order"),
    ({"format": "xml"}, "format"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"pii_type": "EMAIL ADDRESS; DROP"}, "pii_type"),
    ({"grounding": "Fail!"}, "grounding"),
    ({"grounding": "fail"}, "grounding"),  # no check gives it: it would match nothing, and look filtered
    ({"blocked": "maybe"}, "blocked"),
    ({"request_id": "req\x00x"}, "request_id"),
    ({"backend": "x" * 201}, "backend"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_parameters_are_400_naming_the_parameter(gw, params, param):
    r = get(gw, "/events", **params)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and err["type"] == "invalid_request_error" and err["code"] == "invalid_parameter"


def test_more_bad_input_never_500s(gw):
    h = {"authorization": f"Bearer {gw.keys['compliance']}"}
    r = httpx.get(gw.base_url + API + "/events?status=200&status=404", headers=h)
    assert r.status_code == 400 and r.json()["error"]["param"] == "status"
    assert get(gw, "/summary", since="2026-13-45").status_code == 400
    assert get(gw, "/summary", limit="5").status_code == 400  # summaries are not paged
    assert get(gw, "/events/req_x", extra="1").status_code == 400
    r = httpx.get(gw.base_url + API + "/events/" + "%00" * 3, headers=h)
    assert r.status_code == 404
    assert get(gw, "/events", since="2026-01-01T00:00:00 02:00").status_code == 200  # an unencoded '+'
    assert get(gw, "/events", since="9999-12-31T23:59:59-01:00").status_code == 400
    r = post(gw, "/prove", {})
    assert r.status_code == 422 and r.json()["error"]["param"] == "text"
    assert post(gw, "/prove", {"text": "x", "since": "soon"}).json()["error"]["param"] == "since"
    assert post(gw, "/prove", {"text": "x", "colour": 1}).status_code == 400
    r = httpx.post(gw.base_url + API + "/verify", headers={**h, "content-type": "application/json"}, content=b"{")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert post(gw, "/verify", {"from_checkpoint": "often"}).status_code == 422


def test_prove(gw):
    rows = gw.seed["rows_a"]
    r = post(gw, "/prove", {"text": "answer 6"})
    assert r.status_code == 200
    body = r.json()
    assert body["match"] and body["matches"] == [{"request_id": rows[6]["request_id"], "seq": rows[6]["seq"],
                                                  "ts": body["matches"][0]["ts"], "fields": ["answer"]}]
    shared = post(gw, "/prove", {"text": "shared prompt"}).json()
    assert {m["request_id"] for m in shared["matches"]} == seeded(gw)
    assert all(m["fields"] == ["messages[1]"] for m in shared["matches"])
    one = post(gw, "/prove", {"text": "question 2", "request_id": rows[2]["request_id"]}).json()
    assert one["match"] and one["matches"][0]["fields"] == ["messages[0]"]
    assert post(gw, "/prove", {"text": "question 2", "request_id": rows[3]["request_id"]}).json()["match"] is False
    assert post(gw, "/prove", {"text": "answer 6 "}).json()["match"] is False  # exact text only
    r = post(gw, "/prove", {"text": "answer 6", "request_id": "req_unknown"})
    assert r.status_code == 404


def test_verify(gw):
    pytest.importorskip("gateway.audit.verify")
    r = post(gw, "/verify")
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["ok"] is True and report["chain"] == gw.seed["a"] and report["events"] >= len(gw.seed["rows_a"])
    assert post(gw, "/verify", {"from_checkpoint": True}).status_code == 200
    theirs = post(gw, "/verify", who="globex").json()
    assert theirs["chain"] == gw.seed["b"] and theirs["ok"]


def test_every_query_is_audited(gw):
    r = get(gw, "/events", backend="seed-a", risk_tier="low", pii_type="EMAIL_ADDRESS", limit=3)
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["endpoint"] == API + "/events" and e["status"] == 200 and e["key_id"]
    assert e["detail"]["query"] == {"backend": "seed-a", "risk_tier": "low", "pii_type": "EMAIL_ADDRESS",
                                    "format": "json", "order": "desc", "limit": 3, "cursor": None, "returned": 1}
    r = get(gw, "/events", format="csv", since="2026-01-01")
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["detail"]["query"]["format"] == "csv" and e["detail"]["query"]["since"] == "2026-01-01T00:00:00.000000Z"
    # refused queries are on record too, with their error
    r = get(gw, "/events", status="nope")
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["status"] == 400 and e["error_code"] == "invalid_parameter"
    r = get(gw, "/events", who="app")
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["status"] == 403 and e["error_code"] == "insufficient_role"
    # a proof is on record by its HMAC, never its text
    r = post(gw, "/prove", {"text": "a secret sentence"})
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert len(e["detail"]["query"]["text_hmac"]) == 64 and "a secret sentence" not in json.dumps(e)
    r = post(gw, "/verify")
    assert r.status_code == 200, r.text
    e = wait_for_event(gw, r.headers["x-bulkhead-request-id"])
    assert e["status"] == 200 and e["detail"]["verify"]["ok"] is True
    for path in ("/summary", f"/events/{gw.seed['rows_a'][0]['request_id']}"):
        r = get(gw, path)
        assert wait_for_event(gw, r.headers["x-bulkhead-request-id"])["endpoint"] == API + path


def test_openapi_lists_the_audit_api(gw):
    spec = httpx.get(gw.base_url + "/openapi.json").json()
    for path, method in (("/events", "get"), ("/events/{request_id}", "get"), ("/summary", "get"),
                         ("/verify", "post"), ("/prove", "post")):
        assert method in spec["paths"][API + path]
    names = {p["name"] for p in spec["paths"][API + "/events"]["get"]["parameters"]}
    assert {"since", "until", "key_id", "backend", "risk_tier", "status", "pii_type", "grounding", "request_id",
            "cursor", "limit", "format"} <= names
