"""API keys and tenants: who is calling, and as which tenant.

Keys are 32 random bytes shown once and stored only as HMAC-SHA256 under the server secret, so a
stolen database does not yield usable keys. Every request reads the key's row, which is what makes
a revocation effective on the very next request on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.models import ApiKey, Tenant, utcnow
from gateway.tenancy import scope

ROLES = ("app", "security", "compliance", "admin")
KEY_PREFIX = "bh-"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    tenant: str
    key_id: str
    roles: tuple[str, ...]
    models: tuple[str, ...] | None = None
    expires_at: datetime | None = None  # what a key this one creates may not outlive

    def has_role(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)

    def may_use(self, model: str) -> bool:
        return self.models is None or model in self.models


class AuthError(Exception):
    """Raised with a short reason code; the reason never includes the presented key."""


def hash_key(secret: bytes, raw_key: str) -> str:
    return hmac.new(secret, raw_key.encode(), hashlib.sha256).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def extract_key(headers) -> str | None:
    auth = headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("api-key")
    return key.strip() if key else None


_LOOKUP = text(
    "SELECT k.id, k.tenant_id, k.key_hash, k.roles, k.models, k.expires_at, k.revoked_at, t.name AS tenant_name "
    "FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = :h"
)
_PG_LOOKUP = text("SELECT * FROM bulkhead_key_lookup(:h)")


def _json(value):
    return json.loads(value) if isinstance(value, str) else value


def _utc(value):
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value is not None and value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value


class AuthUnavailable(Exception):
    """The key store could not be asked (database down) and no recent answer is cached."""


class KeyStore:
    # Every request asks the database, so a revocation takes effect at once on every replica. Only
    # while the database is unreachable is the last answer for the key served, for up to STALE_S, so
    # an outage does not take authentication (and with it the audit spool's whole point) down too.
    STALE_S = 300.0
    CACHE_MAX = 10_000

    def __init__(self, sessions: async_sessionmaker, secret: bytes) -> None:
        self._sessions = sessions
        self._secret = secret
        self._cache: dict[str, tuple[float, dict | None]] = {}
        # Tenant name -> id of every tenant this process has seen a key of. Policy overlays are named
        # by tenant, and under row-level security the gateway cannot look a tenant up by name, so this
        # is how a policy event finds its tenant's audit chain; `on_new_tenant` hears of each first one.
        self.tenant_ids: dict[str, str] = {}
        self.on_new_tenant: Callable[[str, str], None] | None = None

    async def authenticate(self, raw_key: str) -> Principal:
        if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
            raise AuthError("invalid_api_key")
        digest = hash_key(self._secret, raw_key)
        row = await self._cached_lookup(digest)
        return self._principal(row, digest)

    async def _cached_lookup(self, digest: str) -> dict | None:
        now = time.monotonic()
        hit = self._cache.get(digest)
        try:
            row = await self._lookup(digest)
        except (OSError, TimeoutError, DBAPIError) as exc:
            if hit is not None and now - hit[0] < self.STALE_S:
                return hit[1]
            raise AuthUnavailable(type(exc).__name__) from None
        if len(self._cache) >= self.CACHE_MAX:
            self._cache.pop(next(iter(self._cache)))
        self._cache[digest] = (now, row)
        return row

    def forget(self, key_id: str) -> None:
        for digest, (_, row) in list(self._cache.items()):
            if row is not None and row["id"] == key_id:
                self._cache.pop(digest, None)

    async def _lookup(self, digest: str) -> dict | None:
        async with self._sessions() as s:
            if s.bind.dialect.name == "postgresql":
                # Before the tenant is known, RLS hides every key: a SECURITY DEFINER function
                # returns exactly the row with this HMAC and nothing else.
                row = (await s.execute(_PG_LOOKUP, {"h": digest})).mappings().first()
            else:
                row = (await s.execute(_LOOKUP, {"h": digest})).mappings().first()
        return dict(row) if row is not None else None

    def _principal(self, row: dict | None, digest: str) -> Principal:
        # The index lookup is on an HMAC, which leaks nothing useful; the constant-time compare
        # guards the equality the database already established against any collation surprises.
        if row is None or not hmac.compare_digest(row["key_hash"], digest):
            raise AuthError("invalid_api_key")
        self._learn(row["tenant_name"], row["tenant_id"])
        if row["revoked_at"] is not None:
            raise AuthError("key_revoked")
        expires_at = _utc(row["expires_at"])
        if expires_at is not None and expires_at <= utcnow():
            raise AuthError("key_expired")
        roles, models = _json(row["roles"]), _json(row["models"])
        return Principal(
            tenant_id=row["tenant_id"],
            tenant=row["tenant_name"],
            key_id=row["id"],
            roles=tuple(roles),
            models=tuple(models) if models is not None else None,
            expires_at=expires_at,
        )

    def _learn(self, name: str, tenant_id: str) -> None:
        if self.tenant_ids.get(name) != tenant_id:
            self.tenant_ids[name] = tenant_id
            if self.on_new_tenant is not None:
                self.on_new_tenant(name, tenant_id)

    async def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(id="ten_" + uuid.uuid4().hex[:20], name=name, created_at=utcnow())
        async with self._sessions() as s, s.begin():
            await scope(s, tenant.id)
            s.add(tenant)
            try:
                await s.flush()
            except IntegrityError as exc:
                raise ValueError(f"tenant {name!r} already exists") from exc
        self._learn(tenant.name, tenant.id)
        return tenant

    async def get_tenant(self, name: str) -> Tenant | None:
        async with self._sessions() as s:
            return (await s.execute(select(Tenant).where(Tenant.name == name))).scalar_one_or_none()

    async def list_tenants(self) -> list[Tenant]:
        async with self._sessions() as s:
            return list((await s.execute(select(Tenant).order_by(Tenant.created_at))).scalars())

    async def create_key(
        self,
        tenant_name: str,
        roles: list[str],
        *,
        expires_at: datetime | None = None,
        models: list[str] | None = None,
        name: str | None = None,
        tenant_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """By tenant name (operators' CLI), or by `tenant_id` when the caller's tenant is known
        (the admin API, which runs under row-level security and sees only its own tenant)."""
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise ValueError(f"unknown role(s) {bad}; roles are {', '.join(ROLES)}")
        if tenant_id is None:
            tenant = await self.get_tenant(tenant_name)
            if tenant is None:
                raise ValueError(f"no tenant named {tenant_name!r}")
            tenant_id = tenant.id
        raw = generate_key()
        key = ApiKey(
            id="key_" + uuid.uuid4().hex[:20],
            tenant_id=tenant_id,
            key_hash=hash_key(self._secret, raw),
            prefix=raw[:10],
            roles=list(dict.fromkeys(roles)),
            models=models,
            name=name,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        async with self._sessions() as s, s.begin():
            await scope(s, tenant_id)
            s.add(key)
        return key, raw

    async def list_keys(self, tenant_name: str | None = None, tenant_id: str | None = None
                        ) -> list[tuple[ApiKey, str]]:
        query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.created_at)
        if tenant_name:
            query = query.where(Tenant.name == tenant_name)
        if tenant_id:
            query = query.where(ApiKey.tenant_id == tenant_id)
        async with self._sessions() as s, s.begin():
            if tenant_id:
                await scope(s, tenant_id)
            return [(k, t) for k, t in (await s.execute(query)).all()]

    async def revoke_key(self, key_id: str, tenant_id: str | None = None) -> bool:
        """Revokes an active key; with `tenant_id`, only a key of that tenant (another tenant's key id
        behaves exactly like an unknown one)."""
        query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        async with self._sessions() as s, s.begin():
            if tenant_id is not None:
                await scope(s, tenant_id)
            result = await s.execute(query.values(revoked_at=utcnow()))
        self.forget(key_id)
        return result.rowcount == 1
