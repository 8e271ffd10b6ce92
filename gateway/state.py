"""Everything a request needs that outlives it: one instance per process, built at start-up."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from adapters.registry import AdapterRegistry
from gateway.audit.writer import AuditWriter
from gateway.auth import KeyStore
from gateway.breaker import LocalBreakers, RedisBreakers
from gateway.cache import LocalCache, RedisCache
from gateway.config import Settings
from gateway.db import create_engine, sessionmaker
from gateway.limits import LocalLimiter, RedisLimiter
from gateway.policy_loader import PolicySet, load_policy_set
from gateway.upstream import LatencyTracker, RetryBudget

log = logging.getLogger("bulkhead")


def _warm_up(policies: PolicySet):
    """Load spaCy and the sentence-embedding model in the background, so neither lands on a
    request (those that arrive first wait for the load instead of starting another)."""
    import threading

    def load() -> None:
        from gateway.pii.analyzer import analyzer_for
        from gateway.risk.assess import get_engine

        try:
            for policy in (policies.default, *policies.tenants.values()):
                if policy.pii.enabled:
                    analyzer_for(policy.pii)
                if policy.risk.embeddings.enabled:
                    get_engine().warm_up(policy.risk)
        except Exception as exc:  # a failed warm-up is retried by the first request
            log.warning("warm-up failed: %s", type(exc).__name__)

    thread = threading.Thread(target=load, name="warm-up", daemon=True)
    thread.start()
    return thread


@dataclass
class GatewayState:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker
    keys: KeyStore
    policies: PolicySet
    adapters: AdapterRegistry
    limiter: LocalLimiter | RedisLimiter
    breakers: LocalBreakers | RedisBreakers
    cache: LocalCache | RedisCache
    retry_budget: RetryBudget
    latency: LatencyTracker
    audit: AuditWriter
    redis: object | None = None
    reloader: object | None = None
    draining: bool = False
    extras: dict = field(default_factory=dict)

    @classmethod
    async def start(cls, settings: Settings) -> GatewayState:
        engine = create_engine(settings.database_url)
        sessions = sessionmaker(engine)
        policies = load_policy_set(settings.policies_dir)
        adapters = AdapterRegistry()
        adapters.sync(policies.all_backends())
        redis = None
        limiter: LocalLimiter | RedisLimiter = LocalLimiter()
        breakers: LocalBreakers | RedisBreakers = LocalBreakers()
        response_cache: LocalCache | RedisCache = LocalCache()
        if settings.redis_url:
            import redis.asyncio as aioredis

            redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            limiter = RedisLimiter(redis)
            breakers = RedisBreakers(redis)
            response_cache = RedisCache(redis)
        audit = AuditWriter(engine, flush_interval=settings.audit_flush_interval)
        audit.start()
        log.info("policy %s loaded (%d tenant overlays)", policies.default.version[:12], len(policies.tenants))
        state = cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            keys=KeyStore(sessions, settings.secret),
            policies=policies,
            adapters=adapters,
            limiter=limiter,
            breakers=breakers,
            cache=response_cache,
            retry_budget=RetryBudget(),
            latency=LatencyTracker(redis),
            audit=audit,
            redis=redis,
        )
        from gateway.policy_reload import PolicyReloader

        state.extras["warm_up"] = _warm_up(policies)
        state.reloader = PolicyReloader(state, settings.policies_dir, settings.policy_watch_seconds or 1.0)
        if settings.policy_watch_seconds > 0:
            state.reloader.start()
        return state

    async def readiness(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # any failure means not ready; the type is enough to diagnose
            checks["database"] = f"error: {type(exc).__name__}"
        if self.redis is not None:
            try:
                await self.redis.ping()
                checks["redis"] = "ok"
            except Exception as exc:
                checks["redis"] = f"error: {type(exc).__name__}"
        if self.draining:
            checks["shutdown"] = "draining"
        return checks

    def alarms(self) -> dict[str, str]:
        """Conditions worth a look that do not make the gateway unready (the model still answers)."""
        from gateway.experts import snapshot

        stats = snapshot(self, [self.policies.default, *self.policies.tenants.values()])
        return {f"moe:{name}": f"expert collapse: {s['collapse']}" for name, s in stats.items() if s.get("collapse")}

    async def close(self) -> None:
        self.draining = True
        warm_up = self.extras.get("warm_up")
        if warm_up is not None:
            # Exiting while torch or spaCy are mid-load in that thread aborts the process (exit -6).
            await asyncio.to_thread(warm_up.join, 120)
        if self.reloader is not None:
            await self.reloader.stop()
        await self.audit.close()
        await self.adapters.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
