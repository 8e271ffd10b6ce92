"""One request's typed record as it travels: who asked, under which policy, what was asked, what
each stage decided, where it went, what it cost and how long each stage took. Stages fill it in
order; the envelope (gateway/http/app.py) reads it for the response headers and writes the audit
record from it (gateway/record.py), whatever happened."""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from starlette.requests import ClientDisconnect

from adapters.base import Usage
from gateway.auth import Principal
from gateway.errors import APIError
from gateway.models import utcnow
from gateway.telemetry import STAGE_LATENCY, set_error_status, stage_attributes, tracer

if TYPE_CHECKING:  # the stages' own types; importing them here would make every stage import every other
    from gateway.hallucination.stage import CheckOutcome
    from gateway.limits import Reservation
    from gateway.pii.stage import PrivacyPlan
    from gateway.policy import Backend, Policy
    from gateway.request import ModelRequest
    from gateway.risk.stage import RiskAssessment
    from gateway.routing import RouteDecision


@dataclass(slots=True)
class RequestContext:
    method: str
    endpoint: str
    request_id: str = field(default_factory=lambda: "req_" + uuid.uuid4().hex)
    ts: datetime = field(default_factory=utcnow)
    started: float = field(default_factory=time.perf_counter)
    # the journey's values, in the order the stages set them
    principal: Principal | None = None
    policy: Policy | None = None
    requested_model: str | None = None
    stream: bool = False
    request: ModelRequest | None = None
    privacy: PrivacyPlan | None = None
    risk: RiskAssessment | None = None
    route: RouteDecision | None = None
    reservation: Reservation | None = None
    backend: str | None = None  # the backend tried last, or the one that answered
    provider_model: str | None = None
    attempts: int = 0
    served_by: Backend | None = None  # whose trust zone's treatment the answer came back through
    answer: str | None = None  # the answer's text as the client got it, for the content HMAC
    checks: list[CheckOutcome] = field(default_factory=list)
    grounding: str | None = None  # the checks' verdict for the x-bulkhead-grounding header
    cache: str | None = None  # "hit" or "miss" where the answer cache was consulted
    experts: dict | None = None  # a local MoE backend's expert routing counts
    usage: Usage = field(default_factory=Usage)
    usage_estimated: bool = False  # a stream that reported no usage is charged what it carried
    cost_usd: float = 0.0
    notes: dict[str, str] = field(default_factory=dict)  # why a stream was buffered, an escalation's fate
    detail: dict[str, Any] = field(default_factory=dict)  # what an admin or compliance surface ran
    status: int = 0
    error_code: str | None = None
    stages: dict[str, float] = field(default_factory=dict)
    span: trace.Span | None = None

    @property
    def policy_version(self) -> str | None:
        return self.policy.version if self.policy is not None else None

    @contextmanager
    def stage(self, name: str):
        start = time.perf_counter()
        # An exception's text can carry request content: the span records its code or type, not it.
        with tracer().start_as_current_span(name, record_exception=False, set_status_on_exception=False) as span:
            try:
                yield
            except Exception as exc:
                if span.is_recording():
                    code = exc.code if isinstance(exc, APIError) else type(exc).__name__
                    span.set_attribute("error.type", code)
                    # a client that left mid-body is the envelope's 499, not a failure of the stage
                    left = isinstance(exc, ClientDisconnect)
                    set_error_status(span, exc.status if isinstance(exc, APIError) else 499 if left else 500, code)
                raise
            finally:
                elapsed = time.perf_counter() - start
                self.stages[name] = round(self.stages.get(name, 0.0) + elapsed * 1000, 3)
                STAGE_LATENCY.labels(name).observe(elapsed)
                if span.is_recording():
                    span.set_attributes(stage_attributes(name, self))

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000
