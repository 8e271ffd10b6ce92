"""Audit exports and their offline verification.

An export written by `bulkhead audit export` puts one header line before each chain's events: the
chain (and tenant name), where it starts (the pruning anchor), where it ends (seq and hash of the
head when the export was made), which part of the export it is, the time, and an Ed25519 signature
by the checkpoint key. Offline, the header bounds the range: every event in it must be there, in
order, unchanged, and nothing else; signed checkpoints inside the range must match. Without a
signature (no key where the export ran) the header is the exporter's claim, held against every
checkpoint signed before it; without a header (an HTTP export, an older one) the chain must reach
its latest checkpoint.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

import orjson

from gateway.audit.chain import CHAIN_FIELDS, format_money, format_ts
from gateway.audit.checkpoints import CheckpointStore
from gateway.audit.verify import ChainVerifier, VerifyReport, _checkpoints_for, _parsed, _when
from gateway.models import utcnow

EXPORT_FORMAT = "bulkhead-audit-export/1"


def export_line(row: dict) -> bytes:
    out = {name: row.get(name) for name in CHAIN_FIELDS}
    if row.get("_json_text"):
        out = _parsed(out)
    out["ts"] = format_ts(row["ts"])
    out["cost_usd"] = format_money(row.get("cost_usd") or 0)
    out["hash"] = row["hash"]
    return orjson.dumps(out) + b"\n"


def new_export_id() -> str:
    return "exp_" + uuid.uuid4().hex[:20]


def export_header(chain: str, *, anchor: tuple[int, str], head: tuple[int, str], export_id: str, part: int,
                  parts: int, tenant: str | None = None, ts: datetime | None = None,
                  store: CheckpointStore | None = None) -> bytes:
    """The line before a chain's events in an export: the range it holds (after `anchor`, up to and
    including `head`), signed when `store` has the signing key. `ts` must be taken before `head` is
    read (checkpoints signed before it can then not be past the head)."""
    header = {"export": EXPORT_FORMAT, "id": export_id, "part": part, "parts": parts, "chain": chain,
              "tenant": tenant, "anchor_seq": anchor[0], "anchor_hash": anchor[1], "head_seq": head[0],
              "head_hash": head[1], "ts": (ts or utcnow()).isoformat()}
    if store is not None and store.signing_key is not None:
        header = store.sign(header)
    return orjson.dumps(header) + b"\n"


def is_header(row: dict) -> bool:
    return "export" in row


def _header_problem(header: dict) -> str | None:
    ints = ("part", "parts", "anchor_seq", "head_seq")
    strs = ("id", "chain", "anchor_hash", "head_hash", "ts")
    if header.get("export") != EXPORT_FORMAT:
        return f"an export header of an unknown format ({header.get('export')!r})"
    if any(not isinstance(header.get(k), int) or isinstance(header.get(k), bool) for k in ints) \
            or any(not isinstance(header.get(k), str) for k in strs) \
            or not isinstance(header.get("tenant"), str | None):
        return "the export's header for this chain is malformed (a field is missing or of the wrong type)"
    if not 0 <= header["anchor_seq"] <= header["head_seq"] or not 1 <= header["part"] <= header["parts"]:
        return "the export's header for this chain is inconsistent (its range or part number)"
    try:
        _when(header["ts"])
    except ValueError:
        return "the export's header for this chain has an unreadable time"
    return None


def check_header(header: dict, store: CheckpointStore | None) -> tuple[str, str | None]:
    """(status, error): "signed" (by the pinned key), "unsigned", "unchecked" (signed, but there is no
    key to check it with) or "invalid" (with why)."""
    problem = _header_problem(header)
    if problem:
        return "invalid", problem
    if "sig" not in header:
        return "unsigned", None
    if store is None:
        return "unchecked", None
    if not store.signed(header):
        return "invalid", ("the export's header for this chain does not match its signature: it was edited, "
                           "or signed with another key than the pinned one")
    return "signed", None


def export_rows(path: Path) -> Iterator[dict]:
    """The export's lines, parsed; a line that is not a JSON object comes as {"_bad_line": n}."""
    with open(path, "rb") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError:
                row = None
            yield row if isinstance(row, dict) else {"_bad_line": n}


