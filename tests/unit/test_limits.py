"""RPM limits, against a real Redis shared by two limiter instances (two replicas) and in process."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.limits import LocalLimiter, RedisLimiter
from gateway.policy import Limits
from tests.conftest import REDIS_URL


def principal(tenant: str | None = None) -> Principal:
    return Principal(tenant_id=tenant or uuid.uuid4().hex, tenant="t", key_id=uuid.uuid4().hex, roles=("app",))


async def test_redis_limit_is_shared_across_replicas():
    r1, r2 = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    a, b = RedisLimiter(r1), RedisLimiter(r2)
    p, limits = principal(), Limits(rpm_per_key=5)
    for i in range(5):
        await (a if i % 2 else b).admit(p, limits)
    with pytest.raises(APIError) as info:
        await a.admit(p, limits)
    assert info.value.status == 429 and 0 < info.value.retry_after <= 60
    await a.admit(principal(p.tenant_id), limits)  # another key of the same tenant is unaffected
    keys = [k.decode() async for k in r1.scan_iter(f"bulkhead:{p.tenant_id}:*")]
    assert keys and all(k.startswith(f"bulkhead:{p.tenant_id}:") for k in keys)
    await r1.aclose()
    await r2.aclose()


async def test_tenant_limit_counts_every_key():
    redis = aioredis.from_url(REDIS_URL)
    limiter, tenant = RedisLimiter(redis), uuid.uuid4().hex
    limits = Limits(rpm_per_tenant=3)
    for _ in range(3):
        await limiter.admit(principal(tenant), limits)
    with pytest.raises(APIError, match="tenant"):
        await limiter.admit(principal(tenant), limits)
    await redis.aclose()


async def test_local_limiter_same_semantics():
    limiter, p = LocalLimiter(), principal()
    for _ in range(2):
        await limiter.admit(p, Limits(rpm_per_key=2))
    with pytest.raises(APIError, match="key"):
        await limiter.admit(p, Limits(rpm_per_key=2))
    await limiter.admit(p, Limits())  # no limits configured: always admitted
