"""Schemathesis against the running gateway's own `/openapi.json`, every default check on, with a
valid app key: examples generated from the document (and mutated against it) must get answers the
document allows, never a 5xx, never a schema-valid body refused or an invalid one accepted.

Bounded for CI: BULKHEAD_SCHEMATHESIS_EXAMPLES examples per operation and phase (default 25, about
a minute here); BULKHEAD_SCHEMATHESIS_SEED replays a run (each run prints its seed). Half of the
model calls are pointed at a backend that exists (tests/hardening/st_hooks.py), so bodies travel the
whole pipeline to the stand-in upstream instead of stopping at 404.

Findings fixed when this was written: a null `response_format` crashed routing (500); content parts
with a non-string `text` crashed the token estimate; `"max_tokens": "5"`, `"stream": "yes"` were
coerced instead of refused; 405s lacked `Allow` (and listed one route's methods where several share
a path); `tools` items were undocumented, so shapes every provider refuses passed as valid; each
event of an event stream is now documented as an event object (OpenAPI before 3.2 reads an event
stream's `schema` per event).
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def test_openapi_contract_holds(hgw):
    examples = os.environ.get("BULKHEAD_SCHEMATHESIS_EXAMPLES", "25")
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", hgw.base_url + "/openapi.json",
           "-H", f"Authorization: Bearer {hgw.keys['app']}", "--max-examples", examples, "--workers", "1",
           "--request-timeout", "60", "--no-color"]
    if os.environ.get("BULKHEAD_SCHEMATHESIS_SEED"):
        cmd += ["--seed", os.environ["BULKHEAD_SCHEMATHESIS_SEED"]]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.hardening.st_hooks", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = out.stdout + out.stderr
    print(report[-3000:])
    assert out.returncode == 0, report[-20000:]
    assert "Server error" not in report and " 0 passed" not in report
