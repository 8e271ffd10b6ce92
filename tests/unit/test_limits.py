"""Admission limits against a real Redis shared by two limiter instances (two replicas), and the
same arithmetic in process."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.limits import MICRO_USD, LocalLimiter, RedisLimiter
from gateway.policy import Policy
from gateway.request import admission_tokens
from tests.conftest import REDIS_URL


def principal(tenant: str | None = None) -> Principal:
    return Principal(tenant_id=tenant or uuid.uuid4().hex, tenant="t", key_id=uuid.uuid4().hex, roles=("app",))


def policy(**kw) -> Policy:
    limits = {k: v for k, v in kw.items() if k.startswith(("rpm", "tpm"))}
    budgets = {k: v for k, v in kw.items() if k not in limits}
    return Policy.model_validate({"limits": limits, "budgets": budgets})


@pytest.fixture
async def redis_pair():
    r1, r2 = aioredis.from_url(REDIS_URL), aioredis.from_url(REDIS_URL)
    yield RedisLimiter(r1), RedisLimiter(r2), r1
    await r1.aclose()
    await r2.aclose()


async def test_rpm_is_shared_across_replicas_and_namespaced(redis_pair):
    a, b, raw = redis_pair
    p, pol = principal(), policy(rpm_per_key=5)
    for i in range(5):
        await (a if i % 2 else b).admit(p, pol)
    with pytest.raises(APIError) as info:
        await a.admit(p, pol)
    assert info.value.status == 429 and info.value.code == "rate_limit_exceeded" and 0 < info.value.retry_after <= 60
    await a.admit(principal(p.tenant_id), pol)  # another key of the same tenant is unaffected
    keys = [k.decode() async for k in raw.scan_iter(f"bulkhead:{p.tenant_id}:*")]
    assert keys and all(k.startswith(f"bulkhead:{p.tenant_id}:") for k in keys)


async def test_tenant_rpm_counts_every_key(redis_pair):
    a, _, _ = redis_pair
    tenant, pol = uuid.uuid4().hex, policy(rpm_per_tenant=3)
    for _ in range(3):
        await a.admit(principal(tenant), pol)
    with pytest.raises(APIError, match="tenant"):
        await a.admit(principal(tenant), pol)


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_tpm_reserves_then_settles_to_actual(redis_pair, kind):
    limiter = redis_pair[0] if kind == "redis" else LocalLimiter()
    p, pol = principal(), policy(tpm_per_key=1000)
    first = await limiter.admit(p, pol, tokens=900)
    with pytest.raises(APIError) as info:
        await limiter.admit(p, pol, tokens=200)
    assert info.value.code == "tokens_limit_exceeded"
    await limiter.settle(first, tokens=100, micro_usd=0)  # the call used far less than reserved
    await limiter.admit(p, pol, tokens=800)


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_budget_exhaustion_and_settlement(redis_pair, kind):
    limiter = redis_pair[0] if kind == "redis" else LocalLimiter()
    tenant = uuid.uuid4().hex
    pol = policy(tenant_usd=1.0)
    r = await limiter.admit(principal(tenant), pol, micro_usd=600_000)
    await limiter.settle(r, tokens=0, micro_usd=900_000)  # it cost more than estimated
    with pytest.raises(APIError) as info:
        await limiter.admit(principal(tenant), pol, micro_usd=200_000)
    assert info.value.status == 429 and info.value.code == "budget_exceeded"
    await limiter.admit(principal(tenant), pol, micro_usd=100_000)  # exactly what is left
    with pytest.raises(APIError):
        await limiter.admit(principal(tenant), pol, micro_usd=1)
    assert MICRO_USD == 1_000_000


async def test_no_limits_configured_always_admits():
    await LocalLimiter().admit(principal(), policy(), tokens=10**9, micro_usd=10**12)


def test_token_estimate_counts_prompt_and_completion_budget():
    body = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 50, "n": 2}
    assert admission_tokens(body) == 101 + 100
    assert admission_tokens({"input": ["abcd", "efgh"]}) == 3 + 1024


@pytest.mark.parametrize("kind", ["redis", "local"])
async def test_breaker_closes_after_a_successful_probe(redis_pair, kind):
    import asyncio

    from gateway.breaker import LocalBreakers, RedisBreakers
    from gateway.policy import Backend, Breaker

    breakers = RedisBreakers(redis_pair[2]) if kind == "redis" else LocalBreakers()
    backend = Backend(name="b-" + uuid.uuid4().hex[:6], model="m", timeout_s=1)
    cfg, tenant = Breaker(failure_threshold=2, open_seconds=0.2), uuid.uuid4().hex
    await breakers.record(tenant, backend, cfg, ok=False)
    assert await breakers.allow(tenant, backend, cfg)
    await breakers.record(tenant, backend, cfg, ok=False)
    assert not await breakers.allow(tenant, backend, cfg)
    await asyncio.sleep(0.25)
    assert await breakers.allow(tenant, backend, cfg)  # the probe
    assert not await breakers.allow(tenant, backend, cfg)  # only one at a time
    await breakers.record(tenant, backend, cfg, ok=True)
    assert await breakers.allow(tenant, backend, cfg) and await breakers.allow(tenant, backend, cfg)
