"""What the gateway costs on top of a direct call to the provider.

Starts the stand-in upstream (no body recording) and the gateway as separate processes, then
drives both with a closed-loop aiohttp client: direct-to-upstream versus through the gateway, at
concurrency 1, 16 and 64 (non-streaming) and streaming time-to-first-byte at 16. Prints
requests/s, p50, p99, added p50 latency and gateway CPU per request (from /proc, so it counts only
the gateway process). The gateway is pinned to CPU 0, upstream and load generator to CPU 1.

    python bench/overhead.py                       # granian and uvicorn, SQLite audit
    python bench/overhead.py --servers granian --seconds 10
    python bench/overhead.py --litellm-calls 300   # what litellm.acompletion itself costs per call
    python bench/overhead.py --varied --servers granian --seconds 10   # default policy, a new prompt each request
    python bench/overhead.py --varied --servers granian --workers 1,2   # the same with one worker, then two
    python bench/overhead.py --varied --servers granian --baseline   # and LiteLLM + Presidio beside it

`--varied` runs the gateway with the default policy (every detector on) and sends issue 25's
prompt shape with a new name, phone number and case number in every request, so no cache serves a
repeat; after each scenario it prints, from the gateway's own audit rows, the status codes, the
risk tiers, and the milliseconds each pipeline stage took (p50 and mean; at c=1 on a pinned core
a stage's wall time is its CPU time). `--baseline` runs the same scenarios, on the same core and
with prompts none of the gateway's runs sent, against issue 25's comparison system (LiteLLM with
Presidio on the input: `bench/litellm_presidio.py`, an equivalent that errs in its favour) and
prints the gateway's throughput as a multiple of it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.audit.records import trace  # noqa: E402
from tests.conftest import cli, free_port  # noqa: E402

BODY = {"model": "bench", "messages": [{"role": "user", "content": "Summarise the quarterly report in one line."}]}
# What each profile turns on. `plain` is the gateway without content inspection (the issue's
# comparison with a bare proxy); `pii` adds Presidio scrubbing and restore; `pii+risk` adds the
# sentence-embedding risk detectors.
# PII types are made low risk so that every request goes to the (external) upstream scrubbed:
# the rows measure inspection and scrubbing, not refusals.
_LOW = ("{default_tier: low, bulk_tier: low, entities: {US_SSN: low, CREDIT_CARD: low, IBAN_CODE: low, "
        "US_BANK_NUMBER: low, US_DRIVER_LICENSE: low, US_PASSPORT: low, US_ITIN: low, MEDICAL_LICENSE: low, "
        "UK_NHS: low}}")
PROFILES = {
    "plain": "pii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n",
    "pii": f"risk: {{embeddings: {{enabled: false}}, pii: {_LOW}, rules: []}}\n",
    "pii+risk": f"risk: {{pii: {_LOW}, rules: [], domains: {{medical: {{tier: low}}, hr: {{tier: low}}}}}}\n",
    "default": "",  # the default policy: every detector on, default tiers
}
HAS_TWO_CPUS = len(os.sched_getaffinity(0)) >= 2


def encoder_precisions() -> str:
    """What the gateway's encoders will be asked to run in: the environment's choice, else each
    module's default (figures from different precisions are different systems)."""
    from gateway.pii import tagger
    from gateway.risk import embeddings

    return ", ".join(f"{name} {os.environ.get(var) or default}" for name, var, default in (
        ("tagger", "BULKHEAD_TAGGER_PRECISION", tagger.PRECISION),
        ("embedder", "BULKHEAD_EMBEDDER_PRECISION", embeddings.PRECISION)))


def pin(cpu: int | str) -> list[str]:
    return ["taskset", "-c", str(cpu)] if HAS_TWO_CPUS else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def process_tree_cpu(pid: int) -> float:
    """CPU of a server and its worker processes (granian forks workers)."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        total += process_tree_cpu(int(child))
    return total


def tree_rss_mib(pid: int) -> list[float]:
    """Resident memory (MiB) of a server and each of its worker processes, parent first."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [rss] + [r for child in children for r in tree_rss_mib(int(child))]


def rss_line(pid: int, when: str) -> str:
    sizes = ", ".join(f"{r:.0f} MiB" for r in tree_rss_mib(pid))
    return f"    resident memory {when}: {sizes} (server, then workers)"


