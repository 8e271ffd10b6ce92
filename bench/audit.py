"""Audit trail figures: write throughput into the hash chain (batched, Postgres), verification
throughput, and the latency a request pays for `strict` mode (waiting for its own commit) versus
`available` (queue and go).

Needs the Postgres the tests use (127.0.0.1:5432, trust auth); creates and drops its own database.

    .venv/bin/python bench/audit.py
    .venv/bin/python bench/audit.py --events 50000 --tenants 8
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def event(tenant: str) -> dict:
    from gateway.audit.writer import system_event

    row = system_event("request", {"cache": "miss"}, tenant_id=tenant)
    row.update(request_id="req_" + uuid.uuid4().hex, method="POST", endpoint="/v1/chat/completions",
               backend="gpt-4o-mini", status=200, tokens_in=812, tokens_out=164, latency_ms=412.25,
               stages={"authenticate": 0.41, "inspect": 5.2, "risk": 1.1, "decide": 0.08, "call": 401.7},
               pii={"detected": {"PERSON": 2, "EMAIL_ADDRESS": 1}, "treatment": {"pseudonymize": 3}},
               risk={"tier": "medium", "signals": {"pii": 3}, "injection_score": 0.02, "domains": ["financial"]},
               route={"chosen": "gpt-4o-mini", "fallbacks": ["gpt-4o"], "reason": "cheapest adequate",
                      "rejected": {"local-moe": "quality 2 < 3"}},
               content={"hmac": {"messages": [uuid.uuid4().hex * 2], "answer": uuid.uuid4().hex * 2}})
    return row


async def main(args) -> None:
    import asyncpg

    from gateway.audit.verify import verify_database
    from gateway.audit.writer import AuditWriter
    from gateway.db import create_engine
    from gateway.migrate import upgrade

    name = "bulkhead_bench_" + uuid.uuid4().hex[:8]
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = PG + name
    try:
        await asyncio.to_thread(upgrade, url)
        app_url = url.replace("postgres@", "bulkhead_app@")
        tenants = [f"ten_{i}" for i in range(args.tenants)]
        engine = create_engine(app_url)
        writer = AuditWriter(engine, batch_max=args.batch)
        rows = [event(tenants[i % len(tenants)]) for i in range(args.events)]
        t0 = time.perf_counter()
        for row in rows:
            writer.submit(row)
        assert await writer.flush()
        write_s = time.perf_counter() - t0
        print(f"write: {args.events:,} events, {args.tenants} chains, batches of {args.batch}: "
              f"{args.events / write_s:,.0f} events/s ({write_s:.2f} s)")

        owner = create_engine(url)
        t0 = time.perf_counter()
        total = 0
        for tenant in tenants:
            report = await verify_database(owner, tenant)
            assert report.ok, report
            total += report.events
        verify_s = time.perf_counter() - t0
        print(f"verify: {total:,} events: {total / verify_s:,.0f} events/s ({verify_s:.2f} s)")

        writer.start()
        for mode in ("available", "strict"):
            lat: list[float] = []
            for _ in range(args.requests):
                row = event(tenants[0])
                t0 = time.perf_counter()
                if mode == "strict":
                    assert await writer.submit_durable(row, 10)
                else:
                    writer.submit(row)
                lat.append((time.perf_counter() - t0) * 1000)
            print(f"{mode:9s}: added latency per request p50 {statistics.median(lat):.3f} ms, "
                  f"p99 {pct(lat, 0.99):.3f} ms ({args.requests} sequential requests)")
        conc: list[float] = []

        async def one() -> None:
            t0 = time.perf_counter()
            assert await writer.submit_durable(event(tenants[1]), 10)
            conc.append((time.perf_counter() - t0) * 1000)

        for _ in range(args.requests // 16):
            await asyncio.gather(*(one() for _ in range(16)))
        print(f"strict   : p50 {statistics.median(conc):.3f} ms, p99 {pct(conc, 0.99):.3f} ms with 16 concurrent "
              "(commits shared by a batch)")
        await writer.close()
        await engine.dispose()
        await owner.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=20000)
    p.add_argument("--tenants", type=int, default=4)
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--requests", type=int, default=400)
    asyncio.run(main(p.parse_args()))
