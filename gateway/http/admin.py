"""Admin and security HTTP endpoints under /v1/bulkhead/. Every one checks the caller's role and
scopes what it touches to the caller's own tenant; another tenant's ids answer like unknown ones.

The platform tenant (`BULKHEAD_PLATFORM_TENANT`, unset by default: then no key has platform
rights) is the operators' own: its admin keys alone create tenants and reload, and see, every
tenant's policy. Any other admin reloads and sees only its own tenant's overlay."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field
from starlette.routing import Route

from gateway.auth import ROLES, Principal
from gateway.compliance import api as audit_api
from gateway.errors import APIError
from gateway.experts import snapshot
from gateway.explain import explain_request
from gateway.http.authn import authenticate
from gateway.http.jsonio import json_response, read_json
from gateway.pii.entities import PiiAnalysisError
from gateway.pii.transform import scan_record
from gateway.request import ModelRequest
from gateway.schemas import Closed, parse


class KeyCreate(Closed):
    roles: list[str] = Field(min_length=1, max_length=4)
    expires_at: datetime | None = None
    models: list[str] | None = None
    name: str | None = Field(None, max_length=100)


class TenantCreate(Closed):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _key_card(key, tenant: str) -> dict:
    return {
        "id": key.id, "tenant": tenant, "prefix": key.prefix, "roles": key.roles, "models": key.models,
        "name": key.name, "created_at": key.created_at.isoformat(),
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


async def reload_policies(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    platform = principal.tenant == gw.settings.platform_tenant
    result = await gw.reloader.reload("api", actor=principal.key_id,
                                      tenant=None if platform else (principal.tenant, principal.tenant_id))
    if not result.applied:
        raise APIError(422, "The policy change is invalid; the last good policy stays in force: "
                       + " | ".join(result.errors[:20]), "policy_invalid")
    return json_response({"applied": True, "scope": "all" if platform else "tenant",
                                   "version": result.version, "changes": result.changes})


async def list_tenants(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    # Row-level security shows an admin key its own tenant only, the platform tenant's included.
    return json_response({"object": "list", "data": [{"id": principal.tenant_id, "name": principal.tenant}]})


async def create_tenant(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    if principal.tenant != gw.settings.platform_tenant:
        raise APIError(403, "Only admin keys of the platform tenant may create tenants.", "insufficient_role")
    body = parse(TenantCreate, await read_json(request, gw.settings.max_body_bytes))
    try:
        tenant = await gw.keys.create_tenant(body.name)
    except ValueError:
        raise APIError(409, f"A tenant named '{body.name}' already exists.", "tenant_exists", param="name") from None
    return json_response({"id": tenant.id, "name": tenant.name}, 201)


async def list_keys(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    keys = await gw.keys.list_keys(tenant_id=principal.tenant_id)
    return json_response({"object": "list", "data": [_key_card(k, t) for k, t in keys]})


async def create_key(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    body = parse(KeyCreate, await read_json(request, gw.settings.max_body_bytes))
    bad = [r for r in body.roles if r not in ROLES]
    if bad:
        raise APIError(422, f"Unknown role '{bad[0]}'; roles are {', '.join(ROLES)}.", "invalid_parameter",
                       param="roles")
    if body.expires_at is not None and body.expires_at.tzinfo is None:
        raise APIError(422, "expires_at needs a time zone (e.g. 2027-01-01T00:00:00Z).", "invalid_parameter",
                       param="expires_at")
    models, expires_at = within_creator(principal, body)
    key, raw = await gw.keys.create_key(principal.tenant, body.roles, expires_at=expires_at,
                                        models=models, name=body.name, tenant_id=principal.tenant_id)
    return json_response({**_key_card(key, principal.tenant), "key": raw}, 201)


# Roles an admin key may grant. `compliance` too, by design: the audit API refuses admin keys, and
# the documented way for an admin to read the trail is to mint a compliance key, so that every read
# is made, and recorded, as a compliance principal (README, "Compliance"). Models and expiry are
# still never more than the admin's own.
ADMIN_COVERS = frozenset({"admin", "app", "security", "compliance"})


def within_creator(creator: Principal, body: KeyCreate) -> tuple[list[str] | None, datetime | None]:
    """The new key's models and expiry, after checking its roles: never more than its creator's.
    What the request leaves out is inherited (the creator's model list, its expiry); what it asks
    beyond is refused with the limit it exceeds."""
    held = (ADMIN_COVERS if creator.has_role("admin") else frozenset()) | set(creator.roles)
    extra = [r for r in body.roles if r not in held]
    if extra:
        raise _exceeds(f"role '{extra[0]}', which this key does not hold", "roles")
    models = body.models
    if creator.models is not None:
        if models is None:
            models = list(creator.models)
        elif outside := [m for m in models if m not in creator.models]:
            raise _exceeds(f"model '{outside[0]}' (this key may use only {', '.join(creator.models)})", "models")
    expires_at = body.expires_at
    if creator.expires_at is not None:
        if expires_at is None:
            expires_at = creator.expires_at
        elif expires_at > creator.expires_at:
            raise _exceeds(f"an expiry after this key's own ({creator.expires_at.isoformat()})", "expires_at")
    return models, expires_at


def _exceeds(what: str, param: str) -> APIError:
    return APIError(403, f"A key may not be given more than the key creating it: the request asks for {what}.",
                    "key_exceeds_creator", param=param)


async def revoke_key(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=("admin",))
    key_id = request.path_params["key_id"]
    if not await gw.keys.revoke_key(key_id, tenant_id=principal.tenant_id):
        raise APIError(404, "No active key with that id.", "key_not_found")
    return json_response({"id": key_id, "revoked": True})


class ExplainRequest(Closed):
    request: dict = Field(description="The chat, completions or embeddings body to explain.")
    mode: Literal["chat", "completions", "embeddings"] = "chat"
    data_class: str | None = Field(None, max_length=100, description="The data class the request declares "
                                   "(what its x-bulkhead-data-class header, or the policy's header, would say).")


async def explain(gw, ctx, request):
    """The decision for a request under the caller's own tenant policy, through the same inspect,
    risk, decide and transform stages as the request itself (gateway/explain.py); nothing is called,
    and the explained text is neither kept nor audited (only this call is)."""
    principal = await authenticate(gw, ctx, request, roles=("security", "admin"))
    body = parse(ExplainRequest, await read_json(request, gw.settings.max_body_bytes))
    req = ModelRequest.of(body.mode, body.request)
    policy = gw.policies.for_tenant(principal.tenant)
    # as an app key of this tenant without a model allowlist would be routed
    app_key = Principal(tenant_id=principal.tenant_id, tenant=principal.tenant, key_id="-", roles=("app",))
    explained = await explain_request(policy, app_key, req, declared=body.data_class)
    return json_response({
        "tenant": principal.tenant, "policy_version": policy.version, "model": req.model, "mode": body.mode,
        **explained.to_dict(), "limits": policy.limits.model_dump(), "budgets": policy.budgets.model_dump(),
    })


class AnalyzeRequest(Closed):
    text: str = Field(max_length=400_000)
    zone: Literal["external", "internal"] = "external"


async def pii_analyze(gw, ctx, request):
    """What the tenant's PII policy finds in one text and what a backend of `zone` would receive.
    The response holds the caller's own text; nothing of it is logged or audited."""
    # presidio + spaCy take seconds to import: only a gateway that analyses text pays for it
    from gateway.pii.analyzer import analyzer_for


    principal = await authenticate(gw, ctx, request, roles=("security", "admin"))
    body = parse(AnalyzeRequest, await read_json(request, gw.settings.max_body_bytes))
    policy = gw.policies.for_tenant(principal.tenant).pii
    try:
        [entities] = await analyzer_for(policy).aanalyze([body.text], policy.timeout_s)
    except PiiAnalysisError:
        raise APIError(503, "PII analysis failed; retry later.", "pii_analysis_failed") from None
    return json_response(scan_record(body.text, entities, policy, body.zone))


async def moe_experts(gw, ctx, request):
    """Expert utilization of the local MoE backends this tenant's policy declares."""
    principal = await authenticate(gw, ctx, request, roles=("security", "admin"))
    return json_response({"backends": snapshot(gw, [gw.policies.for_tenant(principal.tenant)])})


def routes(api) -> list[Route]:
    base = "/v1/bulkhead/admin"
    return [
        Route(f"{base}/policies/reload", api(reload_policies), methods=["POST"]),
        Route(f"{base}/tenants", api(list_tenants), methods=["GET"]),
        Route(f"{base}/tenants", api(create_tenant), methods=["POST"]),
        Route(f"{base}/keys", api(list_keys), methods=["GET"]),
        Route(f"{base}/keys", api(create_key), methods=["POST"]),
        Route(f"{base}/keys/{{key_id}}/revoke", api(revoke_key), methods=["POST"]),
        Route("/v1/bulkhead/policy/explain", api(explain), methods=["POST"]),
        Route("/v1/bulkhead/pii/analyze", api(pii_analyze), methods=["POST"]),
        Route("/v1/bulkhead/moe/experts", api(moe_experts), methods=["GET"]),
        *audit_api.routes(api),
    ]
