from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from gateway.auth import AuthError, KeyStore, extract_key, hash_key
from gateway.db import create_engine, sessionmaker
from gateway.migrate import upgrade


@pytest.fixture
async def store(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'k.db'}"
    await asyncio.to_thread(upgrade, url)  # alembic runs its own event loop
    engine = create_engine(url)
    yield KeyStore(sessionmaker(engine), b"secret")
    await engine.dispose()


async def test_key_is_random_shown_once_and_stored_as_hmac(store):
    await store.create_tenant("acme")
    key, raw = await store.create_key("acme", ["app"])
    _, raw2 = await store.create_key("acme", ["app"])
    assert raw != raw2 and len(raw) >= 43  # 32 random bytes, urlsafe base64
    assert key.key_hash == hash_key(b"secret", raw) and raw not in key.key_hash
    principal = await store.authenticate(raw)
    assert principal.tenant == "acme" and principal.roles == ("app",)


async def test_rejections(store):
    await store.create_tenant("acme")
    key, raw = await store.create_key("acme", ["app", "security"])
    with pytest.raises(AuthError, match="invalid_api_key"):
        await store.authenticate(raw + "x")
    with pytest.raises(AuthError, match="invalid_api_key"):
        await store.authenticate("sk-not-ours")
    assert await store.revoke_key(key.id)
    assert not await store.revoke_key(key.id)
    with pytest.raises(AuthError, match="key_revoked"):
        await store.authenticate(raw)
    _, old = await store.create_key("acme", ["app"], expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthError, match="key_expired"):
        await store.authenticate(old)


async def test_principal_carries_the_keys_limits_and_the_tenant_is_learned(store):
    # what the admin API bounds a key the principal creates by; and the tenant directory policy
    # events use to find a tenant's chain
    seen: list[tuple[str, str]] = []
    store.on_new_tenant = lambda name, tenant_id: seen.append((name, tenant_id))
    tenant = await store.create_tenant("acme")
    expires = datetime.now(UTC) + timedelta(hours=1)
    _, raw = await store.create_key("acme", ["admin"], models=["echo"], expires_at=expires)
    principal = await store.authenticate(raw)
    assert principal.models == ("echo",) and principal.expires_at == expires
    assert store.tenant_ids == {"acme": tenant.id} and seen == [("acme", tenant.id)]
    _, raw = await store.create_key("acme", ["app"])
    assert (await store.authenticate(raw)).expires_at is None and len(seen) == 1


async def test_bad_roles_and_tenants(store):
    await store.create_tenant("acme")
    with pytest.raises(ValueError, match="unknown role"):
        await store.create_key("acme", ["root"])
    with pytest.raises(ValueError, match="no tenant"):
        await store.create_key("nope", ["app"])
    with pytest.raises(ValueError, match="already exists"):
        await store.create_tenant("acme")


def test_extract_key():
    assert extract_key({"authorization": "Bearer abc"}) == "abc"
    assert extract_key({"authorization": "Basic abc"}) is None
    assert extract_key({"api-key": "abc"}) == "abc"
    assert extract_key({}) is None
