"""Every example in README.md, run as a reader would run it, against a gateway started the way
`make run` starts one: the Makefile's own `run` recipe (demo model, migrate, `serve
--bootstrap-demo`) in an empty directory, with the repository's `policies/`, no provider keys, no
Redis, SQLite under ./data. Two changes, both for the test's sake: the demo model trains for 3
steps instead of its full run, and the port is a free one instead of 8080.

Each fenced block is one test: shell blocks run in bash (curl fails on any HTTP error status,
`bulkhead` is this checkout's CLI), Python blocks in a Python process, the `make` block through the
Makefile, the `bench/` commands are checked to exist as written (they measure for minutes; their
figures are never asserted). A block of a kind this file does not know fails, so a new example
cannot go untested.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, free_port

FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.M | re.S)
BLOCKS = [(m.group(1), m.group(2)) for m in FENCE.finditer((ROOT / "README.md").read_text())]
README_URL = "http://127.0.0.1:8080"
SHELL_PREAMBLE = """\
set -euo pipefail
bulkhead() { "$PYTHON" -m gateway.cli "$@"; }
curl() { command curl --fail-with-body --show-error -D "$CURL_HEADERS" "$@"; }
"""


def kind(lang: str, text: str) -> str:
    lines = [line.split("#")[0].strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if lang == "python":
        return "python"
    if lang in ("sh", "bash") and lines and all(line.startswith("make ") for line in lines):
        return "make"
    if lang in ("sh", "bash") and lines and all(re.search(r"(^|\s)\.venv/bin/python bench/\S+\.py", line)
                                                 for line in lines):
        return "bench"
    if lang in ("sh", "bash"):
        return "shell"
    return f"unknown ({lang or 'no language'})"


def block_id(index: int) -> str:
    lang, text = BLOCKS[index]
    first = next((line for line in text.splitlines() if line.strip() and not line.startswith("#")), "")
    return f"{index}-{kind(lang, text)}-" + re.sub(r"\W+", "-", first)[:40].strip("-")


def makefile_recipe(target: str) -> list[str]:
    lines = (ROOT / "Makefile").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def makefile_exports() -> dict[str, str]:
    found = re.findall(r"^export (\w+) :?= (.*)$", (ROOT / "Makefile").read_text(), re.M)
    return {name: value.strip() for name, value in found}


@dataclass
class MakeRun:
    url: str
    cwd: Path
    env: dict[str, str]
    log: Path
    key: str  # the demo app key `serve --bootstrap-demo` printed
    proc: subprocess.Popen

    def bulkhead(self, *args: str) -> subprocess.CompletedProcess:
        out = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=self.cwd, env=self.env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out


def _bulkhead_argv(line: str) -> list[str]:
    """`$(BIN)/bulkhead serve ...` from the Makefile -> this checkout's CLI with those arguments."""
    argv = shlex.split(line)
    assert argv[0] == "$(BIN)/bulkhead", f"the run recipe has changed: {line}"
    return [sys.executable, "-m", "gateway.cli", *argv[1:]]


