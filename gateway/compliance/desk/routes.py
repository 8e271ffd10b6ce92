"""The compliance desk at /desk: sign in with a compliance key, search and open audit events,
see traffic, risk, PII, grounding and cost as charts, export, and verify the tenant's chain.

The pages are rendered on the server from the same query layer as the /v1/bulkhead/audit API
(gateway/audit/query.py), rather than by page JavaScript calling that API. That keeps the session
cookie from ever authenticating the /v1 API (so no cookie-borne CSRF surface there), lets the
pages work with a strict CSP and no script at all, and keeps one code path for tenant scoping.
Because the /v1 envelope does not wrap /desk, every desk request that reads or changes anything is
recorded here the same way: a RequestContext, its query in `detail.query`, one audit row
(committed before the page is sent when the tenant's audit mode is strict).
"""

from __future__ import annotations

import hmac
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.audit import query as q
from gateway.audit.writer import event_from
from gateway.auth import AuthError, AuthUnavailable
from gateway.compliance.api import MEDIA_TYPES, export_filename, run_verify, verify_note
from gateway.compliance.desk import charts, session
from gateway.context import RequestContext

log = logging.getLogger("bulkhead.desk")

HERE = Path(__file__).resolve().parent
STATIC = {"desk.css": "text/css; charset=utf-8", "desk.js": "text/javascript; charset=utf-8"}
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
PAGE_SIZE = 50
DEFAULT_DAYS = 14

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


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _clear_session(response: Response, request: Request) -> None:
    response.delete_cookie(session.COOKIE, path="/desk", secure=_secure(request), httponly=True, samesite="strict")


async def _form(request: Request) -> dict[str, str]:
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
                _clear_session(response, request)
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
            return await gw.audit.submit_durable(event_from(ctx), audit_policy.strict_timeout_s)
    gw.audit.submit(event_from(ctx))
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
        gw.audit.submit(event_from(ctx))


# -- sign in and out ----------------------------------------------------------------------------


async def login_form(gw, ctx, request, sess, *, error: str | None = None, status: int = 200) -> Response:
    token = session.login_token()
    response = render("login.html", status, error=error, login_csrf=token, session=None)
    response.set_cookie(session.LOGIN_COOKIE, token, max_age=3600, path="/desk/login", secure=_secure(request),
                        httponly=True, samesite="strict")
    return response


async def login(gw, ctx, request, sess) -> Response:
    form = await _form(request)
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
                        secure=_secure(request), httponly=True, samesite="strict")
    response.delete_cookie(session.LOGIN_COOKIE, path="/desk/login")
    return response


async def _key_expiry(gw, principal):
    from sqlalchemy import select

    from gateway.models import ApiKey
    from gateway.tenancy import scope

    async with gw.engine.connect() as conn:
        await scope(conn, principal.tenant_id)
        return (await conn.execute(select(ApiKey.expires_at).where(
            ApiKey.id == principal.key_id, ApiKey.tenant_id == principal.tenant_id))).scalar()


def _check_csrf(gw, sess, form: dict) -> None:
    if not sess.csrf_ok(gw.settings.secret, form.get("csrf")):
        raise DeskError(403, "The form expired or did not come from this desk; reload the page and try again.",
                        "csrf_failed")


async def logout(gw, ctx, request, sess) -> Response:
    _check_csrf(gw, sess, await _form(request))
    try:
        await session.forget(gw.engine, sess)
    except Exception as exc:  # still signed in everywhere: say so rather than pretend
        log.warning("desk logout failed (%s)", type(exc).__name__)
        raise DeskError(503, "The desk could not end your session right now; retry shortly.",
                        "logout_unavailable") from None
    response = RedirectResponse("/desk/login", 303)
    _clear_session(response, request)
    return response


# -- pages --------------------------------------------------------------------------------------


def _params(request: Request, allowed) -> dict[str, str]:
    try:
        return q.single_values(request.query_params, allowed)
    except q.QueryError as exc:
        raise DeskError(400, exc.message, "invalid_parameter") from None


