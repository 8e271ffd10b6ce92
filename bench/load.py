"""A bounded load through a real gateway process, then the books: is every request audited, does
the chain verify, did memory stay flat?

Loopback only. Starts the stand-in upstream (no body recording) and a gateway (`bulkhead serve`,
SQLite audit by default, or `--database-url` for Postgres), creates two tenants, and drives a
closed loop of mixed traffic for `--seconds` (default 300): the two tenants, streaming and not,
prompts with and without PII (distinct, generated), in equal shares. The same mix is first sent
straight to the stand-in for `--direct-seconds`, so the gateway's figures come with ratios.

Prints requests/s, p50/p99 (whole answer; streams read to `[DONE]`), errors, the gateway's RSS at
the start, during and at the end, then stops the gateway (SIGTERM: drain, audit flush), checks that
the audit holds exactly one `request` event per request the gateway answered, and runs
`bulkhead audit verify` with the gateway's environment (exit 0 expected).

    python bench/load.py                         # 5 minutes, SQLite
    python bench/load.py --seconds 60
    python bench/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1:5432/bulkhead_load
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overhead import HAS_TWO_CPUS, pin, process_tree_cpu, start_upstream, wait_http  # noqa: E402
from tests.conftest import cli, free_port  # noqa: E402

# PII types low risk and domains off, so PII prompts go to the (external) stand-in scrubbed: the
# figures measure inspection, scrubbing and restore, not refusals.
POLICY = """\
risk:
  embeddings: {{enabled: false}}
  pii: {{default_tier: low, bulk_tier: low, entities: {{US_SSN: low, CREDIT_CARD: low, IBAN_CODE: low,
        US_BANK_NUMBER: low, US_DRIVER_LICENSE: low, US_PASSPORT: low, US_ITIN: low, MEDICAL_LICENSE: low,
        UK_NHS: low}}}}
  domains: {{medical: {{enabled: false}}, financial: {{enabled: false}}, legal: {{enabled: false}},
            hr: {{enabled: false}}, code: {{enabled: false}}}}
  rules: []
backends:
  - {{name: echo, adapter: openai, model: echo, api_base: "{upstream}", trust: external,
     price: {{input_per_mtok: 1.0, output_per_mtok: 2.0}}}}
