"""The compliance desk (/desk) of a running gateway: sign-in with a compliance key, the session
cookie (signed, HttpOnly, SameSite=Strict, re-checked so that a revoked key is out at once), CSRF
on every form, a strict CSP, tenant isolation, an audit row per page view; and a headless
Chromium session that signs in, filters, opens an event, verifies the chain, and checks in a
screenshot that the charts were really drawn."""

from __future__ import annotations

import asyncio
import csv
import io
import re
import shutil
import struct
import time
import zlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.audit.params import GROUNDING_VERDICTS
from gateway.audit.writer import append_events, system_event
from gateway.db import create_engine
from gateway.models import Tenant
from tests.conftest import e2e_policy, start_gateway

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FAST = "\npii: {enabled: false}\nrisk: {embeddings: {enabled: false}}\n"
TIERS = ("low", "medium", "high", "critical")


def rows_for(tenant_id: str, backends: tuple[str, ...], now: datetime, n: int,
             cost: Decimal = Decimal("0.0020000000")) -> list[dict]:
    rows = []
    for i in range(n):
        row = system_event("request", {}, tenant_id=tenant_id, key_id="key_seeded")
        blocked = i % 7 == 0
        row.update(method="POST", endpoint="/v1/chat/completions", kind="request",
                   ts=now - timedelta(days=i % 4, minutes=i), requested_model="gpt-x",
                   backend=None if blocked else backends[i % len(backends)],
                   status=403 if blocked else 200, error_code="request_blocked" if blocked else None,
                   tokens_in=100, tokens_out=50, cost_usd=cost, latency_ms=20.0,
                   stages={"authenticate": 0.3, "inspect": 2.0, "risk": 1.0, "decide": 0.2, "call": 15.0},
                   risk={"tier": TIERS[i % 4], "action": "block" if blocked else "allow", "signals": {},
                         "domains": [], "reasons": ["seeded"]},
                   pii={"detected": {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": i % 2}} if i % 2 else {"detected": {}},
                   route=None if blocked else {"chosen": backends[i % len(backends)], "fallbacks": [],
                                               "reason": "cheapest allowed", "difficulty": None,
                                               "rejected": {"internal-moe": "tier forbids"}},
                   checks=[{"kind": "grounding", "version": "g1", "backend": "x", "score": 0.9, "threshold": 0.5,
                            "verdict": "supported" if i % 3 else "unsupported", "action": "flag", "claims": None,
                            "latency_ms": 2.0, "error": None}] if i % 2 else None)
        rows.append(row)
    return rows


async def _seed(url: str) -> dict:
    engine = create_engine(url)
    now = datetime.now(UTC)
    try:
        async with engine.connect() as conn:
            tid = {n: (await conn.execute(select(Tenant.id).where(Tenant.name == n))).scalar_one()
                   for n in ("acme", "globex")}
        acme = rows_for(tid["acme"], ("alpha", "beta"), now, 40)
        # a fraction of a cent a day: the cost axis must still tell its ticks apart
        globex = rows_for(tid["globex"], ("gamma",), now, 5, cost=Decimal("0.0000010000"))
        async with engine.begin() as conn:
            await append_events(conn, acme + globex)
    finally:
        await engine.dispose()
    return {"tenants": tid, "acme": acme, "globex": globex}


@pytest.fixture(scope="module")
def gw(standin, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("desk")
    url = f"sqlite+aiosqlite:///{tmp / 'd.db'}"
    (tmp / "policies" / "tenants").mkdir(parents=True)
    (tmp / "policies" / "tenants" / "globex.yaml").write_text("audit: {mode: strict}\n")
    policy = e2e_policy(standin, FAST)
    gateway = start_gateway(tmp, url, standin, redis=False, policy=policy,
                            extra_env={"BULKHEAD_POLICY_WATCH_SECONDS": "0"})
    gateway.cli("tenants", "create", "acme")
    gateway.cli("tenants", "create", "globex")
    gateway.keys.update(
        compliance=gateway.new_key("acme", "compliance"),
        api=gateway.new_key("acme", "compliance"),  # reads the trail through the API in these tests
        app=gateway.new_key("acme", "app"),
        globex=gateway.new_key("globex", "compliance"),
    )
    gateway.seed = asyncio.run(_seed(url))
    gateway.tmp = tmp
    yield gateway
    assert gateway.stop() == 0, gateway.log.read_text()[-4000:]


def client(gw) -> httpx.Client:
    return httpx.Client(base_url=gw.base_url, follow_redirects=False, timeout=60)


def login(gw, who: str = "compliance", c: httpx.Client | None = None) -> httpx.Client:
    c = c or client(gw)
    page = c.get("/desk/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    r = c.post("/desk/login", data={"api_key": gw.keys[who], "csrf": token})
    assert r.status_code == 303 and r.headers["location"] == "/desk", r.text
    return c


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def api_events(gw, **params) -> list[dict]:
    r = httpx.get(gw.base_url + "/v1/bulkhead/audit/events", params={"limit": 500, **params},
                  headers={"authorization": f"Bearer {gw.keys['api']}"})
    assert r.status_code == 200, r.text
    return r.json()["data"]


def wait_for(predicate, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


# -- over HTTP ------------------------------------------------------------------------------------


def test_pages_need_a_session(gw):
    c = client(gw)
    for path in ("/desk", "/desk/events", "/desk/events/req_x", "/desk/export?format=csv"):
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/desk/login", path
    assert c.post("/desk/verify", data={"csrf": "x"}).status_code == 303


def test_security_headers_and_no_inline_script(gw):
    c = login(gw)
    for path in ("/desk/login", "/desk", "/desk/events", "/desk/events/" + gw.seed["acme"][1]["request_id"]):
        r = c.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"
        scripts = re.findall(r"<script\b[^>]*>(.*?)</script>", r.text, re.S)
        assert all(body.strip() == "" for body in scripts)  # only <script src=...>
        assert not re.search(r"\son[a-z]+=", r.text) and "style=" not in r.text
        assert "http://" not in r.text.replace("http://www.w3.org/2000/svg", "")  # nothing from elsewhere
    js = c.get("/desk/static/desk.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert c.get("/desk/static/../routes.py").status_code == 404
    assert c.get("/desk/static/routes.py").status_code == 404


def test_login_checks_csrf_role_and_key(gw):
    c = client(gw)
    r = c.post("/desk/login", data={"api_key": gw.keys["compliance"], "csrf": "forged"})
    assert r.status_code == 403 and "bulkhead_desk=" not in r.headers.get("set-cookie", "")
    token = csrf_of(c.get("/desk/login").text)
    r = c.post("/desk/login", data={"api_key": gw.keys["app"], "csrf": token})
    assert r.status_code == 403 and "compliance role" in r.text
    token = csrf_of(c.get("/desk/login").text)
    r = c.post("/desk/login", data={"api_key": "bh-not-a-key", "csrf": token})
    assert r.status_code == 401 and "not valid" in r.text
    assert gw.keys["app"] not in r.text
    r = c.post("/desk/login", content=b'{"api_key": "x"}', headers={"content-type": "application/json"})
    assert r.status_code == 415


def test_session_cookie(gw):
    c = client(gw)
    token = csrf_of(c.get("/desk/login").text)
    r = c.post("/desk/login", data={"api_key": gw.keys["compliance"], "csrf": token})
    cookie = next(h for h in r.headers.get_list("set-cookie") if h.startswith("bulkhead_desk="))
    attrs = {a.strip().split("=")[0].lower(): a.strip() for a in cookie.split(";")}
    assert "httponly" in attrs and attrs["samesite"].lower() == "samesite=strict" and attrs["path"] == "Path=/desk"
    assert int(attrs["max-age"].split("=")[1]) <= 8 * 3600
    value = cookie.split(";")[0].split("=", 1)[1]
    assert gw.keys["compliance"] not in value and "bh-" not in value
    assert c.get("/desk").status_code == 200
    # a tampered cookie is no session
    forged = client(gw)
    payload, mac = value.split(".")
    forged.cookies.set("bulkhead_desk", payload[:-2] + "xx." + mac, path="/desk")
    assert forged.get("/desk").status_code == 303


def test_revoked_key_loses_the_desk_at_once(gw):
    raw = gw.new_key("acme", "compliance", extra=("--name", "desk-revoke"))
    gw.keys["doomed"] = raw
    c = login(gw, "doomed")
    assert c.get("/desk/events").status_code == 200
    key_id = next(line.split("\t")[0] for line in gw.cli("keys", "list", "--tenant", "acme").splitlines()
                  if raw[:10] in line)
    gw.cli("keys", "revoke", key_id)
    r = c.get("/desk/events")
    assert r.status_code == 303 and r.headers["location"] == "/desk/login"
    token = csrf_of(c.get("/desk/login").text)
    assert c.post("/desk/login", data={"api_key": raw, "csrf": token}).status_code == 401


def test_forms_need_the_session_csrf_token(gw):
    c = login(gw)
    r = c.post("/desk/verify", data={"csrf": "forged"})
    assert r.status_code == 403 and "form expired" in r.text
    other = login(gw)  # another session's token does not do either
    r = c.post("/desk/verify", data={"csrf": csrf_of(other.get("/desk").text)})
    assert r.status_code == 403
    pytest.importorskip("gateway.audit.verify")
    r = c.post("/desk/verify", data={"csrf": csrf_of(c.get("/desk").text)})
    assert r.status_code == 200 and 'id="verify-verdict">Intact' in r.text


def test_logout(gw):
    c = login(gw)
    stolen = c.cookies.get("bulkhead_desk")
    r = c.post("/desk/logout", data={"csrf": csrf_of(c.get("/desk").text)})
    assert r.status_code == 303 and 'bulkhead_desk=""' in r.headers["set-cookie"]
    replay = client(gw)
    replay.cookies.set("bulkhead_desk", stolen, path="/desk")
    assert replay.get("/desk").status_code == 303


def test_logout_holds_on_every_replica(gw, standin, tmp_path):
    """A second gateway process on the same database: the session works there until it is logged
    out on the first, and not after."""
    (tmp_path / "policies" / "tenants").mkdir(parents=True)
    other = start_gateway(tmp_path, gw.database_url, standin, redis=False,
                          policy=e2e_policy(standin, FAST), extra_env={"BULKHEAD_POLICY_WATCH_SECONDS": "0"})
    try:
        c = login(gw)
        there = httpx.Client(base_url=other.base_url, follow_redirects=False, timeout=60)
        there.cookies.set("bulkhead_desk", c.cookies.get("bulkhead_desk"), path="/desk")
        assert there.get("/desk").status_code == 200
        r = c.post("/desk/logout", data={"csrf": csrf_of(c.get("/desk").text)})
        assert r.status_code == 303
        assert there.get("/desk").status_code == 303
    finally:
        assert other.stop() == 0, other.log.read_text()[-4000:]


def test_filters_pages_and_tenant_isolation(gw):
    c = login(gw)
    r = c.get("/desk/events", params={"risk_tier": "critical", "backend": "beta"})
    assert r.status_code == 200
    expected = {row["request_id"] for i, row in enumerate(gw.seed["acme"]) if i % 4 == 3 and i % 7 and i % 2}
    shown = set(re.findall(r'class="rid" href="/desk/events/([^"]+)"', r.text))
    assert shown == expected
    r = c.get("/desk/events", params={"status": "4xx"})
    assert "request_blocked" in r.text
    r = c.get("/desk/events", params={"status": "nope"})
    assert r.status_code == 400 and "status" in r.text
    assert c.get("/desk/events", params={"colour": "blue"}).status_code == 400
    # paging: 50 a page, then older ones
    first = c.get("/desk/events")
    nxt = re.search(r'href="(/desk/events\?cursor=[^"]+)" id="next-page"', first.text)
    page2 = c.get(nxt.group(1).replace("&amp;", "&"))
    one = set(re.findall(r'class="rid" href="/desk/events/([^"]+)"', first.text))
    two = set(re.findall(r'class="rid" href="/desk/events/([^"]+)"', page2.text))
    assert len(one) == 50 and two and not one & two
    # globex sees its own events only, and acme's ids are unknown to it
    g = login(gw, "globex")
    page = g.get("/desk/events").text
    globex_ids = {row["request_id"] for row in gw.seed["globex"]}
    assert globex_ids <= set(re.findall(r'class="rid" href="/desk/events/([^"]+)"', page))
    assert not any(row["request_id"] in page for row in gw.seed["acme"])
    assert g.get("/desk/events/" + gw.seed["acme"][1]["request_id"]).status_code == 404
    assert "gamma" in g.get("/desk").text and "alpha" not in g.get("/desk").text


def test_strict_tenants_page_views_are_committed_before_the_page(gw):
    g = login(gw, "globex")
    r = g.get("/desk/events", params={"kind": "request", "key_id": "strict-marker"})
    assert r.status_code == 200
    rid_rows = httpx.get(gw.base_url + "/v1/bulkhead/audit/events", params={"endpoint": "/desk/events"},
                         headers={"authorization": f"Bearer {gw.keys['globex']}"}).json()["data"]
    assert any(e["detail"]["query"].get("key_id") == "strict-marker" for e in rid_rows)  # no waiting needed


def test_export(gw):
    c = login(gw)
    r = c.get("/desk/export", params={"format": "csv", "backend": "alpha"})
    assert r.status_code == 200 and r.headers["content-disposition"].startswith('attachment; filename="audit-acme-')
    lines = r.text.strip().splitlines()
    expected = [row for i, row in enumerate(gw.seed["acme"]) if i % 7 and i % 2 == 0]
    assert lines[0].startswith("seq,request_id,") and len(lines) == 1 + len(expected)
    r = c.get("/desk/export", params={"format": "jsonl", "pii_type": "PHONE_NUMBER"})
    assert r.status_code == 200 and len(r.text.splitlines()) == 20
    assert c.get("/desk/export", params={"format": "xml"}).status_code == 400


def test_export_writes_money_as_plain_decimals(gw):
    c = login(gw)
    r = c.get("/desk/export", params={"format": "csv"})
    assert r.status_code == 200
    costs = {row["cost_usd"] for row in csv.DictReader(io.StringIO(r.text))}
    assert "0.0000000000" in costs and "0.0020000000" in costs  # desk page views cost nothing
    assert all(re.fullmatch(r"\d+\.\d{10}", cost) for cost in costs), costs  # never 0E-10


def test_grounding_filter_takes_the_verdicts_a_check_gives(gw):
    c = login(gw)
    page = c.get("/desk/events").text
    # what the form offers is what the filter takes (its placeholder used to be `fail`, which no check gives)
    control = re.search(r'<select name="grounding">(.*?)</select>', page, re.S)
    assert control, "the grounding filter offers the verdicts to choose from"
    assert re.findall(r'<option value="([^"]*)"', control.group(1)) == ["", *GROUNDING_VERDICTS]
    r = c.get("/desk/events", params={"grounding": "unsupported"})
    assert r.status_code == 200
    expected = {row["request_id"] for i, row in enumerate(gw.seed["acme"]) if i % 2 and i % 3 == 0}
    assert set(re.findall(r'class="rid" href="/desk/events/([^"]+)"', r.text)) == expected
    # a value no check gives is refused on the events page, saying which ones are, not shown as no events
    for bad in ("fail", "pass", "nonsense"):
        r = c.get("/desk/events", params={"grounding": bad, "backend": "beta"})
        assert r.status_code == 400
        message = re.search(r'id="filter-error">([^<]*)<', r.text)
        assert message and "grounding" in message.group(1) and "unsupported" in message.group(1), r.text
        assert 'id="events-table"' not in r.text and "No events match" not in r.text
        assert 'name="backend" value="beta"' in r.text  # the form keeps what was asked, to correct it
    assert c.get("/desk/export", params={"format": "csv", "grounding": "fail"}).status_code == 400


def test_cost_axis_labels_do_not_repeat(gw):
    page = login(gw, "globex").get("/desk").text
    chart = re.search(r'<svg id="chart-cost".*?</svg>', page, re.S).group(0)
    ticks = re.findall(r'text-anchor="end" class="axis">([^<]*)</text>', chart)
    assert len(ticks) >= 3 and len(set(ticks)) == len(ticks), ticks


def test_every_desk_view_is_audited(gw):
    c = login(gw)
    c.get("/desk/events", params={"backend": "audited-marker"})
    rows = wait_for(lambda: [e for e in api_events(gw, endpoint="/desk/events")
                             if (e["detail"] or {}).get("query", {}).get("backend") == "audited-marker"])
    assert rows and rows[0]["key_id"] and rows[0]["method"] == "GET" and rows[0]["status"] == 200
    c.get("/desk/export", params={"format": "csv", "risk_tier": "high"})
    assert wait_for(lambda: any((e["detail"] or {}).get("query", {}).get("format") == "csv"
                                for e in api_events(gw, endpoint="/desk/export")))
    c.get("/desk/events/%00")
    assert wait_for(lambda: api_events(gw, endpoint="/desk/events/?"))
    logins = wait_for(lambda: api_events(gw, endpoint="/desk/login"))
    assert logins and all(e["detail"]["desk"] == "login" for e in logins)


# -- in a browser ---------------------------------------------------------------------------------


def png_pixels(png: bytes, box: tuple[int, int, int, int]) -> list[tuple[int, int, int]]:
    """RGB pixels of a region of an 8-bit RGB(A) PNG (what Chromium writes), decoded with zlib
    alone: Pillow is not among the dependencies."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, [], 0
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        data = png[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data)
            assert depth == 8 and colour in (2, 6) and interlace == 0
            bpp = 4 if colour == 6 else 3
        elif kind == b"IDAT":
            idat.append(data)
        pos += 12 + length
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    x0, y0, x1, y1 = box
    prior = bytearray(stride)
    out = []
    for y in range(min(y1, height)):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif f == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prior, strict=True))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prior[i]) >> 1)) & 0xFF
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prior[i], prior[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        if y >= y0:
            out += [tuple(line[x * bpp:x * bpp + 3]) for x in range(x0, min(x1, width))]
        prior = line
    return out


def near(pixels, hex_colour: str, tolerance: int = 24) -> int:
    target = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return sum(1 for p in pixels if all(abs(a - b) <= tolerance for a, b in zip(p, target, strict=True)))


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip("headless browser test needs /usr/bin/chromium and /usr/bin/chromedriver "
                    "(run scripts/browser.sh, or apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", "--force-device-scale-factor=1", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def test_desk_in_a_browser(gw, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = browser
    d.get(gw.base_url + "/desk")
    assert d.current_url.endswith("/desk/login")
    d.find_element(By.ID, "api_key").send_keys(gw.keys["compliance"])
    d.find_element(By.CSS_SELECTOR, "#login-form button[type=submit]").click()
    wait_for(lambda: d.current_url.endswith("/desk") and d.find_elements(By.ID, "chart-traffic"), 30)
    assert d.find_element(By.CSS_SELECTOR, ".who .tenant").text == "acme"
    assert d.get_cookie("bulkhead_desk")["httpOnly"] is True
    assert d.execute_script("return document.cookie") == ""  # the session is out of reach of scripts

    # the charts: take the screenshot and look at the pixels where each chart is
    d.execute_script("window.scrollTo(0, 0)")
    shot = d.get_screenshot_as_png()
    (tmp_path / "desk.png").write_bytes(shot)
    ratio = d.execute_script("return window.devicePixelRatio") or 1

    def region(element_id: str):
        r = d.execute_script("const r = document.getElementById(arguments[0]).getBoundingClientRect();"
                             "return [r.left, r.top, r.right, r.bottom];", element_id)
        assert r[3] - r[1] > 50 and r[3] <= 1000, (element_id, r)  # drawn, and within the screenshot
        return png_pixels(shot, tuple(int(v * ratio) for v in r))

    traffic = region("chart-traffic")
    coloured = sum(1 for p in traffic if max(p) - min(p) > 60)
    assert coloured > 2000, f"the traffic chart has {coloured} coloured pixels; see {tmp_path / 'desk.png'}"
    assert near(traffic, "#2563eb") > 300 and near(traffic, "#16a34a") > 300  # both backends' bars
    risk = region("chart-risk")
    assert near(risk, "#dc2626") > 200 and near(risk, "#16a34a") > 200  # critical and low tiers
    assert d.find_elements(By.CSS_SELECTOR, "#chart-pii rect") and "EMAIL_ADDRESS" in \
        d.find_element(By.ID, "panel-pii").text
    assert "supported" in d.find_element(By.ID, "panel-grounding").text

    # filter the events, then open one
    d.find_element(By.LINK_TEXT, "Events").click()
    wait_for(lambda: d.find_elements(By.ID, "events-table"), 30)
    # every column in view at 1,400 px: the table does not scroll sideways
    width, inner, outer = d.execute_script(
        "const w = document.querySelector('.table-wrap');"
        "return [window.innerWidth, w.scrollWidth, w.clientWidth];")
    assert width <= 1400 and inner <= outer, f"the events table is {inner} px wide in {outer} px at {width} px"
    Select(d.find_element(By.NAME, "risk_tier")).select_by_value("critical")
    d.find_element(By.NAME, "pii_type").send_keys("EMAIL_ADDRESS")
    d.find_element(By.ID, "apply-filters").click()
    wait_for(lambda: "risk_tier=critical" in d.current_url, 30)
    assert "backend=" not in d.current_url  # empty fields stay out of the URL (desk.js)
    tiers = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#events-table .tier")]
    expected = [r for i, r in enumerate(gw.seed["acme"]) if i % 4 == 3 and i % 2]
    assert tiers and set(tiers) == {"critical"} and len(tiers) == len(expected)
    assert d.find_element(By.ID, "export-csv").get_attribute("href").endswith(
        "/desk/export?risk_tier=critical&pii_type=EMAIL_ADDRESS&format=csv")
    link = d.find_elements(By.CSS_SELECTOR, "#events-table a.rid")[0]
    request_id = link.text
    d.find_elements(By.CSS_SELECTOR, "#events-table tbody tr td")[0].click()  # the whole row opens it
    wait_for(lambda: d.find_elements(By.ID, "event-id"), 30)
    assert d.find_element(By.ID, "event-id").text == request_id
    assert "internal-moe" in d.find_element(By.ID, "event-route").text
    assert d.find_elements(By.CSS_SELECTOR, "#chart-stages rect")
    assert "EMAIL_ADDRESS" in d.find_element(By.ID, "event-pii").text
    assert d.find_element(By.ID, "hash-ok").text == "yes"

    # a grounding value no check gives: the page says so
    d.get(gw.base_url + "/desk/events?grounding=fail")
    wait_for(lambda: d.find_elements(By.ID, "filter-error"), 30)
    error = d.find_element(By.ID, "filter-error")
    assert error.is_displayed() and "unsupported" in error.text
    assert not d.find_elements(By.ID, "events-table")
    Select(d.find_element(By.NAME, "grounding")).select_by_value("unsupported")
    d.find_element(By.ID, "apply-filters").click()
    wait_for(lambda: "grounding=unsupported" in d.current_url and d.find_elements(By.ID, "events-table"), 30)
    assert not d.find_elements(By.ID, "filter-error")

    # verify the chain from the overview
    d.find_element(By.LINK_TEXT, "Overview").click()
    wait_for(lambda: d.find_elements(By.ID, "verify-button"), 30)
    d.find_element(By.ID, "verify-button").click()
    wait_for(lambda: d.find_elements(By.ID, "verify-verdict"), 60)
    assert d.find_element(By.ID, "verify-verdict").text == "Intact"

    # the page never broke its own CSP
    log = d.get_log("browser")
    assert not [e for e in log if "Content Security Policy" in e["message"]], log
    shutil.copy(tmp_path / "desk.png", gw.tmp / "desk.png")
