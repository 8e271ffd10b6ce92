"""Values created once on a fresh data directory (the key-HMAC secret, the audit signing key):
workers that start together all end up with the first one's value, and nobody crashes."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from gateway.audit.checkpoints import load_signing_key, public_hex
from gateway.keyfiles import write_once


def _start_key(path: str, go, out) -> None:
    go.wait()
    out.put(public_hex(load_signing_key(Path(path)).public_key()))


def test_workers_starting_together_share_one_signing_key(tmp_path):
    path = tmp_path / "data" / "audit-signing-key.pem"
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_start_key, args=(str(path), go, out)) for _ in range(8)]
    for p in procs:
        p.start()
    go.set()  # as close to together as processes get
    keys = [out.get(timeout=30) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    assert len(set(keys)) == 1
    assert keys[0] == public_hex(load_signing_key(path).public_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(os.listdir(path.parent)) == ["audit-signing-key.pem"]  # no temporary files left


def test_write_once_keeps_the_first_value(tmp_path):
    path = tmp_path / "secret"
    assert write_once(path, b"first") == b"first"
    assert write_once(path, b"second") == b"first"
    assert path.read_bytes() == b"first"


def test_without_hard_links_an_exclusive_create_stands_in(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise PermissionError("hard links not supported here")

    monkeypatch.setattr(os, "link", no_links)
    path = tmp_path / "secret"
    assert write_once(path, b"first") == b"first"
    assert write_once(path, b"second") == b"first"
    assert sorted(os.listdir(tmp_path)) == ["secret"]
