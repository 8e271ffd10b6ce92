"""SIGTERM with streams in flight, through `bulkhead serve` (uvicorn): `/readyz` answers 503 at once
while the listener stays open, what is still sent is served, a stream in flight finishes, a stream
still running when the drain time (BULKHEAD_DRAIN_SECONDS) is spent is cut and recorded as such,
the audit queue is flushed (a 30 s flush interval means every row was still queued at SIGTERM),
and the process exits 0."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import httpx
from sqlalchemy import select

from gateway.db import create_engine
from gateway.models import AuditEvent
from tests.conftest import start_gateway

POLICY = """\
pii: {{enabled: false}}
risk: {{embeddings: {{enabled: false}}}}
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{standin}"}}
  - {{name: hold, adapter: openai, model: hold, api_base: "{faults}", timeout_s: 600, max_retries: 0}}
  - {{name: stall, adapter: openai, model: stall-after-first, api_base: "{faults}", timeout_s: 600, max_retries: 0}}
"""


class StreamInFlight(threading.Thread):
    """Reads one streamed answer in the background; `first` is set once its first event arrived."""

    def __init__(self, gw, key: str, model: str) -> None:
        super().__init__(daemon=True)
        self.gw, self.key, self.model = gw, key, model
        self.first = threading.Event()
        self.events: list[str] = []
        self.error: Exception | None = None
        self.request_id: str | None = None

    def run(self) -> None:
        try:
            with httpx.stream("POST", self.gw.base_url + "/v1/chat/completions",
                              headers={"authorization": f"Bearer {self.key}"},
                              json={"model": self.model, "messages": [{"role": "user", "content": "hi"}],
                                    "stream": True}, timeout=120) as r:
                self.request_id = r.headers["x-bulkhead-request-id"]
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.first.set()


async def _audit(url: str) -> dict[str, tuple[int, str | None]]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(AuditEvent.request_id, AuditEvent.status, AuditEvent.error_code))).all()
    finally:
        await engine.dispose()
    return {rid: (status, code) for rid, status, code in rows}


def test_sigterm_drains_in_flight_streams_flushes_the_audit_and_exits_0(standin, faults, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'drain.db'}"
    gw = start_gateway(tmp_path, url, standin, redis=False,
                       policy=POLICY.format(standin=standin.base_url, faults=faults.base_url),
                       extra_env={"BULKHEAD_AUDIT_FLUSH_SECONDS": "30", "BULKHEAD_DRAIN_SECONDS": "12"})
    try:
        gw.cli("tenants", "create", "ops")
        key = gw.new_key("ops", "app")
        faults.hold()
        finishing = StreamInFlight(gw, key, "hold")   # will be released during the drain
        cut = StreamInFlight(gw, key, "stall")        # never ends by itself: cut at the drain deadline
        for s in (finishing, cut):
            s.start()
            assert s.first.wait(60) and s.error is None, s.error

        gw.proc.send_signal(signal.SIGTERM)
        for _ in range(50):  # the signal lands within moments; no timing is asserted
            ready = httpx.get(gw.base_url + "/readyz", timeout=10)
            if ready.status_code == 503:
                break
            time.sleep(0.1)
        assert ready.status_code == 503 and ready.json()["checks"]["shutdown"] == "draining"
        late = httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                          json={"model": "echo", "messages": [{"role": "user", "content": "late"}]}, timeout=30)
        assert late.status_code == 200  # the load balancer may still send some: served, not dropped

        faults.release()
        finishing.join(60)
        assert finishing.error is None and finishing.events[-1] == "[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in finishing.events[:-1] if json.loads(e).get("choices"))
        assert text == "first one two three"

        code = gw.proc.wait(90)
        cut.join(30)
    finally:
        faults.release()
        gw.stop()
    assert code == 0, gw.log.read_text()[-3000:]
    assert cut.events and "[DONE]" not in cut.events  # it was cut, not completed
    rows = asyncio.run(_audit(url))
    assert rows[finishing.request_id] == (200, None)
    assert rows[late.headers["x-bulkhead-request-id"]] == (200, None)
    assert rows[cut.request_id][1] == "server_shutdown"
    assert len(rows) == 3


def test_sigterm_with_nothing_in_flight_exits_at_once(standin, faults, tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'idle.db'}"
    gw = start_gateway(tmp_path, url, standin, redis=False,
                       policy=POLICY.format(standin=standin.base_url, faults=faults.base_url),
                       extra_env={"BULKHEAD_AUDIT_FLUSH_SECONDS": "30"})
    try:
        gw.cli("tenants", "create", "ops")
        key = gw.new_key("ops", "app")
        r = httpx.post(gw.base_url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                       json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
        assert r.status_code == 200
        started = time.monotonic()
        gw.proc.send_signal(signal.SIGTERM)
        code = gw.proc.wait(60)
        waited = time.monotonic() - started
    finally:
        gw.stop()
    assert code == 0, gw.log.read_text()[-3000:]
    print(f"idle SIGTERM to exit: {waited:.2f} s (the 25 s default drain is only for requests in flight)")
    assert asyncio.run(_audit(url)) == {r.headers["x-bulkhead-request-id"]: (200, None)}
