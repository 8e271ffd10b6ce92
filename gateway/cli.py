"""`bulkhead`: serve, migrate, and manage tenants and keys.

Commands that print a new key print it alone on the last line of stdout, so scripts can take it
with `tail -n 1`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import logging.config
import os
import re
import sys
from datetime import UTC, datetime, timedelta

from gateway.auth import ROLES, KeyStore
from gateway.config import Settings
from gateway.db import create_engine, sessionmaker
from gateway.logs import dict_config
from gateway.policy import cli as policy_cli
from gateway.policy.loader import load_policy_set
from gateway.report import savings as savings_report

DELEGATED = {
    "audit": "gateway.compliance.cli",
    "check": "gateway.hallucination.cli",
    "moe": "local_moe.cli",
    "pii": "gateway.pii.cli",
    "risk": "gateway.risk.cli",
}


def _parse_expiry(value: str) -> datetime:
    """`30d`, `12h`, `90m` from now, or an ISO-8601 timestamp (UTC when no zone is given)."""
    match = re.fullmatch(r"(\d+)([dhm])", value)
    if match:
        n, unit = int(match.group(1)), match.group(2)
        delta = {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]
        return datetime.now(UTC) + delta
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a duration (30d, 12h) or ISO timestamp: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_since(value: str) -> datetime:
    match = re.fullmatch(r"(\d+)([dhm])", value)
    if match:
        return datetime.now(UTC) - (_parse_expiry(value) - datetime.now(UTC))
    return _parse_expiry(value)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bulkhead", description="Bulkhead, the secure LLM gateway.")
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--server", choices=("granian", "uvicorn"), default=os.environ.get("BULKHEAD_SERVER", "uvicorn"))
    serve.add_argument("--bootstrap-demo", action="store_true",
                       help="on an empty database, create tenant 'demo' and print an app key once")

    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--revision", default="head")

    tenants = sub.add_parser("tenants", help="manage tenants").add_subparsers(dest="action", required=True)
    tenants.add_parser("create").add_argument("name")
    tenants.add_parser("list")

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create")
    create.add_argument("--tenant", required=True)
    create.add_argument("--role", action="append", choices=ROLES, required=True, help="repeat for several roles")
    create.add_argument("--expires", type=_parse_expiry, help="30d, 12h, 90m or an ISO timestamp")
    create.add_argument("--models", help="comma-separated allowlist of model names (default: all)")
    create.add_argument("--name", help="a label for people")
    lst = keys.add_parser("list")
    lst.add_argument("--tenant")
    keys.add_parser("revoke").add_argument("key_id")

    policy_cli.add_parsers(sub)
    report = sub.add_parser("report", help="reports").add_subparsers(dest="action", required=True)
    savings = report.add_parser("savings", help="actual cost versus the tenant's premium backend")
    savings.add_argument("--tenant", required=True)
    savings.add_argument("--since", type=_parse_since, required=True, help="ISO date/time, or 7d, 24h")
    savings.add_argument("--json", action="store_true")

    for name in DELEGATED:
        sub.add_parser(name, help=f"{name} tools (see `bulkhead {name} --help`)", add_help=False)
    return p


def _store(settings: Settings):
    engine = create_engine(settings.admin_database_url)
    return engine, KeyStore(sessionmaker(engine), settings.secret)


async def _tenants(args, settings: Settings) -> int:
    engine, store = _store(settings)
    try:
        if args.action == "create":
            tenant = await store.create_tenant(args.name)
            print(f"{tenant.id}\t{tenant.name}")
        else:
            for t in await store.list_tenants():
                print(f"{t.id}\t{t.name}\t{t.created_at.isoformat()}")
        return 0
    finally:
        await engine.dispose()


async def _keys(args, settings: Settings) -> int:
    engine, store = _store(settings)
    try:
        if args.action == "create":
            models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
            key, raw = await store.create_key(args.tenant, args.role, expires_at=args.expires, models=models,
                                              name=args.name)
            print(f"created {key.id} for tenant {args.tenant} with roles {','.join(key.roles)}; "
                  "the key is shown once:", file=sys.stderr)
            print(raw)
        elif args.action == "list":
            for key, tenant in await store.list_keys(args.tenant):
                state = "revoked" if key.revoked_at else "active"
                expires = key.expires_at.isoformat() if key.expires_at else "-"
                print(f"{key.id}\t{tenant}\t{','.join(key.roles)}\t{key.prefix}…\t{state}\texpires={expires}")
        else:
            if not await store.revoke_key(args.key_id):
                print(f"no active key {args.key_id}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}")
        return 0
    finally:
        await engine.dispose()


async def _report(args, settings: Settings) -> int:
    policy = load_policy_set(settings.policies_dir).for_tenant(args.tenant)
    result = await savings_report(settings.admin_database_url, args.tenant, args.since, policy)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"tenant {result['tenant']} since {result['since']}: premium backend {result['premium_backend']}")
    for row in result["by_backend"]:
        print(f"  {row['backend']:<24} {row['requests']:>7} req  {row['tokens_in']:>9} in  {row['tokens_out']:>9} out"
              f"  ${row['cost_usd']:>10.4f}  (on premium ${row['on_premium_usd']:.4f})")
    ratio = f" ({result['saved_ratio']:.1%})" if result["saved_ratio"] is not None else ""
    print(f"actual ${result['actual_usd']:.4f}  on premium ${result['on_premium_usd']:.4f}  "
          f"saved ${result['saved_usd']:.4f}{ratio}")
    return 0


DEMO_TENANT = "demo"


async def bootstrap_demo(settings: Settings) -> tuple[str | None, str]:
    """The first start of `make run`: a tenant and an app key, so the README's curl works. Returns
    the key (None when the database already had tenants: keys are shown once, when they are made)
    and the line to print before it, or instead of it, saying how to mint one."""
    engine, store = _store(settings)
    try:
        names = [t.name for t in await store.list_tenants()]
        if not names:
            await store.create_tenant(DEMO_TENANT)
            _, raw = await store.create_key(DEMO_TENANT, ["app"], name="demo app key")
            return raw, f"Created tenant '{DEMO_TENANT}' and an app key (shown once, keep it):"
    finally:
        await engine.dispose()
    if DEMO_TENANT in names:
        return None, (f"Tenant '{DEMO_TENANT}' exists already, so no key was made (a key is shown only once, "
                      f"when it is created). For a new app key: bulkhead keys create --tenant {DEMO_TENANT} --role app")
    return None, (f"This database has tenants already ({', '.join(names[:3])}{', …' if len(names) > 3 else ''}), "
                  f"so no demo tenant was made. For an app key: bulkhead keys create --tenant {names[0]} --role app")


def listening(host: str, port: int, workers: int = 1) -> str:
    """The line `serve` prints with the address to use: the URL, and the base_url for OpenAI SDKs."""
    everywhere = host in ("", "0.0.0.0", "::")
    shown = ("::1" if host == "::" else "127.0.0.1") if everywhere else host
    url = f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    line = f"Bulkhead listening on {url} (OpenAI base_url {url}/v1)"
    if everywhere:
        line += f", on every interface ({host or '0.0.0.0'})"
    return line if workers == 1 else line.replace("listening", f"starting {workers} workers", 1)


def _serve_uvicorn(args, settings: Settings) -> int:
    # Only the chosen server is loaded, and no other command (or --help) pays for either.
    import uvicorn

    from gateway.http.serving import BoundedHttpToolsProtocol, DrainingServer

    # log_config: every worker process logs as this one does (uvicorn applies it in each)
    options = dict(factory=True, host=args.host, port=args.port, loop="uvloop", http=BoundedHttpToolsProtocol,
                   access_log=False, log_level="warning", log_config=args.log_config,
                   timeout_graceful_shutdown=settings.drain_seconds)
    if args.workers > 1:
        print(listening(args.host, args.port, args.workers), flush=True)
        uvicorn.run("gateway.http.app:create_app", workers=args.workers, **options)
        return 0

    class Announced(DrainingServer):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets=sockets)
            if self.started:  # the app is ready and the port bound (port 0: the one the system chose)
                bound = [s.getsockname()[1] for server in self.servers for s in server.sockets or ()]
                print(listening(args.host, bound[0] if bound else args.port), flush=True)

    Announced(uvicorn.Config("gateway.http.app:create_app", **options), settings.drain_seconds).run()
    return 0


def share_cores(workers: int) -> None:
    """Each worker's model passes get their share of the CPUs this process may use: two workers each
    running inference on every core would fight over them (gateway/encoder_runtime.py reads it)."""
    if workers > 1 and "BULKHEAD_INFERENCE_THREADS" not in os.environ:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        os.environ["BULKHEAD_INFERENCE_THREADS"] = str(max(1, cpus // workers))


def serve(args, settings: Settings) -> int:
    share_cores(args.workers)
    if args.bootstrap_demo:
        raw, note = asyncio.run(bootstrap_demo(settings))
        print(note, flush=True)
        if raw:
            print(raw, flush=True)
    if args.server == "uvicorn":
        return _serve_uvicorn(args, settings)
    # Only the chosen server is loaded, and no other command (or --help) pays for either.
    from granian import Granian
    from granian.http import HTTP1Settings

    # Granian times out slow headers itself (milliseconds); a slow body gets its 408 from the envelope.
    http1 = HTTP1Settings(header_read_timeout=int(settings.header_timeout * 1000))
    print(listening(args.host, args.port, args.workers), flush=True)  # granian binds as it starts
    Granian("gateway.http.app:create_app", factory=True, address=args.host, port=args.port, interface="asgi",
            workers=args.workers, loop="uvloop", log_level="warning", log_dictconfig=args.log_config,
            workers_kill_timeout=30, http1_settings=http1).serve()
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    serving = argv[:1] == ["serve"]
    # The gateway's lines are JSON, one object a line (gateway/logs.py); the other commands' are for
    # people. BULKHEAD_LOG_FORMAT=text|json chooses either way.
    level = os.environ.get("BULKHEAD_LOG_LEVEL", "INFO" if serving else "WARNING")
    log_config = dict_config(level, os.environ.get("BULKHEAD_LOG_FORMAT", "json" if serving else "text").lower())
    logging.config.dictConfig(log_config)
    if argv and argv[0] in DELEGATED:
        try:
            module = importlib.import_module(DELEGATED[argv[0]])
        except ModuleNotFoundError as exc:
            if exc.name and DELEGATED[argv[0]].startswith(exc.name):
                print(f"error: `bulkhead {argv[0]}` is not available in this installation ({exc.name} is missing)",
                      file=sys.stderr)
                return 2
            raise
        return module.main(argv[1:])
    args = _parser().parse_args(argv)
    args.log_config = log_config
    settings = Settings()
    try:
        if args.command == "serve":
            return serve(args, settings)
        if args.command == "migrate":
            # alembic takes ~80 ms to import; only `migrate` needs it.
            from gateway.migrate import upgrade

            upgrade(settings.admin_database_url, args.revision)
            print(f"database at revision {args.revision}")
            return 0
        if args.command == "tenants":
            return asyncio.run(_tenants(args, settings))
        if args.command == "keys":
            return asyncio.run(_keys(args, settings))
        if args.command == "report":
            return asyncio.run(_report(args, settings))
        if args.command == "policy":
            return policy_cli.run(args, settings.policies_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
