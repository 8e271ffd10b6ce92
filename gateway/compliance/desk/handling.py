"""How every desk request is handled: its session, its errors as pages, its headers, its audit row.

`page(handler)` wraps a desk handler: the session cookie is read and re-checked against the key's
row on every request (fail closed when the database cannot say), a `DeskError` or a missing session
becomes an error page or a redirect to sign in, the security headers (a strict CSP, no framing, no
caching) go on every response, and one audit row is written per request: committed before the page
is sent under a strict audit policy, after the last chunk for a streamed export. `read_form` reads
the desk's small urlencoded forms, bounded in size, and `check_csrf` their CSRF field.
"""

from __future__ import annotations

import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from gateway.compliance.desk import session
from gateway.context import RequestContext
from gateway.record import event_from

log = logging.getLogger("bulkhead.desk")

HERE = Path(__file__).resolve().parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
}
MAX_FORM_BYTES = 8 * 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

templates = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)


class DeskError(Exception):
    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class LoginRequired(Exception):
    pass


def render(name: str, status: int = 200, **values) -> HTMLResponse:
    return HTMLResponse(templates.get_template(name).render(**values), status)


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(session.COOKIE, path="/desk", secure=is_https(request), httponly=True, samesite="strict")


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form, bounded in size (the desk's forms are a few short fields)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise DeskError(415, "Forms must be sent as application/x-www-form-urlencoded.", "unsupported_content_type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise DeskError(413, "The form is too large.", "request_too_large")
    try:
        pairs = urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise DeskError(400, "The form could not be read.", "invalid_form") from None
    return dict(pairs)


Handler = Callable[..., Awaitable[Response]]


def page(handler: Handler, *, auth: bool = True, audited: bool = True):
    """Wraps a desk handler: the session (re-checked against the key's row on every request),
    errors as pages, security headers, and one audit row per request."""

    async def endpoint(request: Request) -> Response:
        gw = request.app.state.gw
        # Control characters (a NUL from %00, say) would make Postgres refuse the audit row.
        ctx = RequestContext(method=request.method, endpoint=_CONTROL.sub("?", request.url.path)[:200])
        ctx.detail["desk"] = handler.__name__
        sess = None
        try:
            if audited and not gw.audit.accepting:
                raise DeskError(503, "The gateway cannot record desk activity in its audit trail right now; "
                                "retry shortly.", "audit_unavailable")
            if auth:
                sess = session.read(gw.settings.secret, request.cookies.get(session.COOKIE))
                if sess is None:
                    raise LoginRequired
                try:
                    principal = await session.principal_for(gw.engine, sess)
                except Exception as exc:  # database unreachable: fail closed
                    log.warning("desk session check failed (%s)", type(exc).__name__)
                    raise DeskError(503, "The desk cannot check your session right now; retry shortly.",
                                    "auth_unavailable") from None
                if principal is None:
                    ctx.error_code = "session_revoked"
                    raise LoginRequired
                sess = session.Session(sess.key_id, sess.tenant_id, sess.sid, sess.expires, principal)
                ctx.principal = principal
            response = await handler(gw, ctx, request, sess)
        except LoginRequired:
            response = RedirectResponse("/desk/login", 303)
            if request.cookies.get(session.COOKIE):
                clear_session(response, request)
        except DeskError as err:
            ctx.error_code = err.code
            signed_in = sess if sess is not None and sess.principal is not None else None
            response = render("error.html", err.status, message=err.message, session=signed_in,
                              tenant=signed_in.principal.tenant if signed_in else None,
                              csrf=signed_in.csrf(gw.settings.secret) if signed_in else None)
        except Exception as exc:
            log.error("desk: unhandled %s on %s %s", type(exc).__name__, ctx.method, ctx.endpoint)
            ctx.error_code = "internal_error"
            response = render("error.html", 500, message="The desk failed to process the request.", session=None,
                              csrf=None)
        response.headers.update(SECURITY_HEADERS)
        ctx.status = response.status_code
        if not audited:
            return response
        if isinstance(response, StreamingResponse):
            response.body_iterator = _audit_after(gw, ctx, response.body_iterator)
            return response
        if not await _record(gw, ctx):
            ctx.status, ctx.error_code = 503, "audit_unavailable"
            response = render("error.html", 503, message="The gateway could not record this page view in its "
                              "audit trail, so the page is withheld; retry shortly.", session=None, csrf=None)
            response.headers.update(SECURITY_HEADERS)
        return response

    endpoint.__name__ = handler.__name__
    return endpoint


async def _record(gw, ctx: RequestContext) -> bool:
    """Queue the audit row; under a strict audit policy wait until it is committed."""
    if ctx.principal is not None:
        audit_policy = gw.policies.for_tenant(ctx.principal.tenant).audit
        if audit_policy.mode == "strict":
            return await gw.audit.submit_durable(event_from(ctx, gw.settings.secret), audit_policy.strict_timeout_s)
    gw.audit.submit(event_from(ctx, gw.settings.secret))
    return True


async def _audit_after(gw, ctx: RequestContext, body: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        async for chunk in body:
            yield chunk
    except Exception as exc:
        ctx.error_code = "export_failed"
        log.error("desk export failed (%s)", type(exc).__name__)
        raise
    finally:
        gw.audit.submit(event_from(ctx, gw.settings.secret))



def check_csrf(gw, sess, form: dict) -> None:
    if not sess.csrf_ok(gw.settings.secret, form.get("csrf")):
        raise DeskError(403, "The form expired or did not come from this desk; reload the page and try again.",
                        "csrf_failed")
