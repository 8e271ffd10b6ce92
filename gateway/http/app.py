"""The HTTP surface: routes, the per-request envelope (request id, route header, audit record,
metrics) and OpenAI-shaped errors for everything that goes wrong."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import signal
import time

import orjson
from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway import pipeline
from gateway.compliance.desk import routes as desk
from gateway.config import Settings
from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.experts import snapshot
from gateway.http import admin, openapi
from gateway.http.authn import authenticate
from gateway.http.jsonio import json_response
from gateway.http.serving import MAX_HEADER_BYTES, headers_too_large, request_timeout
from gateway.logs import request_line
from gateway.record import event_from
from gateway.routing import visible_backends
from gateway.state import GatewayState
from gateway.telemetry import (
    CONTENT_TYPE,
    LATENCY,
    REQUESTS,
    metrics_payload,
    request_attributes,
    set_error_status,
    setup_tracing,
    shutdown_tracing,
    tracer,
)

log = logging.getLogger("bulkhead")


def _state(request: Request) -> tuple[GatewayState, RequestContext]:
    return request.app.state.gw, request.scope["state"]["ctx"]


def api(handler):
    """Wraps a /v1 handler: an APIError becomes its OpenAI-shaped response and its code is audited."""

    async def endpoint(request: Request) -> Response:
        gw, ctx = _state(request)
        try:
            return await handler(gw, ctx, request)
        except APIError as err:
            ctx.error_code = err.code
            return err.response()

    endpoint.__name__ = handler.__name__
    return endpoint


@api
async def chat_completions(gw, ctx, request):
    return await pipeline.model_call(gw, ctx, request, "chat")


@api
async def completions(gw, ctx, request):
    return await pipeline.model_call(gw, ctx, request, "completions")


@api
async def embeddings(gw, ctx, request):
    return await pipeline.model_call(gw, ctx, request, "embeddings")


def _model_card(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "bulkhead"}


@api
async def list_models(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("app", "admin"))
    policy = gw.policies.for_tenant(principal.tenant)
    data = [_model_card(b.name) for b in visible_backends(policy, principal)]
    data += [_model_card(alias) for alias in policy.routing.aliases]
    return json_response({"object": "list", "data": data})


@api
async def get_model(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("app", "admin"))
    name = request.path_params["model"]
    ctx.requested_model = name
    policy = gw.policies.for_tenant(principal.tenant)
    if name in policy.routing.aliases or any(b.name == name for b in visible_backends(policy, principal)):
        return json_response(_model_card(name))
    raise APIError(404, f"The model '{name}' does not exist or you do not have access to it.", "model_not_found",
                   param="model")


async def healthz(request: Request) -> Response:
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    checks = await request.app.state.gw.readiness()
    ready = all(v == "ok" or v.startswith("degraded") for v in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    alarms = request.app.state.gw.alarms()
    if alarms:
        body["detail"] = alarms
    return json_response(body, 200 if ready else 503)


def _bearer_is(request: Request, token: str) -> bool:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


async def metrics(request: Request) -> Response:
    gw = request.app.state.gw
    token = gw.settings.metrics_token
    if token and not _bearer_is(request, token):
        err = APIError(401, "/metrics needs the metrics token: Authorization: Bearer <BULKHEAD_METRICS_TOKEN>.",
                       "invalid_metrics_token")
        return err.response()
    snapshot(gw, [gw.policies.default, *gw.policies.tenants.values()])  # refresh the expert gauges
    # Backends every tenant shares keep their names; a tenant's own are its business (see telemetry).
    shared = None if gw.settings.metrics_backend_names else {b.name for b in gw.policies.default.backends}
    return Response(metrics_payload(shared, gw.settings.secret), media_type=CONTENT_TYPE)


async def openapi_json(request: Request) -> Response:
    return Response(openapi.document(), media_type="application/json")


ROUTES = [
    Route("/v1/chat/completions", chat_completions, methods=["POST"]),
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/embeddings", embeddings, methods=["POST"]),
    Route("/v1/models", list_models, methods=["GET"]),
    Route("/v1/models/{model:path}", get_model, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi_json, methods=["GET"]),
    *admin.routes(api),
    *desk.routes(),
]


async def http_error(request: Request, exc: HTTPException) -> Response:
    codes = {404: ("Unknown request URL.", "unknown_url"), 405: ("Method not allowed.", "method_not_allowed")}
    message, code = codes.get(exc.status_code, (str(exc.detail), "http_error"))
    ctx = request.scope.get("state", {}).get("ctx")
    if ctx is not None:
        ctx.error_code = code
    response = APIError(exc.status_code, message, code).response()
    if exc.status_code == 405:  # every method of the path, where several routes share it
        methods = {m for route in request.app.routes if route.matches(request.scope)[0] != Match.NONE
                   for m in getattr(route, "methods", None) or ()}
        response.headers["allow"] = ", ".join(sorted(methods))
    return response


class _BodyDeadline:
    """`receive` with a deadline on the request body: a client trickling it would hold a task and a
    connection for as long as it liked. Past the deadline reading the body raises a 408, which the
    handler answers and the audit records. Reads once the body is in or the response has begun
    (waiting for a disconnect) are not bounded."""

    __slots__ = ("_receive", "_at", "done")

    def __init__(self, receive: Receive, seconds: float) -> None:
        self._receive = receive
        self._at = asyncio.get_running_loop().time() + seconds
        self.done = False

    async def __call__(self) -> Message:
        if self.done:
            return await self._receive()
        deadline = asyncio.timeout_at(self._at)
        try:
            async with deadline:
                message = await self._receive()
        except TimeoutError:
            if not deadline.expired():
                raise
            self.done = True
            raise request_timeout("body") from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done = True
        return message


def _endpoint_label(ctx: RequestContext) -> str:
    """A bounded set of metric labels: client-chosen paths must not mint new time series."""
    if ctx.endpoint.startswith("/v1/models/"):
        return "/v1/models/{model}"
    return ctx.endpoint if ctx.error_code not in ("unknown_url", "method_not_allowed") else "other"


_PROPAGATED = (b"traceparent", b"tracestate", b"baggage")


def _caller_context(headers: list[tuple[bytes, bytes]]) -> Context | None:
    """The caller's trace (W3C traceparent, tracestate, baggage) for the request span to continue;
    None, at the cost of one pass over the header names, when the caller sent none."""
    carrier = None
    for name, value in headers:
        if name in _PROPAGATED:
            carrier = carrier or {}
            carrier[name.decode("latin-1")] = value.decode("latin-1")
    return propagate.extract(carrier) if carrier else None


class RequestEnvelope:
    """Pure ASGI (no per-request task or body buffering, which streaming needs): gives every /v1
    request its context, headers, trace span, metrics and exactly one audit record, whatever
    happens inside, an unexpected exception included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The server has the headers already (uvicorn's guard in gateway/http/serving.py bounds how many
        # bytes it buffers); this answers the same 431 under any ASGI server.
        oversized = sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES
        if not scope["path"].startswith("/v1/"):
            if oversized:
                await headers_too_large().response()(scope, receive, send)
                return
            with contextlib.suppress(ClientDisconnect):  # the client left: nobody to answer, nothing failed
                await self.app(scope, receive, send)
            return
        gw: GatewayState = scope["app"].state.gw
        ctx = RequestContext(method=scope["method"], endpoint=scope["path"])
        scope.setdefault("state", {})["ctx"] = ctx
        receive = _BodyDeadline(receive, gw.settings.body_timeout)
        started = audited = False
        held_start: Message | None = None  # sent with the first body, so strict mode can still answer 503
        held_done: Message | None = None

        def strict_timeout() -> float | None:
            if ctx.principal is None:
                return None
            policy = gw.policies.for_tenant(ctx.principal.tenant).audit
            return policy.strict_timeout_s if policy.mode == "strict" else None

        async def durable() -> bool:
            nonlocal audited
            audited = True
            return await gw.audit.submit_durable(event_from(ctx, gw.settings.secret), strict_timeout())

        async def send_with_headers(message: Message) -> None:
            nonlocal started, held_start, held_done
            if message["type"] == "http.response.start":
                started = receive.done = True
                ctx.status = message["status"]
                headers = MutableHeaders(scope=message)
                if ctx.error_code == "request_timeout":
                    headers["connection"] = "close"  # the rest of the slow body is not worth waiting for
                headers["x-bulkhead-request-id"] = ctx.request_id
                headers["x-bulkhead-route"] = ctx.backend or "none"
                # What the gateway itself added: everything so far except waiting on the upstream.
                overhead = ctx.elapsed_ms() - ctx.stages.get("call", 0.0)
                headers["x-bulkhead-overhead-ms"] = f"{overhead:.2f}"
                if ctx.risk is not None:
                    headers["x-bulkhead-risk-tier"] = ctx.risk.tier
                if ctx.grounding is not None:
                    headers["x-bulkhead-grounding"] = ctx.grounding
                if ctx.cache is not None:
                    headers["x-bulkhead-cache"] = ctx.cache
                if not ctx.stream and ctx.backend and ctx.status < 400:
                    headers["x-bulkhead-cost-usd"] = f"{ctx.cost_usd:.8f}"
                held_start = message
                return
            if message["type"] == "http.response.body" and strict_timeout() is not None and not audited:
                final = not message.get("more_body", False)
                if held_start is not None and final:
                    # Strict, not streamed: nothing leaves before the event is committed.
                    if not await durable():
                        held_start = None
                        ctx.status, ctx.error_code = 503, "audit_unavailable"
                        await _audit_unavailable().response()(scope, receive, send_with_headers)
                        return
                elif message.get("body", b"").endswith(b"data: [DONE]\n\n"):
                    held_done = message  # the stream's end waits for its record
                    return
                elif final and held_done is not None:
                    if not await durable():
                        held_done = {**held_done, "body": b"data: " + orjson.dumps(_audit_unavailable().body()) +
                                     b"\n\n"}
                    await send({**held_done, "more_body": True})
                    held_done = None
            if held_start is not None:
                start, held_start = held_start, None
                await send(start)
            await send(message)

        if oversized:
            ctx.status, ctx.error_code = 431, "request_headers_too_large"
            await headers_too_large().response()(scope, receive, send_with_headers)
            gw.audit.submit(event_from(ctx, gw.settings.secret))
            request_line(ctx, _endpoint_label(ctx))
            return
        if not gw.audit.accepting:
            # Nothing more can be recorded (database down, spool full): serve nothing unrecorded.
            ctx.status, ctx.error_code = 503, "audit_unavailable"
            await _audit_unavailable().response()(scope, receive, send_with_headers)
            gw.audit.submit(event_from(ctx, gw.settings.secret))
            request_line(ctx, _endpoint_label(ctx))
            return
        # A server span that continues the caller's trace; its route and the rest are set at its end.
        with tracer().start_as_current_span("request", context=_caller_context(scope["headers"]),
                                            kind=SpanKind.SERVER) as span:
            try:
                await self.app(scope, receive, send_with_headers)
            except ClientDisconnect:
                # The client went away while sending its body: nobody to answer, and nothing in the
                # gateway failed (nginx's 499), so no error line either.
                ctx.status, ctx.error_code = 499, "client_disconnected"
            except Exception as exc:
                # The type alone is logged: exception text can carry request content.
                log.error("unhandled %s on %s %s", type(exc).__name__, ctx.method, ctx.endpoint)
                ctx.error_code = ctx.error_code or "internal_error"
                if not started:
                    err = APIError(500, "The gateway failed to process the request.", "internal_error")
                    await err.response()(scope, receive, send_with_headers)
                else:
                    ctx.status = ctx.status or 500
            finally:
                if held_start is not None:  # a response that never sent its body
                    await send(held_start)
                label = _endpoint_label(ctx)
                if span.is_recording():
                    span.set_attributes(request_attributes(ctx, label))
                    set_error_status(span, ctx.status, ctx.error_code)
                if not audited:
                    gw.audit.submit(event_from(ctx, gw.settings.secret))
                REQUESTS.labels(label, str(ctx.status), ctx.backend or "none").inc()
                LATENCY.labels(label).observe(ctx.elapsed_ms() / 1000)
                request_line(ctx, label, span.get_span_context().trace_id)


def _audit_unavailable() -> APIError:
    return APIError(503, "The gateway cannot record this request in its audit trail right now; retry shortly.",
                    "audit_unavailable")


def _reload_on_sighup(gw: GatewayState) -> None:
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(gw.reloader.reload("sighup")))
    except (NotImplementedError, RuntimeError, ValueError):
        # not the main thread (some servers run the app elsewhere): the watcher and the API remain
        log.info("SIGHUP reload unavailable in this server process")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        setup_tracing()
        t0 = time.perf_counter()
        app.state.gw = await GatewayState.start(settings)
        _reload_on_sighup(app.state.gw)
        log.info("bulkhead ready in %.0f ms", (time.perf_counter() - t0) * 1000)
        try:
            yield
        finally:
            t1 = time.perf_counter()
            await app.state.gw.close()
            shutdown_tracing()
            log.info("bulkhead stopped: audit queue flushed, connections closed in %.0f ms",
                     (time.perf_counter() - t1) * 1000)

    app = Starlette(routes=ROUTES, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.add_middleware(RequestEnvelope)
    return app

