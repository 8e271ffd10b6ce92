"""The journey of one request, top to bottom.

authenticate -> parse -> policy -> inspect (PII) -> risk -> decide -> transform -> cache -> admit ->
call -> restore + output scan -> (verify) -> respond. Each stage is a plain function of the values
before it; `ctx` carries what the audit record and the response headers need (the envelope in
app.py writes the record, whatever happens here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from adapters.base import UpstreamError, Usage
from gateway import cache, pricing
from gateway.auth import AuthError, Principal, extract_key
from gateway.context import RequestContext
from gateway.errors import APIError, bad_request
from gateway.limits import MICRO_USD, estimate_tokens
from gateway.policy import Backend
from gateway.privacy import Privacy, inspect, scan_answer
from gateway.risk_stage import assess_risk
from gateway.routing import decide
from gateway.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, check_headers, parse
from gateway.state import GatewayState
from gateway.telemetry import CACHE, COST, TOKENS, UPSTREAM_ERRORS
from gateway.upstream import call_route, upstream_error

log = logging.getLogger("bulkhead")

_AUTH_MESSAGES = {
    "missing_api_key": "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
    "invalid_api_key": "Incorrect API key provided.",
    "key_revoked": "This API key has been revoked.",
    "key_expired": "This API key has expired.",
}

# The endpoint name, the request model, the adapter method and its streaming twin.
ENDPOINTS = {
    "chat": (ChatCompletionRequest, "chat", "stream_chat"),
    "completions": (CompletionRequest, "completion", "stream_completion"),
    "embeddings": (EmbeddingRequest, "embeddings", None),
}


async def model_call(gw: GatewayState, ctx: RequestContext, request: Request, mode: str) -> Response:
    schema, method, stream_method = ENDPOINTS[mode]
    with ctx.stage("authenticate"):
        principal = await authenticate(gw, ctx, request, roles=("app", "admin"))
    with ctx.stage("parse"):
        body, req = await parse_request(ctx, request, schema, gw.settings.max_body_bytes)
    policy = gw.policies.for_tenant(principal.tenant)
    ctx.policy_version = policy.version
    tokens = estimate_tokens(body)
    request_body = {k: v for k, v in body.items() if k != "bulkhead"}
    with ctx.stage("inspect"):
        privacy = await inspect(policy.pii, request_body)
        ctx.pii = privacy.audit(None)  # counts on record even if the request goes no further
    with ctx.stage("risk"):
        risk, ctx.risk = await assess_risk(policy.risk, request_body, privacy, request.headers)
    with ctx.stage("decide"):
        latency = await gw.latency.snapshot(principal.tenant_id) if req.model in policy.routing.aliases else None
        route = decide(policy, principal, req.model, mode, body, risk=risk, prompt_tokens=tokens, latency_ms=latency)
        ctx.backend = route.backend.name
        ctx.route = route

    with ctx.stage("transform"):
        outbound = privacy.outbound  # the PII treatment of each backend's trust zone, computed once per zone
        first_body = outbound(route.backend)
    cache_key = None
    if policy.cache.enabled and not ctx.stream:
        # Keyed on the scrubbed request: two prompts that differ only in their PII share an answer,
        # which this request's own vault then restores.
        cache_key = cache.cache_key(principal.tenant_id, route.backend, mode, first_body)
        with ctx.stage("cache"):
            hit = await gw.cache.get(cache_key)
        CACHE.labels("hit" if hit else "miss").inc()
        if hit is not None:
            ctx.detail["cache"] = "hit"
            ctx.usage = Usage.from_openai(hit.get("usage"))
            ctx.pii = privacy.audit(route.backend)
            return json_response(privacy.restore(route.backend, hit), headers={"x-bulkhead-cache": "hit"})
    with ctx.stage("admit"):
        ctx.reservation = await gw.limiter.admit(principal, policy, tokens,
                                                 pricing.micro_usd(route.backend, tokens, body))
    if ctx.stream:
        if stream_method is None:
            raise bad_request(f"The model '{req.model}' does not support streaming.", "stream")
        try:
            with ctx.stage("call"):
                backend, (it, first) = await call_route(gw, ctx, policy, route, stream_method, outbound, stream=True)
        except APIError:
            await settle(gw, ctx, route.backend, Usage())
            raise
        return stream_response(gw, ctx, backend, it, first, req, privacy)
    try:
        with ctx.stage("call"):
            backend, result = await call_route(gw, ctx, policy, route, method, outbound)
    except APIError:
        await settle(gw, ctx, route.backend, Usage())
        raise
    await settle(gw, ctx, backend, result.usage)
    if result.extra.get("experts"):
        ctx.detail["experts"] = result.extra["experts"]
    headers = {}
    if cache_key is not None:
        await gw.cache.set(cache_key, result.body, policy.cache.ttl_seconds)
        headers["x-bulkhead-cache"] = "miss"
    with ctx.stage("restore"):
        answer = privacy.restore(backend, result.body)
        try:
            answer = await scan_answer(privacy, answer)
        finally:
            ctx.pii = privacy.audit(backend)
    # verify: hallucination checks (their own issue).
    return json_response(answer, headers=headers)


async def parse_request(ctx: RequestContext, request: Request, schema, limit: int) -> tuple[dict, Any]:
    check_headers(request.headers)
    body = await read_json(request, limit)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        ctx.requested_model = body["model"]
    req = parse(schema, body)
    ctx.stream = bool(getattr(req, "stream", False))
    return body, req


async def authenticate(gw: GatewayState, ctx: RequestContext, request: Request, roles: tuple[str, ...]) -> Principal:
    raw = extract_key(request.headers)
    if not raw:
        raise APIError(401, _AUTH_MESSAGES["missing_api_key"], "missing_api_key")
    try:
        principal = await gw.keys.authenticate(raw)
    except AuthError as exc:
        code = str(exc)
        raise APIError(401, _AUTH_MESSAGES.get(code, "Invalid API key."), code) from None
    ctx.principal = principal
    if not principal.has_role(*roles):
        raise APIError(403, f"This key's role may not call {ctx.endpoint}.", "insufficient_role")
    return principal


async def read_json(request: Request, limit: int) -> Any:
    ctype = request.headers.get("content-type", "")
    if ctype and ctype.split(";")[0].strip().lower() != "application/json":
        raise bad_request("Content-Type must be application/json.", code="unsupported_content_type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request body exceeds {limit} bytes.", "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request body exceeds {limit} bytes.", "request_too_large")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError:
        raise bad_request("The request body is not valid JSON (or not UTF-8).", code="invalid_json") from None
    if _depth_exceeds(body, MAX_JSON_DEPTH):
        raise bad_request(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep")
    return body


MAX_JSON_DEPTH = 64


def _depth_exceeds(value: Any, limit: int) -> bool:
    """Iterative, so a hostile body cannot exhaust the stack of the code that walks it later."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (node.values() if isinstance(node, dict) else node))
    return False


