"""The pipeline's PII stages: inspect (find), transform (treat per trust zone), restore (put the
originals back into the answer, streams included) and output scanning, around the engine in
`gateway/pii/`.

Fail closed: when analysis fails or times out, nothing reaches an external backend. The policy
chooses whether the request then fails (503) or may go to an internal backend only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from adapters.litellm_adapter import gateway_fetches_links
from gateway.errors import APIError
from gateway.pii.config import PiiPolicy
from gateway.pii.entities import PiiAnalysisError, PiiBlockedError, PiiOutputBlockedError
from gateway.pii.fields import TextField, extract_texts, media_parts
from gateway.pii.outputscan import ascan_output
from gateway.pii.restore import StreamRestorer, restore_response
from gateway.pii.transform import Inspection, Transformed, for_zone, inspect_request, transform_request
from gateway.pii.vault import Vault
from gateway.policy import Backend, Policy
from gateway.request import ModelRequest, Texts

log = logging.getLogger("bulkhead.pii")


@dataclass
class PrivacyPlan:
    """One request's PII state: what was found, each trust zone's treatment of it, what the answer
    leaked. Lives only as long as the request; the vault with it."""

    policy: PiiPolicy
    body: dict[str, Any]
    inspection: Inspection | None = None
    failure: str | None = None
    by_zone: dict[str, Transformed] = field(default_factory=dict)
    leaked: dict[str, int] = field(default_factory=dict)
    output_scan_failed: bool = False
    inline_media: int = 0  # inline images, audio and files: bytes the analyzer cannot read
    image_links: int = 0
    # A treatment after the PII one for every body the request sends (gateway/spotlight.py), set by
    # the pipeline; its result is kept per zone, so retries, fallbacks and escalations send the same.
    spotlight: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    spotlit: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def detected(self) -> dict[str, int]:
        """Entity counts at the policy's own thresholds: the recall-first zone's weaker spans are
        treated on the way out but are no evidence for the risk tier or the audit's count."""
        if self.inspection is None:
            return {}
        return for_zone(self.inspection, self.policy, "internal").counts()

    @property
    def held_inside(self) -> bool:
        """Content that may not cross the trust boundary unread: the risk stage keeps it internal."""
        return self.failed or (self.inline_media > 0 and self.policy.media.inline == "internal")

    def outbound(self, backend: Backend) -> dict[str, Any]:
        """The body as it is sent to this backend: its zone's PII treatment, then spotlighting."""
        body = self.treated(backend)
        if self.spotlight is None:
            return body
        if backend.trust not in self.spotlit:
            self.spotlit[backend.trust] = self.spotlight(body)
        return self.spotlit[backend.trust]

    def treated(self, backend: Backend) -> dict[str, Any]:
        """The body as it may be sent to this backend's trust zone."""
        zone = backend.trust
        if self.failed:
            if zone == "external" or self.policy.on_error == "fail":
                raise APIError(503, "The request could not be checked for personal data, so it was not sent. "
                               "Retry later.", "pii_analysis_failed")
            return self.body  # on_error: internal, and this backend is inside the trust boundary
        self.check_media(backend)
        if self.inspection is None:
            return self.body
        if zone not in self.by_zone:
            try:
                self.by_zone[zone] = transform_request(self.body, self.inspection, self.policy, zone)
            except PiiBlockedError as exc:
                raise APIError(400, str(exc), "pii_blocked") from None
        return self.by_zone[zone].body

    def check_media(self, backend: Backend) -> None:
        """Refuse content this backend may not receive under `pii.media` (400/403, never sent)."""
        if not self.policy.enabled:
            return
        if self.inline_media and backend.trust == "external" and self.policy.media.inline != "allow":
            raise APIError(403, "The request carries inline images, audio or files, which cannot be checked for "
                           "personal data; this tenant's policy keeps them inside the trust boundary.",
                           "inline_media_not_allowed")
        links = self.policy.media.links
        if self.image_links and (links == "refuse" or links == "provider" and gateway_fetches_links(backend)):
            raise APIError(400, f"The backend '{backend.name}' would have the gateway fetch image links itself; "
                           "this tenant's policy does not allow that. Send the image inline instead.",
                           "image_links_not_allowed")

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
            out["detected"] = self.detected()
        if backend is not None and backend.trust in self.by_zone:
            out["treatment"] = self.by_zone[backend.trust].counts
            out["zone"] = backend.trust
        if self.failed:
            out["analysis"] = self.failure
        if self.leaked:
            out["leaked"] = self.leaked
        if self.output_scan_failed:
            out["output_scan"] = "error"
        if self.inline_media:
            out["inline_media"] = self.inline_media
        return out

    def scrubbed(self, answer: str | None) -> dict | None:
        """The request as an external backend would see it (placeholders for what the policy
        protects) and the answer with the same values replaced; nothing when it was never analysed."""
        if self.inspection is None:
            return None
        try:
            external = transform_request(self.body, self.inspection, self.policy, "external")
        except Exception:  # a `block` treatment: there is no scrubbed form to keep
            return None
        out: dict[str, Any] = {"messages": Texts.of(external.body).per_message}
        if answer is not None:
            vault = external.vault
            for value in sorted(vault.values() if vault else (), key=len, reverse=True):
                answer = answer.replace(value, vault.placeholder("X", value))
            out["answer"] = answer
        return out


