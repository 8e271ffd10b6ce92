"""Shared fixtures: real Postgres, real Redis, a real gateway process, and the stand-in provider.

Postgres and Redis default to the local servers `make test` brings up; override with
BULKHEAD_TEST_PG (an admin URL to a server where the tests may create databases) and
BULKHEAD_TEST_REDIS.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.standin import StandIn

ROOT = Path(__file__).resolve().parent.parent
# local_moe times its kernels at load (local_moe/kernels.py): tests never write the per-machine
# cache in the user's home, and time over a small working set so loading stays quick.
os.environ.setdefault("BULKHEAD_MOE_KERNEL_CACHE", "off")
os.environ.setdefault("BULKHEAD_MOE_KERNEL_WORKING_SET_MB", "8")
# The encoders' finished ONNX graphs (gateway/encoder_runtime.py): one cache for every test process
# and gateway of the run instead of the user's home. Keys cover weights, code and versions, so a
# cache left by an earlier run is safe to read.
os.environ.setdefault("BULKHEAD_MODEL_CACHE", str(Path(tempfile.gettempdir()) / f"bulkhead-test-models-{os.getuid()}"))
PG_ADMIN = os.environ.get("BULKHEAD_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("BULKHEAD_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEST_SECRET = "test-secret-not-for-production"


def load_file(relative: str):
    """A module loaded from a file of the repository outside any package (a bench script, a migration)."""
    import importlib.util

    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def standin():
    server = StandIn().start()
    yield server
    server.stop()


async def _create_pg_database() -> str:
    name = "bulkhead_test_" + uuid.uuid4().hex[:10]
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _pg_url(name: str) -> str:
    base = PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://", 1)
    return base.rsplit("/", 1)[0] + "/" + name


def app_role_url(owner_url: str) -> str:
    """The same database as the row-level-security-bound role the gateway runs as."""
    from sqlalchemy.engine import make_url

    return make_url(owner_url).set(username="bulkhead_app", password=None).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_database_factory():
    """Creates throwaway databases on the test server and drops them at the end of the session."""
    created: list[str] = []

    def make() -> str:
        name = asyncio.run(_create_pg_database())
        created.append(name)
        return _pg_url(name)

    yield make
    for name in created:
        asyncio.run(_drop_pg_database(name))


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def database_url(request, pg_database_factory, tmp_path_factory) -> str:
    if request.param == "postgres":
        return pg_database_factory()
    return f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('sqlite') / 'bulkhead.db'}"


def write_policy(directory: Path, standin: StandIn, closed_port: int) -> None:
    template = (ROOT / "tests" / "policies" / "e2e.yaml").read_text()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "default.yaml").write_text(
        template.replace("{standin}", standin.base_url).replace("{closed}", f"http://127.0.0.1:{closed_port}/v1")
    )


def e2e_policy(standin: StandIn, extra: str = "") -> str:
    """The e2e test policy's text against this stand-in (the closed-port backend on port 9)."""
    policy = (ROOT / "tests" / "policies" / "e2e.yaml").read_text()
    return policy.replace("{standin}", standin.base_url).replace("{closed}", "http://127.0.0.1:9/v1") + extra


def cli(env: dict, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Gateway:
    base_url: str
    env: dict
    database_url: str
    proc: subprocess.Popen
    log: Path
    keys: dict[str, str] = field(default_factory=dict)
    key_ids: dict[str, str] = field(default_factory=dict)

    def cli(self, *args: str) -> str:
        return cli(self.env, *args)

    def new_key(self, tenant: str, *roles: str, extra: tuple[str, ...] = ()) -> str:
        args = ["keys", "create", "--tenant", tenant, *(a for r in roles for a in ("--role", r)), *extra]
        return self.cli(*args).strip().splitlines()[-1]

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -9
        return self.proc.returncode


def start_gateway(tmp: Path, database_url: str, standin: StandIn, *, server: str = "uvicorn",
                  redis: bool = True, extra_env: dict | None = None, policy: str | None = None) -> Gateway:
    """A gateway process; `policy` is the text of its default.yaml (the e2e test policy if None)."""
    policies = tmp / "policies"
    write_policy(policies, standin, free_port())
    if policy is not None:
        (policies / "default.yaml").write_text(policy)
    serving_url = app_role_url(database_url) if database_url.startswith("postgresql") else database_url
    env = {
        **os.environ,
        "DATABASE_URL": serving_url,
        "BULKHEAD_ADMIN_DATABASE_URL": database_url,
        "BULKHEAD_POLICIES": str(policies),
        "BULKHEAD_SECRET": TEST_SECRET,
        "BULKHEAD_DATA_DIR": str(tmp / "data"),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "STANDIN_API_KEY": "sk-standin-provider-key",
        "STANDIN_BASE": standin.base_url,
        **(extra_env or {}),
    }
    env.pop("REDIS_URL", None)
    if redis:
        env["REDIS_URL"] = REDIS_URL
    cli(env, "migrate")
    port = free_port()
    log = tmp / "gateway.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", str(port), "--server", server],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    gw = Gateway(f"http://127.0.0.1:{port}", env, database_url, proc, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited early:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(gw.base_url + "/readyz", timeout=1).status_code == 200:
                return gw
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    gw.stop()
    raise RuntimeError(f"gateway did not become ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="session")
def gateway(database_url, standin, tmp_path_factory):
    gw = start_gateway(tmp_path_factory.mktemp("gw"), database_url, standin)
    gw.cli("tenants", "create", "acme")
    gw.cli("tenants", "create", "globex")
    gw.keys["app"] = gw.new_key("acme", "app")
    gw.keys["compliance"] = gw.new_key("acme", "compliance")
    gw.keys["limited"] = gw.new_key("acme", "app", extra=("--models", "echo"))
    gw.keys["globex"] = gw.new_key("globex", "app")
    yield gw
    code = gw.stop()
    assert code == 0, gw.log.read_text()[-4000:]