def stream_response(gw: GatewayState, ctx: RequestContext, backend: Backend, it: AsyncIterator[dict], first: dict,
                    req, privacy: Privacy) -> Response:
    """Placeholders are restored chunk by chunk, holding back only text that could still be the
    start of one. After the first chunk a failure can no longer change the status: it ends the
    stream with an error event (the client has already seen a 200)."""
    client_wants_usage = bool(req.stream_options and req.stream_options.include_usage)
    restorer = privacy.stream_restorer(backend)
    answer = StreamText()

    async def events() -> AsyncIterator[bytes]:
        usage = Usage()
        try:
            async with contextlib.aclosing(it):
                chunk = first
                while True:
                    if chunk.get("usage"):
                        usage = Usage.from_openai(chunk["usage"])
                        if not client_wants_usage:
                            chunk = {k: v for k, v in chunk.items() if k != "usage"}
                    if "bulkhead_experts" in chunk:
                        ctx.detail["experts"] = chunk.pop("bulkhead_experts")
                    if restorer is not None:
                        chunk = restorer.feed_chunk(chunk)
                    answer.add(chunk)
                    if chunk.get("choices") or (client_wants_usage and "usage" in chunk):
                        yield b"data: " + orjson.dumps(chunk) + b"\n\n"
                    try:
                        chunk = await anext(it)
                    except StopAsyncIteration:
                        break
            if restorer is not None:
                held = restorer.finish()
                if held:
                    tail = {**first, "choices": held}
                    tail.pop("usage", None)
                    answer.add(tail)
                    yield b"data: " + orjson.dumps(tail) + b"\n\n"
            yield b"data: [DONE]\n\n"
            # The stream is out: PII the model added can only be recorded now, not withheld.
            await scan_answer(privacy, answer.as_body(), can_change=False)
        except UpstreamError as exc:
            UPSTREAM_ERRORS.labels(backend.name, exc.kind).inc()
            err = upstream_error(exc)
            ctx.error_code = "stream_" + err.code
            yield b"data: " + orjson.dumps(err.body()) + b"\n\n"
        except asyncio.CancelledError:
            ctx.error_code = "client_disconnected"
            raise
        finally:
            ctx.pii = privacy.audit(backend)
            await settle(gw, ctx, backend, usage)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


class StreamText:
    """The streamed answer's text per choice, kept for the output scan after the stream."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}

    def add(self, chunk: dict) -> None:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            text = delta.get("content") if delta else choice.get("text")
            if isinstance(text, str):
                self.parts.setdefault(int(choice.get("index") or 0), []).append(text)

    def as_body(self) -> dict:
        return {"choices": [{"message": {"content": "".join(p)}} for _, p in sorted(self.parts.items())]}


async def settle(gw: GatewayState, ctx: RequestContext, backend: Backend, usage: Usage) -> None:
    """Record what the call used and correct the admission estimates (tokens, budget) by it."""
    ctx.usage = usage
    ctx.cost_usd = pricing.cost_usd(backend, usage)
    if ctx.reservation is not None:
        reservation, ctx.reservation = ctx.reservation, None
        try:
            await gw.limiter.settle(reservation, usage.prompt_tokens + usage.completion_tokens,
                                    int(ctx.cost_usd * MICRO_USD))
        except Exception as exc:  # a failed correction must not fail an answered request
            log.warning("could not settle limits (%s)", type(exc).__name__)
    TOKENS.labels(backend.name, "in").inc(usage.prompt_tokens)
    TOKENS.labels(backend.name, "out").inc(usage.completion_tokens)
    COST.labels(backend.name).inc(ctx.cost_usd)


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
