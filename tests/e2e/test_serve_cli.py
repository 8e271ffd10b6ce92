"""What `bulkhead serve --bootstrap-demo` (the last step of `make run`) tells the person starting
it: the URL it listens on and the base_url an OpenAI SDK needs, once the port is open; on a new
database the demo key, and on one that has tenants already how to mint a key, with a command that
works as printed."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, TEST_SECRET, cli, e2e_policy, free_port

FAST = "\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n"  # no models to load


def _serve(env: dict, log: Path, port: int) -> tuple[str, int]:
    """`serve --bootstrap-demo` until it says where it listens; its output and its exit status."""
    proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--bootstrap-demo",
                             "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while "Bulkhead listening on" not in log.read_text():
            assert proc.poll() is None, log.read_text()[-4000:]
            assert time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.1)
        # announced once it answers, not before
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(40)
    return log.read_text(), code


def test_serve_prints_its_url_and_the_demo_key_or_how_to_mint_one(standin, tmp_path):
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text(e2e_policy(standin, FAST))
    database = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    env = {**os.environ, "DATABASE_URL": database, "BULKHEAD_ADMIN_DATABASE_URL": database,
           "BULKHEAD_POLICIES": str(policies), "BULKHEAD_DATA_DIR": str(tmp_path / "data"),
           "BULKHEAD_SECRET": TEST_SECRET, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("REDIS_URL", None)
    cli(env, "migrate")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    listening = f"Bulkhead listening on {url} (OpenAI base_url {url}/v1)"

    first, code = _serve(env, tmp_path / "first.log", port)
    assert code == 0, first[-4000:]
    lines = first.splitlines()
    created = lines.index("Created tenant 'demo' and an app key (shown once, keep it):")
    key = lines[created + 1].strip()
    assert re.fullmatch(r"\S{20,}", key)
    assert listening in lines, first[-4000:]

    again, code = _serve(env, tmp_path / "again.log", port)
    assert code == 0, again[-4000:]
    assert listening in again.splitlines() and key not in again
    hint = re.search(r"For a new app key: (bulkhead keys create [^\n]*)", again)
    assert hint, again[-4000:]
    # the command, as printed, makes a key that works
    argv = shlex.split(hint.group(1))
    assert argv[:3] == ["bulkhead", "keys", "create"] and "--tenant" in argv and "demo" in argv
    new_key = cli(env, *argv[1:]).strip().splitlines()[-1]
    assert new_key != key
