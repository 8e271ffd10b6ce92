"""`bulkhead audit ...`: verify, export, checkpoint, prune, query (operators and compliance staff).

Runs against the database as the schema owner (BULKHEAD_ADMIN_DATABASE_URL), or offline against an
export (`verify --export FILE`). Exit status of `verify`: 0 intact, 1 damage found, 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import orjson
from sqlalchemy import select

from gateway.audit import query as audit_query
from gateway.audit.checkpoints import CheckpointStore, parse_public_key, public_hex
from gateway.audit.retention import prune_chain
from gateway.audit.verify import database_chains, db_rows, export_line, export_rows, verify_database, verify_export
from gateway.config import Settings
from gateway.db import create_engine
from gateway.models import AuditChainHead, Tenant
from gateway.policy.loader import load_policy_set


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulkhead audit", description="The tamper-evident audit trail.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="recompute the hash chains and check them against the signed checkpoints")
    v.add_argument("--tenant", help="tenant name (default: every chain)")
    v.add_argument("--from-checkpoint", action="store_true",
                   help="start at the latest signed checkpoint instead of the beginning (incremental)")
    v.add_argument("--export", type=Path, help="verify this export (JSON lines) offline, without the database")
    v.add_argument("--checkpoints", type=Path, help="checkpoint directory (default: the configured one)")
    v.add_argument("--public-key", help="the checkpoint signer's Ed25519 public key (hex, or a file); "
                   "default: the configured signing key's")
    v.add_argument("--json", action="store_true", help="one JSON report per chain")
    e = sub.add_parser("export", help="write a tenant's chain as JSON lines, verifiable offline")
    e.add_argument("--tenant", help="tenant name (default: every chain)")
    e.add_argument("--out", type=Path, help="file (default: stdout)")
    sub.add_parser("checkpoint", help="sign every chain's current head now")
    sub.add_parser("pubkey", help="print the checkpoint signer's public key (pin it where you verify)")
    pr = sub.add_parser("prune", help="delete events older than the tenant's retention, up to a signed checkpoint")
    pr.add_argument("--tenant", help="tenant name (default: every tenant)")
    q = sub.add_parser("query", help="list events (tenant-scoped filters, as the HTTP API)")
    q.add_argument("--tenant", required=True)
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


async def _tenant_ids(engine, name: str | None) -> list[str] | None:
    if name is None:
        return None
    async with engine.connect() as conn:
        tid = (await conn.execute(select(Tenant.id).where(Tenant.name == name))).scalar()
    if tid is None:
        raise SystemExit(f"no tenant named {name!r}")
    return [tid]


def _print_reports(reports, as_json: bool) -> int:
    bad = 0
    for r in reports:
        if as_json:
            print(orjson.dumps(r.as_dict()).decode())
        else:
            label = r.chain or "(unauthenticated)"
            if r.ok:
                print(f"{label}: intact, {r.events} events (seq {r.first_seq}..{r.head_seq}), "
                      f"{r.checkpoints} signed checkpoints, {r.rate_per_s:,.0f} events/s")
            else:
                print(f"{label}: BROKEN at seq {r.first_bad_seq}: {r.damage}: {r.message}")
        bad += not r.ok
    return 1 if bad else 0


async def _verify(args, settings: Settings) -> int:
    store = _store(settings, args.checkpoints, args.public_key)
    if args.export:
        chains = {args.tenant} if args.tenant else None  # offline: tenant ids, as in the export
        return _print_reports(verify_export(export_rows(args.export), store, chains=chains), args.json)
    engine = create_engine(settings.admin_database_url)
    try:
        chains = await _tenant_ids(engine, args.tenant) or await database_chains(engine)
        reports = [await verify_database(engine, c, store, from_checkpoint=args.from_checkpoint) for c in chains]
    finally:
        await engine.dispose()
    if not reports:
        print("no audit events yet")
    return _print_reports(reports, args.json)


async def _export(args, settings: Settings) -> int:
    engine = create_engine(settings.admin_database_url)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer  # noqa: SIM115
    try:
        chains = await _tenant_ids(engine, args.tenant) or await database_chains(engine)
        async with engine.connect() as conn:
            for chain in chains:
                async for row in db_rows(conn, chain):
                    out.write(export_line(row))
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
                query = query.where(Tenant.name == args.tenant)
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
