"""Process settings, read once from the environment (the documented contract)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from gateway.keyfiles import write_once

DATA_DIR = Path(os.environ.get("BULKHEAD_DATA_DIR", "data"))


def _default_database_url() -> str:
    return f"sqlite+aiosqlite:///{DATA_DIR / 'bulkhead.db'}"


def _load_or_create_secret() -> bytes:
    """The key-HMAC secret: from BULKHEAD_SECRET, else generated once and kept under ./data/.

    Losing it invalidates every key, so it is written with owner-only permissions and never
    regenerated when present.
    """
    env = os.environ.get("BULKHEAD_SECRET")
    if env:
        return env.encode()
    path = DATA_DIR / "secret"
    if path.exists():
        return path.read_bytes().strip()
    # Workers starting together on a fresh data directory all get the first one's secret.
    return write_once(path, secrets.token_urlsafe(48).encode()).strip()


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


@dataclass(slots=True)
class Settings:
    database_url: str = field(default_factory=lambda: os.environ.get("DATABASE_URL") or _default_database_url())
    # The schema owner's URL for `bulkhead migrate` and the operators' tenant/key commands; the
    # gateway itself connects with DATABASE_URL as a role that row-level security applies to.
    admin_database_url: str = field(
        default_factory=lambda: os.environ.get("BULKHEAD_ADMIN_DATABASE_URL") or os.environ.get("DATABASE_URL")
        or _default_database_url())
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL") or None)
    policies_dir: Path = field(default_factory=lambda: Path(os.environ.get("BULKHEAD_POLICIES", "policies")))
    max_body_bytes: int = field(default_factory=lambda: int(os.environ.get("BULKHEAD_MAX_BODY_BYTES", 4 * 1024 * 1024)))
    upstream_timeout: float = field(default_factory=lambda: _float_env("BULKHEAD_UPSTREAM_TIMEOUT", 60.0))
    audit_flush_interval: float = field(default_factory=lambda: _float_env("BULKHEAD_AUDIT_FLUSH_SECONDS", 0.05))
    # SIGTERM: how long in-flight requests and streams may take to finish before the process exits.
    drain_seconds: float = field(default_factory=lambda: _float_env("BULKHEAD_DRAIN_SECONDS", 25.0))
    # A client must send its request headers, then its body, within these (slowloris holds a
    # connection and a task per trickled request otherwise); past them it gets 408 and is closed.
    header_timeout: float = field(default_factory=lambda: _float_env("BULKHEAD_HEADER_TIMEOUT_SECONDS", 10.0))
    body_timeout: float = field(default_factory=lambda: _float_env("BULKHEAD_BODY_TIMEOUT_SECONDS", 30.0))
    # /metrics: when set, a scraper must send `Authorization: Bearer <token>`. Backends only a
    # tenant's overlay declares are labelled by a keyed hash, unless names are asked for.
    metrics_token: str | None = field(default_factory=lambda: os.environ.get("BULKHEAD_METRICS_TOKEN") or None,
                                      repr=False)
    metrics_backend_names: bool = field(
        default_factory=lambda: os.environ.get("BULKHEAD_METRICS_BACKEND_NAMES", "").lower() in ("1", "true", "yes"))
    policy_watch_seconds: float = field(default_factory=lambda: _float_env("BULKHEAD_POLICY_WATCH_SECONDS", 1.0))
    # Admin keys of this tenant may create tenants over HTTP; every other admin manages only its own.
    platform_tenant: str | None = field(default_factory=lambda: os.environ.get("BULKHEAD_PLATFORM_TENANT") or None)
    # The audit trail's durability and tamper evidence (gateway/audit/): where events wait while the
    # database is down, and where signed checkpoints of every chain's head go (outside the database).
    audit_spool_path: Path = field(default_factory=lambda: Path(
        os.environ.get("BULKHEAD_AUDIT_SPOOL") or DATA_DIR / "audit-spool.jsonl"))
    audit_spool_max_bytes: int = field(default_factory=lambda: int(
        os.environ.get("BULKHEAD_AUDIT_SPOOL_MAX_BYTES", 256 * 1024 * 1024)))
    audit_checkpoint_dir: Path = field(default_factory=lambda: Path(
        os.environ.get("BULKHEAD_AUDIT_CHECKPOINT_DIR") or DATA_DIR / "audit-checkpoints"))
    audit_signing_key: Path = field(default_factory=lambda: Path(
        os.environ.get("BULKHEAD_AUDIT_SIGNING_KEY") or DATA_DIR / "audit-signing-key.pem"))
    audit_checkpoint_seconds: float = field(
        default_factory=lambda: _float_env("BULKHEAD_AUDIT_CHECKPOINT_SECONDS", 30.0))
    _secret: bytes | None = None

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            self._secret = _load_or_create_secret()
        return self._secret

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
