"""Database tables. The migrations in `migrations/` are the authority on the schema; these
mappings mirror them for queries (a test compares the two)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on the way out on every database; SQLite stores no zone, so the value is
    normalised to UTC on the way in and re-tagged on the way out."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


naming = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=naming)
    type_annotation_map = {datetime: UTCDateTime}


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key_hash"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    roles: Mapped[list] = mapped_column(JSON)
    models: Mapped[list | None] = mapped_column(JSON, nullable=True)
    name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_tenant_ts", "tenant_id", "ts"),
        UniqueConstraint("tenant_id", "request_id"),
        # One successor per event and one event per position: concurrent writers cannot fork a chain.
        UniqueConstraint("chain", "seq"),
        UniqueConstraint("chain", "request_id"),
        UniqueConstraint("chain", "prev_hash"),
        # No RETURNING: under row-level security the writer must not need to read back rows it
        # may insert but not see (requests that never authenticated carry no tenant).
        {"implicit_returning": False},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime]
    tenant_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    method: Mapped[str] = mapped_column(String(8))
    endpoint: Mapped[str] = mapped_column(String(200))
    requested_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    backend: Mapped[str | None] = mapped_column(String(100), nullable=True)
    provider_model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    stream: Mapped[bool] = mapped_column(Boolean, default=False)
    tokens_in: Mapped[int] = mapped_column(Integer, default=0)
    tokens_out: Mapped[int] = mapped_column(Integer, default=0)
    cost_usd: Mapped[float] = mapped_column(Numeric(18, 10), default=0)
    latency_ms: Mapped[float] = mapped_column(Float)
    stages: Mapped[dict] = mapped_column(JSON)
    policy_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    kind: Mapped[str] = mapped_column(String(32), default="request", server_default="request")
    detail: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    pii: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    risk: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    route: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    checks: Mapped[list | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    content: Mapped[dict | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    chain: Mapped[str] = mapped_column(String(40))
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(Base):
    """The last event of each chain, advanced by the database itself (a trigger) on every insert."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainAnchor(Base):
    """Where a pruned chain now starts: the signed checkpoint (seq, hash) the pruning stopped at."""

    __tablename__ = "audit_chain_anchors"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    pruned_at: Mapped[datetime]


class AuditPruneGate(Base):
    """Open only inside the pruning transaction: the append-only trigger lets DELETE through for
    rows of `chain` up to `through_seq` while a row here says so."""

    __tablename__ = "audit_prune_gate"

    chain: Mapped[str] = mapped_column(String(40), primary_key=True)
    through_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))


class DeskLogout(Base):
    """A desk session ended by logout; every replica refuses its cookie from then on. Rows past
    `expires_at` are dead weight (the cookie has expired anyway) and are pruned at the next logout."""

    __tablename__ = "desk_logouts"

    tenant_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime]


class HallucinationCheck(Base):
    __tablename__ = "hallucination_checks"
    __table_args__ = (
        Index("ix_hallucination_checks_tenant_request", "tenant_id", "request_id"),
        {"implicit_returning": False},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(40))
    request_id: Mapped[str] = mapped_column(String(40))
    ts: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))
    backend: Mapped[str | None] = mapped_column(String(100), nullable=True)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    threshold: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    claims: Mapped[list | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(200), nullable=True)
