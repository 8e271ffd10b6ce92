"""The `decide` stage. For now the honest minimum: the app names a backend and gets exactly that
one, if its key may use it and the backend serves the endpoint. The risk- and cost-aware router
replaces `decide` without changing its signature."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import Principal
from gateway.errors import APIError
from gateway.policy import Backend, Policy


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend: Backend
    candidates: tuple[str, ...]
    reason: str


def visible_backends(policy: Policy, principal: Principal) -> list[Backend]:
    return [b for b in policy.backends if policy.tenant_may_use(b.name) and principal.may_use(b.name)]


def decide(policy: Policy, principal: Principal, model: str, mode: str) -> RouteDecision:
    backend = policy.backend(model)
    if backend is None:
        raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                       "model_not_found", param="model")
    if not policy.tenant_may_use(model):
        raise APIError(403, f"This tenant may not use the model '{model}'.", "model_not_allowed", param="model")
    if not principal.may_use(model):
        raise APIError(403, f"This key may not use the model '{model}'.", "model_not_allowed", param="model")
    if mode not in backend.modes:
        raise APIError(400, f"The model '{model}' does not support {mode}.", "unsupported_model_mode", param="model")
    return RouteDecision(backend=backend, candidates=(backend.name,), reason="requested by name")
