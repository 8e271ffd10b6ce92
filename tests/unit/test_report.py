from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

from gateway.audit.writer import append_events
from gateway.db import create_engine
from gateway.migrate import upgrade
from gateway.models import Tenant, utcnow
from gateway.policy import Policy
from gateway.report import savings

ROOT = Path(__file__).resolve().parents[2]
POLICY = {"backends": [
    {"name": "cheap", "adapter": "openai", "model": "c", "api_base": "http://127.0.0.1:9/v1", "quality": 2,
     "price": {"input_per_mtok": 1, "output_per_mtok": 2}},
    {"name": "premium", "adapter": "openai", "model": "p", "api_base": "http://127.0.0.1:9/v1", "quality": 5,
     "price": {"input_per_mtok": 10, "output_per_mtok": 30}},
]}


def _row(tenant_id, backend, tin, tout, cost, status=200, ts=None):
    return {"request_id": f"req_{backend}_{tin}_{status}", "ts": ts or utcnow(), "tenant_id": tenant_id,
            "method": "POST", "endpoint": "/v1/chat/completions", "backend": backend, "status": status,
            "stream": False, "tokens_in": tin, "tokens_out": tout, "cost_usd": cost, "latency_ms": 1.0,
            "stages": {}, "attempts": 1, "kind": "request"}


async def _seed(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(insert(Tenant.__table__), [{"id": "ten_a", "name": "acme", "created_at": utcnow()},
                                                      {"id": "ten_b", "name": "other", "created_at": utcnow()}])
        await append_events(conn, [
            _row("ten_a", "cheap", 1000, 500, 0.002),
            _row("ten_a", "premium", 100, 100, 0.004),
            _row("ten_a", "cheap", 7, 7, 0.0, status=502),  # failed requests cost nothing and are left out
            _row("ten_a", "cheap", 9999, 9999, 1.0, ts=utcnow() - timedelta(days=30)),  # before --since
            _row("ten_b", "cheap", 5000, 5000, 0.015),  # another tenant
        ])
    await engine.dispose()


def test_savings_against_the_premium_backend(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    asyncio.run(_seed(url))
    result = asyncio.run(savings(url, "acme", datetime.now(UTC) - timedelta(days=1), Policy.model_validate(POLICY)))
    assert result["premium_backend"] == "premium"
    assert result["actual_usd"] == 0.006
    assert result["on_premium_usd"] == round((1100 * 10 + 600 * 30) / 1e6, 6)
    assert result["saved_usd"] == round(result["on_premium_usd"] - 0.006, 6)
    assert {r["backend"]: r["requests"] for r in result["by_backend"]} == {"cheap": 1, "premium": 1}
    (tmp_path / "pol").mkdir()
    import yaml

    (tmp_path / "pol" / "default.yaml").write_text(yaml.safe_dump(POLICY))
    env = {"BULKHEAD_ADMIN_DATABASE_URL": url, "BULKHEAD_POLICIES": str(tmp_path / "pol"), "PATH": "/usr/bin"}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "report", "savings", "--tenant", "acme",
                          "--since", "1d"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert "saved $" in out.stdout and "premium" in out.stdout
