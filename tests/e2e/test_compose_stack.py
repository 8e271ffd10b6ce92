"""The compose stack built and run, where a Docker daemon answers (skipped elsewhere; the properties
are read from the files by tests/unit/test_containers.py): the image answers with its own demo
model, holds no local state or virtualenv, runs as a user other than root with its state on the
volume, connects to Postgres only as `bulkhead_app`, and its traces reach Jaeger.

The first build installs the locked dependencies and trains the demo model (minutes); the host
ports are free ones, so a local Postgres, Redis or `make run` does not collide with it."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
import uuid

import httpx
import pytest

from tests.conftest import ROOT, free_port


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
        version = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return info.returncode == 0 and version.returncode == 0


pytestmark = pytest.mark.skipif(not _docker_answers(), reason="no Docker daemon (or no compose plugin) here")


class Stack:
    def __init__(self) -> None:
        self.project = "bulkhead-ci-" + uuid.uuid4().hex[:8]
        self.ports = {name: free_port() for name in
                      ("BULKHEAD_PORT", "POSTGRES_PORT", "REDIS_PORT", "OTLP_PORT", "JAEGER_UI_PORT")}
        self.env = {**os.environ, **{k: str(v) for k, v in self.ports.items()},
                    "BULKHEAD_SECRET": secrets.token_urlsafe(32), "OPENAI_API_KEY": "", "ANTHROPIC_API_KEY": ""}
        self.url = f"http://127.0.0.1:{self.ports['BULKHEAD_PORT']}"

    def compose(self, *args: str, timeout: float = 300) -> str:
        out = subprocess.run(["docker", "compose", "-p", self.project, *args], cwd=ROOT, env=self.env,
                             capture_output=True, text=True, timeout=timeout)
        assert out.returncode == 0, f"docker compose {' '.join(args)}:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
        return out.stdout

    def run_in(self, service: str, *command: str) -> str:
        return self.compose("exec", "-T", service, *command)


@pytest.fixture(scope="module")
def stack():
    s = Stack()
    try:
        s.compose("up", "-d", "--build", "--wait", "--wait-timeout", "900", timeout=3600)
        yield s
    finally:
        logs = subprocess.run(["docker", "compose", "-p", s.project, "logs", "--no-color", "gateway"], cwd=ROOT,
                              env=s.env, capture_output=True, text=True, timeout=120).stdout
        print(logs[-4000:])
        subprocess.run(["docker", "compose", "-p", s.project, "down", "-v", "--rmi", "local"], cwd=ROOT, env=s.env,
                       capture_output=True, timeout=600)


def test_the_stack_answers_with_the_demo_model_built_into_the_image(stack):
    assert httpx.get(stack.url + "/readyz", timeout=10).status_code == 200
    stack.run_in("gateway", "bulkhead", "tenants", "create", "ci")
    minted = stack.run_in("gateway", "bulkhead", "keys", "create", "--tenant", "ci", "--role", "app")
    key = minted.strip().splitlines()[-1]
    r = httpx.post(stack.url + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=120,
                   json={"model": "local-moe", "max_tokens": 16, "messages": [{"role": "user", "content": "Hello"}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-bulkhead-route"] == "local-moe"


def test_the_image_holds_no_local_state_and_runs_unprivileged_with_state_on_the_volume(stack):
    script = ("test ! -e /app/.venv && test ! -e /app/.git && test ! -e /app/data/secret "
              "&& test -f /app/data/demo-moe/config.json && test -w /var/lib/bulkhead && id -u")
    assert stack.run_in("gateway", "sh", "-c", script).strip() != "0"
    container = stack.compose("ps", "-q", "gateway").strip()
    mounts = subprocess.run(["docker", "inspect", "--format", "{{range .Mounts}}{{.Name}}={{.Destination}} {{end}}",
                             container], capture_output=True, text=True, timeout=60).stdout.split()
    assert f"{stack.project}_bulkhead-data=/var/lib/bulkhead" in mounts, mounts


def test_the_gateway_connects_only_as_bulkhead_app(stack):
    sql = ("SELECT DISTINCT usename FROM pg_stat_activity WHERE datname = 'bulkhead' "
           "AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
    users = set(stack.run_in("postgres", "psql", "-U", "postgres", "-d", "bulkhead", "-Atc", sql).split())
    assert users == {"bulkhead_app"}, users


def test_traces_reach_jaeger(stack):
    httpx.get(stack.url + "/v1/models", timeout=10)  # a /v1 request: a trace
    api = f"http://127.0.0.1:{stack.ports['JAEGER_UI_PORT']}/api/services"
    deadline = time.monotonic() + 90
    services: list = []
    while time.monotonic() < deadline:
        try:
            services = httpx.get(api, timeout=5).json().get("data") or []
        except (httpx.HTTPError, ValueError):
            services = []
        if "bulkhead" in services:
            return
        time.sleep(2)
    pytest.fail(f"Jaeger knows no 'bulkhead' service after 90 s: {services}")
