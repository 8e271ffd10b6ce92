"""The operators' and compliance staff's tools end to end: requests through the gateway are
provable by their text without the text being stored, `bulkhead audit export | verify` works
offline, and `verify` exits 1 naming the damage once history is edited."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT


def run(gateway, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=gateway.env,
                          capture_output=True, text=True, timeout=120)


def chat(gateway, text: str) -> str:
    r = httpx.post(gateway.base_url + "/v1/chat/completions", timeout=60,
                   headers={"authorization": f"Bearer {gateway.keys['app']}"},
                   json={"model": "echo", "messages": [{"role": "user", "content": text}]})
    assert r.status_code == 200
    return r.headers["x-bulkhead-request-id"]


def wait_recorded(gateway, *request_ids: str, timeout: float = 20.0) -> None:
    """Until these requests' audit events are committed (the writer batches them off the request path)."""
    h = {"authorization": f"Bearer {gateway.keys['compliance']}"}
    deadline = time.monotonic() + timeout
    for rid in request_ids:
        while (r := httpx.get(gateway.base_url + f"/v1/bulkhead/audit/events/{rid}", headers=h)).status_code != 200:
            assert r.status_code == 404 and time.monotonic() < deadline, (rid, r.status_code, r.text)
            time.sleep(0.1)


def test_prove_a_text_was_sent_without_storing_it(gateway):
    secret_text = "Quarterly numbers for the Falcon project look weak, keep it quiet."
    rid = chat(gateway, secret_text)
    h = {"authorization": f"Bearer {gateway.keys['compliance']}"}
    deadline = time.monotonic() + 20
    while True:
        r = httpx.post(gateway.base_url + "/v1/bulkhead/audit/prove", headers=h, json={"text": secret_text})
        assert r.status_code == 200, r.text
        found = {m["request_id"]: m for m in r.json()["matches"]}
        if rid in found or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert rid in found and found[rid]["fields"] == ["messages[0]"]
    answer = httpx.post(gateway.base_url + "/v1/bulkhead/audit/prove", headers=h, json={"text": "echo: " + secret_text})
    assert rid in {m["request_id"] for m in answer.json()["matches"]}  # the answer is provable too
    r = httpx.get(gateway.base_url + f"/v1/bulkhead/audit/events/{rid}", headers=h)
    assert r.status_code == 200 and "Falcon" not in r.text  # only HMACs are kept
    miss = httpx.post(gateway.base_url + "/v1/bulkhead/audit/prove", headers=h, json={"text": secret_text + "!"})
    assert rid not in {m["request_id"] for m in miss.json()["matches"]}


def test_export_verify_offline_and_detect_edits(gateway, tmp_path):
    wait_recorded(gateway, *(chat(gateway, f"hello {i}") for i in range(3)))
    assert run(gateway, "audit", "checkpoint").returncode == 0
    out = run(gateway, "audit", "verify", "--tenant", "acme")
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr
    pub = run(gateway, "audit", "pubkey").stdout.strip()
    export = tmp_path / "acme.jsonl"
    assert run(gateway, "audit", "export", "--tenant", "acme", "--out", str(export)).returncode == 0
    data_dir = gateway.env["BULKHEAD_DATA_DIR"]
    offline = run(gateway, "audit", "verify", "--export", str(export), "--checkpoints",
                  f"{data_dir}/audit-checkpoints", "--public-key", pub, "--json")
    assert offline.returncode == 0, offline.stdout + offline.stderr
    report = json.loads(offline.stdout.splitlines()[0])
    assert report["ok"] and report["checkpoints"] >= 1
    lines = export.read_text().splitlines()
    row = json.loads(lines[1])
    row["status"] = 418
    lines[1] = json.dumps(row)
    export.write_text("\n".join(lines) + "\n")
    broken = run(gateway, "audit", "verify", "--export", str(export), "--checkpoints",
                 f"{data_dir}/audit-checkpoints", "--public-key", pub)
    assert broken.returncode == 1 and f"BROKEN at seq {row['seq']}: edited" in broken.stdout


def test_query_cli(gateway):
    rid = chat(gateway, "query me")
    wait_recorded(gateway, rid)
    out = run(gateway, "audit", "query", "--tenant", "acme", "--request-id", rid)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    assert [r["request_id"] for r in rows] == [rid]
