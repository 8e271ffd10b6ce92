"""`/openapi.json`, generated from the same pydantic models that validate requests, so the
document cannot drift from what the gateway accepts."""

from __future__ import annotations

from functools import lru_cache

import orjson
from pydantic.json_schema import models_json_schema

from gateway import __version__
from gateway.compliance.api import ProveRequest, VerifyRequest
from gateway.http.admin import AnalyzeRequest, ExplainRequest, KeyCreate, TenantCreate
from gateway.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest

ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "code": {"type": ["string", "null"]},
                "param": {"type": ["string", "null"]},
            },
        }
    },
}
OBJECT = {"type": "object", "additionalProperties": True}
# Before OpenAPI 3.2's `itemSchema`, an event stream's `schema` describes each event.
SSE_EVENT = {
    "type": "object",
    "description": "One server-sent event. `data` is a JSON chunk (`chat.completion.chunk`, `text_completion`), "
                   "an OpenAI-shaped error object when the stream broke after it started, or `[DONE]`.",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}


def _errors(*statuses: int) -> dict:
    ref = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return {str(s): {"description": "OpenAI-shaped error", **ref} for s in statuses}


MODEL_ERRORS = (400, 401, 403, 404, 413, 422, 429, 502, 503, 504)


def _model_op(summary: str, schema_ref: str, streams: bool) -> dict:
    ok = {"application/json": {"schema": OBJECT}}
    if streams:
        ok["text/event-stream"] = {"schema": SSE_EVENT}
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}},
            },
            "responses": {"200": {"description": "OK", "content": ok}, **_errors(*MODEL_ERRORS)},
        }
    }


def _get(summary: str, auth: bool, *errors: int, params: list | None = None) -> dict:
    op: dict = {"summary": summary, "responses": {"200": {"description": "OK", "content": {
        "application/json": {"schema": OBJECT}}}, **_errors(*errors)}}
    if auth:
        op["security"] = [{"bearer": []}, {"apiKey": []}]
    if params:
        op["parameters"] = params
    return {"get": op}


def _post(summary: str, schema_ref: str | None, *errors: int, params: list | None = None) -> dict:
    op: dict = {"summary": summary, "security": [{"bearer": []}, {"apiKey": []}],
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": OBJECT}}},
                              **_errors(*errors)}}
    if schema_ref:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}}
    if params:
        op["parameters"] = params
    return {"post": op}


def _query(name: str, description: str, **schema) -> dict:
    return {"name": name, "in": "query", "required": False, "description": description,
            "schema": schema or {"type": "string"}}


AUDIT_FILTERS = [
    _query("since", "ISO-8601 date or timestamp, inclusive (UTC when no offset is given)"),
    _query("until", "ISO-8601 date or timestamp, exclusive"),
    _query("key_id", "the API key that made the request"),
    _query("backend", "the backend that served it"),
    _query("risk_tier", "risk tier", enum=["low", "medium", "high", "critical"]),
    _query("status", "HTTP status (403) or class (4xx)"),
    _query("pii_type", "an entity type detected in the request (or leaked in the answer), e.g. EMAIL_ADDRESS"),
    _query("grounding", "a grounding-check verdict"),
    _query("request_id", "one request"),
    _query("kind", "event kind: request, policy.applied, ..."),
    _query("endpoint", "the path called, e.g. /v1/chat/completions"),
    _query("blocked", "refused by policy (risk, PII or model access) or not", type="boolean"),
]
AUDIT_PAGING = [
    _query("limit", "rows per page, 1 to 500 (json); total rows (csv, jsonl; default all)", type="integer",
           minimum=1),
    _query("cursor", "next_cursor of the previous page"),
    _query("order", "by chain sequence; default desc for json, asc for exports", enum=["asc", "desc"]),
    _query("format", "json (a page), csv or jsonl (a streamed download)", enum=["json", "csv", "jsonl"]),
]