def _filters(params: dict[str, str]) -> q.Filters:
    try:
        return q.parse_filters(params)
    except q.QueryError as exc:
        raise DeskError(400, exc.message, "invalid_parameter") from None


def _base(sess, gw, **values) -> dict:
    return {"session": sess, "tenant": sess.principal.tenant, "csrf": sess.csrf(gw.settings.secret), **values}


def _days(start: datetime, end: datetime) -> list[str]:
    out, d = [], start.date()
    while d <= end.date() and len(out) < 400:
        out.append(d.isoformat())
        d += timedelta(days=1)
    return out


async def dashboard(gw, ctx, request, sess) -> Response:
    params = _params(request, ("since", "until", "backend", "key_id", "kind"))
    now = datetime.now(UTC)
    given = {k: v for k, v in params.items() if v}
    if "since" not in given:
        given["since"] = (now - timedelta(days=DEFAULT_DAYS - 1)).date().isoformat()
    f = _filters(given)
    ctx.detail["query"] = f.as_dict()
    s = await q.summary(gw.engine, sess.tenant_id, f)
    first = f.since
    last = f.until - timedelta(microseconds=1) if f.until else now
    labels = _days(first, last) if first and (last - first).days <= 366 else [d["day"] for d in s["by_day"]]
    by_day = {d["day"]: d for d in s["by_day"]}
    labels = sorted(set(labels) | set(by_day))
    backends = sorted((b["backend"] for b in s["by_backend"]), key=lambda b: b == "none")  # "none" last
    backend_colours = charts.colours_for(backends)
    traffic = {b: [by_day.get(day, {}).get("by_backend", {}).get(b, {}).get("events", 0) for day in labels]
               for b in backends}
    cost = {b: [by_day.get(day, {}).get("by_backend", {}).get(b, {}).get("cost_usd", 0.0) for day in labels]
            for b in backends}
    tiers = list(s["risk_tiers"])
    risk = {t: [by_day.get(day, {}).get("by_risk_tier", {}).get(t, 0) for day in labels] for t in tiers}
    pii = [(k, v["detections"]) for k, v in s["pii_detections"].items()]
    grounding = list(s["grounding"].items())
    blocked = list(s["blocked"]["by_reason"].items())
    figures = {
        "traffic": charts.stacked_bars("chart-traffic", "Requests per day by backend", labels, traffic,
                                       backend_colours),
        "risk": charts.stacked_bars("chart-risk", "Requests per day by risk tier", labels, risk,
                                    charts.colours_for(tiers, charts.TIER_COLOURS)),
        "cost": charts.stacked_bars("chart-cost", "Cost per day by backend (USD)", labels, cost, backend_colours,
                                    fmt=charts.usd),
        "pii": charts.hbars("chart-pii", "PII detections by type", pii, charts.colours_for([k for k, _ in pii])),
        "grounding": charts.hbars("chart-grounding", "Grounding verdicts", grounding,
                                  charts.colours_for([k for k, _ in grounding], charts.VERDICT_COLOURS)),
        "blocked": charts.hbars("chart-blocked", "Blocked requests by reason", blocked,
                                charts.colours_for([k for k, _ in blocked])),
    }
    form = {k: params.get(k, "") for k in ("since", "until", "backend", "key_id", "kind")}
    form["since"] = form["since"] or given["since"]
    events_href = "/desk/events?" + urllib.parse.urlencode({k: v for k, v in form.items() if v})
    return render("dashboard.html", **_base(sess, gw, nav="overview", s=s, figures=figures, form=form,
                                            usd=charts.usd, events_href=events_href))


EVENT_FORM = ("since", "until", "key_id", "backend", "risk_tier", "status", "pii_type", "grounding", "request_id",
              "kind", "endpoint", "blocked")


