"""Runs the verify stage for one answered request: the model calls its checks need (under the
request's routing and PII rules), the policy's action, and billing for every extra call."""

from __future__ import annotations

import asyncio
from typing import Any

from adapters.base import UpstreamError, Usage
from gateway import pricing
from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.hallucination.stage import (
    Verifier,
    annotate,
    answer_text,
    failed,
    grounding_context,
    header_value,
    pick_rule,
    summary,
)
from gateway.pii.stage import Privacy, inspect
from gateway.policy import Backend
from gateway.upstream import upstream_error


def rule_for(policy, ctx: RequestContext, body: dict):
    if not policy.hallucination.rules:
        return None
    return pick_rule(policy.hallucination, ctx, bool(grounding_context(body)))


def _bill(ctx: RequestContext, backend: Backend, usage: Usage) -> None:
    ctx.usage = Usage(ctx.usage.prompt_tokens + usage.prompt_tokens,
                      ctx.usage.completion_tokens + usage.completion_tokens)
    ctx.cost_usd += pricing.cost_usd(backend, usage)


async def _call(gw, ctx: RequestContext, backend: Backend, body: dict) -> dict:
    adapter = gw.adapters.get(backend)
    try:
        result = await adapter.chat(body, timeout=backend.timeout_s)
    except UpstreamError as exc:
        raise upstream_error(exc) from None
    _bill(ctx, backend, result.usage)
    return result.body


def asker(gw, ctx: RequestContext, policy):
    """Calls for samples and judges: same trust-zone treatment as the request (an external backend
    sees placeholders, never the values), answers restored before they are compared. The messages
    are inspected afresh because they carry the answer, which the request's inspection never saw."""

    async def ask(backend: Backend, messages: list[dict], n: int, temperature: float) -> list[str]:
        probe = await inspect(policy.pii, {"messages": messages})
        body = {**probe.outbound(backend), "temperature": temperature}
        replies = await asyncio.gather(*(_call(gw, ctx, backend, body) for _ in range(n)))
        return [answer_text(probe.restore(backend, r)) for r in replies]

    return ask


async def verify(gw, ctx: RequestContext, policy, route, rule, request_body: dict, privacy: Privacy,
                 backend: Backend, answer: dict[str, Any], headers: dict[str, str]) -> dict[str, Any]:
    hp = policy.hallucination
    verifier = Verifier(policy, route, hp, rule, request_body, asker(gw, ctx, policy))
    outcomes = await verifier.run(answer_text(answer), backend)
    action = rule.action
    ctx.checks = [o.record(action) for o in outcomes]
    if action == "escalate" and failed(outcomes):
        target = verifier.escalation_target(backend)
        if target is None:
            ctx.detail["escalation"] = "no stronger allowed backend"
        else:
            ctx.detail["escalated_from"] = backend.name
            second = privacy.restore(target, await _call(gw, ctx, target, privacy.outbound(target)))
            ctx.backend = target.name
            retry = await verifier.run(answer_text(second), target)
            ctx.checks += [{**o.record("escalate"), "backend": o.backend or target.name, "attempt": 2}
                           for o in retry]
            answer, outcomes = second, retry
    if action in ("flag", "escalate"):
        headers["x-bulkhead-grounding"] = header_value(outcomes)
        return annotate(answer, outcomes, action)
    if action == "block" and failed(outcomes):
        verdict, score = summary(outcomes)
        detail = f"score {score:.2f} below the policy's threshold" if score is not None else "the check failed"
        raise APIError(422, f"The answer was withheld: it did not pass the policy's grounding check ({verdict}; "
                       f"{detail}).", "answer_unsupported")
    return answer


async def verify_stream(gw, ctx, policy, route, rule, request_body, privacy, backend, text: str) -> bytes:
    """After a stream's last content chunk: record, and for `flag` an SSE comment clients ignore."""
    hp = policy.hallucination
    verifier = Verifier(policy, route, hp, rule, request_body, asker(gw, ctx, policy))
    outcomes = await verifier.run(text, backend)
    ctx.checks = [o.record(rule.action if rule.action in ("record", "flag") else "flag") for o in outcomes]
    if rule.action == "record":
        return b""
    return b": bulkhead-grounding " + header_value(outcomes).encode() + b"\n\n"
