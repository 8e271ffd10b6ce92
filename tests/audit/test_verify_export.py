"""`bulkhead audit verify --export`: offline verification names what it checked and fails on any
edit of an export (a changed field, a deleted, reordered or inserted line, a cut tail, a whole chain
removed), naming the first bad seq; `--tenant` takes a name or an id; a chain the export does not
hold is reported absent, not broken.

The first tests drive the CLI in process on exports built here (no database: its URL points at a
closed port); the last ones go through a real gateway, `audit export` and `audit verify` as an
operator runs them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from gateway.audit.chain import GENESIS, link, row_hash
from gateway.audit.checkpoints import CheckpointStore, public_hex
from gateway.audit.export import export_header, export_line, new_export_id
from gateway.compliance import cli as audit_cli
from tests.audit.test_chain import event
from tests.audit.test_cli_and_content import chat, run, wait_recorded

DEMO = "ten_0123456789abcdef0123"
OTHER = "ten_fedcba9876543210fedc"


def make_chain(chain: str, n: int) -> list[dict]:
    rows = [{**event(chain or None), "chain": chain} for _ in range(n)]
    link(rows, 0, GENESIS)
    return [orjson.loads(export_line(r)) for r in rows]  # as an export holds them


@dataclass
class Offline:
    tmp: Path
    store: CheckpointStore
    capsys: pytest.CaptureFixture

    def export(self, chains: dict[str, tuple[list[dict], str | None]], *, signed: bool = True,
               anchor: dict[str, tuple[int, str]] | None = None, name: str = "x.jsonl") -> Path:
        """Written as `bulkhead audit export` writes it: per chain a header, then its events."""
        path, export_id = self.tmp / name, new_export_id()
        with open(path, "wb") as fh:
            for part, (chain, (rows, tenant)) in enumerate(chains.items(), 1):
                start = (anchor or {}).get(chain, (0, GENESIS))
                head = (rows[-1]["seq"], rows[-1]["hash"]) if rows else start
                fh.write(export_header(chain, anchor=start, head=head, export_id=export_id, part=part,
                                       parts=len(chains), tenant=tenant, store=self.store if signed else None))
                for row in rows:
                    fh.write(orjson.dumps(row) + b"\n")
        return path

    def verify(self, path: Path, *args: str) -> tuple[int, str]:
        self.capsys.readouterr()
        try:
            code = audit_cli.main(["verify", "--export", str(path), "--public-key", public_hex(self.store.public_key),
                                   *args])
        except SystemExit as exc:  # a usage error: the message on stderr
            return exc.code, self.capsys.readouterr().err
        return code, self.capsys.readouterr().out


@pytest.fixture
def offline(tmp_path, monkeypatch, capsys) -> Offline:
    store = CheckpointStore.for_signing(tmp_path / "cps", tmp_path / "key.pem")
    monkeypatch.setenv("BULKHEAD_AUDIT_CHECKPOINT_DIR", str(tmp_path / "cps"))
    monkeypatch.setenv("BULKHEAD_AUDIT_SIGNING_KEY", str(tmp_path / "key.pem"))
    closed = "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"  # offline: any database access fails
    monkeypatch.setenv("BULKHEAD_ADMIN_DATABASE_URL", closed)
    monkeypatch.setenv("DATABASE_URL", closed)
    return Offline(tmp_path, store, capsys)


@pytest.fixture
def demo(offline) -> tuple[Offline, list[dict]]:
    """Twelve events of tenant `demo`, checkpointed at 4, 8 and 12; the unauthenticated chain has
    checkpoints too but no place in a tenant's export."""
    rows = make_chain(DEMO, 12)
    for seq in (4, 8, 12):
        offline.store.append(DEMO, seq, rows[seq - 1]["hash"])
    anon = make_chain("", 3)
    offline.store.append("", 3, anon[-1]["hash"])
    return offline, rows


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines()


