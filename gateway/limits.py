"""Admission: requests and tokens per minute, and USD budgets per period, per key and per tenant.

Every check reserves before the call and is settled after it with what the call really used, so a
burst of concurrent requests can overshoot a budget by at most what is in flight. With Redis, one
Lua script checks and reserves every counter atomically, so N replicas share one budget; without
Redis the same arithmetic runs in process (one replica). Every Redis key is namespaced by tenant.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from redis.exceptions import RedisError

from gateway.auth import Principal
from gateway.errors import APIError

log = logging.getLogger("bulkhead")
# What an unreachable or slow Redis raises (the client's socket timeouts are 2 s).
REDIS_ERRORS = (RedisError, OSError, TimeoutError)

MINUTE_MS = 60_000
PERIOD_MS = {"day": 86_400_000, "month": 30 * 86_400_000}
MICRO_USD = 1_000_000

# Per counter: KEYS[i] is its prefix; ARGV holds now, then (limit, amount, window_ms, sliding) per
# counter. Sliding windows weight the previous fixed window by how much of it still overlaps (the
# Cloudflare approximation): one counter per window, O(1) per check.
_LUA = """
local now = tonumber(ARGV[1])
local n = #KEYS
for i = 1, n do
  local limit, amount = tonumber(ARGV[4*i-2]), tonumber(ARGV[4*i-1])
  local window, sliding = tonumber(ARGV[4*i]), ARGV[4*i+1] == '1'
  local current = math.floor(now / window)
  local used = tonumber(redis.call('GET', KEYS[i] .. ':' .. current) or '0')
  if sliding then
    local prev = tonumber(redis.call('GET', KEYS[i] .. ':' .. (current - 1)) or '0')
    used = used + prev * (1 - (now % window) / window)
  end
  if used + amount > limit then
    return {i, window - (now % window)}
  end
end
for i = 1, n do
  local window = tonumber(ARGV[4*i])
  local k = KEYS[i] .. ':' .. math.floor(now / window)
  redis.call('INCRBY', k, ARGV[4*i-1])
  redis.call('PEXPIRE', k, window * 2)
