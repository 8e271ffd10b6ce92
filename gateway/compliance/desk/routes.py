"""The compliance desk at /desk: sign in with a compliance key, search and open audit events,
see traffic, risk, PII, grounding and cost as charts, export, and verify the tenant's chain.

The pages are rendered on the server from the same query layer as the /v1/bulkhead/audit API
(gateway/audit/query.py), rather than by page JavaScript calling that API. That keeps the session
cookie from ever authenticating the /v1 API (so no cookie-borne CSRF surface there), lets the
pages work with a strict CSP and no script at all, and keeps one code path for tenant scoping.
Because the /v1 envelope does not wrap /desk, every desk request that reads or changes anything is
recorded the same way (`handling.page`): a RequestContext, its query in `detail.query`, one audit
row (committed before the page is sent when the tenant's audit mode is strict). This module holds
the pages and the route table; signing in and out is in `signin.py`.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, datetime, timedelta

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from gateway.audit import query
from gateway.audit.params import (
    FILTER_PARAMS,
    GROUNDING_VERDICTS,
    RISK_TIERS,
    Filters,
    QueryError,
    parse_filters,
    single_values,
    valid_text,
)
from gateway.audit.records import outcome
from gateway.compliance.api import MEDIA_TYPES, export_filename, run_verify, verify_note
from gateway.compliance.desk import charts
from gateway.compliance.desk.handling import HERE, DeskError, check_csrf, page, read_form, render
from gateway.compliance.desk.signin import login, login_form, logout

STATIC = {"desk.css": "text/css; charset=utf-8", "desk.js": "text/javascript; charset=utf-8"}
PAGE_SIZE = 50
DEFAULT_DAYS = 14


def _params(request: Request, allowed) -> dict[str, str]:
    try:
        return single_values(request.query_params, allowed)
    except QueryError as exc:
        raise DeskError(400, exc.message, "invalid_parameter") from None


def _filters(params: dict[str, str]) -> Filters:
    try:
        return parse_filters(params)
    except QueryError as exc:
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
    s = await query.summary(gw.engine, sess.tenant_id, f)
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
    params = _params(request, (*FILTER_PARAMS, "cursor"))
    form = {k: params.get(k, "") for k in EVENT_FORM}
    try:
        f = parse_filters(params)
    except QueryError as exc:
        # The form again, saying what to change: a value that cannot match must not look like a
        # filter that matched nothing.
        ctx.error_code = "invalid_parameter"
        ctx.detail["query"] = {"invalid": exc.param}
        return render("events.html", 400, **_base(sess, gw, nav="events", rows=[], form=form, tiers=RISK_TIERS,
                                                  verdicts=GROUNDING_VERDICTS, error=exc.message,
                                                  filtered=True))
    ctx.detail["query"] = {**f.as_dict(), "cursor": params.get("cursor") or None}
    try:
        page_ = await query.list_events(gw.engine, sess.tenant_id, f, limit=PAGE_SIZE, cursor=params.get("cursor"))
    except QueryError as exc:
        raise DeskError(400, exc.message, "invalid_parameter") from None
    ctx.detail["query"]["returned"] = len(page_.data)
    kept = {k: v for k, v in params.items() if k in FILTER_PARAMS and v}
    rows = [{**e, "outcome": outcome(e), "risk_tier": (e.get("risk") or {}).get("tier"),
             "pii_types": sorted(((e.get("pii") or {}).get("detected") or {}).keys()),
             "checks_text": ", ".join(f"{c.get('kind')}: {c.get('verdict')}" for c in e.get("checks") or []
                                      if isinstance(c, dict))} for e in page_.data]
    first_href = "/desk/events?" + urllib.parse.urlencode(kept) if params.get("cursor") else None
    next_href = ("/desk/events?" + urllib.parse.urlencode({**kept, "cursor": page_.next_cursor})
                 if page_.next_cursor else None)
    exports = {fmt: "/desk/export?" + urllib.parse.urlencode({**kept, "format": fmt}) for fmt in ("csv", "jsonl")}
    return render("events.html", **_base(sess, gw, nav="events", rows=rows, form=form, tiers=RISK_TIERS,
                                         verdicts=GROUNDING_VERDICTS,
                                         next_href=next_href, first_href=first_href, exports=exports,
                                         filtered=bool(kept)))


async def event(gw, ctx, request, sess) -> Response:
    request_id = request.path_params["request_id"]
    ctx.detail["query"] = {"request_id": request_id if valid_text(request_id) else "(invalid)"}
    _params(request, ())
    record = await query.event_detail(gw.engine, sess.tenant_id, request_id)
    if record is None:
        raise DeskError(404, "No audit event with that request id in this tenant.", "event_not_found")
    stages = charts.stage_bars([(t["stage"], t["ms"]) for t in record["trace"]])
    raw = orjson.dumps({k: v for k, v in record.items() if k not in ("trace",)},
                       option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    return render("event.html", **_base(sess, gw, nav="events", e=record, stages=stages, raw=raw))


async def export(gw, ctx, request, sess) -> Response:
    params = _params(request, (*FILTER_PARAMS, "format"))
    fmt = params.get("format") or "csv"
    if fmt not in MEDIA_TYPES:
        raise DeskError(400, "'format' must be csv or jsonl.", "invalid_parameter")
    f = _filters(params)
    ctx.detail["query"] = {**f.as_dict(), "format": fmt, "order": "asc"}
    body = query.export(gw.engine, sess.tenant_id, f, fmt, order="asc")
    return StreamingResponse(body, media_type=MEDIA_TYPES[fmt], headers={
        "content-disposition": f'attachment; filename="{export_filename(sess.principal.tenant, fmt)}"'})


async def verify(gw, ctx, request, sess) -> Response:
    check_csrf(gw, sess, await read_form(request))
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
