"""What one request accumulates on its way through the pipeline: who, where it went, what it cost,
how long each stage took. The audit record and the response headers are read from it."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from opentelemetry import trace

from adapters.base import Usage
from gateway.auth import Principal
from gateway.models import utcnow
from gateway.telemetry import STAGE_LATENCY, tracer


@dataclass(slots=True)
class RequestContext:
    method: str
    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    ts: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.perf_counter)
    principal: Principal | None = None
    requested_model: str | None = None
    backend: str | None = None
    provider_model: str | None = None
    stream: bool = False
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    status: int = 0
    error_code: str | None = None
    policy_version: str | None = None
    attempts: int = 0
    reservation: object | None = None
    detail: dict = field(default_factory=dict)
    route: object | None = None
    pii: dict | None = None
    risk: dict | None = None
    checks: list | None = None  # hallucination-check outcomes
    content: dict | None = None  # HMACs of prompt and answer (or scrubbed text, where the policy opts in)
    stages: dict[str, float] = field(default_factory=dict)
    span: trace.Span | None = None

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        with tracer().start_as_current_span(name):
            try:
                yield
            finally:
                elapsed = time.perf_counter() - start
                self.stages[name] = round(self.stages.get(name, 0.0) + elapsed * 1000, 3)
                STAGE_LATENCY.labels(name).observe(elapsed)

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
