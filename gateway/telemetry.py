"""Prometheus metrics and OpenTelemetry tracing.

Tracing is configured from the standard OTEL_* variables and is a no-op when none are set, so the
hot path pays for spans only where someone collects them.

Spans: the envelope's `request` span (a server span that continues the caller's `traceparent`) and
one span per pipeline stage under it. Their attributes follow the OpenTelemetry GenAI semantic
conventions (`gen_ai.*`) where one applies and are `bulkhead.*` otherwise; like the log lines they
carry ids, names the policy defines, tiers, counts and codes, never request or answer content. A
span's status is ERROR when the gateway failed (5xx) and stays UNSET for what the client got wrong
(4xx), as the HTTP conventions have it for server spans.

Metrics are counted under real backend names and relabelled when scraped: a backend that only one
tenant's overlay declares (its name, its tokens, its cost) is that tenant's business, so whoever
reads /metrics sees `private-<keyed hash>` for it, stable across replicas that share the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Collection, Iterator
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Status, StatusCode
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

if TYPE_CHECKING:  # the context imports this module for its stage spans
    from gateway.context import RequestContext
    from gateway.policy import Backend

log = logging.getLogger("bulkhead")

REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter("bulkhead_requests", "API requests", ["endpoint", "status", "backend"], registry=REGISTRY)
LATENCY = Histogram(
    "bulkhead_request_seconds",
    "Total request latency",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
    registry=REGISTRY,
)
STAGE_LATENCY = Histogram(
    "bulkhead_stage_seconds",
    "Latency per pipeline stage",
    ["stage"],
    buckets=(0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30),
    registry=REGISTRY,
)
TOKENS = Counter("bulkhead_tokens", "Tokens processed", ["backend", "direction"], registry=REGISTRY)
COST = Counter("bulkhead_cost_usd", "Cost in USD", ["backend"], registry=REGISTRY)
UPSTREAM_ERRORS = Counter("bulkhead_upstream_errors", "Upstream failures", ["backend", "kind"], registry=REGISTRY)
AUDIT_PENDING = Histogram(
    "bulkhead_audit_batch_size", "Audit rows written per batch", buckets=(1, 5, 10, 50, 100, 500), registry=REGISTRY
)
BREAKER_OPENED = Counter("bulkhead_breaker_opened", "Circuit breaker openings", ["backend"], registry=REGISTRY)
CACHE = Counter("bulkhead_cache", "Response cache lookups", ["result"], registry=REGISTRY)
POLICY_RELOADS = Counter("bulkhead_policy_reloads", "Policy reloads by result", ["result"], registry=REGISTRY)
AUDIT_FAILURES = Counter("bulkhead_audit_write_failures", "Failed audit batch writes", registry=REGISTRY)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def backend_label(name: str, shared: Collection[str], key: bytes) -> str:
    """The label /metrics shows for a backend: its name when every tenant shares it, else a keyed
    hash (not a plain one: backend names are short and guessable)."""
    if name in shared or name == "none":
        return name
    return "private-" + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:12]


class _SharedNamesOnly:
    """REGISTRY as a scraper may see it: every `backend` label passed through backend_label."""

    def __init__(self, shared: Collection[str], key: bytes) -> None:
        self._shared, self._key = shared, key

    def collect(self) -> Iterator[Metric]:
        for family in REGISTRY.collect():  # fresh objects on every collect: safe to rewrite
            family.samples = [self._relabel(sample) for sample in family.samples]
            yield family

    def _relabel(self, sample: Sample) -> Sample:
        if "backend" not in sample.labels:
            return sample
        label = backend_label(sample.labels["backend"], self._shared, self._key)
        return sample._replace(labels={**sample.labels, "backend": label})


def metrics_payload(shared: Collection[str] | None = None, key: bytes = b"") -> bytes:
    """The exposition; with `shared`, backends outside it are labelled without their names."""
    return generate_latest(REGISTRY if shared is None else _SharedNamesOnly(shared, key))


_configured = False


def setup_tracing(service_name: str = "bulkhead") -> None:
    """Install an SDK tracer provider with an OTLP exporter when the OTEL_* variables ask for one."""
    global _configured
    if _configured:
        return
    _configured = True
    wants_otlp = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    exporter_name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp" if wants_otlp else "none")
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true" or exporter_name == "none":
        return
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service_name)})
    provider = TracerProvider(resource=resource)
    if exporter_name == "console":
        exporter = ConsoleSpanExporter()
    else:
        # protobuf + requests (~20 ms); loaded only where traces are exported over OTLP
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing enabled (exporter=%s)", exporter_name)


def tracer() -> trace.Tracer:
    return trace.get_tracer("bulkhead")


def shutdown_tracing() -> None:
    provider = trace.get_tracer_provider()
    shutdown = getattr(provider, "shutdown", None)
    if shutdown:
        shutdown()


# gen_ai.operation.name for each endpoint's mode (the GenAI semantic conventions' well-known values)
GEN_AI_OPERATIONS = {"chat": "chat", "completions": "text_completion", "embeddings": "embeddings"}
# litellm's provider prefixes -> gen_ai.provider.name's well-known values (others pass as written)
_PROVIDERS = {"azure": "azure.ai.openai", "azure_ai": "azure.ai.inference", "bedrock": "aws.bedrock",
              "vertex_ai": "gcp.vertex_ai", "gemini": "gcp.gemini", "mistral": "mistral_ai", "xai": "x_ai",
              "watsonx": "ibm.watsonx.ai"}


def gen_ai_provider(backend: Backend) -> str:
    """gen_ai.provider.name for a backend: the policy's adapter and model string, never the request."""
    if backend.adapter == "local_moe":
        return "bulkhead.local_moe"
    if backend.adapter == "litellm" and "/" in backend.model:
        prefix = backend.model.split("/", 1)[0]
        return _PROVIDERS.get(prefix, prefix)
    return "openai"  # the openai adapter, and litellm's unprefixed (OpenAI) model names


