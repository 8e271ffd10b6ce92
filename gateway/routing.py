"""The `decide` stage. For now the honest minimum: the app names a backend and gets exactly that
one, if the tenant's policy and the key allow it and the backend serves the endpoint. Every
backend's verdict is kept, so `bulkhead policy explain` and the audit can say why. The risk- and
cost-aware router replaces `decide` without changing its signature."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.policy import Backend, Policy


@dataclass(frozen=True, slots=True)
class Verdict:
    backend: str
    accepted: bool
    reason: str
    code: str = "accepted"


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend: Backend
    verdicts: tuple[Verdict, ...]
    reason: str


def visible_backends(policy: Policy, principal: Principal) -> list[Backend]:
    return [b for b in policy.backends if policy.tenant_may_use(b.name) and principal.may_use(b.name)]


def _verdict(policy: Policy, principal: Principal, backend: Backend, model: str, mode: str) -> Verdict:
    if backend.name != model:
        return Verdict(backend.name, False, "not the requested model", "not_requested")
    if not policy.tenant_may_use(backend.name):
        return Verdict(backend.name, False, "the tenant's access list excludes it", "tenant_access")
    if not principal.may_use(backend.name):
        return Verdict(backend.name, False, "the key's model allowlist excludes it", "key_allowlist")
    if mode not in backend.modes:
        return Verdict(backend.name, False, f"does not serve {mode}", "mode")
    return Verdict(backend.name, True, "requested by name")


def verdicts(policy: Policy, principal: Principal, model: str, mode: str) -> tuple[Verdict, ...]:
    return tuple(_verdict(policy, principal, b, model, mode) for b in policy.backends)


def decide(policy: Policy, principal: Principal, model: str, mode: str) -> RouteDecision:
    trace = verdicts(policy, principal, model, mode)
    chosen = next((v for v in trace if v.accepted), None)
    if chosen is not None:
        return RouteDecision(policy.backend(chosen.backend), trace, chosen.reason)
    named = next((v for v in trace if v.backend == model), None)
    if named is None:
        raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                       "model_not_found", param="model")
    if named.code == "tenant_access":
        raise APIError(403, f"This tenant may not use the model '{model}'.", "model_not_allowed", param="model")
    if named.code == "key_allowlist":
        raise APIError(403, f"This key may not use the model '{model}'.", "model_not_allowed", param="model")
    raise APIError(400, f"The model '{model}' does not support {mode}.", "unsupported_model_mode", param="model")
