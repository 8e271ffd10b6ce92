"""Output scanning: personal data in the model's answer that was not in the request.

A model can leak what it memorised or what it was given elsewhere (a system prompt, a tool
result). What the request itself contained (restored placeholders among it) is expected in the
answer and is not a leak. The policy's `output_scan.action` decides: `flag` (record counts),
`redact` (replace each leaked value with `[TYPE]`), `block` (refuse the answer).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gateway.pii.entities import Entity, PiiOutputBlockedError
from gateway.pii.normalize import fold

if TYPE_CHECKING:  # Presidio is imported only where a policy turns PII inspection on
    from gateway.pii.analyzer import PiiAnalyzer


@dataclass(slots=True)
class OutputScan:
    texts: list[str]  # the answer texts after the action (redacted where the action is redact)
    leaked: dict[str, int] = field(default_factory=dict)  # entity type -> occurrences; never values
    action: str = "flag"

    @property
    def leaked_total(self) -> int:
        return sum(self.leaked.values())


def _norm(value: str) -> str:
    # Folded (normalize.py): the answer may write a request's value without its hidden characters
    # or look-alike letters, and that is still the request's value, not a leak.
    return " ".join(fold(value).split()).casefold()


def find_leaks(
    texts: list[str], entities: list[list[Entity]], request_values: set[str], request_texts: Sequence[str] = ()
) -> list[list[Entity]]:
    """The answer's entities whose value the request did not hold: neither a value detected in the
    request nor, as whole words, anywhere in its texts. The second matters because the tagger reads
    words in their context: "maple river" can be a place in an answer that repeats the request and
    not in the request itself (33 of 300 echoed test prompts, 2026-12-06), and what the caller sent
    is not a leak however either reading went."""
    known = {_norm(v) for v in request_values}
    sent: list[str] = []  # the request's texts, folded once, and only when a value is not a known one

    def new(value: str) -> bool:
        v = _norm(value)
        if v in known:
            return False
        if not v:
            return True
        if not sent:
            sent.append(_norm("\n".join(request_texts)))
        return re.search(r"(?<!\w)" + re.escape(v) + r"(?!\w)", sent[0]) is None

    return [[e for e in ents if new(t[e.start : e.end])] for t, ents in zip(texts, entities, strict=True)]


def apply_action(texts: list[str], leaks: list[list[Entity]], action: str) -> OutputScan:
    counts = Counter(e.type for ents in leaks for e in ents)
    if counts and action == "block":
        raise PiiOutputBlockedError(sorted(counts), dict(counts))
    out = texts
    if action == "redact" and counts:
        out = []
        for text, ents in zip(texts, leaks, strict=True):
            for e in sorted(ents, key=lambda e: e.start, reverse=True):
                text = text[: e.start] + f"[{e.type}]" + text[e.end :]
            out.append(text)
    return OutputScan(out, dict(counts), action)


def scan_output(texts: list[str], request_values: set[str], analyzer: PiiAnalyzer,
                request_texts: Sequence[str] = ()) -> OutputScan:
    """Analyse answer texts (already restored) and apply the policy's output action."""
    scan = analyzer.policy.output_scan
    if not scan.enabled or not any(texts):
        return OutputScan(list(texts), {}, scan.action)
    leaks = find_leaks(texts, analyzer.analyze(texts), request_values, request_texts)
    return apply_action(list(texts), leaks, scan.action)


async def ascan_output(
    texts: list[str], request_values: set[str], analyzer: PiiAnalyzer, timeout: float | None = None,
    request_texts: Sequence[str] = (),
) -> OutputScan:
    scan = analyzer.policy.output_scan
    if not scan.enabled or not any(texts):
        return OutputScan(list(texts), {}, scan.action)
    leaks = find_leaks(texts, await analyzer.aanalyze(texts, timeout), request_values, request_texts)
    return apply_action(list(texts), leaks, scan.action)
