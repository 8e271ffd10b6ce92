"""The journey of one model request, top to bottom.

authenticate -> parse -> policy -> inspect (PII) -> risk -> decide -> transform -> cache -> admit ->
call -> restore + output scan -> verify -> respond -> record. Each stage is a function of the values
before it and sets its own typed value on `ctx`, the request's record, which the response headers
and the audit record are read from.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway import cache, pricing, spotlight
from gateway.answer import Answer, as_event_stream
from gateway.context import RequestContext
from gateway.hallucination.stage import rule_for
from gateway.http.authn import authenticate
from gateway.http.jsonio import json_response, read_model_request
from gateway.pii.stage import inspect_model_request
from gateway.risk.stage import assess_risk
from gateway.routing import decide
from gateway.state import GatewayState
from gateway.telemetry import CACHE

SSE_HEADERS = {"cache-control": "no-cache"}


async def model_call(gw: GatewayState, ctx: RequestContext, http: Request, mode: str) -> Response:
    # authenticate: the API key -> a principal of one tenant, with roles
    with ctx.stage("authenticate"):
        principal = await authenticate(gw, ctx, http, roles=("app", "admin"))

    # parse: the body, hardened and validated, with its texts by role
    with ctx.stage("parse"):
        ctx.request = request = await read_model_request(ctx, http, mode, gw.settings.max_body_bytes)

    # policy: the tenant's compiled policy, as hot reload last left it
    ctx.policy = policy = gw.policies.for_tenant(principal.tenant)

    # inspect: personal data and secrets in every text of the body (fails closed: see pii/stage.py)
    with ctx.stage("inspect"):
        ctx.privacy = privacy = await inspect_model_request(policy, request)

    # risk: the caller's texts, the PII found and the declared data class -> a tier and an action
    with ctx.stage("risk"):
        declared = http.headers.get(policy.risk.data_class.header)
        ctx.risk = risk = await assess_risk(policy.risk, request.texts, privacy, declared)

    # decide: the cheapest backend allowed for this risk and good enough for this task
    with ctx.stage("decide"):
        latency = await gw.latency.snapshot(principal.tenant_id) if request.model in policy.routing.aliases else None
        ctx.route = route = decide(policy, principal, request, risk, latency)
        ctx.backend = route.backend.name

    # transform: the body as the chosen backend's trust zone may see it (computed once per zone), then
    # its tool results and documents marked as data where the policy asks: after the PII treatment, so
    # placeholders pass through whole and the answer still restores; every call of this request,
    # fallbacks and escalations too, sends it (gateway/spotlight.py)
    with ctx.stage("transform"):
        privacy.spotlight = spotlight.for_request(policy.spotlight, ctx.notes)
        privacy.outbound(route.backend)  # a `block` treatment refuses here
    answer = Answer(gw, ctx, rule_for(policy, ctx, request))

    # cache: an answer this tenant already got from this backend for this exact outbound request
    cache_key = None
    if policy.cache.enabled and not request.stream:
        # Keyed on the scrubbed request: two prompts that differ only in their PII share an answer,
        # which this request's own vault then restores. Before spotlighting, whose mark is random per
        # request, but with its settings: an answer got without it is not served where it applies.
        cache_key = cache.cache_key(principal.tenant_id, route.backend, mode, privacy.treated(route.backend),
                                    answer.rule, policy.spotlight)
        with ctx.stage("cache"):
            hit = await gw.cache.get(cache_key)
        CACHE.labels("hit" if hit else "miss").inc()
        if hit is not None:
            return json_response(await answer.replay(route.backend, hit))

    # admit: rate limits and the budget reservation, corrected by the call's real usage when it settles
    with ctx.stage("admit"):
        tokens = request.tokens
        ctx.reservation = await gw.limiter.admit(principal, policy, tokens,
                                                 pricing.micro_usd(route.backend, tokens, request.body))

    # A check that may withhold or replace the answer needs all of it before anything is sent.
    if ctx.stream and answer.rule is not None and answer.rule.action in ("block", "escalate"):
        if policy.hallucination.buffer_streams:
            ctx.notes["stream"] = "buffered for the hallucination check"
            ctx.stream = False
        else:
            ctx.notes["check_action"] = (f"{answer.rule.action} needs hallucination.buffer_streams for streams; "
                                         "flagged instead")

    # call -> restore + output scan -> verify -> respond (gateway/answer.py: once for both forms)
    if ctx.stream:
        backend, (chunks, first) = await answer.call(stream=True)
        return StreamingResponse(answer.stream(backend, chunks, first), media_type="text/event-stream",
                                 headers=SSE_HEADERS)
    backend, result = await answer.call(stream=False)
    body = await answer.whole(backend, result, cache_key=cache_key)
    if request.stream:  # buffered for a check: the checked answer as the event stream the client asked for
        return Response(as_event_stream(body), media_type="text/event-stream", headers=SSE_HEADERS)
    return json_response(body)
    # record: the envelope (gateway/http/app.py) writes this request's one audit record from `ctx`
    # (gateway/record.py) once the response is out, whatever happened above.
