"""What a policy change does, in words a security engineer reads ("backend 'gpt-4o' trust:
external -> internal"), rather than a text diff of YAML; and which of those changes weaken the
protection (`weakenings`): a treatment or an action made more lenient, a check switched off, data
allowed somewhere it could not go before. `bulkhead policy diff` refuses those unless told
`--allow-weaker`; a hot reload applies them (the operator decided) and logs and audits each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.pii.config import Zone
from gateway.policy import Policy
from gateway.policy.loader import PolicySet
from gateway.risk.config import ACTIONS, DATA_CLASSES, DOMAINS, TIERS


def _fmt(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return str(value)


def _walk(path: str, old: Any, new: Any, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _walk(f"{path}.{key}" if path else key, old.get(key), new.get(key), out)
    elif old != new:
        out.append(f"{path}: {_fmt(old)} -> {_fmt(new)}")


def _describe_backend(b: dict) -> str:
    return f"adapter {b['adapter']}, model {b['model']}, trust {b['trust']}"


def diff_policies(old: Policy, new: Policy) -> list[str]:
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    changes: list[str] = []
    old_backends = {x["name"]: x for x in a.pop("backends")}
    new_backends = {x["name"]: x for x in b.pop("backends")}
    for name in sorted(set(old_backends) - set(new_backends)):
        changes.append(f"backend '{name}' removed (apps asking for it now get 404)")
    for name in sorted(set(new_backends) - set(old_backends)):
        changes.append(f"backend '{name}' added ({_describe_backend(new_backends[name])})")
    for name in sorted(set(old_backends) & set(new_backends)):
        fields: list[str] = []
        _walk("", old_backends[name], new_backends[name], fields)
        changes += [f"backend '{name}' {f}" for f in fields]
    old_models, new_models = a.pop("access")["models"], b.pop("access")["models"]
    if old_models != new_models:
        if new_models is None:
            changes.append("access: every backend is now allowed (allowlist removed)")
        else:
            changes.append(f"access: only {_fmt(sorted(new_models))} allowed (was {_fmt(old_models)})")
    _walk("", a, b, changes)
    return changes


def changed_sections(old: Policy, new: Policy) -> list[str]:
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def _per_scope(old: PolicySet, new: PolicySet, compare: Callable[[Policy, Policy], list[str]]
               ) -> dict[str, list[str]]:
    """`compare` per tenant overlay, plus 'default' for tenants without one; scopes with nothing left out."""
    out: dict[str, list[str]] = {}
    for tenant in ["default", *sorted(set(old.tenants) | set(new.tenants))]:
        lines = compare(old.for_tenant(tenant), new.for_tenant(tenant))
        if lines:
            out[tenant] = lines
    return out


def diff_sets(old: PolicySet, new: PolicySet) -> dict[str, list[str]]:
    """Changes in effect per tenant overlay, plus 'default' for tenants without one."""
    return _per_scope(old, new, diff_policies)


# Each order runs from the weakest value to the strongest: a change to the left weakens.
TREATMENTS = ("allow", "mask", "hash", "pseudonymize", "redact", "block")
CHECK_ACTIONS = ("record", "flag", "escalate", "block")  # a hallucination rule's action
ON = (False, True)
LOWER = "lower"  # a number whose rise weakens (a score threshold: fewer detections)
ZONES: tuple[Zone, ...] = ("external", "internal")
Order = tuple | str


def _view(p: Policy, names: dict[str, set[str]]) -> dict[str, tuple[Order, Any]]:
    """The values that protect something, by path, with the value in effect where the policy says
    nothing (an entity absent from a treatment table gets the zone's `default`), and the order in
    which each of them grows stronger."""
    pii, risk = p.pii, p.risk
    v: dict[str, tuple[Order, Any]] = {
        "pii.enabled": (ON, pii.enabled),
        "pii.score_threshold": (LOWER, pii.score_threshold),
        "pii.output_scan.enabled": (ON, pii.output_scan.enabled),
        "pii.output_scan.action": (("flag", "redact", "block"), pii.output_scan.action),
        "pii.on_error": (("internal", "fail"), pii.on_error),
        "pii.media.inline": (("allow", "internal", "refuse"), pii.media.inline),
        "pii.media.links": (("allow", "provider", "refuse"), pii.media.links),
        "risk.secrets.tier": (TIERS, risk.secrets.tier),
        "risk.secrets.action": (ACTIONS, risk.secrets.action),
        "risk.injection.enabled": (ON, risk.injection.enabled),
        "risk.injection.threshold": (LOWER, risk.injection.threshold),
        "risk.injection.tier": (TIERS, risk.injection.tier),
        "risk.injection.action": (ACTIONS, risk.injection.action),
        "risk.pii.default_tier": (TIERS, risk.pii.default_tier),
        "risk.pii.bulk_count": (LOWER, risk.pii.bulk_count),
        "risk.pii.bulk_tier": (TIERS, risk.pii.bulk_tier),
        "risk.data_class.on_unknown": (("restricted", "reject"), risk.data_class.on_unknown),
        "risk.embeddings.enabled": (ON, risk.embeddings.enabled),
        "audit.mode": (("available", "strict"), p.audit.mode),
        "audit.legal_hold": (ON, p.audit.legal_hold),
    }
    for zone in ZONES:
        for name in sorted(names["treatment"]):
            v[f"pii.treatment.{zone}.{name}"] = (TREATMENTS, pii.treatment.for_entity(zone, name))
    for name in sorted(names["thresholds"]):
        v[f"pii.thresholds.{name}"] = (LOWER, pii.threshold(name))
    for name in sorted(names["risk_entities"]):
        v[f"risk.pii.entities.{name}"] = (TIERS, risk.pii.entities.get(name, risk.pii.default_tier))
    for domain in DOMAINS:
        rule = risk.domains[domain]
        v[f"risk.domains.{domain}.enabled"] = (ON, rule.enabled)
        v[f"risk.domains.{domain}.threshold"] = (LOWER, rule.threshold)
        v[f"risk.domains.{domain}.tier"] = (TIERS, rule.tier)
        v[f"risk.domains.{domain}.action"] = (ACTIONS, rule.action or risk.tier_actions[rule.tier])
    for cls in DATA_CLASSES:
        v[f"risk.data_class.tiers.{cls}"] = (TIERS, risk.data_class.tiers[cls])
    for tier in TIERS:
        v[f"risk.tier_actions.{tier}"] = (ACTIONS, risk.tier_actions[tier])
    for rule in risk.rules:
        v[f"risk rule '{rule.name}' tier"] = (TIERS, rule.tier)
        v[f"risk rule '{rule.name}' action"] = (ACTIONS, rule.action or risk.tier_actions[rule.tier])
    return v


def _rank(order: Order, value: Any) -> float:
    return -value if order == LOWER else order.index(value)


def _names(*policies: Policy) -> dict[str, set[str]]:
    """Every entity type either policy names in a table, so both are read at the same keys."""
    out: dict[str, set[str]] = {"treatment": {"default"}, "thresholds": set(), "risk_entities": set()}
    for p in policies:
        out["treatment"] |= set(p.pii.treatment.external) | set(p.pii.treatment.internal)
        out["thresholds"] |= set(p.pii.thresholds)
        out["risk_entities"] |= set(p.risk.pii.entities)
    return out


def _wider(what: str, old: list[str] | None, new: list[str] | None) -> list[str]:
    """An allowlist (None: everything) that now lets more through."""
    if old is None:
        return []
    if new is None:
        return [f"{what}: restriction removed (was {_fmt(sorted(old))})"]
    added = sorted(set(new) - set(old))
    return [f"{what}: now also {_fmt(added)}"] if added else []


def weakenings(old: Policy, new: Policy) -> list[str]:
    """The changes from `old` to `new` that protect less, one line each."""
    out: list[str] = []
    names = _names(old, new)
    before, after = _view(old, names), _view(new, names)
    for path, (order, value) in before.items():
        if path in after and _rank(order, after[path][1]) < _rank(order, value):
            out.append(f"{path}: {_fmt(value)} -> {_fmt(after[path][1])}")
    kept = {r.name for r in new.risk.rules}
    out += [f"risk rule '{r.name}' removed" for r in old.risk.rules if r.name not in kept]
    for name in sorted(old.pii.active_entities - new.pii.active_entities):
        out.append(f"pii: {name} is no longer detected")
    added = set(new.pii.allow_list) - set(old.pii.allow_list)
    if added:
        out.append(f"pii.allow_list: {len(added)} value(s) added, never treated as PII")
    for b in new.backends:
        was = old.backend(b.name)
        if b.trust != "internal":
            continue
        if was is None:
            out.append(f"backend '{b.name}' added as internal (internal-only data may go to it)")
        elif was.trust == "external":
            out.append(f"backend '{b.name}' trust: external -> internal (internal-only data and untreated PII "
                       "may go to it)")
        elif was.api_base != b.api_base:
            out.append(f"backend '{b.name}' (internal) api_base: {_fmt(was.api_base)} -> {_fmt(b.api_base)}")
    out += _wider("access.models", old.access.models, new.access.models)
    out += _wider("routing.regions", old.routing.regions, new.routing.regions)
    if old.audit.retention_days is not None or new.audit.retention_days is not None:
        days = (old.audit.retention_days or float("inf"), new.audit.retention_days or float("inf"))
        if days[1] < days[0]:
            out.append(f"audit.retention_days: {_fmt(old.audit.retention_days)} -> {new.audit.retention_days}")
    return out + _hallucination_weakenings(old, new) + _spotlight_weakenings(old, new)


def _spotlight_weakenings(old: Policy, new: Policy) -> list[str]:
    """Spotlighting switched off, or its notice, or a kind of segment it no longer marks. Between
    its modes there is no order (`encode` is strongest for models that can read base64 only)."""
    a, b = old.spotlight, new.spotlight
    if a.mode == "off":
        return []
    if b.mode == "off":
        return [f"spotlight.mode: {a.mode} -> off"]
    out = [f"spotlight.roles: {r} no longer marked" for r in a.roles if r not in b.roles]
    return out + (["spotlight.notice: True -> False"] if a.notice and not b.notice else [])


def _hallucination_weakenings(old: Policy, new: Policy) -> list[str]:
    """A check that blocked or escalated answers under some `when` and no longer does as much."""
    def strongest(p: Policy) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for rule in p.hallucination.rules:
            for check in rule.checks:
                key = (rule.when.model_dump_json(exclude_defaults=True), check)
                out[key] = max(out.get(key, 0), CHECK_ACTIONS.index(rule.action))
        return out

    before, after = strongest(old), strongest(new)
    return [f"hallucination {check} when {when}: {CHECK_ACTIONS[rank]} -> "
            f"{CHECK_ACTIONS[after[(when, check)]] if (when, check) in after else 'no rule'}"
            for (when, check), rank in before.items()
            if rank >= CHECK_ACTIONS.index("escalate") and after.get((when, check), -1) < rank]


def weakenings_sets(old: PolicySet, new: PolicySet) -> dict[str, list[str]]:
    """`weakenings` per tenant overlay, plus 'default' for tenants without one."""
    return _per_scope(old, new, weakenings)
