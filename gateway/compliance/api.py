"""The compliance API over the audit trail, under /v1/bulkhead/audit/.

Role `compliance` only. Admins do not read the trail through their admin keys: they mint a
compliance key (`POST /v1/bulkhead/admin/keys {"roles": ["compliance"]}`), so that every read of
the trail is made, and recorded, as a compliance principal. Everything is scoped to the key's own
tenant; another tenant's request ids answer exactly like unknown ones.

Each query is itself a /v1 request, so the envelope records it in the same trail; its filters
(identifiers, codes and times, never text) go into the record's `detail.query`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from pydantic import Field
from starlette.responses import StreamingResponse
from starlette.routing import Route

from gateway.audit import params as qp
from gateway.audit import query as q
from gateway.audit.content import content_hmac
from gateway.audit.verify import verify_database
from gateway.errors import APIError, bad_request
from gateway.http.authn import authenticate
from gateway.http.jsonio import json_response, read_json
from gateway.schemas import Closed, parse

ROLES = ("compliance",)
FORMATS = ("json", "csv", "jsonl")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
MAX_EXPORT_ROWS = 10_000_000
NO_STORE = {"cache-control": "no-store"}


class VerifyRequest(Closed):
    from_checkpoint: bool = Field(False, description="Start at the latest signed checkpoint (incremental).")


class ProveRequest(Closed):
    text: str = Field(min_length=1, max_length=400_000,
                      description="The exact text of a message or an answer; it is hashed, never stored.")
    request_id: str | None = Field(None, min_length=1, max_length=200,
                                   description="Check this request only; otherwise every request in range.")
    since: str | None = Field(None, max_length=64, description="ISO-8601; UTC when no offset is given.")
    until: str | None = Field(None, max_length=64)


def _bad(exc: qp.QueryError) -> APIError:
    return bad_request(exc.message, param=exc.param, code="invalid_parameter")


def export_filename(tenant: str, fmt: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", tenant)[:60] or "tenant"
    return f"audit-{safe}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.{fmt}"


async def list_events(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=ROLES)
    try:
        params = qp.single_values(request.query_params, (*qp.FILTER_PARAMS, *qp.PAGE_PARAMS, "format"))
        fmt = params.get("format") or "json"
        if fmt not in FORMATS:
            raise qp.QueryError("format", "'format' must be json, csv or jsonl.")
        filters = qp.parse_filters(params)
        order = qp.parse_order(params.get("order"), "desc" if fmt == "json" else "asc")
        if fmt == "json":
            limit = qp.parse_limit(params.get("limit"))
        else:
            limit = qp.parse_limit(params.get("limit"), default=None, maximum=MAX_EXPORT_ROWS)
        after = qp.decode_cursor(params.get("cursor"), order)
    except qp.QueryError as exc:
        raise _bad(exc) from None
    ctx.detail["query"] = {**filters.as_dict(), "format": fmt, "order": order, "limit": limit,
                           "cursor": params.get("cursor") or None}
    if fmt == "json":
        page = await q.list_events(gw.engine, principal.tenant_id, filters, limit=limit,
                                   cursor=params.get("cursor"), order=order)
        ctx.detail["query"]["returned"] = len(page.data)
        return json_response({"object": "list", "data": page.data, "next_cursor": page.next_cursor,
                                       "has_more": page.next_cursor is not None}, headers=NO_STORE)
    body = q.export(gw.engine, principal.tenant_id, filters, fmt, order=order, limit=limit, after=after)
    headers = {**NO_STORE, "content-disposition": f'attachment; filename="{export_filename(principal.tenant, fmt)}"'}
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers=headers)


async def get_event(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=ROLES)
    request_id = request.path_params["request_id"]
    ctx.detail["query"] = {"request_id": request_id if qp.valid_text(request_id) else "(invalid)"}
    try:
        qp.single_values(request.query_params, ())
    except qp.QueryError as exc:
        raise _bad(exc) from None
    record = await q.event_detail(gw.engine, principal.tenant_id, request_id)
    if record is None:
        raise APIError(404, "No audit event with that request id in this tenant.", "event_not_found",
                       param="request_id")
    return json_response(record, headers=NO_STORE)


async def summary(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=ROLES)
    try:
        filters = qp.parse_filters(qp.single_values(request.query_params, qp.FILTER_PARAMS))
    except qp.QueryError as exc:
        raise _bad(exc) from None
    ctx.detail["query"] = filters.as_dict()
    return json_response(await q.summary(gw.engine, principal.tenant_id, filters), headers=NO_STORE)


async def _optional_body(gw, request) -> dict:
    if request.headers.get("content-length") in (None, "0") and "transfer-encoding" not in request.headers:
        return {}
    return await read_json(request, gw.settings.max_body_bytes)


async def run_verify(gw, tenant_id: str, from_checkpoint: bool = False) -> dict:
    """The tenant's own chain against its signed checkpoints (shared with the desk)."""
    kwargs = {"from_checkpoint": True} if from_checkpoint else {}
    report = await verify_database(gw.engine, chain=tenant_id, checkpoints=gw.checkpoints, **kwargs)
    return {"object": "audit.verification", **report.as_dict()}


def verify_note(result: dict) -> dict:
    """What the audit record of a verification keeps: the verdict and where it stopped."""
    return {k: result.get(k) for k in ("ok", "events", "head_seq", "checkpoint_seq", "first_bad_seq", "damage")}


async def verify(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=ROLES)
    body = parse(VerifyRequest, await _optional_body(gw, request))
    ctx.detail["query"] = {"from_checkpoint": body.from_checkpoint}
    result = await run_verify(gw, principal.tenant_id, body.from_checkpoint)
    ctx.detail["verify"] = verify_note(result)
    return json_response(result, headers=NO_STORE)


async def prove(gw, ctx, request):
    principal = await authenticate(gw, ctx, request, roles=ROLES)
    body = parse(ProveRequest, await read_json(request, gw.settings.max_body_bytes))
    try:
        filters = qp.parse_filters({"since": body.since or "", "until": body.until or "",
                                   "request_id": body.request_id or ""})
    except qp.QueryError as exc:
        raise _bad(exc) from None
    digest = content_hmac(gw.settings.secret, principal.tenant_id, body.text)
    # The digest, not the text: the same value the trail keeps, useless without the server secret.
    ctx.detail["query"] = {**filters.as_dict(), "text_hmac": digest}
    if filters.request_id is not None and not await q.event_exists(gw.engine, principal.tenant_id,
                                                                   filters.request_id):
        raise APIError(404, "No audit event with that request id in this tenant.", "event_not_found",
                       param="request_id")
    result = await q.prove(gw.engine, principal.tenant_id, digest, f=filters)
    ctx.detail["query"]["matches"] = len(result["matches"])
    return json_response(result, headers=NO_STORE)


def routes(api) -> list[Route]:
    base = "/v1/bulkhead/audit"
    return [
        Route(f"{base}/events", api(list_events), methods=["GET"]),
        Route(f"{base}/events/{{request_id}}", api(get_event), methods=["GET"]),
        Route(f"{base}/summary", api(summary), methods=["GET"]),
        Route(f"{base}/verify", api(verify), methods=["POST"]),
        Route(f"{base}/prove", api(prove), methods=["POST"]),
    ]
