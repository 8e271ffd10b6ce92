"""What a policy change does, in words a security engineer reads ("backend 'gpt-4o' trust:
external -> internal"), rather than a text diff of YAML."""

from __future__ import annotations

from typing import Any

from gateway.policy import Policy
from gateway.policy.loader import PolicySet


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


def diff_sets(old: PolicySet, new: PolicySet) -> dict[str, list[str]]:
    """Changes in effect per tenant overlay, plus 'default' for tenants without one."""
    out: dict[str, list[str]] = {}
    for tenant in ["default", *sorted(set(old.tenants) | set(new.tenants))]:
        changes = diff_policies(old.for_tenant(tenant), new.for_tenant(tenant))
        if changes:
            out[tenant] = changes
    return out