@pytest.fixture(scope="module")
def make_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("make-run")
    (cwd / "policies").symlink_to(ROOT / "policies")
    # What a fresh shell would have: none of the test session's gateway or provider settings.
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BULKHEAD_", "OPENAI_", "ANTHROPIC_", "OTEL_", "STANDIN_"))
           and k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(makefile_exports(), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    # `make run`'s prerequisite data/demo-moe/config.json, then its recipe.
    [train] = makefile_recipe("data/demo-moe/config.json")
    out = subprocess.run([*_bulkhead_argv(train), "--steps", "3"], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    *setup, serve = makefile_recipe("run")
    for line in setup:
        out = subprocess.run(_bulkhead_argv(line), cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
    port = free_port()
    argv = [a if a != "8080" else str(port) for a in _bulkhead_argv(serve)]
    log = cwd / "make-run.log"
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the gateway exited:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the gateway did not become ready:\n{log.read_text()[-4000:]}")
        time.sleep(0.3)
    lines = log.read_text().splitlines()
    announced = next(i for i, line in enumerate(lines) if line.startswith("Created tenant 'demo'"))
    run = MakeRun(url, cwd, env, log, lines[announced + 1].strip(), proc)
    yield run
    proc.terminate()
    assert proc.wait(60) == 0, log.read_text()[-4000:]


@pytest.fixture(scope="module")
def shell_env(make_run):
    """The variables the README's shell examples use, minted the way the README says."""
    admin = make_run.bulkhead("keys", "create", "--tenant", "demo", "--role", "admin").stdout.split()[-1]
    compliance = make_run.bulkhead("keys", "create", "--tenant", "demo", "--role", "compliance").stdout.split()[-1]
    spare = make_run.bulkhead("keys", "create", "--tenant", "demo", "--role", "app").stderr  # "created key_…"
    return {**make_run.env, "GW": make_run.url, "BULKHEAD_KEY": make_run.key, "ADMIN_KEY": admin,
            "COMPLIANCE_KEY": compliance, "PYTHON": sys.executable,
            "CURL_HEADERS": str(make_run.cwd / "curl-headers.txt"),
            "SPARE_KEY_ID": re.search(r"created (\S+) for tenant", spare).group(1)}


def test_make_run_names_the_unconfigured_backends_and_the_variables_they_need(make_run):
    log = make_run.log.read_text()
    openai_line = next(line for line in log.splitlines() if "OPENAI_API_KEY is not set" in line)
    assert all(name in openai_line for name in ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small"))
    anthropic_line = next(line for line in log.splitlines() if "ANTHROPIC_API_KEY is not set" in line)
    assert "claude-sonnet" in anthropic_line
    assert "backends configured: local-moe" in log


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=block_id)
def test_readme_example(index, make_run, shell_env):
    lang, text = BLOCKS[index]
    what = kind(lang, text)
    if what == "make":
        _make_block(text)
    elif what == "bench":
        _bench_block(text)
    elif what == "python":
        _python_block(text, make_run, shell_env)
    elif what == "shell":
        _shell_block(text, make_run, shell_env)
    else:
        pytest.fail(f"README example of unknown kind: {text[:200]}")


def _make_block(text: str) -> None:
    """`make run` is what the fixture ran (its recipe, from the Makefile); `make test` is this suite,
    so it is only checked to exist and to resolve."""
    targets = [line.split("#")[0].split()[1] for line in text.splitlines() if line.split("#")[0].strip()]
    assert "run" in targets
    for target in targets:
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr


def _bench_block(text: str) -> None:
    for line in text.splitlines():
        command = line.split("#")[0].strip()
        if not command:
            continue
        argv = shlex.split(command)
        script = next(a for a in argv if a.startswith("bench/"))
        source = (ROOT / script).read_text()
        for flag in (a for a in argv[argv.index(script) + 1:] if a.startswith("--")):
            assert re.search(rf"add_argument\(\s*[\"']{re.escape(flag)}[\"']", source), f"{script} has no {flag}"


def _python_block(text: str, make_run: MakeRun, env: dict) -> None:
    script = make_run.cwd / "readme_example.py"
    script.write_text(text.replace(README_URL, make_run.url))
    out = subprocess.run([sys.executable, str(script)], cwd=make_run.cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:]
    assert out.stdout.strip()


def _shell_block(text: str, make_run: MakeRun, env: dict) -> None:
    script = SHELL_PREAMBLE + text.replace(README_URL, make_run.url).replace("key_…", "$SPARE_KEY_ID")
    out = subprocess.run(["bash", "-c", script], cwd=make_run.cwd, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    # What each example is there to show, beyond not failing:
    if "/v1/chat/completions" in text:
        headers = Path(env["CURL_HEADERS"]).read_text().lower()
        assert "x-bulkhead-route: local-moe" in headers, headers  # the default alias answers, out of the box
        assert json.loads(out.stdout)["choices"][0]["message"]["role"] == "assistant"
    if "/admin/keys" in text:
        created = json.loads(out.stdout)
        assert created["roles"] == ["compliance"] and created["key"]
    if "/audit/verify" in text:
        assert '"ok":true' in out.stdout.replace(" ", "")
        assert (make_run.cwd / "ssn-requests.csv").read_text().startswith("seq,request_id,")
    if "keys revoke" in text:
        assert f"revoked {env['SPARE_KEY_ID']}" in out.stdout
