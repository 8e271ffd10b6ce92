"""API keys and tenants: who is calling, and as which tenant.

Keys are 32 random bytes shown once and stored only as HMAC-SHA256 under the server secret, so a
stolen database does not yield usable keys. Every request reads the key's row, which is what makes
a revocation effective on the very next request on every replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.models import ApiKey, Tenant, utcnow

ROLES = ("app", "security", "compliance", "admin")
KEY_PREFIX = "bh-"


@dataclass(frozen=True, slots=True)
class Principal:
    tenant_id: str
    tenant: str
    key_id: str
    roles: tuple[str, ...]
    models: tuple[str, ...] | None = None

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


class KeyStore:
    def __init__(self, sessions: async_sessionmaker, secret: bytes) -> None:
        self._sessions = sessions
        self._secret = secret

    async def authenticate(self, raw_key: str) -> Principal:
        if not raw_key.startswith(KEY_PREFIX) or len(raw_key) > 200:
            raise AuthError("invalid_api_key")
        digest = hash_key(self._secret, raw_key)
        async with self._sessions() as s:
            row = (
                await s.execute(
                    select(ApiKey, Tenant.name)
                    .join(Tenant, Tenant.id == ApiKey.tenant_id)
                    .where(ApiKey.key_hash == digest)
                )
            ).first()
        # The index lookup is on an HMAC, which leaks nothing useful; the constant-time compare
        # guards the equality the database already established against any collation surprises.
        if row is None or not hmac.compare_digest(row[0].key_hash, digest):
            raise AuthError("invalid_api_key")
        key, tenant_name = row
        now = utcnow()
        if key.revoked_at is not None:
            raise AuthError("key_revoked")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthError("key_expired")
        return Principal(
            tenant_id=key.tenant_id,
            tenant=tenant_name,
            key_id=key.id,
            roles=tuple(key.roles),
            models=tuple(key.models) if key.models is not None else None,
        )

    async def create_tenant(self, name: str) -> Tenant:
        tenant = Tenant(id="ten_" + uuid.uuid4().hex[:20], name=name, created_at=utcnow())
        async with self._sessions() as s:
            s.add(tenant)
            try:
                await s.commit()
            except IntegrityError as exc:
                raise ValueError(f"tenant {name!r} already exists") from exc
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
    ) -> tuple[ApiKey, str]:
        bad = [r for r in roles if r not in ROLES]
        if bad or not roles:
            raise ValueError(f"unknown role(s) {bad}; roles are {', '.join(ROLES)}")
        tenant = await self.get_tenant(tenant_name)
        if tenant is None:
            raise ValueError(f"no tenant named {tenant_name!r}")
        raw = generate_key()
        key = ApiKey(
            id="key_" + uuid.uuid4().hex[:20],
            tenant_id=tenant.id,
            key_hash=hash_key(self._secret, raw),
            prefix=raw[:10],
            roles=list(dict.fromkeys(roles)),
            models=models,
            name=name,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        async with self._sessions() as s:
            s.add(key)
            await s.commit()
        return key, raw

    async def list_keys(self, tenant_name: str | None = None) -> list[tuple[ApiKey, str]]:
        query = select(ApiKey, Tenant.name).join(Tenant, Tenant.id == ApiKey.tenant_id).order_by(ApiKey.created_at)
        if tenant_name:
            query = query.where(Tenant.name == tenant_name)
        async with self._sessions() as s:
            return [(k, t) for k, t in (await s.execute(query)).all()]

    async def revoke_key(self, key_id: str, tenant_id: str | None = None) -> bool:
        """Revokes an active key; with `tenant_id`, only a key of that tenant (another tenant's key id
        behaves exactly like an unknown one)."""
        query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        if tenant_id is not None:
            query = query.where(ApiKey.tenant_id == tenant_id)
        async with self._sessions() as s:
            result = await s.execute(query.values(revoked_at=utcnow()))
            await s.commit()
            return result.rowcount == 1
