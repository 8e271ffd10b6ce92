"""Circuit breakers, one per tenant and backend, shared across replicas through Redis.

closed -> (failure_threshold consecutive failures) -> open for open_seconds -> half-open: one probe
request at a time is let through; its success closes the circuit, its failure opens it again.
Only upstream faults count (timeouts, 5xx, connection errors), never a client's bad request.
"""

from __future__ import annotations

import time

from gateway.limits import REDIS_ERRORS, RedisGuard
from gateway.telemetry import BREAKER_OPENED

# KEYS[1] = state hash. ARGV: now_ms, probe_ttl_ms. Returns 1 when a call may go ahead.
_ALLOW = """
if redis.call('HGET', KEYS[1], 'state') ~= 'open' then
  return 1
end
if tonumber(ARGV[1]) < tonumber(redis.call('HGET', KEYS[1], 'open_until')) then
  return 0
end
-- half-open: one probe at a time
if redis.call('SET', KEYS[1] .. ':probe', '1', 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""
# ARGV: ok (1/0), now_ms, threshold, open_ms. Returns 1 when this failure opened the circuit.
_RECORD = """
if ARGV[1] == '1' then
  redis.call('DEL', KEYS[1], KEYS[1] .. ':probe')
  return 0
end
local fails = redis.call('HINCRBY', KEYS[1], 'fails', 1)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 10)
local state = redis.call('HGET', KEYS[1], 'state')
if fails >= tonumber(ARGV[3]) or state == 'open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'open_until', tonumber(ARGV[2]) + tonumber(ARGV[4]))
  redis.call('DEL', KEYS[1] .. ':probe')
  return 1
end
return 0
"""


def _key(tenant_id: str, backend: str) -> str:
    return f"bulkhead:{tenant_id}:breaker:{backend}"


class RedisBreakers:
    """Shared across replicas; while Redis is unreachable each process keeps its own (LocalBreakers)."""

    def __init__(self, redis, guard: RedisGuard | None = None) -> None:
        self._allow = redis.register_script(_ALLOW)
        self._record = redis.register_script(_RECORD)
        self._guard = guard or RedisGuard()
        self._local = LocalBreakers()

    async def allow(self, tenant_id: str, backend, cfg) -> bool:
        if self._guard.usable():
            now = int(time.time() * 1000)
            try:
                allowed = await self._allow(keys=[_key(tenant_id, backend.name)],
                                            args=[now, int(backend.timeout_s * 1000) + 1000])
            except REDIS_ERRORS as exc:
                self._guard.failed(exc)
            else:
                self._guard.succeeded()
                return bool(allowed)
        return await self._local.allow(tenant_id, backend, cfg)

    async def record(self, tenant_id: str, backend, cfg, ok: bool) -> None:
        if self._guard.usable():
            now = int(time.time() * 1000)
            try:
                opened = await self._record(keys=[_key(tenant_id, backend.name)], args=[
                    "1" if ok else "0", now, cfg.failure_threshold, int(cfg.open_seconds * 1000)])
            except REDIS_ERRORS as exc:
                self._guard.failed(exc)
            else:
                self._guard.succeeded()
                if opened:
                    BREAKER_OPENED.labels(backend.name).inc()
                return
        await self._local.record(tenant_id, backend, cfg, ok)


class LocalBreakers:
    def __init__(self) -> None:
        self._state: dict[str, dict] = {}

    async def allow(self, tenant_id: str, backend, cfg) -> bool:
        s = self._state.get(_key(tenant_id, backend.name))
        if not s or s.get("state") != "open":
            return True
        now = time.monotonic()
        if now < s["open_until"]:
            return False
        if s.get("probe_until", 0) > now:
            return False
        s["probe_until"] = now + backend.timeout_s + 1
        return True

    async def record(self, tenant_id: str, backend, cfg, ok: bool) -> None:
        key = _key(tenant_id, backend.name)
        if ok:
            self._state.pop(key, None)
            return
        s = self._state.setdefault(key, {"fails": 0})
        s["fails"] += 1
        if s["fails"] >= cfg.failure_threshold or s.get("state") == "open":
            s.update(state="open", open_until=time.monotonic() + cfg.open_seconds, probe_until=0)
            BREAKER_OPENED.labels(backend.name).inc()
