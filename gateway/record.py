"""What the audit trail keeps of one request, read from its context when the envelope writes the
record: the columns, the stages' decisions as JSON, and the text only as per-tenant HMACs (or, where
the policy opts in, as an external backend would have seen it)."""

from __future__ import annotations

from decimal import Decimal

from gateway.audit.chain import format_money
from gateway.audit.content import content_record
from gateway.context import RequestContext
from gateway.routing import RouteDecision

_CONTROL = str.maketrans({i: "\ufffd" for i in (*range(0x20), 0x7F)})


def _clean(value: str | None, limit: int) -> str | None:
    """Client-chosen text (the path, the model name) as the database can store it: NUL and other
    control characters replaced, length bounded; otherwise Postgres refuses the whole row."""
    return None if value is None else value[:limit].translate(_CONTROL)


def event_from(ctx: RequestContext, secret: bytes) -> dict:
    """The audit row of one request; `secret` keys the content HMACs."""
    p = ctx.principal
    return {
        "request_id": ctx.request_id,
        "ts": ctx.ts,
        "tenant_id": p.tenant_id if p else None,
        "key_id": p.key_id if p else None,
        "method": ctx.method,
        "endpoint": _clean(ctx.endpoint, 200),
        "requested_model": _clean(ctx.requested_model, 200),
        "backend": ctx.backend,
        "provider_model": ctx.provider_model,
        "status": ctx.status,
        "error_code": ctx.error_code,
        "stream": ctx.stream,
        "tokens_in": ctx.usage.prompt_tokens,
        "tokens_out": ctx.usage.completion_tokens,
        "cost_usd": Decimal(format_money(ctx.cost_usd)),
        "latency_ms": round(ctx.elapsed_ms(), 3),
        "stages": ctx.stages,
        "policy_version": ctx.policy_version,
        "attempts": ctx.attempts,
        "kind": "request",
        "detail": _detail(ctx),
        "pii": ctx.privacy.audit(ctx.served_by) if ctx.privacy is not None else None,
        "risk": ctx.risk.record() if ctx.risk is not None else None,
        "route": _route(ctx.route),
        "checks": [c.as_dict() for c in ctx.checks] or None,
        "content": _content(ctx, secret),
    }


def _detail(ctx: RequestContext) -> dict | None:
    out: dict = {**ctx.detail, **ctx.notes}
    if ctx.experts:
        out["experts"] = ctx.experts
    if ctx.cache == "hit":
        out["cache"] = "hit"
    if ctx.usage_estimated:
        out["usage"] = "estimated"
    return out or None


def _route(decision: RouteDecision | None) -> dict | None:
    if decision is None:
        return None
    return {
        "chosen": decision.backend.name,
        "fallbacks": [b.name for b in decision.fallbacks],
        "reason": decision.reason,
        "difficulty": decision.difficulty,
        "rejected": {v.backend: v.reason for v in decision.verdicts if not v.accepted and v.code != "not_requested"},
    }


def _content(ctx: RequestContext, secret: bytes) -> dict | None:
    """Per-tenant HMACs of the messages and the answer by default; the scrubbed text where the
    policy opts in. Only for a request whose text was inspected."""
    if ctx.principal is None or ctx.policy is None or ctx.request is None or ctx.privacy is None:
        return None
    mode = ctx.policy.audit.store_content
    if mode == "none":
        return None
    out = content_record(secret, ctx.principal.tenant_id, ctx.request.texts.per_message, ctx.answer)
    if mode == "scrubbed":
        out["text"] = ctx.privacy.scrubbed(ctx.answer)
    return out