end
return {0, 0}
"""


@dataclass(frozen=True, slots=True)
class Counter:
    key: str
    limit: int
    amount: int
    window_ms: int
    sliding: bool
    message: str
    code: str


@dataclass(slots=True)
class Reservation:
    """What admission reserved; `settle` corrects it by what the call actually used."""

    tokens: list[tuple[str, int]] = field(default_factory=list)  # (key, reserved) per token counter
    micro_usd: list[tuple[str, int, int]] = field(default_factory=list)  # (key, reserved, window_ms)
    at_ms: int = 0
    local: bool = False  # reserved in process because Redis was unreachable


def counters(principal: Principal, policy, tokens: int, micro_usd: int, now_ms: int) -> list[Counter]:
    t, limits, budgets = principal.tenant_id, policy.limits, policy.budgets
    base = f"bulkhead:{t}"
    out: list[Counter] = []
    for scope, rpm, tpm, key in (
        ("key", limits.rpm_per_key, limits.tpm_per_key, f"{base}:key:{principal.key_id}"),
        ("tenant", limits.rpm_per_tenant, limits.tpm_per_tenant, f"{base}:tenant"),
    ):
        if rpm:
            out.append(Counter(f"{key}:rpm", rpm, 1, MINUTE_MS, True,
                               f"Rate limit reached: requests per minute for this {scope}.", "rate_limit_exceeded"))
        if tpm:
            out.append(Counter(f"{key}:tpm", tpm, tokens, MINUTE_MS, True,
                               f"Rate limit reached: tokens per minute for this {scope}.", "tokens_limit_exceeded"))
    window = PERIOD_MS[budgets.period]
    for scope, usd, key in (("key", budgets.key_usd, f"{base}:key:{principal.key_id}"),
                            ("tenant", budgets.tenant_usd, f"{base}:tenant")):
        if usd is not None:
            out.append(Counter(f"{key}:usd:{budgets.period}", int(usd * MICRO_USD), micro_usd, window, False,
                               f"Budget exhausted: this {scope}'s USD budget for the {budgets.period} is spent.",
                               "budget_exceeded"))
    return out


def _refused(counter: Counter, retry_ms: float) -> APIError:
    return APIError(429, counter.message, counter.code, retry_after=retry_ms / 1000)


def _reservation(items: list[Counter], now_ms: int) -> Reservation:
    r = Reservation(at_ms=now_ms)
    for c in items:
        if c.key.endswith(":tpm"):
            r.tokens.append((c.key, c.amount))
        elif ":usd:" in c.key:
            r.micro_usd.append((c.key, c.amount, c.window_ms))
    return r


class RedisGuard:
    """One per process, shared by the Redis limiter, breakers and cache: after a Redis failure
    Redis is left alone for `retry_seconds`, so requests do not each wait out a timeout, and the
    change of state is logged once rather than per request."""

    def __init__(self, retry_seconds: float = 5.0) -> None:
        self.retry_seconds = retry_seconds
        self._retry_at = 0.0
        self._down = False

    def usable(self) -> bool:
        return time.monotonic() >= self._retry_at

    def failed(self, exc: BaseException) -> None:
        if not self._down:
            log.warning("Redis unreachable (%s): limits and budgets follow each policy's limits.on_redis_error; "
                        "circuit breakers and the cache are per process until it returns", type(exc).__name__)
        self._down = True
        self._retry_at = time.monotonic() + self.retry_seconds

    def succeeded(self) -> None:
        if self._down:
            log.warning("Redis reachable again: limits, budgets and breakers are shared again")
            self._down = False


class RedisLimiter:
    def __init__(self, redis, guard: RedisGuard | None = None) -> None:
        self._redis = redis
        self._script = redis.register_script(_LUA)
        self._guard = guard or RedisGuard()
        self._local = LocalLimiter()  # `limits.on_redis_error: open`

    async def admit(self, principal: Principal, policy, tokens: int = 0, micro_usd: int = 0) -> Reservation:
        now = int(time.time() * 1000)
        items = counters(principal, policy, tokens, micro_usd, now)
        if not items:
            return Reservation(at_ms=now)
        if self._guard.usable():
            args: list[int | str] = [now]
            for c in items:
                args += [c.limit, c.amount, c.window_ms, "1" if c.sliding else "0"]
            try:
                hit, retry_ms = await self._script(keys=[c.key for c in items], args=args)
            except REDIS_ERRORS as exc:
                self._guard.failed(exc)
            else:
                self._guard.succeeded()
                if int(hit):
                    raise _refused(items[int(hit) - 1], float(retry_ms))
                return _reservation(items, now)
        if policy.limits.on_redis_error == "closed":
            raise APIError(503, "The gateway cannot check this request's rate limits and budgets right now; "
                           "retry shortly.", "limits_unavailable", retry_after=self._guard.retry_seconds)
        reservation = await self._local.admit(principal, policy, tokens, micro_usd)
        reservation.local = True
        return reservation

    async def settle(self, reservation: Reservation, tokens: int, micro_usd: int) -> None:
        """Replace the estimates with actual use, in the windows they were reserved in."""
        if reservation.local:
            await self._local.settle(reservation, tokens, micro_usd)
            return
        if not (reservation.tokens or reservation.micro_usd) or not self._guard.usable():
            return  # (Redis down: the estimate stands)
        pipe = self._redis.pipeline(transaction=False)
        for key, reserved in reservation.tokens:
            pipe.incrby(f"{key}:{reservation.at_ms // MINUTE_MS}", tokens - reserved)
        for key, reserved, window in reservation.micro_usd:
            pipe.incrby(f"{key}:{reservation.at_ms // window}", micro_usd - reserved)
        try:
            await pipe.execute()
        except REDIS_ERRORS as exc:
            self._guard.failed(exc)


class LocalLimiter:
    """The same arithmetic in process, for a single replica without Redis."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    def _used(self, c: Counter, now: int) -> float:
        current, offset = divmod(now, c.window_ms)
        used = self._counts.get(f"{c.key}:{current}", 0)
        if c.sliding:
            used += self._counts.get(f"{c.key}:{current - 1}", 0) * (1 - offset / c.window_ms)
        return used

    async def admit(self, principal: Principal, policy, tokens: int = 0, micro_usd: int = 0) -> Reservation:
        now = int(time.time() * 1000)
        items = counters(principal, policy, tokens, micro_usd, now)
        for c in items:
            if self._used(c, now) + c.amount > c.limit:
                raise _refused(c, c.window_ms - now % c.window_ms)
        for c in items:
            k = f"{c.key}:{now // c.window_ms}"
            self._counts[k] = self._counts.get(k, 0) + c.amount
        if len(self._counts) > 100_000:  # forget finished minute windows; budget periods are few
            floor = now // MINUTE_MS - 1
            self._counts = {k: v for k, v in self._counts.items() if ":usd:" in k or int(k.rsplit(":", 1)[1]) >= floor}
        return _reservation(items, now)

    async def settle(self, reservation: Reservation, tokens: int, micro_usd: int) -> None:
        for key, reserved in reservation.tokens:
            k = f"{key}:{reservation.at_ms // MINUTE_MS}"
            self._counts[k] = self._counts.get(k, 0) + tokens - reserved
        for key, reserved, window in reservation.micro_usd:
            k = f"{key}:{reservation.at_ms // window}"
            self._counts[k] = self._counts.get(k, 0) + micro_usd - reserved