def export_tenants(path: Path) -> dict[str, str | None]:
    """chain -> tenant name, from the export's headers (read without checking them: for resolving a
    tenant name to its chain offline; verification checks each header)."""
    out: dict[str, str | None] = {}
    with open(path, "rb") as fh:
        for line in fh:
            if line.startswith(b'{"export":'):
                try:
                    header = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(header.get("chain"), str):
                    out[header["chain"]] = header.get("tenant")
    return out


def _absent(chain: str, store: CheckpointStore | None) -> VerifyReport:
    cps, err = _checkpoints_for(store, chain)
    report = VerifyReport(chain=chain, ok=False, absent=True, damage="absent", checkpoints=len(cps))
    if err:
        report.message = f"absent from the export (and its checkpoints are damaged: {err})"
    elif cps:
        many = "s" if len(cps) != 1 else ""
        report.message = (f"absent from the export ({len(cps)} signed checkpoint{many}, "
                          f"the latest at seq {cps[-1]['seq']})")
    else:
        report.message = "absent from the export"
    return report


def verify_export(rows: Iterable[dict], checkpoints: CheckpointStore | None = None,
                  anchors: dict[str, tuple[int, str]] | None = None,
                  chains: set[str] | None = None) -> list[VerifyReport]:
    """Offline: every chain in an export (a header, then the chain's events in seq order, as `bulkhead
    audit export` writes them; or bare events, as the HTTP export), without database access.

    `chains` restricts it to those chains; one of them the export does not hold is reported absent
    (ok False, `absent` True), as is, without `chains`, a chain the checkpoints know but the export
    lacks. Without `chains`, a part of a multi-chain export that was removed whole is damage."""
    verifiers: dict[str, ChainVerifier] = {}
    parts: dict[str, tuple[int, set[int]]] = {}
    loose: list[VerifyReport] = []
    current: str | None = None  # the chain of the last line: an unreadable line is taken as its next

    def open_chain(chain: str, header: dict | None = None) -> ChainVerifier:
        cps, err = _checkpoints_for(checkpoints, chain)
        status, header_error = check_header(header, checkpoints) if header is not None else (None, None)
        if header is not None and status != "invalid" and chains is None:
            _, seen = parts.setdefault(header["id"], (header["parts"], set()))
            seen.add(header["part"])
        verifiers[chain] = ChainVerifier(chain, cps, (anchors or {}).get(chain), err, header, status, header_error)
        return verifiers[chain]

    for row in rows:
        chain = row.get("chain")
        if not isinstance(chain, str):
            if current is None:
                loose.append(VerifyReport(chain="(export)", ok=False, damage="edited", message=(
                    f"line {row.get('_bad_line', '?')} is not part of any chain (unreadable, or no chain field)")))
                continue
            chain = current
        current = chain
        if chains is not None and chain not in chains:
            continue
        if is_header(row):
            if chain in verifiers:
                verifiers[chain]._fail(None, "header_invalid", "a second export header for this chain, after "
                                       "its events began (lines moved, or exports spliced)")
            else:
                open_chain(chain, row)
            continue
        verifier = verifiers.get(chain) or open_chain(chain)
        verifier.feed(row)
    wanted = set(chains) if chains is not None else set(checkpoints.chains() if checkpoints is not None else ())
    reports = [v.finish() for _, v in sorted(verifiers.items())]
    reports += [_absent(chain, checkpoints) for chain in sorted(wanted - verifiers.keys())]
    for export_id, (total, seen) in sorted(parts.items()):
        for part in sorted(set(range(1, total + 1)) - seen):
            loose.append(VerifyReport(chain=f"(export {export_id}, part {part} of {total})", ok=False,
                                      damage="deleted", message="a whole chain (its header and events) was "
                                      "removed from the export"))
    return reports + loose
