"""Requests-per-minute limits per key and per tenant.

With Redis, one Lua script checks and counts every window atomically, so N replicas share one
budget. Without Redis the same sliding-window arithmetic runs in process (a single replica).
Every key is namespaced by tenant.
"""

from __future__ import annotations

import time

from gateway.auth import Principal
from gateway.errors import APIError

# Sliding window approximated from the current and previous fixed windows (the Cloudflare method):
# exact enough for limits, one counter per window, O(1) per check.
_LUA = """
local now = tonumber(ARGV[1])
local window = 60000
local current = math.floor(now / window)
local weight = 1 - (now % window) / window
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 1])
  local cur = tonumber(redis.call('GET', key .. ':' .. current) or '0')
  local prev = tonumber(redis.call('GET', key .. ':' .. (current - 1)) or '0')
  if prev * weight + cur + 1 > limit then
    return {i, window - (now % window)}
  end
end
for i, key in ipairs(KEYS) do
  local k = key .. ':' .. current
  redis.call('INCR', k)
  redis.call('PEXPIRE', k, window * 2)
end
return {0, 0}
"""


def _checks(principal: Principal, limits) -> list[tuple[str, int, str]]:
    checks = []
    if limits.rpm_per_key:
        checks.append((f"bulkhead:{principal.tenant_id}:rpm:key:{principal.key_id}", limits.rpm_per_key, "key"))
    if limits.rpm_per_tenant:
        checks.append((f"bulkhead:{principal.tenant_id}:rpm:tenant", limits.rpm_per_tenant, "tenant"))
    return checks


def _limited(scope: str, retry_ms: float) -> APIError:
    return APIError(
        429, f"Rate limit reached: requests per minute for this {scope}.", "rate_limit_exceeded",
        retry_after=retry_ms / 1000,
    )


class RedisLimiter:
    def __init__(self, redis) -> None:
        self._redis = redis
        self._script = redis.register_script(_LUA)

    async def admit(self, principal: Principal, limits) -> None:
        checks = _checks(principal, limits)
        if not checks:
            return
        keys = [k for k, _, _ in checks]
        args = [int(time.time() * 1000)] + [lim for _, lim, _ in checks]
        hit, retry_ms = await self._script(keys=keys, args=args)
        if int(hit):
            raise _limited(checks[int(hit) - 1][2], float(retry_ms))


class LocalLimiter:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}

    async def admit(self, principal: Principal, limits) -> None:
        checks = _checks(principal, limits)
        if not checks:
            return
        now = int(time.time() * 1000)
        current, offset = divmod(now, 60_000)
        weight = 1 - offset / 60_000
        for key, limit, scope in checks:
            cur = self._counts.get(f"{key}:{current}", 0)
            prev = self._counts.get(f"{key}:{current - 1}", 0)
            if prev * weight + cur + 1 > limit:
                raise _limited(scope, 60_000 - offset)
        for key, _, _ in checks:
            k = f"{key}:{current}"
            self._counts[k] = self._counts.get(k, 0) + 1
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if int(k.rsplit(":", 1)[1]) >= current - 1}
