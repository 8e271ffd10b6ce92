"""Desk sessions: a signed, expiring cookie naming the compliance key it was opened with.

The cookie holds no key and no secret: the key id, its tenant, an expiry and a random session id,
signed with HMAC-SHA256 under a key derived from the server secret. Every request re-reads the
key's row, so a revoked (or expired, or no longer compliance) key loses the desk on its very next
page. The CSRF token of the session's forms is derived from its id; the login form, before there
is a session, uses a double-submit cookie.

Logging out clears the cookie and records the session id in `desk_logouts` (tenant-scoped like
the rest), which the same per-request read consults: a copy of the cookie taken before logout is
refused by every replica from then on. Revoke the key to cut every session opened with it,
everywhere, at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite

from gateway.auth import Principal
from gateway.models import ApiKey, DeskLogout, Tenant, utcnow
from gateway.tenancy import scope

COOKIE = "bulkhead_desk"
LOGIN_COOKIE = "bulkhead_desk_login"
SESSION_SECONDS = 8 * 3600
ROLE = "compliance"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def signing_key(secret: bytes) -> bytes:
    return hmac.new(secret, b"desk-session-v1", hashlib.sha256).digest()


@dataclass(frozen=True, slots=True)
class Session:
    key_id: str
    tenant_id: str
    sid: str
    expires: int
    principal: Principal | None = None

    def csrf(self, secret: bytes) -> str:
        return hmac.new(signing_key(secret), b"csrf:" + self.sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, secret: bytes, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf(secret), token)


def issue(secret: bytes, principal: Principal, key_expires_at=None, now: float | None = None) -> tuple[str, Session]:
    now = time.time() if now is None else now
    expires = int(now + SESSION_SECONDS)
    if key_expires_at is not None:
        expires = min(expires, int(key_expires_at.timestamp()))
    session = Session(principal.key_id, principal.tenant_id, secrets.token_hex(16), expires)
    payload = _b64(orjson.dumps({"k": session.key_id, "t": session.tenant_id, "s": session.sid, "e": expires}))
    mac = _b64(hmac.new(signing_key(secret), payload.encode(), hashlib.sha256).digest())
    return f"{payload}.{mac}", session


def read(secret: bytes, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie names, if its signature holds and it has not expired."""
    if not cookie or len(cookie) > 1024 or cookie.count(".") != 1:
        return None
    payload, mac = cookie.split(".")
    expected = _b64(hmac.new(signing_key(secret), payload.encode(), hashlib.sha256).digest())
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        data = orjson.loads(_unb64(payload))
        session = Session(str(data["k"]), str(data["t"]), str(data["s"]), int(data["e"]))
    except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
        return None
    if session.expires <= (time.time() if now is None else now):
        return None
    return session


async def principal_for(engine, session: Session) -> Principal | None:
    """The key behind a session as it stands now: None once the session was logged out (on any
    replica), or the key is revoked, expired, gone, or no longer holds the compliance role."""
    logout = (DeskLogout.tenant_id == ApiKey.tenant_id) & (DeskLogout.sid == session.sid)
    async with engine.connect() as conn:
        await scope(conn, session.tenant_id)
        row = (await conn.execute(
            select(ApiKey.roles, ApiKey.revoked_at, ApiKey.expires_at, Tenant.name,
                   DeskLogout.sid.label("logged_out"))
            .join(Tenant, Tenant.id == ApiKey.tenant_id)
            .outerjoin(DeskLogout, logout)
            .where(ApiKey.id == session.key_id, ApiKey.tenant_id == session.tenant_id))).first()
    if row is None or row.revoked_at is not None or row.logged_out is not None:
        return None
    if row.expires_at is not None and row.expires_at <= utcnow():
        return None
    roles = tuple(orjson.loads(row.roles) if isinstance(row.roles, str) else row.roles or ())
    if ROLE not in roles:
        return None
    return Principal(tenant_id=session.tenant_id, tenant=row.name, key_id=session.key_id, roles=roles)


async def forget(engine, session: Session) -> None:
    """End a session on every replica; expired logouts of the tenant are pruned on the way."""
    now = utcnow()
    async with engine.begin() as conn:
        await scope(conn, session.tenant_id)
        await conn.execute(delete(DeskLogout).where(DeskLogout.tenant_id == session.tenant_id,
                                                    DeskLogout.expires_at <= now))
        # a second logout of the same session (another tab, a retry, a replica racing) is a no-op
        once = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(DeskLogout)
        await conn.execute(once.values(
            tenant_id=session.tenant_id, sid=session.sid, expires_at=datetime.fromtimestamp(session.expires, UTC),
        ).on_conflict_do_nothing(index_elements=[DeskLogout.tenant_id, DeskLogout.sid]))


def login_token() -> str:
    return secrets.token_urlsafe(24)
