"""Everything a request needs that outlives it: one instance per process, built at start-up."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from adapters.base import missing_credentials
from adapters.registry import AdapterRegistry
from gateway import pricing
from gateway.audit.checkpoints import Checkpointer, CheckpointStore
from gateway.audit.spool import Spool
from gateway.audit.writer import AuditWriter
from gateway.auth import KeyStore
from gateway.breaker import LocalBreakers, RedisBreakers
from gateway.cache import LocalCache, RedisCache
from gateway.config import Settings
from gateway.db import create_engine, sessionmaker
from gateway.experts import snapshot
from gateway.explain import warm_up
from gateway.hallucination.verifier import check_weights as check_verifier_weights
from gateway.hallucination.verifier import get_verifier
from gateway.limits import LocalLimiter, RedisGuard, RedisLimiter
from gateway.pii.tagger import check_weights
from gateway.policy.loader import PolicySet, load_policy_set
from gateway.policy.reload import PolicyReloader
from gateway.risk.assess import get_engine
from gateway.upstream import LatencyTracker, RetryBudget

log = logging.getLogger("bulkhead")
_drain_requested = False


def request_drain() -> None:
    """SIGTERM arrived (gateway/http/serving.py): readiness turns false at once, before the drain."""
    global _drain_requested
    _drain_requested = True


def drain_requested() -> bool:
    return _drain_requested


def _warm_up(policies: PolicySet):
    """Load spaCy, the name tagger, the risk models and (where a policy checks grounding) the
    grounding verifier in the background, so none lands on a request: `/readyz` answers 503 until
    the thread ends (a request sent anyway waits for the load instead of starting another)."""

    def load() -> None:
        started = time.perf_counter()
        try:
            for policy in (policies.default, *policies.tenants.values()):
                warm_up(policy)  # the PII analyzer and the risk engine
                if any("grounding" in rule.checks for rule in policy.hallucination.rules):
                    get_verifier()
            log.info("models warm in %.0f ms", (time.perf_counter() - started) * 1000)
        except Exception as exc:  # a failed warm-up is retried by the first request
            log.warning("warm-up failed: %s", type(exc).__name__)

    thread = threading.Thread(target=load, name="warm-up", daemon=True)
    thread.start()
    return thread


def log_unconfigured(policies: PolicySet) -> dict[str, list[str]]:
    """One warning per missing provider variable, naming the backends it leaves out: the router
    never picks them (gateway/routing.py), so without this a missing key shows only as routing
    elsewhere. Also a local model directory that holds no model yet. Returns variable -> backends."""
    missing: dict[str, list[str]] = {}
    for backend in policies.all_backends():
        reason = missing_credentials(backend)
        if reason is not None:
            names = missing.setdefault(backend.api_key_env, [])
            if backend.name not in names:
                names.append(backend.name)
        model_dir = Path(backend.model_dir) if backend.adapter == "local_moe" and backend.model_dir else None
        if model_dir is not None and not (model_dir / "config.json").exists():
            log.warning("backend %s: %s holds no model (config.json); `bulkhead moe train-demo --out %s` builds "
                        "the demo one", backend.name, backend.model_dir, backend.model_dir)
    for env, names in missing.items():
        log.warning("%s is not set: backend%s %s unconfigured, not routed to until it is set in the gateway's "
                    "environment (and the gateway restarted)", env, "s" if len(names) > 1 else "",
                    ", ".join(names) + (" are" if len(names) > 1 else " is"))
    configured = [b.name for b in policies.all_backends() if missing_credentials(b) is None]
    log.info("backends configured: %s", ", ".join(dict.fromkeys(configured)) or "none")
    return missing


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
    checkpoints: CheckpointStore | None = None
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
        guard = RedisGuard()  # Redis unreachable or slow: see Limits.on_redis_error
        if settings.redis_url:
            redis = aioredis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=2)
            limiter = RedisLimiter(redis, guard)
            breakers = RedisBreakers(redis, guard)
            response_cache = RedisCache(redis, guard)
        audit = AuditWriter(engine, flush_interval=settings.audit_flush_interval,
                            spool=Spool(settings.audit_spool_path, settings.audit_spool_max_bytes))
        audit.start()
        checkpoints = CheckpointStore.for_signing(settings.audit_checkpoint_dir, settings.audit_signing_key)
        checkpointer = Checkpointer(checkpoints, audit.heads, settings.audit_checkpoint_seconds)
        log.info("policy %s loaded (%d tenant overlays)", policies.default.version[:12], len(policies.tenants))
        log_unconfigured(policies)
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
            latency=LatencyTracker(redis, guard),
            audit=audit,
            redis=redis,
            checkpoints=checkpoints,
        )
        state.extras["checkpointer"] = checkpointer
        state.extras["checkpoint_task"] = asyncio.create_task(checkpointer.run(), name="audit-checkpoints")
        await asyncio.to_thread(pricing.prime, policies.all_backends())
        get_engine()  # loads the committed injection head: a missing file stops startup here, named
        check_weights()  # the name tagger's, likewise (loaded with the PII analyzer in the warm-up)
        check_verifier_weights()  # the grounding verifier's (loaded in the warm-up where a policy checks)
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
                # Still serving where a policy says `limits.on_redis_error: open` (local limits).
                fails_open = any(p.limits.on_redis_error == "open"
                                 for p in (self.policies.default, *self.policies.tenants.values()))
                checks["redis"] = (f"degraded: {type(exc).__name__}; local limits" if fails_open
                                   else f"error: {type(exc).__name__}")
        if not self.audit.accepting:
            checks["audit"] = "error: database unreachable and the audit spool is full"
        elif not self.audit.healthy and checks.get("database") != "ok":
            # Events are being spooled and will be replayed: still serving, by design.
            checks["database"] = "degraded: audit events spooled locally until it returns"
            checks["audit"] = "ok"
        warm_up = self.extras.get("warm_up")
        if warm_up is not None and warm_up.is_alive():
            # Until the models are loaded a request waits seconds for them; a load balancer should
            # send it to a replica that is warm (a failed load ends this too: the first request
            # retries it).
            checks["models"] = "loading"
        if self.draining or _drain_requested:
            checks["shutdown"] = "draining"
        return checks

    def alarms(self) -> dict[str, str]:
        """Conditions worth a look that do not make the gateway unready (the model still answers)."""
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
        task = self.extras.get("checkpoint_task")
        if task is not None:
            task.cancel()
            await asyncio.to_thread(self.extras["checkpointer"].run_once)  # sign the final heads
        await self.adapters.aclose()
        if self.redis is not None:
            await self.redis.aclose()
        await self.engine.dispose()
