"""`bulkhead report savings`: what a tenant's traffic cost, against what the same tokens would
have cost on its premium backend."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from gateway.db import create_engine
from gateway.models import AuditEvent, Tenant
from gateway.policy import Policy
from gateway.pricing import per_token_rates


def premium_backend(policy: Policy):
    if policy.routing.premium:
        backend = policy.backend(policy.routing.premium)
        if backend is None:
            raise ValueError(f"routing.premium names no backend: {policy.routing.premium!r}")
        return backend
    chat = [b for b in policy.backends if "chat" in b.modes]
    if not chat:
        raise ValueError("the policy has no chat backend to compare against")
    return max(chat, key=lambda b: (b.quality, per_token_rates(b)[1]))


async def savings(database_url: str, tenant: str, since: datetime, policy: Policy) -> dict:
    premium = premium_backend(policy)
    rate_in, rate_out = per_token_rates(premium)
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            tenant_id = (await conn.execute(select(Tenant.id).where(Tenant.name == tenant))).scalar_one_or_none()
            if tenant_id is None:
                raise ValueError(f"no tenant named {tenant!r}")
            rows = (await conn.execute(
                select(AuditEvent.backend, func.count(), func.sum(AuditEvent.tokens_in),
                       func.sum(AuditEvent.tokens_out), func.sum(AuditEvent.cost_usd))
                .where(AuditEvent.tenant_id == tenant_id, AuditEvent.ts >= since, AuditEvent.kind == "request",
                       AuditEvent.backend.is_not(None), AuditEvent.status < 400)
                .group_by(AuditEvent.backend).order_by(AuditEvent.backend))).all()
    finally:
        await engine.dispose()
    by_backend = []
    actual = counterfactual = 0.0
    for backend, n, tin, tout, cost in rows:
        tin, tout, cost = int(tin or 0), int(tout or 0), float(cost or 0)
        premium_cost = tin * rate_in + tout * rate_out
        actual += cost
        counterfactual += premium_cost
        by_backend.append({"backend": backend, "requests": n, "tokens_in": tin, "tokens_out": tout,
                           "cost_usd": round(cost, 6), "on_premium_usd": round(premium_cost, 6)})
    return {"tenant": tenant, "since": since.isoformat(), "premium_backend": premium.name,
            "actual_usd": round(actual, 6), "on_premium_usd": round(counterfactual, 6),
            "saved_usd": round(counterfactual - actual, 6),
            "saved_ratio": round(1 - actual / counterfactual, 4) if counterfactual else None,
            "by_backend": by_backend}
