"""The `call` stage: the chosen backend first, then the decision's fallbacks (all from the same
allowed set), each behind its circuit breaker, with retries for transient failures inside a
per-backend retry budget and at most `routing.max_attempts` attempts in all. A stream may be retried
or moved only until its first chunk arrives."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from adapters.base import UpstreamError
from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.limits import RedisGuard
from gateway.policy import Backend
from gateway.telemetry import UPSTREAM_ERRORS

if TYPE_CHECKING:  # the state holds this module's trackers
    from gateway.state import GatewayState

BREAKER_FAULTS = {"timeout", "unavailable", "bad_response"}


def upstream_error(exc: UpstreamError) -> APIError:
    if exc.kind == "timeout":
        return APIError(504, "The upstream model timed out.", "upstream_timeout")
    if exc.kind == "rate_limited":
        return APIError(429, "The upstream model is rate limited; retry later.", "upstream_rate_limited",
                        retry_after=exc.retry_after or 1)
    if exc.kind == "unconfigured":
        # The message names the variable ("OPENAI_API_KEY is not set"), never a value. The router
        # leaves such backends out (gateway/routing.py), so this is a variable unset since then.
        return APIError(503, f"This backend has no provider credentials configured on the gateway: {exc.message}. "
                        "An operator sets it in the gateway's environment and restarts it; nothing was sent.",
                        "backend_not_configured")
    if exc.kind == "unavailable":
        if exc.status is None or exc.status == 503:
            return APIError(503, "The upstream model is unavailable.", "upstream_unavailable")
        return APIError(502, f"The upstream model failed ({exc.status}).", "upstream_error")
    if exc.kind == "rejected":
        status = exc.status if exc.status in (400, 404, 413, 422) else 400
        return APIError(status, "The upstream model rejected the request.", "upstream_rejected")
    return APIError(502, "The upstream model returned an invalid response.", "upstream_bad_response")


class RetryBudget:
    """Retries may add at most `ratio` extra load per backend: every first attempt earns `ratio`
    of a token, every retry spends one (a bucket of at most `burst`), so a failing backend is not
    hammered by retries on top of its normal traffic."""

    def __init__(self, ratio: float = 0.2, burst: float = 10.0) -> None:
        self._ratio, self._burst = ratio, burst
        self._tokens: dict[str, float] = {}

    def earn(self, backend: str) -> None:
        self._tokens[backend] = min(self._burst, self._tokens.get(backend, self._burst) + self._ratio)

    def spend(self, backend: str) -> bool:
        tokens = self._tokens.get(backend, self._burst)
        if tokens < 1:
            return False
        self._tokens[backend] = tokens - 1
        return True


async def call_route(gw: GatewayState, ctx: RequestContext, method: str, body_for: Callable[[Backend], dict[str, Any]],
                     *, stream: bool = False) -> tuple[Backend, Any]:
    """The request's route (`ctx.route`), each backend sent `body_for(backend)`. Returns (backend,
    result); for a stream the result is (iterator, first chunk)."""
    policy, route, tenant = ctx.policy, ctx.route, ctx.principal.tenant_id
    attempts_left = policy.routing.max_attempts
    errors: list[APIError] = []
    candidates = [b for b in (route.backend, *route.fallbacks) if hasattr(gw.adapters.get(b), method)]
    for backend in candidates:
        adapter = gw.adapters.get(backend)
        fn = getattr(adapter, method)
        for attempt in range(backend.max_retries + 1):
            if attempts_left == 0:
                break
            if not await gw.breakers.allow(tenant, backend, policy.breaker):
                errors.append(APIError(503, f"The backend '{backend.name}' is failing; its circuit breaker is open.",
                                       "backend_circuit_open", retry_after=policy.breaker.open_seconds))
                break
            if attempt == 0:
                gw.retry_budget.earn(backend.name)
            elif not gw.retry_budget.spend(backend.name):
                break
            attempts_left -= 1
            ctx.attempts += 1
            ctx.backend, ctx.provider_model = backend.name, adapter.provider_model
            started = time.perf_counter()
            try:
                result = await (_open_stream(fn, body_for(backend), backend.timeout_s) if stream
                                else fn(body_for(backend), timeout=backend.timeout_s))
            except UpstreamError as exc:
                UPSTREAM_ERRORS.labels(backend.name, exc.kind).inc()
                if exc.kind in BREAKER_FAULTS:
                    await gw.breakers.record(tenant, backend, policy.breaker, ok=False)
                errors.append(upstream_error(exc))
                if exc.kind == "rejected":
                    raise errors[-1] from None  # the request itself is wrong: no other backend will differ
                if not exc.retryable:
                    break
                await asyncio.sleep(min(exc.retry_after or 0.1 * 2**attempt, 2.0))
                continue
            await gw.breakers.record(tenant, backend, policy.breaker, ok=True)
            await gw.latency.observe(tenant, backend.name, (time.perf_counter() - started) * 1000)
            return backend, result
    if len(candidates) <= 1 and errors:
        raise errors[-1]
    reason = errors[-1].message if errors else "no allowed backend could be tried"
    raise APIError(503, f"Every allowed backend failed; the request was not sent anywhere else. Last: {reason}",
                   "all_backends_failed", retry_after=errors[-1].retry_after if errors else None)


async def _open_stream(fn, body: dict[str, Any], timeout: float) -> tuple[AsyncIterator[dict], dict]:
    it = fn(body, timeout=timeout)
    try:
        return it, await anext(it)
    except StopAsyncIteration:
        raise UpstreamError("bad_response", "upstream stream was empty") from None
    except BaseException:
        await it.aclose()
        raise


class LatencyTracker:
    """EWMA of successful call latency per tenant and backend, the router's tie-break. Shared
    through Redis when there is one (and it answers: a hint is not worth waiting on)."""

    ALPHA = 0.2

    def __init__(self, redis=None, guard=None) -> None:
        self._redis = redis
        self._guard = guard or RedisGuard()
        self._local: dict[str, dict[str, float]] = {}

    async def observe(self, tenant_id: str, backend: str, ms: float) -> None:
        table = self._local.setdefault(tenant_id, {})
        table[backend] = ms if backend not in table else (1 - self.ALPHA) * table[backend] + self.ALPHA * ms
        if self._redis is not None and self._guard.usable():
            try:
                await self._redis.hset(f"bulkhead:{tenant_id}:latency", backend, f"{table[backend]:.3f}")
            except Exception as exc:  # a tie-break hint is not worth failing a request over
                self._guard.failed(exc)

    async def snapshot(self, tenant_id: str) -> dict[str, float]:
        if self._redis is not None and self._guard.usable():
            try:
                raw = await self._redis.hgetall(f"bulkhead:{tenant_id}:latency")
                return {k.decode(): float(v) for k, v in raw.items()}
            except Exception as exc:
                self._guard.failed(exc)
        return dict(self._local.get(tenant_id, {}))
