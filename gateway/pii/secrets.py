"""Secrets and credentials: provider keys with known shapes, private key blocks, JWTs, credentials in
connection strings, and generic high-entropy values next to words like key/secret/token/password.

Every finding is reported as entity type SECRET (the kind goes to recognition metadata for
debugging, never the value). Each rule names cheap literal "needles": a rule whose needles are
all absent from the lower-cased text is not run at all, which is why a prose prompt costs almost
nothing here.

Plain regular expressions, no Presidio: the policy loader runs these over policy files, and the
CLI commands that only read policies must not pay for importing Presidio and spaCy (~9 s here).
The Presidio recognizer around them is `gateway.pii.secrets_recognizer`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

SECRET = "SECRET"

# Values that are plainly not credentials: placeholders and template references.
_PLACEHOLDER = re.compile(
    r"""^(?:[*x.]+|\$.*|%.*|\#\{.*|\{.*|<.*|\(.*|\[.*|@.*|\\.*|.*\$\{.*|process\.env.*|os\.environ.*|env\(.*
    |null|none|nil|true|false|undefined|not-?set|empty|redacted|changeme|example|your[_-].*|
    |(?:my)?pass(?:word|wd)?s?|secret|token|username|user|xxx+)$""",
    re.IGNORECASE | re.VERBOSE,
)


_STRUCTURAL_PLACEHOLDER = re.compile(
    r"^(?:[*x.]+|\$.*|%.*|#\{.*|\{.*|<.*|\(.*|\[.*|\\.*|.*\$\{.*)$", re.IGNORECASE
)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _classes(value: str) -> int:
    return (
        any(c.islower() for c in value)
        + any(c.isupper() for c in value)
        + any(c.isdigit() for c in value)
        + any(not c.isalnum() for c in value)
    )


def _not_placeholder(value: str) -> bool:
    return not _PLACEHOLDER.match(value) and len(set(value.lower())) > 3


def _keyed_value(value: str) -> bool:
    """A value right after key/secret/token: long, and either mixed characters or too long to be a word."""
    value = value.rstrip(".=")
    return (
        len(value) >= 16
        and _not_placeholder(value)
        and (any(c.isdigit() for c in value) or _mixed_case(value) or value.isalpha() and len(value) >= 24)
    )


def _glued_value(value: str) -> bool:
    # `datadog-secrettoken-0024a2...`: no separator but a dash, so ask for more evidence.
    if _UUID.fullmatch(value):
        return True
    return len(value) >= 20 and (
        any(c.isdigit() for c in value)
        and any(c.isalpha() for c in value)
        or value.isalpha()
        and len(value) >= 32
        and len(set(value)) > 3
    )


def _quoted_password(value: str) -> bool:
    # A quoted literal assigned to a password variable is the password, however weak it looks.
    return len(value) >= 4 and _not_placeholder(value)


def _assigned_secret(value: str) -> bool:
    # `DB_PASSWORD=whiteduke` in an env file or connection string: a weak value is still the credential.
    return len(value) >= 3 and not _STRUCTURAL_PLACEHOLDER.match(value)


def _mixed_case(value: str) -> bool:
    return any(c.islower() for c in value) and any(c.isupper() for c in value)


def _password(value: str) -> bool:
    # Prose says "the password is required"; a real password has a digit, a symbol or mixed case.
    value = value.rstrip(".,;:!?")
    return (
        len(value) >= 6
        and _not_placeholder(value)
        and (any(c.isdigit() for c in value) or any(not c.isalnum() for c in value) or _mixed_case(value))
    )


def _high_entropy(value: str) -> bool:
    # Without a keyword nearby only strong evidence counts: long and near-random. Hex digests
    # (at most 4 bits a character) and file paths are excluded on purpose.
    # Random 32-character tokens almost always hold a digit; identifiers like a.b_C.d rarely do.
    if (
        len(value) < 32
        or value.count("/") > 2
        or not any(c.isdigit() for c in value)
        or not _not_placeholder(value)
    ):
        return False
    classes = _classes(value)
    bits = entropy(value)
    if classes >= 3:
        return bits >= 4.3
    return (
        classes == 2 and any(c.isdigit() for c in value) and any(c.isalpha() for c in value) and bits >= 4.5
    )


def _userinfo_password(match: re.Match[str]) -> bool:
    return _assigned_secret(match.group("pw"))


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    pattern: re.Pattern[str]
    needles: tuple[str, ...]
    score: float
    group: str | int = 0  # the part of the match that is reported
    check: Callable[[str], bool] | None = None
    check_match: Callable[[re.Match[str]], bool] | None = None


_I = re.IGNORECASE
_KEY_WORDS = (
    r"(?:api[_.\-\s]?key|apikey|access[_.\-]?key|auth[_.\-]?(?:key|token)|private[_.\-]?key|"
    r"client[_.\-]?secret|secret|token|bearer|credentials?|key|private|access)"
)
_SEP = r"""["'\]]?\s*(?:=>|:=|[:=]|\s)\s*[(\[]?\s*["'`]?"""

RULES: tuple[Rule, ...] = (
    Rule(
        "private_key_block",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?"
            r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
            re.DOTALL,
        ),
        ("private key",),
        1.0,
    ),
    Rule("anthropic_key", re.compile(r"\bsk-ant-[a-z]{2,8}\d{2}-[A-Za-z0-9_\-]{20,}"), ("sk-ant-",), 1.0),
    Rule(
        "openai_key", re.compile(r"\bsk-(?:proj-|svcacct-|admin-|None-)?[A-Za-z0-9_\-]{20,}"), ("sk-",), 0.95
    ),
    Rule(
        "aws_access_key_id",
        re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|ANPA|A3T[A-Z0-9])[A-Z0-9]{16}\b"),
        ("akia", "asia", "abia", "acca", "agpa", "aida", "aroa", "anpa", "a3t"),
        0.95,
    ),
    Rule("gcp_api_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"), ("aiza",), 0.95),
    Rule("gcp_oauth_token", re.compile(r"\bya29\.[0-9A-Za-z_\-]{20,}"), ("ya29.",), 0.95),
    Rule(
        "azure_account_key",
        re.compile(r"(?:AccountKey|SharedAccessKey|AccessKey)=([A-Za-z0-9+/]{30,}={0,2})", _I),
        ("accountkey", "sharedaccesskey", "accesskey"),
        0.95,
        1,
    ),
    Rule(
        "azure_sas_signature", re.compile(r"[?&;]sig=([A-Za-z0-9%+/]{30,}(?:%3D|=){0,2})"), ("sig=",), 0.9, 1
    ),
    Rule(
        "azure_client_secret", re.compile(r"\b[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}"), ("q~",), 0.9
    ),
    Rule(
        "github_token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        1.0,
    ),
    Rule(
        "gitlab_token",
        re.compile(r"\bgl(?:pat|dt|rt|ptt|ft|imt|cbt|oas|soat|ffct|sat|agent)-[A-Za-z0-9_\-]{20,}"),
        ("gl",),
        1.0,
    ),
    Rule("slack_token", re.compile(r"\bxox[abposre]-(?:\d+-)?[A-Za-z0-9\-]{10,}"), ("xox",), 1.0),
    Rule(
        "slack_webhook",
        re.compile(r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{20,}"),
        ("hooks.slack.com",),
        1.0,
    ),
    Rule(
        "stripe_key",
        re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|\bwhsec_[A-Za-z0-9]{24,}"),
        ("_live_", "_test_", "whsec_"),
        1.0,
    ),
    Rule(
        "jwt", re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"), ("eyj",), 0.95
    ),
    Rule(
        "mapbox_token", re.compile(r"\b[sp]k\.eyJ[A-Za-z0-9_\-]{20,}\.[A-Za-z0-9_\-]{10,}"), ("k.eyj",), 0.95
    ),
    Rule(
        "password_hash",
        re.compile(
            r"\$(?:1|2[abxy]?|5|6|y|7|sha1|md5|apr1|argon2(?:id|i|d)|krb5[a-z]*|pbkdf2[\w\-]*|scrypt)\$[^\s'\"]{10,}"
        ),
        ("$",),
        0.9,
    ),
    Rule(
        "prefixed_token",
        re.compile(
            r"\b[A-Za-z][A-Za-z0-9]{1,9}[_\-](?:[a-z]{1,8}[_\-])?(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{20,}\b"
        ),
        ("_", "-"),
        0.7,
        0,
        lambda v: _classes(v) >= 3 and entropy(v) >= 3.5,
    ),
    Rule(
        "credentials_in_uri",
        re.compile(
            r"\b[a-z][a-z0-9+.\-]{1,20}://(?P<user>[^\s:/@'\"<>]{1,100}):(?P<pw>[^\s:/@'\"<>]{1,200})@[^\s'\"<>]+",
            _I,
        ),
        ("://",),
        0.95,
        0,
        None,
        _userinfo_password,
    ),
    Rule(
        "password_assignment",
        re.compile(
            r"(?<![A-Za-z])(?:pass(?:word|wd|phrase|code)?|pwd)[\"'\]]?(?:\s*(?:=>|:=|[:=])\s*|\s+(?:is|was)?\s*)"
            r"""[(\[]?["'`]?([^\s"'`;,)\]}<>]{6,128})""",
            _I,
        ),
        ("pass", "pwd"),
        0.8,
        1,
        _password,
    ),
    Rule(
        "keyed_value",
        re.compile(
            _KEY_WORDS
            + r"[A-Za-z0-9_.\-]{0,24}"
            + _SEP
            + r"(?:[a-z]{1,10}\s+)?"
            + r"([A-Za-z0-9][A-Za-z0-9_\-+/=.~%]{15,512})",
            _I,
        ),
        ("key", "secret", "token", "bearer", "credential", "private", "access"),
        0.8,
        1,
        _keyed_value,
    ),
    Rule(
        "keyed_short_value",
        re.compile(
            _KEY_WORDS + r"[A-Za-z0-9_.\-]{0,24}[\"']?\s*(?:=>|:=|[:=])\s*[\"'`]?"
            r"([A-Za-z0-9][A-Za-z0-9_\-+/=.~%]{11,15})(?![A-Za-z0-9_\-+/=.~%])",
            _I,
        ),
        ("key", "secret", "token", "bearer", "credential", "private", "access"),
        0.7,
        1,
        lambda v: any(c.isdigit() for c in v) and any(c.isalpha() for c in v) and _not_placeholder(v),
    ),
    Rule(
        "keyed_value_glued",
        re.compile(
            r"(?:key|secret|token|access)[_.\-]([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|"
            r"[A-Za-z0-9]{20,256})\b",
            _I,
        ),
        ("key", "secret", "token", "access"),
        0.7,
        1,
        _glued_value,
    ),
    Rule(
        "password_literal",
        re.compile(
            r"(?<![A-Za-z])(?:pass(?:word|wd|phrase)?|pwd)[\"'\]]?\s*(?:=>|:=|[:=])\s*([\"'])(?P<pw>[^\"'\s]{4,128})\1",
            _I,
        ),
        ("pass", "pwd"),
        0.8,
        "pw",
        _quoted_password,
    ),
    Rule(
        "assigned_secret",
        re.compile(
            r"\b[A-Z0-9_]*(?:PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|_PAT\b)[A-Z0-9_]*\s*=\s*[\"']?([^\s\"'`;]{3,256})"
        ),
        ("pass", "pwd", "secret", "token", "key", "_pat"),
        0.8,
        1,
        _assigned_secret,
    ),
    Rule(
        "connection_string_password",
        re.compile(r"(?:^|[;\s\"'])(?:password|pwd)\s*=\s*([^;\"'\s]{3,256})(?=;|[\"']|\s|$)", _I),
        ("password=", "pwd="),
        0.8,
        1,
        _assigned_secret,
    ),
    Rule(
        "webhook_url",
        re.compile(
            r"https://(?:[a-z0-9\-]+\.)*(?:webhook\.office\.com|office\.com/webhook|discord(?:app)?\.com/api/webhooks)"
            r"/[^\s'\"<>]{20,}",
            _I,
        ),
        ("webhook",),
        0.95,
    ),
    Rule(
        "high_entropy",
        re.compile(r"(?<![A-Za-z0-9_\-+/=.])[A-Za-z0-9_\-+/=.]{32,1024}"),
        ("",),
        0.6,
        0,
        _high_entropy,
    ),
)


def find_secrets(text: str, rules: tuple[Rule, ...] = RULES) -> list[tuple[str, int, int, float]]:
    """(kind, start, end, score) for every secret; overlapping findings are left to the caller."""
    lowered = text.lower()
    found: list[tuple[str, int, int, float]] = []
    for rule in rules:
        if not any(n in lowered for n in rule.needles):
            continue
        for m in rule.pattern.finditer(text):
            value = m.group(rule.group)
            if rule.check is not None and not rule.check(value):
                continue
            if rule.check_match is not None and not rule.check_match(m):
                continue
            start, end = m.span(rule.group)
            found.append((rule.kind, start, end, rule.score))
    return found
