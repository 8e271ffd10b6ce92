"""Prometheus metrics and OpenTelemetry tracing.

Tracing is configured from the standard OTEL_* variables and is a no-op when none are set, so the
hot path pays for spans only where someone collects them.

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

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

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
