"""The process's log lines: one JSON object a line (`BULKHEAD_LOG_FORMAT=json`, what `bulkhead serve`
writes unless told `text`), and the per-request line the envelope writes.

Every line has `ts`, `level`, `logger` and `msg`; the per-request line (logger `bulkhead.request`,
INFO, WARNING when the gateway failed with a 5xx) adds its fields at the top level. It carries ids,
the tenant's id, the endpoint, the backend, the status, the error code, timings and token counts:
never a prompt, an answer, a key, a header or a name a client chose that the policy does not define.

The same configuration goes to uvicorn's and granian's worker processes (`dict_config`), so their own
lines come out in the same format.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from gateway.context import RequestContext

REQUEST_LOG = logging.getLogger("bulkhead.request")
_CHATTY = ("presidio-analyzer", "sentence_transformers", "httpx")  # INFO per recognizer / model file


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: ts (UTC, ms), level, logger, msg, then the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`LEVEL logger: message key=value ...`, for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += "".join(f" {k}={v}" for k, v in fields.items())
        return text


def dict_config(level: str, fmt: str) -> dict[str, Any]:
    """A logging.config.dictConfig for the whole process: the root logger to stderr in `fmt` (json or
    text), the servers' loggers through it, the chatty libraries at WARNING."""
    formatter = "text" if fmt == "text" else "json"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}, "text": {"()": TextFormatter}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": formatter,
                                "stream": "ext://sys.stderr"}},
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        "loggers": {
            **{name: {"level": "WARNING"} for name in _CHATTY},
            # the servers' own: propagated to the root, no handlers of their own
            **{name: {"handlers": [], "propagate": True} for name in (
                "uvicorn", "uvicorn.error", "uvicorn.access", "_granian", "granian.access")},
        },
    }


def request_line(ctx: RequestContext, endpoint: str, trace_id: int = 0) -> None:
    """The envelope's one line per /v1 request: built only when the logger would write it."""
    level = logging.WARNING if ctx.status >= 500 else logging.INFO
    if not REQUEST_LOG.isEnabledFor(level):
        return
    fields: dict[str, Any] = {
        "request_id": ctx.request_id,
        "tenant_id": ctx.principal.tenant_id if ctx.principal is not None else None,
        "key_id": ctx.principal.key_id if ctx.principal is not None else None,
        "method": ctx.method,
        "endpoint": endpoint,
        "route": ctx.backend or "none",  # the x-bulkhead-route header: the backend that answered or was tried last
        "status": ctx.status,
        "error_code": ctx.error_code,
        "latency_ms": round(ctx.elapsed_ms(), 2),
        "upstream_ms": ctx.stages.get("call"),
    }
    if ctx.attempts:
        fields["attempts"] = ctx.attempts
    if ctx.usage.prompt_tokens or ctx.usage.completion_tokens:
        fields["tokens_in"], fields["tokens_out"] = ctx.usage.prompt_tokens, ctx.usage.completion_tokens
    if ctx.risk is not None:
        fields["risk_tier"], fields["risk_action"] = ctx.risk.tier, ctx.risk.action
    if ctx.cache is not None:
        fields["cache"] = ctx.cache
    if ctx.stream:
        fields["stream"] = True
    if trace_id:
        fields["trace_id"] = format(trace_id, "032x")
    REQUEST_LOG.log(level, "%s %s %d", ctx.method, endpoint, ctx.status, extra={"fields": fields})
