"""Pruning old events without breaking verification.

Events older than the tenant's `audit.retention_days` are deleted only up to a signed checkpoint:
the newest checkpoint whose events are all older than the cutoff. Before deleting, the chain up to
that checkpoint is verified (a damaged stretch is evidence, and evidence is not pruned), and the
checkpoint becomes the chain's anchor (`audit_chain_anchors`), so verification afterwards starts
from a point the signing key vouches for. The deletion goes through the append-only trigger's one
door (`audit_prune_gate`, open for this chain up to that seq, inside this transaction only), and
the pruning itself is recorded as an event in the same chain. A legal hold refuses all of it.

Run as the schema owner (`bulkhead audit prune`, e.g. daily): the gateway's own role cannot delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select

from gateway.audit.checkpoints import CheckpointStore
from gateway.audit.verify import ChainVerifier, _anchor, _checkpoints_for, db_rows
from gateway.audit.writer import append_events, system_event
from gateway.models import AuditChainAnchor, AuditEvent, AuditPruneGate, HallucinationCheck, utcnow


@dataclass
class PruneResult:
    chain: str
    pruned: int = 0
    through_seq: int | None = None
    reason: str = ""


async def prune_chain(engine, chain: str, *, retention_days: int | None, legal_hold: bool,
                      checkpoints: CheckpointStore, now: datetime | None = None) -> PruneResult:
    result = PruneResult(chain)
    if legal_hold:
        result.reason = "legal hold: nothing pruned"
        return result
    if not retention_days:
        result.reason = "no retention period set: nothing pruned"
        return result
    cps, err = _checkpoints_for(checkpoints, chain)
    if err:
        result.reason = f"checkpoints are damaged ({err}): nothing pruned"
        return result
    cutoff = (now or utcnow()) - timedelta(days=retention_days)
    events = AuditEvent.__table__
    async with engine.begin() as conn:
        first_recent = (await conn.execute(select(func.min(events.c.seq)).where(
            events.c.chain == chain, events.c.ts >= cutoff))).scalar()
        head = (await conn.execute(select(func.max(events.c.seq)).where(events.c.chain == chain))).scalar()
        limit = (first_recent - 1) if first_recent is not None else head
        anchor = await _anchor(conn, chain)
        floor = anchor[0] if anchor else 0
        usable = [cp for cp in cps if floor < cp["seq"] <= (limit or 0)]
        if not usable:
            result.reason = "no signed checkpoint covers events older than the retention period yet"
            return result
        target = usable[-1]
        verifier = ChainVerifier(chain, [cp for cp in cps if cp["seq"] <= target["seq"]], anchor)
        async for row in db_rows(conn, chain, floor):
            if row["seq"] > target["seq"] or not verifier.feed(row):
                break
        report = verifier.finish()
        if not report.ok:
            result.reason = (f"the chain is damaged before the cutoff ({report.damage} at seq "
                             f"{report.first_bad_seq}): nothing pruned, it is evidence")
            return result
        await conn.execute(AuditPruneGate.__table__.insert().values(chain=chain, through_seq=target["seq"]))
        doomed = select(events.c.request_id).where(events.c.chain == chain, events.c.seq <= target["seq"])
        await conn.execute(delete(HallucinationCheck.__table__).where(
            HallucinationCheck.tenant_id == chain, HallucinationCheck.request_id.in_(doomed)))
        pruned = (await conn.execute(delete(events).where(events.c.chain == chain,
                                                          events.c.seq <= target["seq"]))).rowcount
        await conn.execute(delete(AuditPruneGate.__table__).where(AuditPruneGate.chain == chain))
        await conn.execute(delete(AuditChainAnchor.__table__).where(AuditChainAnchor.chain == chain))
        await conn.execute(AuditChainAnchor.__table__.insert().values(
            chain=chain, seq=target["seq"], hash=target["hash"], pruned_at=utcnow()))
        await append_events(conn, [system_event(
            "audit_pruned", {"through_seq": target["seq"], "events": pruned, "retention_days": retention_days,
                             "checkpoint_ts": target["ts"]}, tenant_id=chain or None)])
    result.pruned, result.through_seq = pruned, target["seq"]
    result.reason = f"pruned through the signed checkpoint at seq {target['seq']}"
    return result
