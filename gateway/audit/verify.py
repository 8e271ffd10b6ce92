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
What an export holds, and how it is checked offline, is in gateway/audit/export.py.
"""

from __future__ import annotations

import collections
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import orjson
from sqlalchemy import Text, cast, select

from gateway.audit.chain import CHAIN_FIELDS, GENESIS
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
    checkpoints_matched: int = 0  # signed checkpoints the events were actually held against
    tenant: str | None = None  # the tenant's name, where the export's header gives it
    export_header: str | None = None  # offline: "signed", "unsigned", "unchecked" (no key to check it)
    absent: bool = False  # offline: the checkpoints know the chain, the export does not hold it

    def as_dict(self) -> dict:
        return asdict(self)


def _well_formed(row: dict) -> bool:
    seq = row.get("seq")
    return (isinstance(seq, int) and not isinstance(seq, bool) and isinstance(row.get("hash"), str)
            and isinstance(row.get("prev_hash"), str) and "_bad_line" not in row)


def _when(value: str) -> datetime:
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class ChainVerifier:
    """`header`: an export's header for this chain, with `header_status` as `check_header` returns it
    ("signed", "unsigned", "unchecked"; "invalid" fails the chain with `header_error`)."""

    def __init__(self, chain: str, checkpoints: list[dict] | None = None, anchor: tuple[int, str] | None = None,
                 checkpoints_error: str | None = None, header: dict | None = None, header_status: str | None = None,
                 header_error: str | None = None) -> None:
        self.report = VerifyReport(chain=chain)
        self._t0 = time.perf_counter()
        self._end: tuple[int, str] | None = None  # the head an export's header records
        self._claimed_at: datetime | None = None  # an unsigned header's time: checkpoints before it bound it
        if header is not None and header_status != "invalid":
            anchor = (header["anchor_seq"], header["anchor_hash"])
            self._end = (header["head_seq"], header["head_hash"])
            self.report.tenant = header.get("tenant")
            if header_status != "signed":
                self._claimed_at = _when(header["ts"])
                self.report.notes.append(
                    "the export's header is unsigned (no signing key where it was made)" if header_status == "unsigned"
                    else "the export's header signature was not checked (no public key)")
        if header is not None:
            self.report.export_header = header_status
        self._anchor = anchor or (0, GENESIS)
        self.report.anchor_seq = self._anchor[0]
        self._checkpoints = checkpoints or []
        self._by_seq = {cp["seq"]: cp for cp in self._checkpoints}
        self.report.checkpoints = len(self._checkpoints)
        self._recent: collections.deque[dict] = collections.deque(maxlen=WINDOW)
        self._after: list[dict] = []
        self._break: tuple[dict, dict | None] | None = None
        start = self._by_seq.get(self._anchor[0]) if self._anchor[0] else None
        if checkpoints_error:
            self._fail(None, "checkpoints_invalid", checkpoints_error)
        elif header_error:
            self._fail(None, "header_invalid", header_error)
        elif self._anchor[0] and self._checkpoints and start is None:
            self._fail(self._anchor[0], "deleted", f"the chain starts after seq {self._anchor[0]} (pruned), but "
                       "no signed checkpoint vouches for that point")
        elif start is not None and start["hash"] != self._anchor[1]:
            self._fail(self._anchor[0], "rolled_back", f"the chain starts after seq {self._anchor[0]} (pruned), "
                       f"but that point differs from the signed checkpoint of {start['ts']}")
        elif start is not None:
            self.report.checkpoints_matched, self.report.checkpoint_seq = 1, self._anchor[0]

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
        if (not _well_formed(row) or row["seq"] != expected_seq or row["prev_hash"] != expected_prev
                or row_hash(row) != row["hash"]):
            self._break = (row, prev)
            return True
        if self._end is not None and row["seq"] > self._end[0]:
            self._fail(row["seq"], "inserted", f"seq {row['seq']} is past the end of the export's range: its "
                       f"header records the chain ending at seq {self._end[0]}")
            return False
        cp = self._by_seq.get(row["seq"])
        if cp is not None:
            if cp["hash"] != row["hash"]:
                since = self.report.checkpoint_seq or self._anchor[0]
                self._fail(row["seq"], "rolled_back", f"seq {row['seq']} differs from the signed checkpoint of "
                           f"{cp['ts']}: events after seq {since} were rewritten (hashes recomputed) or restored "
                           "from an older copy")
                return False
            self.report.checkpoint_seq = row["seq"]
            self.report.checkpoints_matched += 1
        self._recent.append(row)
        self.report.events += 1
        if self.report.first_seq is None:
            self.report.first_seq = row["seq"]
        self.report.head_seq, self.report.head_hash = row["seq"], row["hash"]
        return True

    def _classify(self) -> None:
        row, prev = self._break
        expected_seq = prev["seq"] + 1 if prev else self._anchor[0] + 1
        expected_prev = prev["hash"] if prev else self._anchor[1]
        after = self._after
        nxt = after[0] if after else None
        # the line after the break takes up the chain where it left off: the break is an extra line
        resumes = (nxt is not None and _well_formed(nxt) and nxt["seq"] == expected_seq
                   and nxt["prev_hash"] == expected_prev and row_hash(nxt) == nxt["hash"])
        if not _well_formed(row):
            where = f" (line {row['_bad_line']})" if "_bad_line" in row else ""
            if resumes:
                self._fail(expected_seq, "inserted", f"a line that is not an event{where} sits between seq "
                           f"{expected_seq - 1} and seq {expected_seq}")
            else:
                self._fail(expected_seq, "edited", f"the line for seq {expected_seq}{where} is not a valid event "
                           "(unreadable, or a chain field missing or of the wrong type)")
            return
        seq = row["seq"]
        own_ok = row_hash(row) == row["hash"]
        # a line that belongs to the chain elsewhere: something later links to it, or it to something later
        linked_later = any(r.get("prev_hash") == row["hash"] or r.get("hash") == row["prev_hash"] for r in after)
        if prev is not None and seq == prev["seq"]:
            self._fail(seq, "inserted", f"two events claim seq {seq}")
        elif resumes and not linked_later:
            self._fail(expected_seq, "inserted", f"an extra event (claiming seq {seq}) sits between seq "
                       f"{expected_seq - 1} and seq {expected_seq}")
        elif not own_ok and (made_for := next(
                (s for s in range(max(1, seq - WINDOW), seq + WINDOW)
                 if s != seq and row_hash({**row, "seq": s}) == row["hash"]), None)) is not None:
            if made_for == expected_seq:
                self._fail(expected_seq, "edited", f"the event at seq {expected_seq} had its seq changed to {seq}")
            else:
                self._fail(seq, "reordered", f"the event at seq {seq} was made for seq {made_for}")
        elif not own_ok and seq == expected_seq:
            self._fail(seq, "edited", f"the event at seq {seq} does not match its hash")
        elif seq < expected_seq:
            self._fail(seq, "reordered", f"seq {seq} appears after seq {prev['seq']}")
        elif seq > expected_seq:
            if any(r.get("seq") == expected_seq for r in after):
                self._fail(expected_seq, "reordered", f"seq {expected_seq} comes later, after seq {seq}")
            else:
                what = "the chain's first events are" if prev is None else "events are"
                self._fail(expected_seq, "deleted", f"{what} missing: seq {expected_seq} to {seq - 1}")
        elif row["prev_hash"] != expected_prev:
            known = {r["hash"]: r for r in (*self._recent, *after) if _well_formed(r)}
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
        head = r.head_seq if r.head_seq is not None else self._anchor[0]
        if r.ok and self._end is not None and head < self._end[0]:
            self._fail(head + 1, "truncated", f"the export ends at seq {head} but its header records the chain "
                       f"ending at seq {self._end[0]}")
        elif r.ok and self._end is not None and head == self._end[0] and head > self._anchor[0] \
                and r.head_hash != self._end[1]:
            self._fail(head, "edited", f"seq {head} differs from the head its export's header records")
        if r.ok:
            last = self._bounding_checkpoint()
            if last is not None and last["seq"] > head:
                what = "the export ends" if self._end is not None else "the chain ends"
                self._fail(head + 1, "truncated", f"{what} at seq {head} but a signed checkpoint of "
                           f"{last['ts']} records seq {last['seq']}")
        if r.ok and r.events and not r.checkpoints_matched:
            r.notes.append("no signed checkpoint falls in this range: a consistent rewrite of it would go unnoticed")
        r.elapsed_s = round(time.perf_counter() - self._t0, 4)
        r.rate_per_s = round(r.events / r.elapsed_s) if r.elapsed_s > 0 else 0.0
        return r

    def _bounding_checkpoint(self) -> dict | None:
        """The latest checkpoint the chain (or the export) must reach: any, on the database or an
        export without a header; up to a signed header's head; and, for an unsigned header, any
        signed before the export was made."""
        if self._end is None:
            return self._checkpoints[-1] if self._checkpoints else None
        inside = [cp for cp in self._checkpoints if cp["seq"] <= self._end[0]]
        if self._claimed_at is not None:
            inside += [cp for cp in self._checkpoints if _when(cp["ts"]) <= self._claimed_at]
        return max(inside, key=lambda cp: cp["seq"], default=None)


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
