"""`bulkhead audit ...`: verify, export, checkpoint, prune, query (operators and compliance staff).

Runs against the database as the schema owner (BULKHEAD_ADMIN_DATABASE_URL), or offline against an
export (`verify --export FILE`). `--tenant` takes a tenant's name or its id (`ten_…`); offline, an id
or a name the export's headers give needs no database. Exit status of `verify`: 0 intact, 1 damage
found (or nothing to verify: the tenant asked for is absent from the export), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
from sqlalchemy import or_, select
from sqlalchemy.engine import make_url

from gateway.audit import query as audit_query
from gateway.audit.chain import GENESIS
from gateway.audit.checkpoints import CheckpointStore, load_signing_key, parse_public_key, public_hex
from gateway.audit.export import (
    export_header,
    export_line,
    export_rows,
    export_tenants,
    new_export_id,
    verify_export,
)
from gateway.audit.retention import prune_chain
from gateway.audit.verify import VerifyReport, database_chains, db_rows, verify_database
from gateway.config import Settings
from gateway.db import create_engine
from gateway.models import AuditChainAnchor, AuditChainHead, Tenant, utcnow
from gateway.policy.loader import load_policy_set


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulkhead audit", description="The tamper-evident audit trail.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="recompute the hash chains and check them against the signed checkpoints")
    v.add_argument("--tenant", help="tenant name or id (default: every chain)")
    v.add_argument("--from-checkpoint", action="store_true",
                   help="start at the latest signed checkpoint instead of the beginning (incremental)")
    v.add_argument("--export", type=Path, help="verify this export (JSON lines) offline, without the database")
    v.add_argument("--checkpoints", type=Path, help="checkpoint directory (default: the configured one)")
    v.add_argument("--public-key", help="the checkpoint signer's Ed25519 public key (hex, or a file); "
                   "default: the configured signing key's")
    v.add_argument("--json", action="store_true", help="one JSON report per chain, then a summary")
    e = sub.add_parser("export", help="write a tenant's chain as JSON lines, verifiable offline")
    e.add_argument("--tenant", help="tenant name or id (default: every chain)")
    e.add_argument("--out", type=Path, help="file (default: stdout)")
    sub.add_parser("checkpoint", help="sign every chain's current head now")
    sub.add_parser("pubkey", help="print the checkpoint signer's public key (pin it where you verify)")
    pr = sub.add_parser("prune", help="delete events older than the tenant's retention, up to a signed checkpoint")
    pr.add_argument("--tenant", help="tenant name or id (default: every tenant)")
    q = sub.add_parser("query", help="list events (tenant-scoped filters, as the HTTP API)")
    q.add_argument("--tenant", required=True, help="tenant name or id")
    q.add_argument("--since")
    q.add_argument("--until")
    q.add_argument("--key-id")
    q.add_argument("--backend")
    q.add_argument("--risk-tier")
    q.add_argument("--status")
    q.add_argument("--pii-type")
    q.add_argument("--grounding")
    q.add_argument("--request-id")
    q.add_argument("--limit", type=int, default=100)
    q.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    return p


def _store(settings: Settings, directory: Path | None, public_key: str | None) -> CheckpointStore:
    directory = directory or settings.audit_checkpoint_dir
    if public_key:
        return CheckpointStore(directory, parse_public_key(public_key))
    if settings.audit_signing_key.exists():
        return CheckpointStore.for_signing(directory, settings.audit_signing_key)
    pub = directory / "signing-key.pub"
    if pub.exists():
        print(f"warning: trusting the public key found next to the checkpoints ({pub}); pin it with --public-key",
              file=sys.stderr)
        return CheckpointStore(directory, parse_public_key(str(pub)))
    raise SystemExit("no signing key or public key found: pass --public-key")


async def _tenants(engine, value: str | None = None) -> dict[str, str]:
    """id -> name: the tenant named `value` (or whose id it is), or every tenant."""
    query = select(Tenant.id, Tenant.name)
    if value is not None:
        query = query.where(or_(Tenant.name == value, Tenant.id == value))
    async with engine.connect() as conn:
        return {tid: name for tid, name in (await conn.execute(query)).all()}


async def _tenant_ids(engine, value: str | None) -> list[str] | None:
    if value is None:
        return None
    found = await _tenants(engine, value)
    if not found:
        raise SystemExit(f"no tenant named {value!r}")
    return [tid for tid, name in found.items() if name == value] or [value]  # by its name, else its id


def _label(r: VerifyReport, names: dict[str, str]) -> str:
    if r.chain == "":
        return "(unauthenticated)"
    name = r.tenant or names.get(r.chain)
    return f"{r.chain} ({name})" if name and name != r.chain else r.chain


def _plural(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _print_reports(reports: list[VerifyReport], as_json: bool, names: dict[str, str] | None = None,
                   required: set[str] | None = None) -> int:
    """One line per chain, then what was checked and the verdict. Damage fails; so does a chain the
    caller asked for (`required`) that is absent, or nothing checked at all."""
    names, required = names or {}, required or set()
    checked = [r for r in reports if not r.absent]
    absent = [r for r in reports if r.absent]
    broken = [r for r in checked if not r.ok]
    missing = [r for r in absent if r.chain in required]
    events, checkpoints = sum(r.events for r in checked), sum(r.checkpoints_matched for r in checked)
    for r in reports:
        if as_json:
            print(orjson.dumps(r.as_dict()).decode())
            continue
        label = _label(r, names)
        if r.absent:
            print(f"{label}: ABSENT {r.message.removeprefix('absent ')}")
        elif r.ok:
            span = f" (seq {r.first_seq}..{r.head_seq})" if r.events else ""
            print(f"{label}: intact, {_plural(r.events, 'event')}{span}, {r.checkpoints_matched} of "
                  f"{_plural(r.checkpoints, 'signed checkpoint')} matched, {r.rate_per_s:,.0f} events/s")
        else:
            where = f" at seq {r.first_bad_seq}" if r.first_bad_seq is not None else ""
            print(f"{label}: BROKEN{where}: {r.damage}: {r.message}")
        for note in r.notes:
            print(f"  note: {note}")
    failed = bool(broken or missing or not checked)
    if broken:
        verdict = f"BROKEN ({len(broken)} of {_plural(len(checked), 'chain')})"
    elif missing:
        verdict = "NOT VERIFIED: " + ", ".join(_label(r, names) for r in missing) + " absent from the export"
    elif not checked:
        verdict = "NOTHING TO VERIFY"
    else:
        verdict = "OK"
    summary = (f"checked {_plural(len(checked), 'chain')}, {_plural(events, 'event')}, "
               f"{_plural(checkpoints, 'checkpoint')}: {verdict}")
    if absent and not missing:
        summary += f"; {_plural(len(absent), 'chain')} absent from the export"
    if as_json:
        print(orjson.dumps({"object": "audit.verification.summary", "ok": not failed, "chains": len(checked),
                            "events": events, "checkpoints": checkpoints, "broken": [r.chain for r in broken],
                            "absent": [r.chain for r in absent]}).decode())
    else:
        print(summary)
    return 1 if failed else 0


def _usage(message: str) -> SystemExit:
    print(f"bulkhead audit: {message}", file=sys.stderr)
    return SystemExit(2)


def _sqlite_missing(url: str) -> bool:
    parsed = make_url(url)
    return parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").exists()


async def _offline_chain(value: str, export: Path, settings: Settings) -> tuple[str, str | None]:
    """The chain (and tenant name) `--tenant` means for an export: an id or a name the export's headers
    give, a `ten_…` id as is, else a name looked up in the database."""
    in_export = export_tenants(export)
    if value in in_export:
        return value, in_export[value]
    named = [chain for chain, name in in_export.items() if name == value]
    if named:
        return named[0], value
    if value.startswith("ten_"):
        return value, None
    url = settings.admin_database_url
    try:
        if _sqlite_missing(url):
            raise FileNotFoundError(url)
        engine = create_engine(url)
        try:
            found = await _tenants(engine, value)
        finally:
            await engine.dispose()
    except Exception as exc:  # any failure to reach the database means the same here
        raise _usage(f"tenant {value!r} is not named in the export's headers and the database cannot be read "
                     f"to resolve it ({type(exc).__name__}): pass the tenant's id (ten_…)") from None
    if not found:
        raise _usage(f"no tenant named {value!r} (not in the export's headers, nor in the database)")
    tid = next(iter(found))
    return tid, found[tid]


async def _verify(args, settings: Settings) -> int:
    store = _store(settings, args.checkpoints, args.public_key)
    if args.export:
        if not args.export.exists():
            raise _usage(f"no such export: {args.export}")
        names: dict[str, str] = {}
        chains = None
        if args.tenant:
            chain, name = await _offline_chain(args.tenant, args.export, settings)
            chains, names = {chain}, ({chain: name} if name else {})
        reports = verify_export(export_rows(args.export), store, chains=chains)
        return _print_reports(reports, args.json, names, required=chains)
    engine = create_engine(settings.admin_database_url)
    try:
        chains = await _tenant_ids(engine, args.tenant) or await database_chains(engine)
        names = await _tenants(engine)
        reports = [await verify_database(engine, c, store, from_checkpoint=args.from_checkpoint) for c in chains]
    finally:
        await engine.dispose()
    if not reports:
        print("no audit events yet")
        return 0
    return _print_reports(reports, args.json, names)


def _export_signer(settings: Settings) -> CheckpointStore | None:
    if not settings.audit_signing_key.exists():
        print(f"warning: no signing key at {settings.audit_signing_key}: the export's headers are unsigned, so "
              "offline verification can hold its range only against checkpoints signed before it",
              file=sys.stderr)
        return None
    key = load_signing_key(settings.audit_signing_key)
    return CheckpointStore(settings.audit_checkpoint_dir, key.public_key(), key)


async def _export(args, settings: Settings) -> int:
    """Per chain, a header (its range, signed) and then its events, read in one snapshot where the
    database has them (Postgres: repeatable read), and bounded by the head read first elsewhere."""
    signer = _export_signer(settings)
    engine = create_engine(settings.admin_database_url)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        chains = await _tenant_ids(engine, args.tenant) or await database_chains(engine)
        names = await _tenants(engine)
        export_id = new_export_id()
        async with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execution_options(isolation_level="REPEATABLE READ")
            for part, chain in enumerate(chains, 1):
                ts = utcnow()  # before the head: a checkpoint signed before this cannot be past it
                head = (await conn.execute(select(AuditChainHead.seq, AuditChainHead.hash)
                                           .where(AuditChainHead.chain == chain))).first()
                anchor = (await conn.execute(select(AuditChainAnchor.seq, AuditChainAnchor.hash)
                                             .where(AuditChainAnchor.chain == chain))).first()
                head = (int(head.seq), head.hash) if head else (0, GENESIS)
                anchor = (int(anchor.seq), anchor.hash) if anchor else (0, GENESIS)
                out.write(export_header(chain, anchor=anchor, head=head, export_id=export_id, part=part,
                                        parts=len(chains), tenant=names.get(chain), ts=ts, store=signer))
                last = anchor
                async for row in db_rows(conn, chain, anchor[0]):
                    if row["seq"] > head[0]:
                        break
                    out.write(export_line(row))
                    last = (row["seq"], row["hash"])
                if last != head:
                    raise SystemExit(f"{chain or '(unauthenticated)'} changed while it was exported (pruned?): "
                                     "export again")
    finally:
        out.flush()
        if args.out:
            out.close()
        await engine.dispose()
    return 0


async def _checkpoint(settings: Settings) -> int:
    store = CheckpointStore.for_signing(settings.audit_checkpoint_dir, settings.audit_signing_key)
    engine = create_engine(settings.admin_database_url)
    try:
        async with engine.connect() as conn:
            heads = (await conn.execute(select(AuditChainHead.chain, AuditChainHead.seq, AuditChainHead.hash)
                                        .where(AuditChainHead.seq > 0))).all()
    finally:
        await engine.dispose()
    for chain, seq, head in heads:
        cp = store.append(chain, seq, head)
        print(f"{chain or '(unauthenticated)'}: seq {seq} {'signed' if cp else 'already checkpointed'}")
    return 0


async def _prune(args, settings: Settings) -> int:
    policies = load_policy_set(settings.policies_dir)
    store = CheckpointStore.for_signing(settings.audit_checkpoint_dir, settings.audit_signing_key)
    engine = create_engine(settings.admin_database_url)
    try:
        async with engine.connect() as conn:
            query = select(Tenant.id, Tenant.name)
            if args.tenant:
                query = query.where(or_(Tenant.name == args.tenant, Tenant.id == args.tenant))
            tenants = (await conn.execute(query)).all()
        for tid, name in tenants:
            audit = policies.for_tenant(name).audit
            result = await prune_chain(engine, tid, retention_days=audit.retention_days,
                                       legal_hold=audit.legal_hold, checkpoints=store)
            print(f"{name}: {result.pruned} events pruned; {result.reason}")
    finally:
        await engine.dispose()
    return 0


async def _query(args, settings: Settings) -> int:
    engine = create_engine(settings.admin_database_url)
    try:
        tid = (await _tenant_ids(engine, args.tenant))[0]
        filters = {k: getattr(args, k) for k in ("since", "until", "key_id", "backend", "risk_tier", "status",
                                                 "pii_type", "grounding", "request_id") if getattr(args, k)}
        async for chunk in audit_query.cli_export(engine, tid, filters, args.format, args.limit):
            sys.stdout.buffer.write(chunk)
    finally:
        await engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings()
    if args.cmd == "pubkey":
        store = CheckpointStore.for_signing(settings.audit_checkpoint_dir, settings.audit_signing_key)
        print(public_hex(store.public_key))
        return 0
    runners = {
        "verify": lambda: _verify(args, settings),
        "export": lambda: _export(args, settings),
        "checkpoint": lambda: _checkpoint(settings),
        "prune": lambda: _prune(args, settings),
        "query": lambda: _query(args, settings),
    }
    return asyncio.run(runners[args.cmd]())
