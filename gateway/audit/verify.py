"""Recompute a chain and hold it against its signed checkpoints.

The verifier reads events in seq order, once, in bounded memory, and stops at the first break.
It names the first broken sequence number and the kind of damage:

- edited: an event's content no longer matches its hash (or a hash was rewritten and the next
  event's link exposes it);
- deleted: a sequence number is missing (from the middle, or from the start of the chain without
  a signed pruning anchor);
- inserted: an extra event, at a duplicated sequence number or spliced between two that linked;
- reordered: an event sits at another position than the one its hash was made for;
- truncated: the chain ends before a signed checkpoint says it reached;
- rolled back: the chain is internally consistent but differs from a signed checkpoint at the
  same sequence number (a restored backup that then took new traffic).

It runs on the database (as the schema owner, or scoped to one tenant) and offline on an export
(JSON lines of events with the chain fields) plus the checkpoint directory.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
from sqlalchemy import Text, cast, select

from gateway.audit.chain import CHAIN_FIELDS, GENESIS, format_money, format_ts
from gateway.audit.chain import row_hash as _row_hash
from gateway.audit.checkpoints import CheckpointError, CheckpointStore
from gateway.models import AuditChainAnchor, AuditChainHead, AuditEvent
from gateway.tenancy import scope

WINDOW = 1024  # events kept around a break to tell reordering and insertion from editing
JSON_FIELDS = frozenset({"stages", "detail", "pii", "risk", "route", "checks", "content"})


def _as_stored(row: dict) -> dict:
    return {**row, **{k: orjson.Fragment(row[k]) for k in JSON_FIELDS if isinstance(row.get(k), str)}}


def _parsed(row: dict) -> dict:
    return {**row, **{k: orjson.loads(row[k]) for k in JSON_FIELDS if isinstance(row.get(k), str)}}


def row_hash(row: dict) -> str:
    """The hash of an event as read. Rows from the database carry their JSON columns as the stored
    text (`_json_text`): hashed as stored first and, only if that differs, parsed."""
    if not row.get("_json_text"):
        return _row_hash(row)
    digest = _row_hash(_as_stored(row))
    return digest if digest == row.get("hash") else _row_hash(_parsed(row))


@dataclass
class VerifyReport:
    chain: str
    ok: bool = True
    events: int = 0
    first_seq: int | None = None
    head_seq: int | None = None
    head_hash: str | None = None
    checkpoints: int = 0
    checkpoint_seq: int | None = None
    anchor_seq: int = 0
    first_bad_seq: int | None = None
    damage: str | None = None
    message: str = "intact"
    elapsed_s: float = 0.0
    rate_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


class ChainVerifier:
    def __init__(self, chain: str, checkpoints: list[dict] | None = None, anchor: tuple[int, str] | None = None,
                 checkpoints_error: str | None = None) -> None:
        self.report = VerifyReport(chain=chain)
        self._t0 = time.perf_counter()
        self._anchor = anchor or (0, GENESIS)
        self.report.anchor_seq = self._anchor[0]
        self._checkpoints = checkpoints or []
        self._by_seq = {cp["seq"]: cp for cp in self._checkpoints}
        self.report.checkpoints = len(self._checkpoints)
        self._recent: collections.deque[dict] = collections.deque(maxlen=WINDOW)
        self._after: list[dict] = []
        self._break: tuple[dict, dict | None] | None = None
        if checkpoints_error:
            self._fail(None, "checkpoints_invalid", checkpoints_error)
        elif anchor and anchor[0] and self._checkpoints and anchor[0] not in self._by_seq:
            self._fail(anchor[0], "deleted", f"the chain starts after seq {anchor[0]} (pruned), but no signed "
                       "checkpoint vouches for that point")

    def _fail(self, seq: int | None, damage: str, message: str) -> None:
        if self.report.ok:
            self.report.ok, self.report.first_bad_seq, self.report.damage, self.report.message = (
                False, seq, damage, message)

    def feed(self, row: dict) -> bool:
        """Take the next event; False once the verdict is in (the caller may stop reading)."""
        if not self.report.ok and self._break is None:
            return False
        if self._break is not None:
            self._after.append(row)
            return len(self._after) < WINDOW
        prev = self._recent[-1] if self._recent else None
        expected_seq = prev["seq"] + 1 if prev else self._anchor[0] + 1
        expected_prev = prev["hash"] if prev else self._anchor[1]
        own_ok = row_hash(row) == row["hash"]
        if row["seq"] != expected_seq or row["prev_hash"] != expected_prev or not own_ok:
            self._break = (row, prev)
            return True
        cp = self._by_seq.get(row["seq"])
        if cp is not None:
            if cp["hash"] != row["hash"]:
                self._fail(row["seq"], "rolled_back", f"seq {row['seq']} differs from the signed checkpoint of "
                           f"{cp['ts']}: the chain was rewritten or restored from an older copy after it")
                return False
            self.report.checkpoint_seq = row["seq"]
        self._recent.append(row)
        self.report.events += 1
        if self.report.first_seq is None:
            self.report.first_seq = row["seq"]
        self.report.head_seq, self.report.head_hash = row["seq"], row["hash"]
        return True

    def _classify(self) -> None:
        row, prev = self._break
        seq = row["seq"]
        expected_seq = prev["seq"] + 1 if prev else self._anchor[0] + 1
        expected_prev = prev["hash"] if prev else self._anchor[1]
        known = {r["hash"]: r for r in (*self._recent, *self._after)}
        if prev is not None and seq == prev["seq"]:
            self._fail(seq, "inserted", f"two events claim seq {seq}")
        elif seq < expected_seq:
            self._fail(seq, "reordered", f"seq {seq} appears after seq {prev['seq']}")
        elif seq > expected_seq:
            what = "the chain's first events are" if prev is None else "events are"
            self._fail(expected_seq, "deleted", f"{what} missing: seq {expected_seq} to {seq - 1}")
        elif row_hash(row) != row["hash"]:
            made_for = next((s for s in range(max(1, seq - WINDOW), seq + WINDOW)
                             if s != seq and row_hash({**row, "seq": s}) == row["hash"]), None)
            if made_for is not None:
                self._fail(seq, "reordered", f"the event at seq {seq} was made for seq {made_for}")
            else:
                self._fail(seq, "edited", f"the event at seq {seq} does not match its hash")
        elif row["prev_hash"] != expected_prev:
            origin = known.get(row["prev_hash"])
            before = self._recent[-2] if len(self._recent) >= 2 else None
            if before is not None and row["prev_hash"] == before["hash"]:
                self._fail(prev["seq"], "inserted", f"the event at seq {prev['seq']} was spliced in between "
                           f"seq {before['seq']} and the event that followed it")
            elif origin is not None and origin is not prev:
                self._fail(seq, "reordered", f"the event at seq {seq} follows seq {origin['seq']}, not {seq - 1}")
            else:
                self._fail(expected_seq - 1 if prev else seq, "edited",
                           f"the link into seq {seq} is broken: the event before it was rewritten")

    def finish(self) -> VerifyReport:
        if self._break is not None:
            self._classify()
            self._break = None
        r = self.report
        if r.ok and self._checkpoints:
            last = self._checkpoints[-1]
            head = r.head_seq if r.head_seq is not None else self._anchor[0]
            if last["seq"] > head:
                self._fail(head + 1, "truncated", f"the chain ends at seq {head} but a signed checkpoint of "
                           f"{last['ts']} records seq {last['seq']}")
        r.elapsed_s = round(time.perf_counter() - self._t0, 4)
        r.rate_per_s = round(r.events / r.elapsed_s) if r.elapsed_s > 0 else 0.0
        return r


def _checkpoints_for(store: CheckpointStore | None, chain: str) -> tuple[list[dict], str | None]:
    if store is None:
        return [], None
    try:
        return store.read(chain), None
    except CheckpointError as exc:
        return [], str(exc)


# -- sources --------------------------------------------------------------------------------------


async def _anchor(conn, chain: str) -> tuple[int, str] | None:
    row = (await conn.execute(select(AuditChainAnchor.seq, AuditChainAnchor.hash)
                              .where(AuditChainAnchor.chain == chain))).first()
    return (int(row.seq), row.hash) if row else None


async def db_rows(conn, chain: str, from_seq: int = 0, batch: int = 5000, raw_json: bool = True
                  ) -> AsyncIterator[dict]:
    """The chain's events in seq order, read in keyset batches (bounded memory, any driver);
    `raw_json=False` parses the JSON columns."""
    table = AuditEvent.__table__
    # JSON columns come back as the text stored and are hashed as is (embedded as orjson Fragments):
    # the writer stores canonical JSON, so nothing needs parsing. Text that is not canonical (rows
    # written before that, or a database that rewrites JSON) is parsed when the hash differs.
    cols = [cast(table.c[name], Text).label(name) if name in JSON_FIELDS and raw_json else table.c[name]
            for name in CHAIN_FIELDS]
    cols.append(table.c.hash)
    after = from_seq
    if raw_json and conn.dialect.name == "postgresql":
        # asyncpg directly, inside the same transaction (and tenant scope): SQLAlchemy's per-row result
        # processing was most of verification's time.
        raw = (await conn.get_raw_connection()).driver_connection
        names = ", ".join(f"{n}::text AS {n}" if n in JSON_FIELDS else n for n in CHAIN_FIELDS) + ", hash"
        sql = f"SELECT {names} FROM audit_events WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        while True:
            records = await raw.fetch(sql, chain, after, batch)
            for rec in records:
                row = dict(rec)
                row["_json_text"] = True
                yield row
            if len(records) < batch:
                return
            after = records[-1]["seq"]
    while True:
        result = await conn.execute(select(*cols).where(table.c.chain == chain, table.c.seq > after)
                                    .order_by(table.c.seq).limit(batch))
        keys = list(result.keys())
        rows = result.all()
        for r in rows:
            row = dict(zip(keys, r, strict=True))
            row["_json_text"] = raw_json
            yield row
        if len(rows) < batch:
            return
        after = rows[-1].seq


async def verify_database(engine, chain: str, checkpoints: CheckpointStore | None = None,
                          from_checkpoint: bool = False) -> VerifyReport:
    """Verify one chain in the database. As the gateway's role this must be the caller's tenant."""
    cps, cp_error = _checkpoints_for(checkpoints, chain)
    async with engine.connect() as conn:
        await scope(conn, chain)
        anchor = await _anchor(conn, chain)
        start = anchor
        if from_checkpoint and cps:
            start = (cps[-1]["seq"], cps[-1]["hash"])
            cps = [cp for cp in cps if cp["seq"] >= start[0]]
        verifier = ChainVerifier(chain, cps, start, cp_error)
        if from_checkpoint and cps and start != anchor:
            # the checkpoint's own event must still be there, unchanged
            async for row in db_rows(conn, chain, start[0] - 1, batch=1):
                if row["seq"] != start[0] or row["hash"] != start[1]:
                    verifier._fail(start[0], "rolled_back", f"seq {start[0]} differs from its signed checkpoint")
                break
        async for row in db_rows(conn, chain, start[0] if start else 0):
            if not verifier.feed(row):
                break
        await conn.rollback()
    return verifier.finish()


async def database_chains(engine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(AuditChainHead.chain).order_by(AuditChainHead.chain))).scalars())


def export_line(row: dict) -> bytes:
    out = {name: row.get(name) for name in CHAIN_FIELDS}
    if row.get("_json_text"):
        out = _parsed(out)
    out["ts"] = format_ts(row["ts"])
    out["cost_usd"] = format_money(row.get("cost_usd") or 0)
    out["hash"] = row["hash"]
    return orjson.dumps(out) + b"\n"


def export_rows(path: Path) -> Iterator[dict]:
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                yield orjson.loads(line)


def verify_export(rows: Iterable[dict], checkpoints: CheckpointStore | None = None,
                  anchors: dict[str, tuple[int, str]] | None = None,
                  chains: set[str] | None = None) -> list[VerifyReport]:
    """Offline: every chain in an export (events grouped by chain, in seq order, as `bulkhead audit
    export` writes them), without database access."""
    verifiers: dict[str, ChainVerifier] = {}
    for row in rows:
        chain = row.get("chain", "")
        if chains is not None and chain not in chains:
            continue
        verifier = verifiers.get(chain)
        if verifier is None:
            cps, err = _checkpoints_for(checkpoints, chain)
            anchor = (anchors or {}).get(chain)
            verifier = verifiers[chain] = ChainVerifier(chain, cps, anchor, err)
        verifier.feed(row)
    if checkpoints is not None:  # a chain the checkpoints know but the export lacks entirely
        for chain in checkpoints.chains():
            if chain not in verifiers and (chains is None or chain in chains):
                cps, err = _checkpoints_for(checkpoints, chain)
                verifiers[chain] = ChainVerifier(chain, cps, (anchors or {}).get(chain), err)
    return [v.finish() for _, v in sorted(verifiers.items())]