def _analyzer(policy: PiiPolicy):
    # Imported on first use: Presidio, spaCy and transformers take seconds to import, which a
    # gateway whose policies turn PII inspection off should not pay at start-up.
    from gateway.pii.analyzer import analyzer_for

    return analyzer_for(policy)


async def inspect(policy: PiiPolicy, body: dict[str, Any], *, large: bool = False) -> PrivacyPlan:
    """`large`: a body big enough that walking it belongs off the event loop."""
    state = PrivacyPlan(policy, body)
    # Also where inspection is off: the risk stage reads the same texts.
    fields = await asyncio.to_thread(_checked_texts, policy, body) if large else _checked_texts(policy, body)
    if not policy.enabled:
        return state
    state.inline_media, state.image_links = media_parts(body)
    if state.inline_media and policy.media.inline == "refuse":
        raise APIError(400, "Inline images, audio and files are not accepted by this tenant's policy.",
                       "inline_media_not_allowed")
    try:
        state.inspection = await inspect_request(body, _analyzer(policy), timeout=policy.timeout_s, fields=fields)
    except PiiAnalysisError as exc:
        state.failure = "timeout" if exc.timeout else "error"
        log.warning("PII analysis %s; the request is held inside the trust boundary", state.failure)
    return state


async def inspect_model_request(policy: Policy, request: ModelRequest) -> PrivacyPlan:
    """The inspect stage of a model request (the gateway's and `policy explain`'s): its body
    inspected, and media that the backend the client named may not receive refused now, since
    with substitution off "no allowed backend" later would hide why."""
    privacy = await inspect(policy.pii, request.body, large=request.large)
    named = policy.backend(request.model)
    if named is not None and not policy.routing.substitute_named:
        privacy.check_media(named)
    return privacy


def _checked_texts(policy: PiiPolicy, body: dict[str, Any]) -> list[TextField]:
    """The body's texts, once they are known to be few and short enough to analyse: the analysis
    is bounded before it starts, since a request too big to analyse in time would only fail closed
    after holding a worker for `timeout_s`."""
    fields = extract_texts(body)
    if len(fields) > policy.max_fields:
        raise APIError(413, f"The request has {len(fields)} texts to inspect; the limit is {policy.max_fields}.",
                       "too_many_texts")
    chars = sum(len(f.text) for f in fields)
    if chars > policy.max_chars:
        raise APIError(413, f"The request has {chars} characters of text; the limit is {policy.max_chars}.",
                       "request_too_long")
    return fields


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


async def scan_answer(state: PrivacyPlan, body: dict[str, Any], *, can_change: bool = True) -> dict[str, Any]:
    """PII in the (restored) answer that the request did not contain: redact, flag or block, as the
    policy says. A stream can only be recorded (`can_change=False`): it has already been sent."""
    if not state.policy.enabled or not state.policy.output_scan.enabled or state.inspection is None:
        return body
    texts = answer_texts(body)
    if not texts:
        return body
    try:
        scan = await ascan_output(texts, state.inspection.values(), _analyzer(state.policy),
                                  timeout=state.policy.timeout_s,
                                  request_texts=[f.text for f in state.inspection.fields])
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


def answer_text(body: dict[str, Any]) -> str:
    """The first choice's text: what the checks verify and the audit's answer HMAC covers."""
    texts = answer_texts(body)
    return texts[0] if texts else ""