def wait_http(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def pii_bodies(n: int = 2000) -> list[bytes]:
    """Distinct prompts full of PII (names, e-mails, phones, cards, addresses...), so no cache helps."""
    from tests.pii.test_leak import generate

    return [orjson.dumps({**BODY, "messages": [{"role": "user", "content": text}]})
            for _, text, values in generate(n, seed=5) if "secret" not in values]


async def closed_loop(url: str, headers: dict, concurrency: int, seconds: float, stream: bool,
                      bodies: list[bytes] | None = None, start: int = 0) -> dict:
    """Each worker sends its next request as soon as the last one finished. With `bodies`, request k
    sends `bodies[(start + k) % len(bodies)]`; the result's `sent` says how many were sent, so the
    next scenario can start after them (a prompt repeated from an earlier scenario would be served
    by the gateway's caches)."""
    latencies: list[float] = []
    errors = 0
    body = orjson.dumps({**BODY, "stream": stream})
    if bodies:
        bodies = [orjson.dumps({**orjson.loads(b), "stream": stream}) for b in bodies]
    counter = start
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, headers={**headers, "content-type": "application/json"}) as s:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, counter
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                counter += 1
                data = bodies[counter % len(bodies)] if bodies else body
                try:
                    async with s.post(url, data=data) as resp:
                        if stream:
                            await resp.content.readany()  # first byte of the first event
                            latencies.append(time.perf_counter() - t0)
                            await resp.read()
                        else:
                            await resp.read()
                            latencies.append(time.perf_counter() - t0)
                        if resp.status != 200:
                            errors += 1
                except aiohttp.ClientError:
                    errors += 1

        # warm-up outside the measured window
        async with s.post(url, data=body) as resp:
            await resp.read()
        t_start = time.perf_counter()
        stop = t_start + seconds
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - t_start
    latencies.sort()
    n = len(latencies)
    return {
        "n": n,
        "rps": n / elapsed,
        "p50": latencies[n // 2] * 1000 if n else float("nan"),
        "p99": latencies[min(n - 1, int(n * 0.99))] * 1000 if n else float("nan"),
        "errors": errors,
        "sent": counter - start,
    }


def start_upstream(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([*pin(1), sys.executable, "-m", "tests.standin", "--port", str(port), "--no-record"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/v1/models", proc)
    return proc


def start_gateway(server: str, upstream: str, tmp: Path, extra_env: dict, profile: str = "plain",
                  workers: int = 1) -> tuple[subprocess.Popen, str, str]:
    """One worker is pinned to CPU 0; more workers get CPUs 0..workers-1 (the load generator and the
    stand-in then share CPU 1 with a worker)."""
    policies = tmp / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "default.yaml").write_text(
        PROFILES[profile]
        + f"backends:\n  - {{name: bench, adapter: openai, model: echo, api_base: '{upstream}', trust: external}}\n"
        f"  - {{name: bench-litellm, adapter: litellm, via: litellm, model: openai/echo, api_base: '{upstream}',"
        " api_key_env: BENCH_UPSTREAM_KEY, trust: internal}\n"
    )
    env = {**os.environ, "BULKHEAD_POLICIES": str(policies), "BULKHEAD_DATA_DIR": str(tmp / "data"),
           "BULKHEAD_SECRET": "bench", "BULKHEAD_LOG_LEVEL": "WARNING", "BENCH_UPSTREAM_KEY": "unused",
           **extra_env}
    env.setdefault("DATABASE_URL", f"sqlite+aiosqlite:///{tmp / 'bench.db'}")
    cli(env, "migrate")
    if "bench" not in cli(env, "tenants", "list"):
        cli(env, "tenants", "create", "bench")
    key = cli(env, "keys", "create", "--tenant", "bench", "--role", "app").strip().splitlines()[-1]
    port = free_port()
    cpus = "0" if workers == 1 else f"0-{workers - 1}"
    proc = subprocess.Popen([*pin(cpus), sys.executable, "-m", "gateway.cli", "serve", "--server", server,
                             "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=sys.stderr)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc)
    return proc, f"http://127.0.0.1:{port}", key


SCENARIOS = [("chat c=1", 1, False), ("chat c=16", 16, False), ("chat c=64", 64, False), ("stream TTFB c=16", 16, True)]


def varied_bodies(n: int = 20_000) -> list[bytes]:
    """Issue 25's prompt shape, a new name, phone number and case number in each."""
    from bench.pii_checksums import benign

    return [orjson.dumps({**BODY, "messages": [{"role": "user", "content": text}]}) for text in benign(n, seed=25)]


def audit_summary(db: Path, since_id: int) -> tuple[int, str]:
    """(last audit row id, a printable summary of the rows after `since_id`): status codes, risk
    tiers and per-stage milliseconds, read from the gateway's SQLite audit table."""
    con = sqlite3.connect(db)
    try:
        rows = con.execute(
            "SELECT id, status, error_code, stages, risk FROM audit_events WHERE id > ? ORDER BY id", (since_id,)
        ).fetchall()
    finally:
        con.close()
    if not rows:
        return since_id, "    (no audit rows)"
    statuses: dict[str, int] = {}
    tiers: dict[str, int] = {}
    stages: dict[str, list[float]] = {}
    for _, status, code, stage_json, risk_json in rows:
        key = f"{status}{' ' + code if code else ''}"
        statuses[key] = statuses.get(key, 0) + 1
        tier = (orjson.loads(risk_json) or {}).get("tier", "-") if risk_json else "-"
        tiers[tier] = tiers.get(tier, 0) + 1
        for step in trace(orjson.loads(stage_json) if stage_json else None):
            stages.setdefault(step["stage"], []).append(float(step["ms"]))
    order = [step["stage"] for step in trace(dict.fromkeys(stages, 0))]  # the pipeline's order
    cells = "  ".join(f"{n} {statistics.median(stages[n]):.2f}/{statistics.fmean(stages[n]):.2f}" for n in order)
    text = (f"    {len(rows)} audit rows; status {statuses}; tier {tiers}\n"
            f"    stage ms p50/mean: {cells}")
    return rows[-1][0], text


def row(label: str, r: dict, base: dict | None, cpu_ms: float | None) -> str:
    added = f"{r['p50'] - base['p50']:+8.2f}" if base else "       -"
    ratio = f"{r['rps'] / base['rps']:5.2f}" if base else "    -"
    cpu = f"{cpu_ms:7.2f}" if cpu_ms is not None else "      -"
    return (f"{label:<34}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{added:>11}{ratio:>8}{cpu:>12}"
            f"{r['errors']:>7}")


def measured(pid: int, base: str, key: str | None, label: str, concurrency: int, stream: bool, seconds: float,
             direct: dict, bodies: list[bytes] | None = None, start: int = 0) -> dict:
    """One scenario against the server at `base` (process `pid`, its workers included): printed as a
    row beside the direct figures, with its CPU per request; returns closed_loop's result."""
    cpu0 = process_tree_cpu(pid)
    headers = {"authorization": f"Bearer {key}"} if key else {}
    r = asyncio.run(closed_loop(base + "/v1/chat/completions", headers, concurrency, seconds, stream, bodies, start))
    print(row(label, r, direct, (process_tree_cpu(pid) - cpu0) / max(r["n"] + 1, 1) * 1000))
    return r


async def measure_litellm(upstream: str, calls: int) -> None:
    """CPU per call of litellm.acompletion versus the gateway's own pooled client, same upstream."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    from adapters.litellm_adapter import LiteLLMAdapter
    from adapters.openai_http import OpenAIHTTPAdapter

    body = {k: v for k, v in BODY.items() if k != "model"}
    ours = OpenAIHTTPAdapter("direct", "echo", upstream)
    lite = LiteLLMAdapter("litellm", "openai/echo", api_base=upstream, api_key_env=None)
    os.environ.setdefault("OPENAI_API_KEY", "unused")
    print(f"\nPer-call CPU in this process ({calls} sequential calls each, upstream in another process):")
    for name, adapter in (("own pooled aiohttp client", ours), ("litellm.acompletion", lite)):
        for _ in range(20):
            await adapter.chat(body, timeout=10)
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(calls):
            await adapter.chat(body, timeout=10)
        cpu = (time.process_time() - c0) / calls * 1000
        wall = (time.perf_counter() - t0) / calls * 1000
        print(f"  {name:<28} {cpu:6.2f} ms CPU/call   {wall:6.2f} ms wall/call")
    await ours.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default="uvicorn,granian")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--litellm-calls", type=int, default=200)
    parser.add_argument("--via-litellm", action="store_true", help="also measure the litellm path through the gateway")
    parser.add_argument("--profiles", default="pii,pii+risk",
                        help="content-inspection profiles to add rows for (plain always runs): pii, pii+risk")
    parser.add_argument("--varied", action="store_true",
                        help="only the default policy with a new prompt per request, with audit stage times")
    parser.add_argument("--workers", default="1",
                        help="--varied: comma-separated worker counts to run the scenarios with, e.g. 1,2")
    parser.add_argument("--baseline", action="store_true",
                        help="--varied: also run the scenarios against LiteLLM + Presidio's equivalent "
                        "(bench/litellm_presidio.py) pinned to the same core, and print the ratios")
    args = parser.parse_args()
    if HAS_TWO_CPUS:
        os.sched_setaffinity(0, {1})
    up_port = free_port()
    upstream = start_upstream(up_port)
    up_base = f"http://127.0.0.1:{up_port}/v1"
    print(f"cpus={os.cpu_count()} pinned={'yes' if HAS_TWO_CPUS else 'no'} seconds/scenario={args.seconds}")
    print(f"encoders asked for: {encoder_precisions()} (the gateway's log says what each runs in)")
    header = (f"{'scenario':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'added p50':>11}{'ratio':>8}"
              f"{'CPU ms/req':>12}{'errors':>7}")
    try:
        direct = {}
        print("\n" + header)
        for label, conc, stream in SCENARIOS:
            direct[label] = asyncio.run(closed_loop(up_base + "/chat/completions", {}, conc, args.seconds, stream))
            print(row(f"direct {label}", direct[label], None, None))
        if args.varied:
            run_varied(args, up_base, direct)
            return
        for server in args.servers.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                gw, base, key = start_gateway(server, up_base, Path(tmp), {})
                try:
                    models = ["bench"] + (["bench-litellm"] if args.via_litellm else [])
                    for model in models:
                        BODY["model"] = model
                        for label, conc, stream in SCENARIOS:
                            measured(gw.pid, base, key, f"{server}/{model} {label}", conc, stream, args.seconds,
                                     direct[label])
                    BODY["model"] = "bench"
                finally:
                    gw.terminate()
                    gw.wait(60)
        server = args.servers.split(",")[0]
        for profile in [p for p in args.profiles.split(",") if p]:
            with tempfile.TemporaryDirectory() as tmp:
                gw, base, key = start_gateway(server, up_base, Path(tmp), {}, profile)
                varied = pii_bodies()
                try:
                    for label, conc, stream in SCENARIOS:
                        if conc == 64:
                            continue
                        measured(gw.pid, base, key, f"{server}/{profile} {label}", conc, stream, args.seconds,
                                 direct[label], varied)
                finally:
                    gw.terminate()
                    gw.wait(60)
        if args.litellm_calls:
            asyncio.run(measure_litellm(up_base, args.litellm_calls))
    finally:
        upstream.terminate()
        upstream.wait(10)
    print("\nadded p50 = gateway p50 - direct p50 at the same concurrency; ratio = gateway req/s / direct req/s;"
          "\nCPU ms/req = gateway process CPU seconds / requests (audit writes included).")


def run_varied(args, up_base: str, direct: dict) -> None:
    """The default policy, a new prompt each request, every scenario; audit summary after each. With
    several worker counts, the whole set once per count, prompts never repeating across them."""
    bodies = varied_bodies()
    server = args.servers.split(",")[0]
    offset = 0  # each scenario's prompts follow the last one's: none is repeated from an earlier scenario
    results: dict[str, dict[str, dict]] = {}
    if args.baseline:
        offset, results["baseline"] = run_baseline(args, up_base, direct, bodies, offset)
    for workers in (int(w) for w in args.workers.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            gw, base, key = start_gateway(server, up_base, Path(tmp), {}, "default", workers=workers)
            last = 0
            name = f"{server}/default varied" + (f" w={workers}" if workers > 1 else "")
            print(rss_line(gw.pid, "at ready"))
            try:
                for label, conc, stream in SCENARIOS:
                    r = measured(gw.pid, base, key, f"{name} {label}", conc, stream, args.seconds, direct[label],
                                 bodies, offset)
                    offset += r["sent"]
                    results.setdefault(f"{workers} worker(s)", {})[label] = r
                    if offset > len(bodies):
                        print(f"    note: {offset} requests so far > {len(bodies)} distinct prompts; some repeated")
                    time.sleep(1.0)  # the audit writer flushes in batches
                    last, summary = audit_summary(Path(tmp) / "bench.db", last)
                    print(summary)
                print(rss_line(gw.pid, "after the run"))
            finally:
                gw.terminate()
                gw.wait(60)
    if "baseline" in results:
        base = results.pop("baseline")
        print("\nrequests/s as a multiple of LiteLLM + Presidio's (same run, same core); p99 ms beside:")
        for name, rs in results.items():
            cells = "  ".join(f"{label} {rs[label]['rps'] / base[label]['rps']:.2f}x "
                              f"(p99 {rs[label]['p99']:.0f} vs {base[label]['p99']:.0f})" for label in rs)
            print(f"  {name}: {cells}")


def run_baseline(args, up_base: str, direct: dict, bodies: list[bytes], offset: int) -> tuple[int, dict]:
    """The varied scenarios against bench/litellm_presidio.py on CPU 0: (next prompt offset, results)."""
    port = free_port()
    proc = subprocess.Popen([*pin(0), sys.executable, str(ROOT / "bench" / "litellm_presidio.py"),
                             "--port", str(port), "--upstream", up_base],
                            cwd=ROOT, env={**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"},
                            stdout=subprocess.DEVNULL, stderr=sys.stderr)
    results: dict[str, dict] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        print(rss_line(proc.pid, "at ready (LiteLLM + Presidio)"))
        for label, conc, stream in SCENARIOS:
            r = measured(proc.pid, f"http://127.0.0.1:{port}", None, f"litellm+presidio {label}", conc, stream,
                         args.seconds, direct[label], bodies, offset)
            offset += r["sent"]
            results[label] = r
    finally:
        proc.terminate()
        proc.wait(60)
    return offset, results


if __name__ == "__main__":
    main()
