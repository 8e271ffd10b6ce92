"""Who is calling: the API key from the request's headers, checked against the key store, and
the roles the endpoint needs. Every failure is an OpenAI-shaped 401/403 (503 while keys cannot be
checked), never a hint of which keys exist."""

from __future__ import annotations

from starlette.requests import Request

from gateway.auth import AuthError, AuthUnavailable, Principal, extract_key
from gateway.context import RequestContext
from gateway.errors import APIError
from gateway.state import GatewayState

_AUTH_MESSAGES = {
    "missing_api_key": "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
    "invalid_api_key": "Incorrect API key provided.",
    "key_revoked": "This API key has been revoked.",
    "key_expired": "This API key has expired.",
}

async def authenticate(gw: GatewayState, ctx: RequestContext, request: Request, roles: tuple[str, ...]) -> Principal:
    raw = extract_key(request.headers)
    if not raw:
        raise APIError(401, _AUTH_MESSAGES["missing_api_key"], "missing_api_key")
    try:
        principal = await gw.keys.authenticate(raw)
    except AuthUnavailable:
        raise APIError(503, "The gateway cannot check API keys right now; retry shortly.", "auth_unavailable") from None
    except AuthError as exc:
        code = str(exc)
        raise APIError(401, _AUTH_MESSAGES.get(code, "Invalid API key."), code) from None
    ctx.principal = principal
    if not principal.has_role(*roles):
        raise APIError(403, f"This key's role may not call {ctx.endpoint}.", "insufficient_role")
    return principal
