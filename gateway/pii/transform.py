"""Inspect a request's text fields and apply the policy's treatment for the backend's trust zone.

    inspection = await inspect_request(body, analyzer)          # may raise PiiAnalysisError
    result = transform_request(body, inspection, policy, zone)  # may raise PiiBlockedError
    # send result.body; keep result.vault to restore the answer; audit result.counts

Treatments: `pseudonymize` (numbered placeholder from the vault), `redact` (`[TYPE]`), `mask`
(letters and digits become `*`, long numbers keep their last 4), `hash` (`<TYPE:hmac>`, stable
for one gateway key), `block` (the whole request is refused, naming the types), `allow`.

A value can be split across fields ("SSN 219-09-" in one message, "9999" in the next): the model
reads the request as one text. Besides each field, a structural scan runs over the joined text
around every boundary between prose fields; a value found across one yields a piece in each field
it covers, every piece treated, the value counted once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.pii.config import PiiPolicy, Treatment, Zone
from gateway.pii.entities import Entity, PiiBlockedError
from gateway.pii.fields import TextField, apply_texts, extract_texts
from gateway.pii.normalize import Offsets, original_span, split_identifier
from gateway.pii.overlaps import resolve_overlaps
from gateway.pii.vault import Vault

if TYPE_CHECKING:  # Presidio is imported only where a policy turns PII inspection on
    from gateway.pii.analyzer import PiiAnalyzer

_KEEP_LAST4 = frozenset({"CREDIT_CARD", "IBAN_CODE", "PHONE_NUMBER", "US_BANK_NUMBER"})
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")
_BRACKETS = str.maketrans("", "", "<>[]")
# Fields a model reads as one running text: a value split across them is scanned for joined.
_PROSE = frozenset({"content", "prompt", "input", "arguments", "arguments_raw"})
# Fields that are often identifiers rather than prose: read a second time as words.
_IDENTIFIER_LIKE = frozenset({"name", "key", "field"})
_SHORT = 256  # longer ones are prose (a tool's description): one reading, as written
# Characters each side of a boundary between prose fields that the joined scan looks at: as long
# as an e-mail, IBAN or card number with its context word, and short enough that the scan costs
# little (measured: +6% cold on 8 messages of 450 characters, +30% on 40 of 90; ~0 when the
# earlier turns' windows come from the analyzer's cache).
WINDOW = 64
# Keyed so that hashes of short values (an SSN has a billion possibilities) cannot be reversed by
# anyone who sees them without the key. Set BULKHEAD_PII_HASH_KEY for hashes stable across
# replicas and restarts.
_HASH_KEY = (os.environ.get("BULKHEAD_PII_HASH_KEY") or secrets.token_hex(32)).encode()


@dataclass(slots=True)
class Inspection:
    fields: list[TextField]
    entities: list[list[Entity]]
    # Pieces of a value split across fields after its first, as (field index, start): treated like
    # any entity, not counted again.
    continued: set[tuple[int, int]] = field(default_factory=set)
    joined: set[str] = field(default_factory=set)  # the whole values of those split ones

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for i, ents in enumerate(self.entities):
            for e in ents:
                if (i, e.start) not in self.continued:
                    out[e.type] += 1
        return dict(out)

    @property
    def types(self) -> set[str]:
        return {e.type for ents in self.entities for e in ents}

    def values(self) -> set[str]:
        """The detected values (for output scanning); never log or return these."""
        found = {_decoded(f, e) for f, ents in zip(self.fields, self.entities, strict=True) for e in ents}
        return found | self.joined


@dataclass(slots=True)
class Transformed:
    body: dict[str, Any]
    vault: Vault
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> treatment -> occurrences


async def inspect_request(
    body: dict[str, Any], analyzer: PiiAnalyzer, timeout: float | None = None,
    *, fields: list[TextField] | None = None,
) -> Inspection:
    """`fields`: the body's texts where the caller has extracted them already."""
    fields = extract_texts(body) if fields is None else fields
    if not fields:
        return Inspection([], [])
    limit = analyzer.policy.timeout_s if timeout is None else timeout
    started = time.monotonic()
    texts, words = _analysis_texts(fields)
    entities = await analyzer.aanalyze(texts, limit)
    parts, windows = _windows(fields)
    found = []
    if windows:  # one deadline for both scans
        left = max(limit - (time.monotonic() - started), 0.001)
        found = await analyzer.aanalyze([w for _, w in windows], left, structural=True)
    return _inspection(fields, _unshift(fields, entities, words), parts, windows, found)


def inspect_request_sync(body: dict[str, Any], analyzer: PiiAnalyzer) -> Inspection:
    fields = extract_texts(body)
    if not fields:
        return Inspection([], [])
    texts, words = _analysis_texts(fields)
    entities = _unshift(fields, analyzer.analyze(texts), words)
    parts, windows = _windows(fields)
    found = analyzer.analyze([w for _, w in windows], structural=True) if windows else []
    return _inspection(fields, entities, parts, windows, found)


def _analysis_texts(fields: list[TextField]) -> tuple[list[str], list[tuple[int, Offsets]]]:
    """What the analyzer reads: every field as it is, and identifier-like fields (names, keys,
    short values) also as words. Every reading counts: "Margaret_Thornbury" is a name only as
    words, "jane.roe@example.com_2" an e-mail only as words ("com_2" is no top-level domain),
    "jane_roe@example.com" one only as it is."""
    texts = [f.context + f.text for f in fields]
    words: list[tuple[int, Offsets]] = []
    for i, f in enumerate(fields):
        if f.kind in _IDENTIFIER_LIKE and len(f.text) <= _SHORT:
            split, offsets = split_identifier(f.text)
            if offsets is not None:
                texts.append(f.context + split)
                words.append((i, offsets))
            if "_" in f.text:  # `_` alone as a space keeps dots and @: same length, same offsets
                texts.append(f.context + f.text.replace("_", " "))
                words.append((i, None))
    return texts, words


