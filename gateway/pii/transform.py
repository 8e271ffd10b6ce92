"""Inspect a request's text fields and apply the policy's treatment for the backend's trust zone.

    inspection = await inspect_request(body, analyzer)          # may raise PiiAnalysisError
    result = transform_request(body, inspection, policy, zone)  # may raise PiiBlockedError
    # send result.body; keep result.vault to restore the answer; audit result.counts

Treatments: `pseudonymize` (numbered placeholder from the vault), `redact` (`[TYPE]`), `mask`
(letters and digits become `*`, long numbers keep their last 4), `hash` (`<TYPE:hmac>`, stable
for one gateway key), `block` (the whole request is refused, naming the types), `allow`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.pii.config import PiiPolicy, Treatment, Zone
from gateway.pii.entities import Entity, PiiBlockedError
from gateway.pii.fields import TextField, apply_texts, extract_texts
from gateway.pii.vault import Vault

if TYPE_CHECKING:  # Presidio is imported only where a policy turns PII inspection on
    from gateway.pii.analyzer import PiiAnalyzer

_KEEP_LAST4 = frozenset({"CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER", "US_BANK_NUMBER"})
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
# Keyed so that hashes of short values (an SSN has a billion possibilities) cannot be reversed by
# anyone who sees them without the key. Set BULKHEAD_PII_HASH_KEY for hashes stable across
# replicas and restarts.
_HASH_KEY = (os.environ.get("BULKHEAD_PII_HASH_KEY") or secrets.token_hex(32)).encode()


@dataclass(slots=True)
class Inspection:
    fields: list[TextField]
    entities: list[list[Entity]]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for ents in self.entities:
            for e in ents:
                out[e.type] += 1
        return dict(out)

    @property
    def types(self) -> set[str]:
        return {e.type for ents in self.entities for e in ents}

    def values(self) -> set[str]:
        """The detected values (for output scanning); never log or return these."""
        return {_decoded(f, e) for f, ents in zip(self.fields, self.entities, strict=True) for e in ents}


@dataclass(slots=True)
class Transformed:
    body: dict[str, Any]
    vault: Vault
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> treatment -> occurrences


async def inspect_request(
    body: dict[str, Any], analyzer: PiiAnalyzer, timeout: float | None = None
) -> Inspection:
    fields = extract_texts(body)
    if not fields:
        return Inspection([], [])
    return Inspection(fields, _unshift(fields, await analyzer.aanalyze(_analysis_texts(fields), timeout)))


def inspect_request_sync(body: dict[str, Any], analyzer: PiiAnalyzer) -> Inspection:
    fields = extract_texts(body)
    if not fields:
        return Inspection([], [])
    return Inspection(fields, _unshift(fields, analyzer.analyze(_analysis_texts(fields))))


def _analysis_texts(fields: list[TextField]) -> list[str]:
    return [f.context + f.text for f in fields]


def _unshift(fields: list[TextField], entities: list[list[Entity]]) -> list[list[Entity]]:
    """Entity offsets relative to each field's own text (its analysis context removed)."""
    out = []
    for f, ents in zip(fields, entities, strict=True):
        n = len(f.context)
        out.append(
            [Entity(e.type, max(e.start - n, 0), e.end - n, e.score) for e in ents if e.end > n]
            if n
            else ents
        )
    return out


def transform_request(
    body: dict[str, Any], inspection: Inspection, policy: PiiPolicy, zone: Zone, vault: Vault | None = None
) -> Transformed:
    """Raises PiiBlockedError (naming types only) when any detected type's treatment is `block`."""
    blocked = sorted({t for t in inspection.types if policy.treatment.for_entity(zone, t) == "block"})
    if blocked:
        raise PiiBlockedError(blocked)
    vault = vault if vault is not None else Vault([f.text for f in inspection.fields])
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts = []
    for f, ents in zip(inspection.fields, inspection.entities, strict=True):
        text, applied = scrub_text(f.text, ents, policy, zone, vault, is_json=f.is_json)
        if f.kind == "name" and text != f.text:
            # `name` must match ^[a-zA-Z0-9_-]+$ upstream; the placeholder's brackets would be refused.
            text = _NAME_UNSAFE.sub("_", text)
        texts.append(text)
        for entity_type, treatment in applied:
            counts[entity_type][treatment] += 1
    return Transformed(
        apply_texts(body, inspection.fields, texts), vault, {k: dict(v) for k, v in counts.items()}
    )


