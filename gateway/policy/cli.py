"""`bulkhead policy check | schema | explain | diff`: the policy tools for security teams."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gateway.policy import json_schema
from gateway.policy.diff import diff_policies, diff_sets, weakenings, weakenings_sets
from gateway.policy.loader import PolicyError, check_files, compile_documents, load_policy_set, read_document

MODES = ("chat", "completions", "embeddings")
WEAKER_EXIT = 3  # `policy diff`: the change weakens the protection (1 is an invalid policy)


def add_parsers(sub) -> None:
    policy = sub.add_parser("policy", help="policy tools").add_subparsers(dest="action", required=True)
    check = policy.add_parser("check", help="validate policy files or directories; exit 1 with located errors")
    check.add_argument("paths", nargs="*", help="files or directories (default: BULKHEAD_POLICIES)")
    schema = policy.add_parser("schema", help="print (or --write) the policy JSON Schema")
    schema.add_argument("--write", metavar="FILE", help="write it to FILE, e.g. policies/schema.json")
    explain = policy.add_parser("explain", help="the decision for a request, without calling any backend")
    explain.add_argument("--tenant", required=True)
    explain.add_argument("--request", required=True, help="a JSON request body (file, or - for stdin)")
    explain.add_argument("--mode", choices=MODES, default="chat")
    explain.add_argument("--key-models", help="comma-separated allowlist of the calling key, if it has one")
    explain.add_argument("--risk-action", choices=("allow", "require_internal", "block"), default="allow",
                         help="assume this risk action (until the risk stage explains it itself)")
    diff = policy.add_parser("diff", help="what would change in effect between two policy files or directories; "
                             f"exit {WEAKER_EXIT} when a change weakens the protection, unless --allow-weaker")
    diff.add_argument("old")
    diff.add_argument("new")
    diff.add_argument("--allow-weaker", action="store_true",
                      help="accept changes that weaken a treatment, an action or a trust rule (still listed)")


def run(args, policies_dir: Path) -> int:
    try:
        return {"check": _check, "schema": _schema, "explain": _explain, "diff": _diff}[args.action](args, policies_dir)
    except PolicyError as exc:
        for err in exc.errors:
            print(err)
        return 1


def _check(args, policies_dir: Path) -> int:
    paths = [Path(p) for p in args.paths] or [policies_dir]
    errors = check_files(paths)
    for err in errors:
        print(err)
    if errors:
        return 1
    print(f"ok: {', '.join(map(str, paths))}")
    return 0


def _schema(args, policies_dir: Path) -> int:
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.write:
        Path(args.write).write_text(text)
    else:
        print(text, end="")
    return 0


def _explain(args, policies_dir: Path) -> int:
    # Every `bulkhead` command builds this module's parser; the request machinery (schemas, routing,
    # the PII and risk stages) would add to each, so only `explain` loads it.
    import asyncio

    from gateway.auth import Principal
    from gateway.errors import APIError
    from gateway.explain import explain_request, warm_up
    from gateway.request import ModelRequest

    raw = sys.stdin.read() if args.request == "-" else Path(args.request).read_text()
    policy = load_policy_set(policies_dir).for_tenant(args.tenant)
    print(f"tenant: {args.tenant}   policy version: {policy.version[:16]}")
    try:
        req = ModelRequest.of(args.mode, json.loads(raw))
    except (APIError, json.JSONDecodeError) as exc:
        print(f"request rejected before routing: {getattr(exc, 'message', exc)}")
        return 1
    models = tuple(m.strip() for m in args.key_models.split(",")) if args.key_models else None
    principal = Principal(tenant_id="-", tenant=args.tenant, key_id="-", roles=("app",), models=models)
    print(f"requested model: {req.model}   endpoint: {args.mode}   stream: {getattr(req, 'stream', False)}")
    warm_up(policy)  # as the gateway is before it serves: a cold model would time the stages out
    # The request's own stages: inspect (PII), risk, decide, transform; --risk-action only raises the action.
    ex = asyncio.run(explain_request(policy, principal, req, assume=args.risk_action))
    pii = ex.pii_record()
    if pii is not None:
        found = ", ".join(f"{k} x{n}" for k, n in sorted(pii["detected"].items())) or "nothing"
        print(f"pii: {found}" + ("" if pii["analysis"] == "ok" else f" (analysis {pii['analysis']})"))
    if ex.risk is not None:
        print(f"risk: tier {ex.risk.tier}, action {ex.risk.action}"
              + (f" ({'; '.join(ex.risk.reasons)})" if ex.risk.reasons else ""))
        for t in ex.risk.blocked_by:
            print(f"  blocked by {t.signal}: {t.found} (policy setting {t.setting})")
    print(f"estimated tokens: prompt ~{req.texts.prompt_tokens} (routing), prompt+answer {req.tokens} (admission)")
    print("candidates:")
    for v in ex.verdicts:
        cost = f"${v.expected_cost_usd:.6f}" if v.expected_cost_usd is not None else "-"
        print(f"  {'ACCEPT' if v.accepted else 'reject'}  {v.backend:<24} {cost:>11}  {v.reason}")
    decision = ex.decision
    if decision:
        b = decision.backend
        print(f"decision: {b.name} ({b.adapter} {b.model}, trust {b.trust}, timeout {b.timeout_s}s, "
              f"retries {b.max_retries}) — {ex.reason}")
        if decision.fallbacks:
            print(f"fallbacks: {', '.join(f.name for f in decision.fallbacks)}")
    else:
        refusal = ex.refusal
        print(f"decision: refused ({refusal.status} {refusal.code}) — {refusal.message}")
    limits, budgets = policy.limits, policy.budgets
    print(f"limits: rpm_per_key={limits.rpm_per_key or 'none'} rpm_per_tenant={limits.rpm_per_tenant or 'none'} "
          f"tpm_per_key={limits.tpm_per_key or 'none'} tpm_per_tenant={limits.tpm_per_tenant or 'none'}")
    print(f"budgets: per {budgets.period}: tenant=${budgets.tenant_usd if budgets.tenant_usd is not None else 'none'}"
          f" key=${budgets.key_usd if budgets.key_usd is not None else 'none'}")
    return 0 if decision else 1


def _load_any(path: Path):
    if path.is_dir():
        return load_policy_set(path)
    return compile_documents([read_document(path)])


def _diff(args, policies_dir: Path) -> int:
    old, new = _load_any(Path(args.old)), _load_any(Path(args.new))
    if hasattr(old, "tenants") and hasattr(new, "tenants"):
        changes, weaker = diff_sets(old, new), weakenings_sets(old, new)
    else:
        old_p = old.default if hasattr(old, "default") else old
        new_p = new.default if hasattr(new, "default") else new
        lines, weak = diff_policies(old_p, new_p), weakenings(old_p, new_p)
        changes, weaker = ({"policy": lines} if lines else {}), ({"policy": weak} if weak else {})
    if not changes:
        print("no change in effect")
        return 0
    for scope, lines in changes.items():
        print(f"{scope}:")
        for line in lines:
            print(f"  - {line}")
    for scope, lines in weaker.items():
        for line in lines:
            print(f"WARNING: weaker ({scope}): {line}")
    if not weaker:
        return 0
    count = sum(map(len, weaker.values()))
    if args.allow_weaker:
        print(f"{count} weakening change(s) accepted (--allow-weaker)")
        return 0
    print(f"{count} weakening change(s); review them, then pass --allow-weaker to accept")
    return WEAKER_EXIT