def rewrite(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_an_untouched_export_verifies_by_name_or_id_and_says_what_was_checked(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")})
    for args in ((), ("--tenant", "demo"), ("--tenant", DEMO)):
        code, out = offline.verify(path, *args)
        assert code == 0, out
        assert f"{DEMO} (demo): intact, 12 events (seq 1..12), 3 of 3 signed checkpoints matched" in out
        assert out.splitlines()[-1].startswith("checked 1 chain, 12 events, 3 checkpoints: OK"), out
    code, out = offline.verify(path)
    assert "(unauthenticated): ABSENT from the export (1 signed checkpoint, the latest at seq 3)" in out
    assert "BROKEN" not in out and out.splitlines()[-1].endswith("; 1 chain absent from the export")
    code, out = offline.verify(path, "--tenant", "demo", "--json")
    report, summary = (json.loads(line) for line in out.splitlines())
    assert report["ok"] and report["tenant"] == "demo" and report["export_header"] == "signed"
    assert summary == {"object": "audit.verification.summary", "ok": True, "chains": 1, "events": 12,
                       "checkpoints": 3, "broken": [], "absent": []}


def test_later_checkpoints_do_not_fail_an_older_export(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")})
    more = make_chain(DEMO, 16)  # (a stand-in head: the export must not be held to what came after it)
    offline.store.append(DEMO, 16, more[-1]["hash"])
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 0 and "checked 1 chain, 12 events, 3 checkpoints: OK" in out, out


def _edit(lines: list[bytes], seq: int) -> list[bytes]:
    row = orjson.loads(lines[seq])  # line 0 is the header
    row["status"] = 418
    return [*lines[:seq], orjson.dumps(row), *lines[seq + 1:]]


def _forge(lines: list[bytes], seq: int) -> list[bytes]:
    """A well-made event (its own hash right, linked to seq-1) slipped in before seq."""
    row = orjson.loads(lines[seq])
    row["request_id"] = "req_forged"
    row["hash"] = row_hash(row)
    return [*lines[:seq], orjson.dumps(row), *lines[seq:]]


TAMPERING = {
    "edit a field": (lambda ls: _edit(ls, 6), "BROKEN at seq 6: edited"),
    "delete a line": (lambda ls: [*ls[:6], *ls[7:]], "BROKEN at seq 6: deleted"),
    "delete the first line": (lambda ls: [ls[0], *ls[2:]], "BROKEN at seq 1: deleted"),
    "swap two lines": (lambda ls: [*ls[:6], ls[7], ls[6], *ls[8:]], "BROKEN at seq 6: reordered"),
    "move a line later": (lambda ls: [*ls[:6], *ls[7:10], ls[6], *ls[10:]], "BROKEN at seq 6: reordered"),
    "duplicate a line": (lambda ls: [*ls[:7], ls[6], *ls[7:]], "BROKEN at seq 6: inserted"),
    "insert a forged event": (lambda ls: _forge(ls, 6), "BROKEN at seq 6: inserted"),
    "insert a line that is no event": (lambda ls: [*ls[:7], b'{"chain": "' + DEMO.encode() + b'", "note": 1}',
                                                   *ls[7:]], "BROKEN at seq 7: inserted"),
    "break a line's JSON": (lambda ls: [*ls[:6], ls[6][:-5], *ls[7:]], "BROKEN at seq 6: edited"),
    "cut the tail": (lambda ls: ls[:11], "BROKEN at seq 11: truncated"),
    "append a forged event": (lambda ls: [*ls, _next_event(ls[-1])], "BROKEN at seq 13: inserted"),
}


def _next_event(last: bytes) -> bytes:
    prev = orjson.loads(last)
    row = {**prev, "seq": prev["seq"] + 1, "prev_hash": prev["hash"], "request_id": "req_appended"}
    row["hash"] = row_hash(row)
    return orjson.dumps(row)


@pytest.mark.parametrize("how", TAMPERING)
def test_any_edit_of_an_export_fails_naming_the_first_bad_seq(demo, how):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")})
    change, expected = TAMPERING[how]
    rewrite(path, change(lines_of(path)))
    for args in (("--tenant", "demo"), ("--tenant", DEMO), ()):
        code, out = offline.verify(path, *args)
        assert code == 1, (args, out)
        assert f"{DEMO} (demo): {expected}" in out, (args, out)
        assert "checked 1 chain" in out and ": BROKEN (1 of 1 chain)" in out.splitlines()[-1], out


def test_the_header_bounds_the_range(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")})
    lines = lines_of(path)
    header = orjson.loads(lines[0])
    # cut the tail and lower the signed header to match: the signature no longer holds
    rewrite(path, [orjson.dumps({**header, "head_seq": 9, "head_hash": rows[8]["hash"]}), *lines[1:10]])
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 1 and "BROKEN: header_invalid" in out, out
    # ... and with the signature stripped: checkpoints signed before the export prove seq 12 existed
    unsigned = {k: v for k, v in header.items() if k not in ("key", "sig")}
    rewrite(path, [orjson.dumps({**unsigned, "head_seq": 9, "head_hash": rows[8]["hash"]}), *lines[1:10]])
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 1 and "BROKEN at seq 10: truncated" in out and "records seq 12" in out, out
    # a header moved below the events it describes
    rewrite(path, [*lines[1:3], lines[0], *lines[3:]])
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 1 and "header_invalid" in out, out


def test_an_unsigned_export_verifies_with_a_note(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")}, signed=False)
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 0 and "note: the export's header is unsigned" in out, out
    rewrite(path, lines_of(path)[:11])
    assert offline.verify(path, "--tenant", "demo")[1].count("BROKEN at seq 11: truncated") == 1


def test_a_pruned_chain_verifies_from_its_anchor(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows[4:], "demo")}, anchor={DEMO: (4, rows[3]["hash"])})
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 0 and "8 events (seq 5..12)" in out, out
    # pruned at a point no checkpoint vouches for
    path = offline.export({DEMO: (rows[5:], "demo")}, anchor={DEMO: (5, rows[4]["hash"])})
    code, out = offline.verify(path, "--tenant", "demo")
    assert code == 1 and "BROKEN at seq 5: deleted" in out, out


def test_a_chain_removed_whole_from_a_multi_chain_export(demo):
    offline, rows = demo
    other = make_chain(OTHER, 3)
    path = offline.export({DEMO: (rows, "demo"), OTHER: (other, "other")})
    code, out = offline.verify(path)
    assert code == 0 and "checked 2 chains, 15 events" in out, out
    rewrite(path, lines_of(path)[:13])  # the second chain's header and events gone
    code, out = offline.verify(path)
    assert code == 1 and "part 2 of 2): BROKEN: deleted" in out, out


def test_tenants_absent_or_unknown(demo):
    offline, rows = demo
    path = offline.export({DEMO: (rows, "demo")})
    code, out = offline.verify(path, "--tenant", OTHER)  # an id: no database needed to know it is absent
    assert code == 1 and f"{OTHER}: ABSENT from the export" in out, out
    assert out.splitlines()[-1] == f"checked 0 chains, 0 events, 0 checkpoints: NOT VERIFIED: {OTHER} absent " \
                                   "from the export"
    code, out = offline.verify(path, "--tenant", "globex")  # a name only the (unreachable) database could resolve
    assert code == 2 and "pass the tenant's id (ten_" in out, out
    empty = offline.tmp / "empty.jsonl"
    empty.write_bytes(b"")
    code, out = offline.verify(empty, "--tenant", DEMO)
    assert code == 1 and "ABSENT" in out


# -- through a real gateway: `audit export`, then `audit verify` as an operator runs them ------------


def _unauthenticated_checkpointed(gateway) -> None:
    r = httpx.post(gateway.base_url + "/v1/chat/completions", headers={"authorization": "Bearer sk-not-a-key"},
                   json={"model": "echo", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 401
    deadline = time.monotonic() + 20
    while "(unauthenticated)" not in run(gateway, "audit", "checkpoint").stdout:
        assert time.monotonic() < deadline, "the 401 was never recorded"
        time.sleep(0.2)


def test_export_then_verify_by_tenant_name(gateway, tmp_path):
    wait_recorded(gateway, *(chat(gateway, f"export me {i}") for i in range(3)))
    _unauthenticated_checkpointed(gateway)  # a chain with checkpoints that a tenant's export lacks
    export = tmp_path / "acme.jsonl"
    done = run(gateway, "audit", "export", "--tenant", "acme", "--out", str(export))
    assert done.returncode == 0, done.stderr
    acme = json.loads(export.read_text().splitlines()[0])["chain"]
    assert acme.startswith("ten_")
    for args in ((), ("--tenant", "acme"), ("--tenant", acme)):
        out = run(gateway, "audit", "verify", "--export", str(export), *args)
        assert out.returncode == 0, (args, out.stdout + out.stderr)
        assert f"{acme} (acme): intact" in out.stdout
        assert " checkpoint" in out.stdout.splitlines()[-1] and ": OK" in out.stdout.splitlines()[-1], out.stdout
    assert "(unauthenticated): ABSENT from the export" in run(gateway, "audit", "verify", "--export",
                                                               str(export)).stdout
    # more traffic and a newer checkpoint do not make the older export look truncated
    wait_recorded(gateway, chat(gateway, "after the export"))
    assert run(gateway, "audit", "checkpoint").returncode == 0
    assert run(gateway, "audit", "verify", "--export", str(export), "--tenant", "acme").returncode == 0
    # the case: one line's status edited, verified by the tenant's name
    lines = export.read_text().splitlines()
    row = json.loads(lines[2])
    row["status"] = 500
    lines[2] = json.dumps(row)
    export.write_text("\n".join(lines) + "\n")
    out = run(gateway, "audit", "verify", "--export", str(export), "--tenant", "acme")
    assert out.returncode == 1 and f"{acme} (acme): BROKEN at seq {row['seq']}: edited" in out.stdout, out.stdout
    # a tenant the export does not hold: named from the database, absent, not verified
    out = run(gateway, "audit", "verify", "--export", str(export), "--tenant", "globex")
    assert out.returncode == 1 and "(globex): ABSENT from the export" in out.stdout, out.stdout + out.stderr


def test_database_verify_takes_a_name_or_an_id(gateway):
    wait_recorded(gateway, chat(gateway, "verify me"))
    by_name = run(gateway, "audit", "verify", "--tenant", "acme")
    assert by_name.returncode == 0 and "(acme): intact" in by_name.stdout, by_name.stdout + by_name.stderr
    acme = by_name.stdout.split(" ", 1)[0]
    by_id = run(gateway, "audit", "verify", "--tenant", acme)
    assert by_id.returncode == 0 and by_id.stdout.startswith(f"{acme} (acme): intact"), by_id.stdout
    assert "checked 1 chain, " in by_id.stdout.splitlines()[-1] and by_id.stdout.rstrip().endswith(": OK")
