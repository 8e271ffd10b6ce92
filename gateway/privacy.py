"""The pipeline's PII stages: inspect (find), transform (treat per trust zone), restore (put the
originals back into the answer, streams included) and output scanning, around the engine in
`gateway/pii/`.

Fail closed: when analysis fails or times out, nothing reaches an external backend. The policy
chooses whether the request then fails (503) or may go to an internal backend only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import APIError
from gateway.pii.config import PiiPolicy
from gateway.pii.entities import PiiAnalysisError, PiiBlockedError, PiiOutputBlockedError
from gateway.pii.outputscan import ascan_output
from gateway.pii.restore import StreamRestorer, restore_response
from gateway.pii.transform import Inspection, Transformed, inspect_request, transform_request
from gateway.pii.vault import Vault
from gateway.policy import Backend

log = logging.getLogger("bulkhead.pii")


@dataclass
class Privacy:
    """One request's PII state. Lives only as long as the request; the vault with it."""

    policy: PiiPolicy
    body: dict[str, Any]
    inspection: Inspection | None = None
    failure: str | None = None
    by_zone: dict[str, Transformed] = field(default_factory=dict)
    leaked: dict[str, int] = field(default_factory=dict)
    output_scan_failed: bool = False

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def outbound(self, backend: Backend) -> dict[str, Any]:
        """The body as it may be sent to this backend's trust zone."""
        zone = backend.trust
        if self.failed:
            if zone == "external" or self.policy.on_error == "fail":
                raise APIError(503, "The request could not be checked for personal data, so it was not sent. "
                               "Retry later.", "pii_analysis_failed")
            return self.body  # on_error: internal, and this backend is inside the trust boundary
        if self.inspection is None:
            return self.body
        if zone not in self.by_zone:
            try:
                self.by_zone[zone] = transform_request(self.body, self.inspection, self.policy, zone)
            except PiiBlockedError as exc:
                raise APIError(400, str(exc), "pii_blocked") from None
        return self.by_zone[zone].body

    def vault(self, backend: Backend) -> Vault | None:
        t = self.by_zone.get(backend.trust)
        return t.vault if t is not None and t.vault else None

    def restore(self, backend: Backend, body: dict[str, Any]) -> dict[str, Any]:
        vault = self.vault(backend)
        return restore_response(body, vault) if vault is not None else body

    def stream_restorer(self, backend: Backend) -> StreamRestorer | None:
        vault = self.vault(backend)
        return StreamRestorer(vault) if vault is not None else None

    def audit(self, backend: Backend | None) -> dict[str, Any] | None:
        if self.inspection is None and not self.failed:
            return None
        out: dict[str, Any] = {}
        if self.inspection is not None:
            out["detected"] = self.inspection.counts()
        if backend is not None and backend.trust in self.by_zone:
            out["treatment"] = self.by_zone[backend.trust].counts
            out["zone"] = backend.trust
        if self.failed:
            out["analysis"] = self.failure
        if self.leaked:
            out["leaked"] = self.leaked
        if self.output_scan_failed:
            out["output_scan"] = "error"
        return out


def _analyzer(policy: PiiPolicy):
    # Imported on first use: Presidio, spaCy and transformers take seconds to import, which a
    # gateway whose policies turn PII inspection off should not pay at start-up.
    from gateway.pii.analyzer import analyzer_for

    return analyzer_for(policy)


async def inspect(policy: PiiPolicy, body: dict[str, Any]) -> Privacy:
    state = Privacy(policy, body)
    if not policy.enabled:
        return state
    try:
        state.inspection = await inspect_request(body, _analyzer(policy), timeout=policy.timeout_s)
    except PiiAnalysisError as exc:
        state.failure = "timeout" if exc.timeout else "error"
        log.warning("PII analysis %s; the request is held inside the trust boundary", state.failure)
    return state


def answer_texts(body: dict[str, Any]) -> list[str]:
    texts = []
    for choice in body.get("choices") or []:
        if not isinstance(choice, dict):
            continue
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            texts.append(message["content"])
        elif isinstance(choice.get("text"), str):
            texts.append(choice["text"])
    return texts


def _set_answer_texts(body: dict[str, Any], texts: list[str]) -> dict[str, Any]:
    out, it = dict(body), iter(texts)
    out["choices"] = []
    for choice in body.get("choices") or []:
        choice = dict(choice)
        message = choice.get("message")
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            choice["message"] = {**message, "content": next(it)}
        elif isinstance(choice.get("text"), str):
            choice["text"] = next(it)
        out["choices"].append(choice)
    return out


async def scan_answer(state: Privacy, body: dict[str, Any], *, can_change: bool = True) -> dict[str, Any]:
    """PII in the (restored) answer that the request did not contain: redact, flag or block, as the
    policy says. A stream can only be recorded (`can_change=False`): it has already been sent."""
    if not state.policy.enabled or not state.policy.output_scan.enabled or state.inspection is None:
        return body
    texts = answer_texts(body)
    if not texts:
        return body
    try:
        scan = await ascan_output(texts, state.inspection.values(), _analyzer(state.policy),
                                  timeout=state.policy.timeout_s)
    except PiiOutputBlockedError as exc:
        state.leaked = dict.fromkeys(exc.entity_types, 1)
        if can_change:
            raise APIError(502, str(exc), "answer_blocked") from None
        return body
    except PiiAnalysisError:
        state.output_scan_failed = True  # recorded as not scanned; the answer itself is not withheld
        return body
    state.leaked = scan.leaked
    if can_change and scan.action == "redact" and scan.leaked:
        return _set_answer_texts(body, scan.texts)
    return body