def _gen_ai_call(ctx: RequestContext, out: dict[str, Any]) -> None:
    """The GenAI attributes of the model call as far as it got; usage once it is known."""
    if ctx.request is not None:
        out["gen_ai.operation.name"] = GEN_AI_OPERATIONS.get(ctx.request.mode, ctx.request.mode)
    backend = ctx.served_by or (ctx.route.backend if ctx.route is not None else None)
    if backend is not None and ctx.attempts:
        out["gen_ai.provider.name"] = out["gen_ai.system"] = gen_ai_provider(backend)
    if ctx.provider_model:  # the provider's model as the policy names it (what the gateway asked for)
        out["gen_ai.request.model"] = ctx.provider_model
    if ctx.backend:
        out["bulkhead.backend"] = ctx.backend
    if ctx.attempts:
        out["bulkhead.attempts"] = ctx.attempts


def _authenticated(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.principal is not None:
        out["bulkhead.tenant_id"] = ctx.principal.tenant_id


def _parsed(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.request is not None:
        out["gen_ai.operation.name"] = GEN_AI_OPERATIONS.get(ctx.request.mode, ctx.request.mode)
        out["bulkhead.stream"] = ctx.stream
        out["bulkhead.tokens_reserved"] = ctx.request.tokens


def _inspected(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.privacy is not None:
        out["bulkhead.pii.failed"] = ctx.privacy.failed
        if ctx.privacy.inspection is not None:
            counts = ctx.privacy.inspection.counts()  # entity types and how many: never a value
            out["bulkhead.pii.entities"] = sum(counts.values())
            out["bulkhead.pii.types"] = sorted(counts)


def _assessed(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.risk is not None:
        out["bulkhead.risk.tier"] = ctx.risk.tier
        out["bulkhead.risk.action"] = ctx.risk.action
        if ctx.risk.injection_score is not None:
            out["bulkhead.risk.injection_score"] = ctx.risk.injection_score
        if ctx.risk.blocked_by:
            out["bulkhead.risk.blocked_by"] = [t.signal for t in ctx.risk.blocked_by]


def _decided(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.route is not None:
        out["bulkhead.route.backend"] = ctx.route.backend.name
        out["bulkhead.route.trust"] = ctx.route.backend.trust
        out["bulkhead.route.reason"] = ctx.route.reason
        out["bulkhead.route.difficulty"] = ctx.route.difficulty
        out["bulkhead.route.fallbacks"] = [b.name for b in ctx.route.fallbacks]


def _looked_up(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.cache is not None:
        out["bulkhead.cache"] = ctx.cache


def _verified(ctx: RequestContext, out: dict[str, Any]) -> None:
    if ctx.grounding is not None:
        out["bulkhead.grounding"] = ctx.grounding


_STAGES = {"authenticate": _authenticated, "parse": _parsed, "inspect": _inspected, "risk": _assessed,
           "decide": _decided, "cache": _looked_up, "call": _gen_ai_call, "verify": _verified}


def stage_attributes(name: str, ctx: RequestContext) -> dict[str, Any]:
    """What a stage's span records once the stage is over: what it decided, never what it read."""
    out: dict[str, Any] = {}
    fill = _STAGES.get(name)
    if fill is not None:
        fill(ctx, out)
    return out


def request_attributes(ctx: RequestContext, route: str) -> dict[str, Any]:
    """The request span's attributes at its end: HTTP's, the request's ids and, for a model call,
    the GenAI ones with the usage the call settled at."""
    out: dict[str, Any] = {
        "http.request.method": ctx.method,
        "http.route": route,
        "http.response.status_code": ctx.status,
        "http.status_code": ctx.status,  # the older convention's name, for existing dashboards
        "bulkhead.request_id": ctx.request_id,
    }
    if ctx.principal is not None:
        out["bulkhead.tenant_id"] = ctx.principal.tenant_id
    if ctx.error_code:
        out["bulkhead.error_code"] = ctx.error_code
        if ctx.status >= 500:
            out["error.type"] = ctx.error_code
    if ctx.risk is not None:
        out["bulkhead.risk.tier"] = ctx.risk.tier
        out["bulkhead.risk.action"] = ctx.risk.action
    if ctx.route is not None:
        out["bulkhead.route.backend"] = ctx.route.backend.name
    if ctx.cache is not None:
        out["bulkhead.cache"] = ctx.cache
    _gen_ai_call(ctx, out)
    if ctx.served_by is not None and ctx.status < 400:
        # the model that answered: the provider model of the backend that served it
        out["gen_ai.response.model"] = ctx.provider_model or ctx.served_by.model
        out["gen_ai.usage.input_tokens"] = ctx.usage.prompt_tokens
        out["gen_ai.usage.output_tokens"] = ctx.usage.completion_tokens
        out["bulkhead.cost_usd"] = ctx.cost_usd
    return out


def set_error_status(span: trace.Span, status: int, code: str | None) -> None:
    """ERROR for what the gateway failed at (5xx), with the error code and never a message; UNSET
    for the client's own mistakes (4xx), as server spans have it."""
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR, code or "internal_error"))