def scrub_text(
    text: str, entities: list[Entity], policy: PiiPolicy, zone: Zone, vault: Vault, *, is_json: bool = False
) -> tuple[str, list[tuple[str, Treatment]]]:
    """Apply treatments to one text. Entities must be sorted and non-overlapping (the analyzer's
    output is). Returns the new text and (type, treatment) per entity."""
    if is_json:
        entities = _json_safe_spans(text, entities)
    out: list[str] = []
    applied: list[tuple[str, Treatment]] = []
    pos = 0
    for e in entities:
        if e.start < pos:
            continue
        treatment = policy.treatment.for_entity(zone, e.type)
        applied.append((e.type, treatment))
        if treatment == "allow":
            continue
        if treatment == "block":
            raise PiiBlockedError([e.type])
        raw = text[e.start : e.end]
        value = _json_decode(raw) if is_json else raw
        replacement = _replacement(treatment, e.type, value, vault)
        if is_json and not _inside_string(text, e.start):
            replacement = json.dumps(replacement)
        elif is_json:
            replacement = json.dumps(replacement, ensure_ascii=False)[1:-1]
        out.append(text[pos : e.start])
        out.append(replacement)
        pos = e.end
    out.append(text[pos:])
    return "".join(out), applied


def _replacement(treatment: Treatment, entity_type: str, value: str, vault: Vault) -> str:
    if treatment == "pseudonymize":
        return vault.placeholder(entity_type, value)
    if treatment == "redact":
        return f"[{entity_type}]"
    if treatment == "mask":
        return mask(entity_type, value)
    if treatment == "hash":
        digest = hmac.new(_HASH_KEY, value.encode(), hashlib.sha256).hexdigest()[:16]
        return f"<{entity_type}:{digest}>"
    raise ValueError(f"unexpected treatment {treatment!r}")


def mask(entity_type: str, value: str) -> str:
    alnum = sum(c.isalnum() for c in value)
    keep = 4 if entity_type in _KEEP_LAST4 and alnum >= 8 else 0
    out = []
    seen = 0
    for ch in value:
        if ch.isalnum():
            seen += 1
            out.append(ch if seen > alnum - keep else "*")
        else:
            out.append(ch)
    return "".join(out)


# -- JSON text (tool-call arguments) ----------------------------------------------------------


def _string_regions(text: str) -> list[tuple[int, int]]:
    """(start, end) of the contents of every JSON string literal (quotes excluded)."""
    regions = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            regions.append((i + 1, min(j, n)))
            i = j + 1
        else:
            i += 1
    return regions


def _json_safe_spans(text: str, entities: list[Entity]) -> list[Entity]:
    """Clip each span to the JSON string it starts in and off any escape sequence it would cut, so
    that replacing it keeps the JSON valid. Spans outside strings (bare numbers) are kept whole."""
    regions = _string_regions(text)
    out = []
    for e in entities:
        region = next(((a, b) for a, b in regions if a <= e.start < b), None)
        start, end = e.start, e.end
        if region is not None:
            end = min(end, region[1])
            while start > region[0] and _escape_open(text, region[0], start):
                start -= 1  # do not start right after a lone backslash
            while end < region[1] and _escape_open(text, region[0], end):
                end += 1  # do not end inside "\n" or "\u00e9"
            if end < region[1] and text[end - 1 : end] == "\\":
                end += 1
        if end > start:
            out.append(Entity(e.type, start, end, e.score))
    return out


def _escape_open(text: str, region_start: int, pos: int) -> bool:
    """True when `pos` falls inside an escape sequence of the JSON string starting at region_start."""
    i = region_start
    while i < pos:
        if text[i] == "\\":
            length = 6 if text[i + 1 : i + 2] == "u" else 2
            if i + length > pos:
                return True
            i += length
        else:
            i += 1
    return False


def _inside_string(text: str, pos: int) -> bool:
    return any(a <= pos < b for a, b in _string_regions(text))


def _json_decode(raw: str) -> str:
    try:
        value = json.loads(f'"{raw}"')
    except ValueError:
        return raw
    return value if isinstance(value, str) else raw


def _decoded(f: TextField, e: Entity) -> str:
    raw = f.text[e.start : e.end]
    return _json_decode(raw) if f.is_json else raw


def scan_record(
    text: str, entities: list[Entity], policy: PiiPolicy, zone: Zone = "external"
) -> dict[str, Any]:
    """What `bulkhead pii scan` and the analyze endpoint return for one text: the entities and the
    text as it would be sent to a backend of `zone` (None, with `blocked` types, when refused)."""
    record: dict[str, Any] = {"entities": [e.to_dict() for e in entities]}
    try:
        record["scrubbed"] = scrub_text(text, entities, policy, zone, Vault([text]))[0]
    except PiiBlockedError as exc:
        record["scrubbed"] = None
        record["blocked"] = exc.entity_types
    return record