def _unshift(
    fields: list[TextField], entities: list[list[Entity]], words: list[tuple[int, Offsets]]
) -> list[list[Entity]]:
    """Entity offsets relative to each field's own text (its analysis context removed, an
    identifier's words mapped back onto it), both readings of a field merged."""
    out = [_shift(f, ents, None) for f, ents in zip(fields, entities, strict=False)]
    if words:
        for (i, offsets), ents in zip(words, entities[len(fields):], strict=True):
            out[i] = resolve_overlaps([*out[i], *_shift(fields[i], ents, offsets)])
    return out


def _shift(f: TextField, ents: list[Entity], offsets: Offsets) -> list[Entity]:
    n = len(f.context)
    if n:
        ents = [Entity(e.type, max(e.start - n, 0), e.end - n, e.score) for e in ents if e.end > n]
    if offsets is not None:
        ents = [Entity(e.type, *original_span(offsets, e.start, e.end), e.score) for e in ents]
    return ents


# (field index, start, end) of each prose field in the joined text; (start, text) of each window.
_Parts = list[tuple[int, int, int]]
_Windows = list[tuple[int, str]]


def _windows(fields: list[TextField]) -> tuple[_Parts, _Windows]:
    """The prose fields joined without a separator (a value split anywhere comes back whole) and
    the stretch of that text around each boundary. Windows are not merged: each depends only on the
    text near its boundary, so a conversation's earlier windows come from the analyzer's cache and
    a new turn costs one new window. A value over several short fields is seen whole by each window
    that holds it; the merge of the pieces removes the repeats."""
    parts: _Parts = []
    pos = 0
    for i, f in enumerate(fields):
        if f.kind in _PROSE and f.text:
            parts.append((i, pos, pos + len(f.text)))
            pos += len(f.text)
    if len(parts) < 2:
        return parts, []
    joined = "".join(fields[i].text for i, _, _ in parts)
    starts = [max(b - WINDOW, 0) for _, b, _ in parts[1:]]
    return parts, [(a, joined[a : b + WINDOW]) for a, (_, b, _) in zip(starts, parts[1:], strict=True)]


def _inspection(
    fields: list[TextField],
    entities: list[list[Entity]],
    parts: _Parts,
    windows: _Windows,
    found: list[list[Entity]],
) -> Inspection:
    """Add the pieces of every value found across a field boundary to the fields they cover."""
    inspection = Inspection(fields, entities)
    added: dict[int, list[Entity]] = defaultdict(list)
    for (offset, _), ents in zip(windows, found, strict=True):
        for e in ents:
            start, end = offset + e.start, offset + e.end
            covered = [(i, a, z) for i, a, z in parts if a < end and start < z]
            if len(covered) < 2:
                continue  # inside one field: that field's own scan decides
            pieces = [Entity(e.type, max(start, a) - a, min(end, z) - a, e.score) for i, a, z in covered]
            for k, ((i, _, _), piece) in enumerate(zip(covered, pieces, strict=True)):
                added[i].append(piece)
                if k:
                    inspection.continued.add((i, piece.start))
            inspection.joined.add(
                "".join(_decoded(fields[i], p) for (i, _, _), p in zip(covered, pieces, strict=True))
            )
    if added:
        for i, pieces in added.items():
            inspection.entities[i] = resolve_overlaps([*entities[i], *set(pieces)])
    return inspection


def transform_request(
    body: dict[str, Any], inspection: Inspection, policy: PiiPolicy, zone: Zone, vault: Vault | None = None
) -> Transformed:
    """Raises PiiBlockedError (naming types only) when any detected type's treatment is `block`.
    Detections below the zone's threshold are left alone (the recall-first zone's lower ones apply
    to external backends only)."""
    inspection = for_zone(inspection, policy, zone)
    blocked = sorted({t for t in inspection.types if policy.treatment.for_entity(zone, t) == "block"})
    if blocked:
        raise PiiBlockedError(blocked)
    vault = vault if vault is not None else Vault([f.text for f in inspection.fields])
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    texts = []
    for f, ents in zip(inspection.fields, inspection.entities, strict=True):
        text, applied = scrub_text(f.text, ents, policy, zone, vault, is_json=f.is_json)
        if f.kind == "name" and text != f.text:
            # `name` must match ^[a-zA-Z0-9_-]{1,64}$ upstream: `<PERSON_1>` goes as `PERSON_1`.
            text = _NAME_UNSAFE.sub("_", text.translate(_BRACKETS))[:64]
        texts.append(text)
        for entity_type, treatment in applied:
            counts[entity_type][treatment] += 1
    return Transformed(
        apply_texts(body, inspection.fields, texts), vault, {k: dict(v) for k, v in counts.items()}
    )


def for_zone(inspection: Inspection, policy: PiiPolicy, zone: Zone) -> Inspection:
    """The inspection with only the detections that reach `zone`'s thresholds."""
    if not policy.recall_first or zone == "external":
        return inspection  # the analyzer kept nothing below the external zone's thresholds
    kept = [[e for e in ents if e.score >= policy.zone_threshold(e.type, zone)] for ents in inspection.entities]
    return Inspection(inspection.fields, kept, inspection.continued, inspection.joined)


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
