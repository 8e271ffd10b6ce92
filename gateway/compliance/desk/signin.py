"""Signing in to the desk with a compliance key, and signing out.

The sign-in form carries its own CSRF token (a cookie scoped to /desk/login); a key that is valid
but lacks the compliance role is refused with a page that says so. A session lasts no longer than
the key it was opened with, and signing out forgets it on the server, not only in the browser.
"""

from __future__ import annotations

import hmac
import logging

from sqlalchemy import select
from starlette.responses import RedirectResponse, Response

from gateway.auth import AuthError, AuthUnavailable
from gateway.compliance.desk import session
from gateway.compliance.desk.handling import DeskError, check_csrf, clear_session, is_https, read_form, render
from gateway.models import ApiKey
from gateway.tenancy import scope

log = logging.getLogger("bulkhead.desk")


async def login_form(gw, ctx, request, sess, *, error: str | None = None, status: int = 200) -> Response:
    token = session.login_token()
    response = render("login.html", status, error=error, login_csrf=token, session=None)
    response.set_cookie(session.LOGIN_COOKIE, token, max_age=3600, path="/desk/login", secure=is_https(request),
                        httponly=True, samesite="strict")
    return response


async def login(gw, ctx, request, sess) -> Response:
    form = await read_form(request)
    ctx.detail["desk"] = "login"
    expected = request.cookies.get(session.LOGIN_COOKIE)
    if not expected or not hmac.compare_digest(expected, form.get("csrf", "")):
        ctx.error_code = "csrf_failed"
        return await login_form(gw, ctx, request, None, error="The sign-in form expired; please try again.",
                                status=403)
    raw = form.get("api_key", "").strip()
    try:
        principal = await gw.keys.authenticate(raw)
    except AuthUnavailable:
        raise DeskError(503, "The gateway cannot check keys right now; retry shortly.", "auth_unavailable") from None
    except AuthError as exc:
        ctx.error_code = str(exc)
        return await login_form(gw, ctx, request, None, error="That key is not valid.", status=401)
    ctx.principal = principal
    if not principal.has_role(session.ROLE):
        ctx.error_code = "insufficient_role"
        return await login_form(gw, ctx, request, None, error="The desk is for compliance keys; this key does not "
                                "have the compliance role.", status=403)
    key_expires = await _key_expiry(gw, principal)
    cookie, _ = session.issue(gw.settings.secret, principal, key_expires)
    response = RedirectResponse("/desk", 303)
    response.set_cookie(session.COOKIE, cookie, max_age=session.SESSION_SECONDS, path="/desk",
                        secure=is_https(request), httponly=True, samesite="strict")
    response.delete_cookie(session.LOGIN_COOKIE, path="/desk/login")
    return response


async def _key_expiry(gw, principal):
    async with gw.engine.connect() as conn:
        await scope(conn, principal.tenant_id)
        return (await conn.execute(select(ApiKey.expires_at).where(
            ApiKey.id == principal.key_id, ApiKey.tenant_id == principal.tenant_id))).scalar()


async def logout(gw, ctx, request, sess) -> Response:
    check_csrf(gw, sess, await read_form(request))
    try:
        await session.forget(gw.engine, sess)
    except Exception as exc:  # still signed in everywhere: say so rather than pretend
        log.warning("desk logout failed (%s)", type(exc).__name__)
        raise DeskError(503, "The desk could not end your session right now; retry shortly.",
                        "logout_unavailable") from None
    response = RedirectResponse("/desk/login", 303)
    clear_session(response, request)
    return response
