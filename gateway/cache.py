"""Exact-match response cache, opt-in per policy. The key is the tenant, the backend's full
definition and the request exactly as it would be sent upstream (after the policy's PII
treatment), so an answer is never shared between tenants and never outlives a backend change."""

from __future__ import annotations

import collections
import hashlib
import time

import orjson

from gateway.limits import REDIS_ERRORS, RedisGuard


def cache_key(tenant_id: str, backend, mode: str, outbound: dict, rule=None, spotlight=None) -> str:
    """`rule`: the hallucination check the answer had to pass; an answer checked under one rule is
    not served where another (or a stricter one) applies. `spotlight`: the policy's spotlighting,
    where on; `outbound` is then the body before it (its mark is random per request, so the body
    after it never repeats), and an answer got without it, or with another treatment, is not served."""
    checked = rule.model_dump(mode="json") if rule is not None else None
    parts = [backend.model_dump(mode="json"), mode, outbound, checked]
    if spotlight is not None and spotlight.mode != "off":
        parts.append(spotlight.model_dump(mode="json"))
    material = orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)
    return f"bulkhead:{tenant_id}:cache:{hashlib.sha256(material).hexdigest()}"


class RedisCache:
    """A cache that cannot be reached is a miss, never a failed request."""

    def __init__(self, redis, guard: RedisGuard | None = None) -> None:
        self._redis = redis
        self._guard = guard or RedisGuard()

    async def get(self, key: str) -> dict | None:
        if not self._guard.usable():
            return None
        try:
            raw = await self._redis.get(key)
        except REDIS_ERRORS as exc:
            self._guard.failed(exc)
            return None
        self._guard.succeeded()
        return orjson.loads(raw) if raw else None

    async def set(self, key: str, body: dict, ttl: int) -> None:
        if not self._guard.usable():
            return
        try:
            await self._redis.set(key, orjson.dumps(body), px=ttl * 1000)
        except REDIS_ERRORS as exc:
            self._guard.failed(exc)


class LocalCache:
    def __init__(self, max_entries: int = 10_000) -> None:
        self._data: collections.OrderedDict[str, tuple[float, bytes]] = collections.OrderedDict()
        self._max = max_entries

    async def get(self, key: str) -> dict | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return orjson.loads(entry[1])

    async def set(self, key: str, body: dict, ttl: int) -> None:
        self._data[key] = (time.monotonic() + ttl, orjson.dumps(body))
        self._data.move_to_end(key)
        while len(self._data) > self._max:
            self._data.popitem(last=False)