def _audit_events() -> dict:
    op = _get("Audit events of this tenant, filtered, paged or exported (compliance)", True, 400, 401, 403,
              params=AUDIT_FILTERS + AUDIT_PAGING)
    op["get"]["responses"]["200"]["content"].update({
        "text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}})
    return op


def _optional_body(op: dict) -> dict:
    op["post"]["requestBody"]["required"] = False
    return op


@lru_cache(maxsize=1)
def document() -> bytes:
    _, defs = models_json_schema(
        [(m, "validation") for m in (ChatCompletionRequest, CompletionRequest, EmbeddingRequest, KeyCreate,
                                     TenantCreate, ExplainRequest, AnalyzeRequest, VerifyRequest, ProveRequest)],
        ref_template="#/components/schemas/{model}",
    )
    schemas = {**defs["$defs"], "Error": ERROR}
    model_param = [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}]
    doc = {
        "openapi": "3.1.0",
        "info": {"title": "Bulkhead", "version": __version__,
                 "description": "OpenAI-compatible gateway: PII scrubbing, policy routing, audit."},
        "paths": {
            "/v1/chat/completions": _model_op("Chat completion (JSON or SSE stream)", "ChatCompletionRequest", True),
            "/v1/completions": _model_op("Legacy text completion", "CompletionRequest", True),
            "/v1/embeddings": _model_op("Embeddings", "EmbeddingRequest", False),
            "/v1/models": _get("Models this key may use", True, 401, 403),
            "/v1/models/{model}": _get("One model", True, 401, 403, 404, params=model_param),
            "/healthz": _get("Liveness", False),
            "/readyz": _get("Readiness: database and Redis reachable", False, 503),
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {
                "description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
            "/openapi.json": _get("This document", False),
            "/v1/bulkhead/pii/analyze": _post("PII found in one text, and the text as a backend of the zone "
                                              "would receive it (security)", "AnalyzeRequest", 400, 401, 403, 422, 503),
            "/v1/bulkhead/moe/experts": _get("Expert utilization of local MoE backends (security)", True, 401, 403),
            "/v1/bulkhead/policy/explain": _post("Explain the routing decision for a request (security)",
                                                 "ExplainRequest", 400, 401, 403, 404, 422),
            "/v1/bulkhead/admin/policies/reload": _post("Apply the caller's tenant policy (admin; all: platform)",
                                                        None, 401, 403, 422),
            "/v1/bulkhead/admin/tenants": {**_get("Tenants visible to this admin key", True, 401, 403),
                                           **_post("Create a tenant (platform admin)", "TenantCreate",
                                                   400, 401, 403, 409, 422)},
            "/v1/bulkhead/admin/keys": {**_get("Keys of this admin key's tenant", True, 401, 403),
                                        **_post("Create a key in this tenant; the key is shown once", "KeyCreate",
                                                400, 401, 403, 422)},
            "/v1/bulkhead/audit/events": _audit_events(),
            "/v1/bulkhead/audit/events/{request_id}": _get(
                "One event's full decision trace, checks and chain position (compliance)", True, 400, 401, 403,
                404, params=[{"name": "request_id", "in": "path", "required": True, "schema": {"type": "string"}}]),
            "/v1/bulkhead/audit/summary": _get("Counts and cost by day, backend and risk tier; PII detections by "
                                               "type; blocked requests; check verdicts (compliance)", True,
                                               400, 401, 403, params=AUDIT_FILTERS),
            "/v1/bulkhead/audit/verify": _optional_body(_post(
                "Verify this tenant's hash chain against its signed checkpoints (compliance)", "VerifyRequest",
                400, 401, 403, 422)),
            "/v1/bulkhead/audit/prove": _post("Which requests carried this exact text, by its per-tenant HMAC "
                                              "(compliance)", "ProveRequest", 400, 401, 403, 404, 422),
            "/v1/bulkhead/admin/keys/{key_id}/revoke": _post("Revoke a key of this tenant", None, 401, 403, 404,
                                                             params=[{"name": "key_id", "in": "path",
                                                                      "required": True, "schema": {"type": "string"}}]),
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "api-key"},
            },
        },
    }
    return orjson.dumps(doc)