async def events(gw, ctx, request, sess) -> Response:
    params = _params(request, (*q.FILTER_PARAMS, "cursor"))
    f = _filters(params)
    ctx.detail["query"] = {**f.as_dict(), "cursor": params.get("cursor") or None}
    try:
        page_ = await q.list_events(gw.engine, sess.tenant_id, f, limit=PAGE_SIZE, cursor=params.get("cursor"))
    except q.QueryError as exc:
        raise DeskError(400, exc.message, "invalid_parameter") from None
    ctx.detail["query"]["returned"] = len(page_.data)
    kept = {k: v for k, v in params.items() if k in q.FILTER_PARAMS and v}
    rows = [{**e, "outcome": q.outcome(e), "risk_tier": (e.get("risk") or {}).get("tier"),
             "pii_types": sorted(((e.get("pii") or {}).get("detected") or {}).keys()),
             "checks_text": ", ".join(f"{c.get('kind')}: {c.get('verdict')}" for c in e.get("checks") or []
                                      if isinstance(c, dict))} for e in page_.data]
    first_href = "/desk/events?" + urllib.parse.urlencode(kept) if params.get("cursor") else None
    next_href = ("/desk/events?" + urllib.parse.urlencode({**kept, "cursor": page_.next_cursor})
                 if page_.next_cursor else None)
    exports = {fmt: "/desk/export?" + urllib.parse.urlencode({**kept, "format": fmt}) for fmt in ("csv", "jsonl")}
    form = {k: params.get(k, "") for k in EVENT_FORM}
    return render("events.html", **_base(sess, gw, nav="events", rows=rows, form=form, tiers=q.RISK_TIERS,
                                         next_href=next_href, first_href=first_href, exports=exports,
                                         filtered=bool(kept)))


async def event(gw, ctx, request, sess) -> Response:
    request_id = request.path_params["request_id"]
    ctx.detail["query"] = {"request_id": request_id if q.valid_text(request_id) else "(invalid)"}
    _params(request, ())
    record = await q.event_detail(gw.engine, sess.tenant_id, request_id)
    if record is None:
        raise DeskError(404, "No audit event with that request id in this tenant.", "event_not_found")
    stages = charts.stage_bars([(t["stage"], t["ms"]) for t in record["trace"]])
    raw = orjson.dumps({k: v for k, v in record.items() if k not in ("trace",)},
                       option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return render("event.html", **_base(sess, gw, nav="events", e=record, stages=stages, raw=raw))


async def export(gw, ctx, request, sess) -> Response:
    params = _params(request, (*q.FILTER_PARAMS, "format"))
    fmt = params.get("format") or "csv"
    if fmt not in MEDIA_TYPES:
        raise DeskError(400, "'format' must be csv or jsonl.", "invalid_parameter")
    f = _filters(params)
    ctx.detail["query"] = {**f.as_dict(), "format": fmt, "order": "asc"}
    body = q.export(gw.engine, sess.tenant_id, f, fmt, order="asc")
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers={
        "content-disposition": f'attachment; filename="{export_filename(sess.principal.tenant, fmt)}"'})


async def verify(gw, ctx, request, sess) -> Response:
    _check_csrf(gw, sess, await _form(request))
    ctx.detail["query"] = {"from_checkpoint": False}
    result = await run_verify(gw, sess.tenant_id)
    ctx.detail["verify"] = verify_note(result)
    return render("verify.html", **_base(sess, gw, nav="overview", r=result))


async def static(gw, ctx, request, sess) -> Response:
    name = request.path_params["name"]
    if name not in STATIC:
        raise DeskError(404, "Not found.", "unknown_url")
    return Response((HERE / "static" / name).read_bytes(), media_type=STATIC[name],
                    headers={"cache-control": "no-cache"})


def routes() -> list[Route]:
    return [
        Route("/desk", page(dashboard), methods=["GET"]),
        Route("/desk/login", page(login_form, auth=False, audited=False), methods=["GET"]),
        Route("/desk/login", page(login, auth=False), methods=["POST"]),
        Route("/desk/logout", page(logout), methods=["POST"]),
        Route("/desk/events", page(events), methods=["GET"]),
        Route("/desk/events/{request_id}", page(event), methods=["GET"]),
        Route("/desk/export", page(export), methods=["GET"]),
        Route("/desk/verify", page(verify), methods=["POST"]),
        Route("/desk/static/{name}", page(static, auth=False, audited=False), methods=["GET"]),
    ]
