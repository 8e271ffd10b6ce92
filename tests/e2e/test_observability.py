"""What an operator reads from a running gateway: one JSON log line per request (ids, tenant, route,
status, latency; never the prompt), spans that continue the caller's trace, carry the GenAI
semantic conventions' attributes and the stages' decisions, and say ERROR when the gateway failed,
and log lines for a SIGTERM's drain and stop."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import httpx
import pytest

from tests.conftest import start_gateway

MARKER = "quartz-zebra-4711"  # a word of the prompt no log line or span may carry
PROMPT = f"I am Maria Kowalczyk, maria.kowalczyk@example.com, +1 415 555 0199. Say {MARKER}."
TRACE_ID, PARENT_ID = secrets.token_hex(16), secrets.token_hex(8)


@dataclass
class Run:
    text: str
    logs: list[dict]
    spans: list[dict]
    ok: httpx.Response
    failed: httpx.Response
    unknown: httpx.Response

    def line(self, request_id: str) -> dict:
        [line] = [entry for entry in self.logs if entry.get("request_id") == request_id]
        return line

    def request_span(self, request_id: str) -> dict:
        [span] = [s for s in self.spans if s["name"] == "request"
                  and s["attributes"].get("bulkhead.request_id") == request_id]
        return span

    def children(self, span: dict, name: str) -> list[dict]:
        """The stage spans named `name` under the request span `span`."""
        return [s for s in self.spans if s["name"] == name and s["context"]["trace_id"] == span["context"]["trace_id"]]


def _objects(text: str) -> list[dict]:
    """Every JSON object that starts a line: the log lines and the console exporter's spans."""
    decoder, found, offset = json.JSONDecoder(), [], 0
    for line in text.splitlines(keepends=True):
        if line.startswith("{"):
            try:
                obj, _ = decoder.raw_decode(text, offset)
            except json.JSONDecodeError:
                obj = None
            if isinstance(obj, dict):
                found.append(obj)
        offset += len(line)
    return found


@pytest.fixture(scope="module")
def run(standin, tmp_path_factory) -> Run:
    tmp = tmp_path_factory.mktemp("obs")
    gw = start_gateway(tmp, f"sqlite+aiosqlite:///{tmp / 'obs.db'}", standin, redis=False,
                       extra_env={"OTEL_TRACES_EXPORTER": "console", "BULKHEAD_LOG_LEVEL": "INFO"})
    try:
        gw.cli("tenants", "create", "obs")
        headers = {"authorization": f"Bearer {gw.new_key('obs', 'app')}"}
        chat = {"messages": [{"role": "user", "content": PROMPT}]}
        ok = httpx.post(gw.base_url + "/v1/chat/completions", json={"model": "echo", **chat},
                        headers={**headers, "traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
        failed = httpx.post(gw.base_url + "/v1/chat/completions", json={"model": "fail-500", **chat}, headers=headers)
        unknown = httpx.post(gw.base_url + "/v1/chat/completions", json={"model": "no-such-model", **chat},
                             headers=headers)
    finally:
        code = gw.stop()
    text = gw.log.read_text()
    assert code == 0, text[-3000:]
    found = _objects(text)
    logs = [o for o in found if "logger" in o and "msg" in o]
    spans = [o for o in found if "context" in o and "name" in o]
    return Run(text, logs, spans, ok, failed, unknown)


def test_one_json_line_per_request_with_ids_route_status_latency_and_no_prompt(run):
    assert run.ok.status_code == 200, run.ok.text
    line = run.line(run.ok.headers["x-bulkhead-request-id"])
    assert line["logger"] == "bulkhead.request" and line["level"] == "info"
    assert line["status"] == 200 and line["route"] == "echo" and line["endpoint"] == "/v1/chat/completions"
    assert line["tenant_id"].startswith("ten_") and line["latency_ms"] > 0
    assert line["tokens_in"] > 0 and line["tokens_out"] > 0
    assert line["trace_id"] == TRACE_ID  # the caller's trace, for joining logs to traces
    # a 4xx is the client's: info, with its code
    unknown = run.line(run.unknown.headers["x-bulkhead-request-id"])
    assert run.unknown.status_code == 404 and unknown["level"] == "info"
    assert unknown["error_code"] == run.unknown.json()["error"]["code"]
    # the startup lines are JSON too
    assert any(entry["msg"].startswith("bulkhead ready in") for entry in run.logs)
    for value in (MARKER, "Kowalczyk", "kowalczyk@example.com", "555 0199", "no-such-model"):
        assert value.lower() not in run.text.lower(), value


def test_a_failed_request_is_a_warning_line_and_an_error_span(run):
    assert run.failed.status_code >= 500, run.failed.text
    code = run.failed.json()["error"]["code"]
    line = run.line(run.failed.headers["x-bulkhead-request-id"])
    assert line["level"] == "warning" and line["status"] == run.failed.status_code and line["error_code"] == code
    assert line["route"] == "fail-500"
    span = run.request_span(run.failed.headers["x-bulkhead-request-id"])
    assert span["status"]["status_code"] == "ERROR" and span["status"]["description"] == code
    assert span["attributes"]["error.type"] == code
    [call] = run.children(span, "call")
    assert call["status"]["status_code"] == "ERROR" and call["attributes"]["gen_ai.operation.name"] == "chat"
    # the client's own mistake leaves the server span's status unset
    assert run.request_span(run.unknown.headers["x-bulkhead-request-id"])["status"]["status_code"] == "UNSET"


def test_the_request_span_continues_the_callers_trace(run):
    span = run.request_span(run.ok.headers["x-bulkhead-request-id"])
    assert span["context"]["trace_id"] == "0x" + TRACE_ID
    assert span["parent_id"] == "0x" + PARENT_ID
    assert span["kind"] == "SpanKind.SERVER"
    assert span["attributes"]["http.route"] == "/v1/chat/completions"
    assert span["attributes"]["http.response.status_code"] == 200


def test_a_successful_chat_carries_gen_ai_and_stage_attributes(run):
    span = run.request_span(run.ok.headers["x-bulkhead-request-id"])
    attrs = span["attributes"]
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "echo" and attrs["gen_ai.response.model"] == "echo"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["bulkhead.risk.tier"] and attrs["bulkhead.tenant_id"].startswith("ten_")
    [call] = run.children(span, "call")
    assert call["attributes"]["gen_ai.request.model"] == "echo"
    assert call["attributes"]["gen_ai.provider.name"] == "openai" and call["attributes"]["bulkhead.attempts"] == 1
    [risk] = run.children(span, "risk")
    assert risk["attributes"]["bulkhead.risk.tier"] and risk["attributes"]["bulkhead.risk.action"]
    [decide] = run.children(span, "decide")
    assert decide["attributes"]["bulkhead.route.backend"] == "echo"
    [inspect] = run.children(span, "inspect")
    assert inspect["attributes"]["bulkhead.pii.entities"] >= 1 and "EMAIL_ADDRESS" in inspect["attributes"][
        "bulkhead.pii.types"]


def test_sigterm_is_logged_from_the_signal_to_the_stop(run):
    messages = [entry["msg"] for entry in run.logs]
    assert any(m.startswith("SIGTERM: draining") for m in messages), messages[-10:]
    assert any(m.startswith("drained in") for m in messages), messages[-10:]
    assert any(m.startswith("bulkhead stopped") for m in messages), messages[-10:]
