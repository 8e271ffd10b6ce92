"""JSON in and out of the HTTP surface: the request body read within its limits and decoded with
what orjson does not refuse by itself (nesting, key count, duplicate keys), the model request
validated from it, and JSON responses."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.context import RequestContext
from gateway.errors import APIError, bad_request
from gateway.request import ENDPOINTS, ModelRequest
from gateway.schemas import check_headers, parse

LARGE_BODY = 256 * 1024  # from here on a body is decoded, validated and walked in a thread


async def read_model_request(ctx: RequestContext, request: Request, mode: str, limit: int) -> ModelRequest:
    """The body, validated as the endpoint's request, with its texts."""
    check_headers(request.headers)
    raw = await read_body(request, limit)
    # A large body takes tens of milliseconds to decode, validate and walk: off the event loop, so
    # that other requests and health checks are not kept waiting behind it.
    big = len(raw) >= LARGE_BODY
    body = await asyncio.to_thread(decode_json, raw) if big else decode_json(raw)
    if isinstance(body, dict) and isinstance(body.get("model"), str):
        ctx.requested_model = body["model"]  # on record even when the body is refused below
    schema = ENDPOINTS[mode][0]
    parsed = await asyncio.to_thread(parse, schema, body) if big else parse(schema, body)
    ctx.stream = bool(getattr(parsed, "stream", False))
    return ModelRequest.validated(mode, body, parsed, large=big)


async def read_json(request: Request, limit: int) -> Any:
    return decode_json(await read_body(request, limit))


async def read_body(request: Request, limit: int) -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype and ctype.split(";")[0].strip().lower() != "application/json":
        # Refused rather than guessed: a form or text body is what a browser may send cross-site
        # without asking. `curl -d` labels JSON as a form unless told otherwise, hence the hint.
        raise bad_request(f"Content-Type must be application/json, not {_media_type(ctype)} (with curl -d, add "
                          "-H 'Content-Type: application/json').", code="unsupported_content_type")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"Request body exceeds {limit} bytes.", "request_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise APIError(413, f"Request body exceeds {limit} bytes.", "request_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


def _media_type(ctype: str) -> str:
    """The header's media type, fit to echo: at most 60 printable ASCII characters."""
    media = ctype.split(";")[0].strip()[:60]
    return "".join(c if 32 < ord(c) < 127 else "?" for c in media) or "empty"


def decode_json(raw: bytes) -> Any:
    """orjson, plus what it does not refuse by itself: nesting past MAX_JSON_DEPTH and duplicate keys
    (orjson keeps the last one silently; another parser on the way could keep the first)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_request(f"The request body is not valid UTF-8 (byte {exc.start}).", code="invalid_json") from None
        raise bad_request("The request body is not valid JSON.", code="invalid_json") from None
    too_deep, keys = _shape(body, MAX_JSON_DEPTH)
    if too_deep:
        raise bad_request(f"The request body nests deeper than {MAX_JSON_DEPTH} levels.", code="json_too_deep")
    if keys > MAX_JSON_KEYS:
        raise APIError(413, f"The request body has {keys} object keys; the limit is {MAX_JSON_KEYS}.", "too_many_keys")
    # Every key is followed by `"` and `:`; matches of that pattern can only outnumber the keys orjson
    # kept when a key repeats or a string happens to contain `":` (then the exact, slower check decides).
    if keys and len(_KEY_END.findall(raw)) != keys:
        duplicate = _duplicate_key(raw)
        if duplicate is not None:
            raise bad_request(f"The request body has the key '{duplicate}' more than once.", duplicate,
                              code="duplicate_key")
    return body


MAX_JSON_DEPTH = 64
MAX_JSON_KEYS = 50_000
_KEY_END = re.compile(rb'"[ \t\r\n]*:')


class _Duplicate(Exception):
    pass


def _duplicate_key(raw: bytes) -> str | None:
    def pairs(items: list[tuple[str, Any]]) -> dict:
        out = dict(items)
        if len(out) != len(items):
            seen: set[str] = set()
            raise _Duplicate(next(k for k, _ in items if k in seen or seen.add(k)))
        return out

    try:
        json.loads(raw, object_pairs_hook=pairs)
    except _Duplicate as dup:
        return str(dup.args[0])
    return None


def _shape(value: Any, limit: int) -> tuple[bool, int]:
    """(nests deeper than `limit`, number of object keys). Iterative, so a hostile body cannot
    exhaust the stack of the code that walks it later."""
    stack, keys = [(value, 1)], 0
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > limit:
                return True, keys
            if isinstance(node, dict):
                keys += len(node)
                stack.extend((child, depth + 1) for child in node.values())
            else:
                stack.extend((child, depth + 1) for child in node)
    return False, keys


def _depth_exceeds(value: Any, limit: int) -> bool:
    return _shape(value, limit)[0]


def json_response(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