"""
PLAIN = ["Summarise the quarterly report in one line.", "Write a haiku about load balancers.",
         "List three uses of a circuit breaker.", "What is a hash chain?"]
KINDS = [(pii, stream) for pii in (False, True) for stream in (False, True)]


def rss_kib(pid: int) -> int:
    """Resident memory of a process and its children (granian forks workers)."""
    total = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            total = int(line.split()[1])
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += rss_kib(int(child))
    return total


def bodies() -> dict[bool, list[dict]]:
    from tests.pii.test_leak import generate

    pii = [{"model": "echo", "messages": [{"role": "user", "content": text}]}
           for _, text, values in generate(3000, seed=11) if "secret" not in values]
    plain = [{"model": "echo", "messages": [{"role": "user", "content": f"{t} ({i})"}]}
             for i in range(500) for t in PLAIN]
    return {True: pii, False: plain}


@dataclass
class Result:
    latencies: dict[tuple[bool, bool], list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    errors: int = 0
    transport_errors: int = 0
    answered: int = 0  # responses that came back from the server (audited ones, for the gateway)
    request_ids: set[str] = field(default_factory=set)
    elapsed: float = 0.0

    @property
    def n(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    def all(self) -> list[float]:
        return sorted(x for v in self.latencies.values() for x in v)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000 if values else float("nan")


async def drive(url: str, keys: list[str | None], seconds: float, concurrency: int, texts: dict,
                result: Result) -> Result:
    """Closed loop: each worker sends its next request when the last one finished; request i is
    tenant i % 2, and kind (PII or not, stream or not) (i // 2) % 4."""
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal counter
            while time.perf_counter() < stop:
                i = counter
                counter += 1
                key = keys[i % len(keys)]
                pii, stream = KINDS[(i // 2) % len(KINDS)]
                pool = texts[pii]
                body = orjson.dumps({**pool[(i // 8) % len(pool)], "stream": stream})
                headers = {"content-type": "application/json"}
                if key:
                    headers["authorization"] = f"Bearer {key}"
                t0 = time.perf_counter()
                try:
                    async with session.post(url, data=body, headers=headers) as resp:
                        raw = await resp.read()
                        result.answered += 1
                        rid = resp.headers.get("x-bulkhead-request-id")
                        if rid:
                            result.request_ids.add(rid)
                        ok = resp.status == 200 and (not stream or raw.rstrip().endswith(b"data: [DONE]"))
                except (aiohttp.ClientError, TimeoutError):
                    result.transport_errors += 1
                    continue
                if ok:
                    result.latencies[(pii, stream)].append(time.perf_counter() - t0)
                else:
                    result.errors += 1

        t_start = time.perf_counter()
        stop = t_start + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.elapsed = time.perf_counter() - t_start
    return result


def start_gateway(server: str, upstream: str, tmp: Path, database_url: str | None) -> tuple:
    policies = tmp / "policies"
    policies.mkdir()
    (policies / "default.yaml").write_text(POLICY.format(upstream=upstream))
    env = {**os.environ, "BULKHEAD_POLICIES": str(policies), "BULKHEAD_DATA_DIR": str(tmp / "data"),
           "BULKHEAD_SECRET": "bench-load", "BULKHEAD_LOG_LEVEL": "WARNING", "HF_HUB_OFFLINE": "1",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    env.pop("REDIS_URL", None)
    env["DATABASE_URL"] = database_url or f"sqlite+aiosqlite:///{tmp / 'load.db'}"
    env["BULKHEAD_ADMIN_DATABASE_URL"] = env["DATABASE_URL"]
    cli(env, "migrate")
    run = uuid.uuid4().hex[:6]
    tenants = {}
    for name in (f"load-a-{run}", f"load-b-{run}"):
        tenant_id = cli(env, "tenants", "create", name).strip().splitlines()[-1].split("\t")[0]
        key = cli(env, "keys", "create", "--tenant", name, "--role", "app").strip().splitlines()[-1]
        tenants[tenant_id] = key
    port = free_port()
    log = (tmp / "gateway.log").open("w")
    proc = subprocess.Popen([*pin(0), sys.executable, "-m", "gateway.cli", "serve", "--server", server,
                             "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, f"http://127.0.0.1:{port}", env, tenants


async def audit_rows(database_url: str, tenant_ids: list[str]) -> tuple[int, set[str]]:
    from sqlalchemy import select

    from gateway.db import create_engine
    from gateway.models import AuditEvent

    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(AuditEvent.request_id).where(
                AuditEvent.tenant_id.in_(tenant_ids), AuditEvent.kind == "request"))).scalars().all()
    finally:
        await engine.dispose()
    return len(rows), set(rows)


def line(label: str, r: Result, base: Result | None = None) -> str:
    rps = r.n / r.elapsed if r.elapsed else 0.0
    values = r.all()
    out = (f"{label:<22}{r.n:>9}{rps:>9.1f}{pct(values, 0.5):>9.1f}{pct(values, 0.99):>9.1f}"
           f"{r.errors + r.transport_errors:>8}")
    if base is not None and base.n:
        b = base.all()
        out += (f"   x{rps / (base.n / base.elapsed):.3f} req/s  x{pct(values, 0.5) / pct(b, 0.5):.1f} p50"
                f"  x{pct(values, 0.99) / pct(b, 0.99):.1f} p99")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="gateway load duration (default 300)")
    parser.add_argument("--direct-seconds", type=float, help="direct-to-upstream duration (default: min(seconds, 60))")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--server", choices=("uvicorn", "granian"), default="uvicorn")
    parser.add_argument("--database-url", help="audit database (default: a fresh SQLite file); e.g. a Postgres "
                        "owner URL, postgresql+asyncpg://postgres@127.0.0.1:5432/<db> (migrated here)")
    args = parser.parse_args()
    direct_seconds = args.direct_seconds if args.direct_seconds is not None else min(args.seconds, 60.0)
    if HAS_TWO_CPUS:
        os.sched_setaffinity(0, {1})
    texts = bodies()
    up_port = free_port()
    upstream = start_upstream(up_port)
    up_base = f"http://127.0.0.1:{up_port}/v1"
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        gw, base, env, tenants = start_gateway(args.server, up_base, tmp, args.database_url)
        keys = list(tenants.values())
        try:
            print(f"cpus={os.cpu_count()} pinned={'yes' if HAS_TWO_CPUS else 'no'} server={args.server} "
                  f"audit={'sqlite' if 'sqlite' in env['DATABASE_URL'] else 'postgres'} "
                  f"concurrency={args.concurrency} mix: 2 tenants x (stream, json) x (PII, plain), equal shares")
            warm = asyncio.run(drive(base + "/v1/chat/completions", keys, 10, 4, texts, Result()))
            rss = [(0.0, rss_kib(gw.pid))]
            direct = asyncio.run(drive(up_base + "/chat/completions", [None], direct_seconds, args.concurrency,
                                       texts, Result()))

            async def sample(stop: asyncio.Event, t0: float) -> None:
                while not stop.is_set():
                    try:
                        await asyncio.wait_for(stop.wait(), 10)
                    except TimeoutError:
                        rss.append((time.perf_counter() - t0, rss_kib(gw.pid)))

            async def measured() -> Result:
                stop, t0 = asyncio.Event(), time.perf_counter()
                sampler = asyncio.create_task(sample(stop, t0))
                try:
                    return await drive(base + "/v1/chat/completions", keys, args.seconds, args.concurrency, texts,
                                       Result())
                finally:
                    stop.set()
                    await sampler

            cpu0 = process_tree_cpu(gw.pid)
            result = asyncio.run(measured())
            cpu_ms = (process_tree_cpu(gw.pid) - cpu0) / max(result.answered, 1) * 1000
            rss.append((result.elapsed, rss_kib(gw.pid)))
        finally:
            gw.send_signal(signal.SIGTERM)
            code = gw.wait(120)
        upstream.terminate()
        upstream.wait(10)

        print(f"\n{'':<22}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}   gateway/direct")
        print(line(f"direct ({direct_seconds:.0f} s)", direct))
        print(line(f"gateway ({args.seconds:.0f} s)", result, direct))
        for pii, stream in KINDS:
            sub = Result(latencies={(pii, stream): result.latencies[(pii, stream)]}, elapsed=result.elapsed)
            dsub = Result(latencies={(pii, stream): direct.latencies[(pii, stream)]}, elapsed=direct.elapsed)
            print(line(f"  {'PII' if pii else 'plain'} {'stream' if stream else 'json'}", sub, dsub))
        print(f"gateway CPU per request: {cpu_ms:.2f} ms (audit writes included)")
        start_mib, end_mib = rss[0][1] / 1024, rss[-1][1] / 1024
        print(f"gateway RSS: start {start_mib:.1f} MiB (after warm-up), end {end_mib:.1f} MiB, "
              f"max {max(r for _, r in rss) / 1024:.1f} MiB, end/start x{end_mib / start_mib:.3f}")
        print("  samples (s: MiB): " + ", ".join(f"{t:.0f}: {r / 1024:.0f}" for t, r in rss))
        print(f"gateway exit status after SIGTERM: {code}")
        if code != 0:
            failures.append(f"gateway exited {code}")

        count, ids = asyncio.run(audit_rows(env["DATABASE_URL"], list(tenants)))
        answered = warm.answered + result.answered
        sent_ids = warm.request_ids | result.request_ids
        missing = len(sent_ids - ids)
        print(f"audit: {count} request events for {answered} answered requests "
              f"({warm.answered} warm-up + {result.answered} measured); {missing} answered ids missing, "
              f"{warm.transport_errors + result.transport_errors} transport errors")
        if count != answered or missing:
            failures.append("audit count differs from request count")
        verify = subprocess.run([sys.executable, "-m", "gateway.cli", "audit", "verify"], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=600)
        summary = (verify.stdout.strip().splitlines() or [verify.stderr.strip()])[-3:]
        print(f"bulkhead audit verify: exit {verify.returncode}  " + " | ".join(summary))
        if verify.returncode != 0:
            failures.append("audit verify failed")
        if result.errors or result.transport_errors:
            failures.append(f"{result.errors + result.transport_errors} errors under load")
    print("\nRESULT: " + ("OK" if not failures else "FAILED: " + "; ".join(failures)))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
