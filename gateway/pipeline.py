"""The journey of one request, top to bottom.

authenticate -> parse -> policy -> inspect (PII) -> risk -> decide -> transform -> cache -> admit ->
call -> restore + output scan -> (verify) -> respond. Each stage is a plain function of the values
before it; `ctx` carries what the audit record and the response headers need (the envelope in
app.py writes the record, whatever happens here).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from adapters.base import UpstreamError, Usage
from gateway import cache, pricing
from gateway.audit.content import content_record
from gateway.auth import AuthError, AuthUnavailable, Principal, extract_key
from gateway.context import RequestContext
from gateway.errors import APIError, bad_request
from gateway.hallucination import calls as checking
from gateway.hallucination.stage import answer_text
from gateway.limits import MICRO_USD, estimate_prompt_tokens, estimate_tokens
from gateway.pii.stage import Privacy, inspect, scan_answer
from gateway.policy import Backend
from gateway.risk.stage import assess_risk
from gateway.routing import decide
from gateway.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, check_headers, parse
from gateway.state import GatewayState, drain_requested
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
        body, req, large = await parse_request(ctx, request, schema, gw.settings.max_body_bytes)
    policy = gw.policies.for_tenant(principal.tenant)
    ctx.policy_version = policy.version
    tokens = estimate_tokens(body)
    request_body = {k: v for k, v in body.items() if k != "bulkhead"}
    with ctx.stage("inspect"):
        privacy = await inspect(policy.pii, request_body, large=large)
        ctx.pii = privacy.audit(None)  # counts on record even if the request goes no further
        named = policy.backend(req.model)
        if named is not None and not policy.routing.substitute_named:
            privacy.check_media(named)  # a named backend the media may not reach: say so, not "no backend"
    keep_content(gw, ctx, policy, request_body, privacy, None)
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
    rule = checking.rule_for(policy, ctx, body) if mode == "chat" else None  # body: `bulkhead.context` counts
    cache_key = None
    if policy.cache.enabled and not ctx.stream:
        # Keyed on the scrubbed request: two prompts that differ only in their PII share an answer,
        # which this request's own vault then restores.
        cache_key = cache.cache_key(principal.tenant_id, route.backend, mode, first_body, rule)
        with ctx.stage("cache"):
            hit = await gw.cache.get(cache_key)
        CACHE.labels("hit" if hit else "miss").inc()
        if hit is not None:
            return await cached_answer(gw, ctx, policy, route.backend, privacy, hit)
    with ctx.stage("admit"):
        ctx.reservation = await gw.limiter.admit(principal, policy, tokens,
                                                 pricing.micro_usd(route.backend, tokens, body))
    if ctx.stream and rule is not None and rule.action in ("block", "escalate"):
        if policy.hallucination.buffer_streams:
            ctx.detail["stream"] = "buffered for the hallucination check"
            ctx.stream = False  # answered below as one complete event stream
            answer = await _answer(gw, ctx, policy, route, method, outbound, privacy, cache_key=None,
                                   rule=rule, body=body, headers={})
            return buffered_stream(answer)
        ctx.detail["check_action"] = f"{rule.action} needs hallucination.buffer_streams for streams; flagged instead"
    if ctx.stream:
        if stream_method is None:
            raise bad_request(f"The model '{req.model}' does not support streaming.", "stream")
        try:
            with ctx.stage("call"):
                backend, (it, first) = await call_route(gw, ctx, policy, route, stream_method, outbound, stream=True)
        except APIError:
            await settle(gw, ctx, route.backend, Usage())
            raise
        verify = None if rule is None else (route, rule, body)
        return stream_response(gw, ctx, policy, backend, it, first, req, privacy, verify)
    headers: dict[str, str] = {}
    answer = await _answer(gw, ctx, policy, route, method, outbound, privacy, cache_key=cache_key, rule=rule,
                           body=body, headers=headers)
    return json_response(answer, headers=headers)


async def _answer(gw, ctx, policy, route, method, outbound, privacy, *, cache_key, rule, body, headers) -> dict:
    """call -> restore + output scan -> verify, for an answer that is sent whole."""
    try:
        with ctx.stage("call"):
            backend, result = await call_route(gw, ctx, policy, route, method, outbound)
    except APIError:
        await settle(gw, ctx, route.backend, Usage())
        raise
    await settle(gw, ctx, backend, result.usage)
    if result.extra.get("experts"):
        ctx.detail["experts"] = result.extra["experts"]
    answer = await restore_and_scan(ctx, privacy, backend, result.body)
    if rule is not None:
        with ctx.stage("verify"):
            answer = await checking.verify(gw, ctx, policy, route, rule, body, privacy, backend, answer, headers)
    if cache_key is not None:
        headers["x-bulkhead-cache"] = "miss"
        # Only an answer that passed every check is kept (one withheld, flagged or redacted here would
        # otherwise come back whole on the next identical request), with the checks it passed.
        passed = not privacy.leaked and not privacy.output_scan_failed
        same = backend.name == route.backend.name == ctx.backend  # not a fallback's or an escalation's
        if passed and same and all(c.get("verdict") == "supported" for c in ctx.checks or ()):
            entry = {"body": result.body, "checks": ctx.checks or [], "annotation": answer.get("bulkhead"),
                     "grounding": headers.get("x-bulkhead-grounding")}
            await gw.cache.set(cache_key, entry, policy.cache.ttl_seconds)
    keep_content(gw, ctx, policy, privacy.body, privacy, answer_text(answer))
    return answer


async def cached_answer(gw, ctx: RequestContext, policy, backend: Backend, privacy: Privacy, hit: dict) -> Response:
    """A stored answer, restored with this request's vault and scanned again: the request's own
    values differ from the one that filled the cache, and so may what the output scan protects."""
    ctx.detail["cache"] = "hit"
    ctx.usage = Usage.from_openai(hit["body"].get("usage"))
    ctx.checks = [{**c, "cached": True} for c in hit.get("checks") or ()] or None
    answer = await restore_and_scan(ctx, privacy, backend, hit["body"])
    headers = {"x-bulkhead-cache": "hit"}
    if hit.get("grounding"):
        headers["x-bulkhead-grounding"] = hit["grounding"]
    if hit.get("annotation"):
        answer = {**answer, "bulkhead": hit["annotation"]}
    keep_content(gw, ctx, policy, privacy.body, privacy, answer_text(answer))
    return json_response(answer, headers=headers)


async def restore_and_scan(ctx: RequestContext, privacy: Privacy, backend: Backend, body: dict) -> dict:
    """The whole answer with this request's values put back, then scanned for personal data it
    did not carry; the PII record is written whatever the scan decides."""
    with ctx.stage("restore"):
        answer = privacy.restore(backend, body)
        try:
            return await scan_answer(privacy, answer)
        finally:
            ctx.pii = privacy.audit(backend)


def buffered_stream(answer: dict) -> Response:
    """A checked, complete answer sent as the event stream the client asked for."""
    chunk = {"id": answer.get("id"), "object": "chat.completion.chunk", "created": answer.get("created"),
             "model": answer.get("model"),
             "choices": [{"index": c.get("index", i), "delta": c.get("message") or {},
                          "finish_reason": c.get("finish_reason")} for i, c in enumerate(answer.get("choices") or [])]}
    if answer.get("bulkhead"):
        chunk["bulkhead"] = answer["bulkhead"]
    payload = b"data: " + orjson.dumps(chunk) + b"\n\ndata: [DONE]\n\n"
    return Response(payload, media_type="text/event-stream", headers={"cache-control": "no-cache"})


def keep_content(gw, ctx: RequestContext, policy, request_body: dict, privacy: Privacy, answer: str | None) -> None:
    """What the audit trail keeps of the text: per-tenant HMACs by default, scrubbed text if the policy opts in."""
    mode = policy.audit.store_content
    if mode == "none" or ctx.principal is None:
        return
    ctx.content = content_record(gw.settings.secret, ctx.principal.tenant_id, request_texts(request_body), answer)
    if mode == "scrubbed":
        ctx.content["text"] = scrubbed_texts(privacy, request_body, answer)


async def parse_request(ctx: RequestContext, request: Request, schema, limit: int) -> tuple[dict, Any, bool]:
    """The body, its validated model, and whether it is large enough to be walked off the event loop."""
    check_headers(request.headers)
    raw = await read_body(request, limit)
    # A large body takes tens of milliseconds to decode, validate and walk: off the event loop, so
    # that other requests and health checks are not kept waiting behind it.
    big = len(raw) >= LARGE_BODY
    body = await asyncio.to_thread(decode_json, raw) if big else decode_json(raw)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        ctx.requested_model = body["model"]
    req = await asyncio.to_thread(parse, schema, body) if big else parse(schema, body)
    ctx.stream = bool(getattr(req, "stream", False))
    return body, req, big


async def authenticate(gw: GatewayState, ctx: RequestContext, request: Request, roles: tuple[str, ...]) -> Principal:
    raw = extract_key(request.headers)
    if not raw:
        raise APIError(401, _AUTH_MESSAGES["missing_api_key"], "missing_api_key")
    try:
        principal = await gw.keys.authenticate(raw)
    except AuthUnavailable:
        raise APIError(503, "The gateway cannot check API keys right now; retry shortly.", "auth_unavailable") from None
    except AuthError as exc:
        code = str(exc)
        raise APIError(401, _AUTH_MESSAGES.get(code, "Invalid API key."), code) from None
    ctx.principal = principal
    if not principal.has_role(*roles):
        raise APIError(403, f"This key's role may not call {ctx.endpoint}.", "insufficient_role")
    return principal


async def read_json(request: Request, limit: int) -> Any:
    return decode_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
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
    return b"".join(chunks)


def decode_json(raw: bytes) -> Any:
    """orjson, plus what it does not refuse by itself: nesting past MAX_JSON_DEPTH and duplicate keys
    (orjson keeps the last one silently; another parser on the way could keep the first)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request(f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_json") from None
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    too_deep, keys = _shape(body, MAX_JSON_DEPTH)
    if too_deep:
        raise bad_request(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep")
    if keys > MAX_JSON_KEYS:
        raise APIError(413, f"The request body has {keys} object keys; the limit is {MAX_JSON_KEYS}.", "too_many_keys")
    # Every key is followed by `"` and `:`; matches of that pattern can only outnumber the keys orjson
    # kept when a key repeats or a string happens to contain `":` (then the exact, slower check decides).
    if keys and len(_KEY_END.findall(raw)) != keys:
        duplicate = _duplicate_key(raw)
        if duplicate is not None:
            raise bad_request(f"The request body has the key '{duplicate}' more than once.", duplicate,
                              code="duplicate_key")
    return body


MAX_JSON_DEPTH = 64
MAX_JSON_KEYS = 50_000
LARGE_BODY = 256 * 1024
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


class _Duplicate(Exception):
    pass


def _duplicate_key(raw: bytes) -> str | None:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            raise _Duplicate(next(k for k, _ in items if k in seen or seen.add(k)))
        return out

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except _Duplicate as dup:
        return str(dup.args[0])
    return None


def _shape(value: Any, limit: int) -> tuple[bool, int]:
    """(nests deeper than `limit`, number of object keys). Iterative, so a hostile body cannot
    exhaust the stack of the code that walks it later."""
    stack, keys = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True, keys
            if isinstance(node, dict):
                keys += len(node)
                stack.extend((child, depth + 1) for child in node.values())
            else:
                stack.extend((child, depth + 1) for child in node)
    return False, keys


def _depth_exceeds(value: Any, limit: int) -> bool:
    return _shape(value, limit)[0]


def stream_response(gw: GatewayState, ctx: RequestContext, policy, backend: Backend, it: AsyncIterator[dict],
                    first: dict, req, privacy: Privacy, verify: tuple | None = None) -> Response:
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
            text = "".join(answer.parts.get(0, []))
            if verify is not None:
                route, rule, request_body = verify
                with ctx.stage("verify"):
                    note = await checking.verify_stream(gw, ctx, policy, route, rule, request_body, privacy, backend,
                                                        text)
                if note:
                    yield note
            keep_content(gw, ctx, policy, privacy.body, privacy, text)
            yield b"data: [DONE]\n\n"
            # The stream is out: PII the model added can only be recorded now, not withheld.
            await scan_answer(privacy, answer.as_body(), can_change=False)
        except UpstreamError as exc:
            UPSTREAM_ERRORS.labels(backend.name, exc.kind).inc()
            err = upstream_error(exc)
            ctx.error_code = "stream_" + err.code
            yield b"data: " + orjson.dumps(err.body()) + b"\n\n"
        except asyncio.CancelledError:
            # cancelled: the client went away, or the drain time after SIGTERM ran out
            ctx.error_code = "server_shutdown" if drain_requested() else "client_disconnected"
            raise
        finally:
            ctx.pii = privacy.audit(backend)
            if not (usage.prompt_tokens or usage.completion_tokens):
                # Cut short before the usage chunk (or a backend that sends none): charge what was
                # streamed, so dropping a stream early is no way around budgets and token limits.
                usage = Usage(estimate_prompt_tokens(privacy.body), -(-answer.chars // 4))
                ctx.detail["usage"] = "estimated"
            await settle(gw, ctx, backend, usage)

    return StreamingResponse(events(), media_type="text/event-stream", headers={"cache-control": "no-cache"})


class StreamText:
    """The streamed answer's text per choice, kept for the output scan after the stream."""

    def __init__(self) -> None:
        self.parts: dict[int, list[str]] = {}
        self.chars = 0  # every choice's text and tool-call arguments, for usage a stream did not report

    def add(self, chunk: dict) -> None:
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
            text = delta.get("content") if delta else choice.get("text")
            if isinstance(text, str):
                self.parts.setdefault(int(choice.get("index") or 0), []).append(text)
                self.chars += len(text)
            for call in delta.get("tool_calls") or () if delta else ():
                args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
                self.chars += len(args) if isinstance(args, str) else 0

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


def request_texts(body: dict) -> list[str]:
    """The texts a request carried, one per message (or prompt / input), for the content HMACs."""
    from gateway.hallucination.stage import _text

    if isinstance(body.get("messages"), list):
        return [_text(m.get("content")) for m in body["messages"] if isinstance(m, dict)]
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, str)]
    return []


def scrubbed_texts(privacy: Privacy, body: dict, answer: str | None) -> dict | None:
    """The request as an external backend would see it (placeholders for what the policy protects)
    and the answer with the same values replaced; nothing when the request was never analysed."""
    if privacy.inspection is None:
        return None
    from gateway.pii.transform import transform_request

    try:
        external = transform_request(body, privacy.inspection, privacy.policy, "external")
    except Exception:  # a `block` treatment: there is no scrubbed form to keep
        return None
    out = {"messages": request_texts(external.body)}
    if answer is not None:
        vault = external.vault
        for value in sorted(vault.values() if vault else (), key=len, reverse=True):
            answer = answer.replace(value, vault.placeholder("X", value))
        out["answer"] = answer
    return out
