"""The pipeline's risk stage: the caller's texts, the PII stage's counts and the declared data
class in; one tier and action out (gateway/risk/ does the scoring). The embedding model runs off
the event loop, under the policy's time limit."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import APIError
from gateway.pii.secrets import SECRET, find_secrets
from gateway.pii.stage import PrivacyPlan
from gateway.pii.transform import Inspection
from gateway.request import Texts
from gateway.risk.assess import DataClassError, Trigger, get_engine
from gateway.risk.config import TIERS, RiskPolicy
from gateway.routing import Risk

# What the client can change about a request that one signal blocks; the policy setting is the
# other way (Trigger.setting). Never a value: a type, a score, a name.
_REMEDY = {
    "secrets": "remove the secret from the request (send a reference or a placeholder instead)",
    "injection": "remove the text that gives the model or the gateway instructions",
    "pii": "remove or mask that data",
    "pii:bulk": "send fewer records per request",
    "domain": "this tenant's policy does not send such content to any backend",
    "data_class": "this tenant's policy serves no request of that class",
    "rule": "this tenant's policy does not send such requests to any backend",
}


@dataclass(frozen=True, slots=True)
class RiskAssessment(Risk):
    """The tier and action routing acts on, and why, for the audit record."""

    signals: dict[str, Any] = field(default_factory=dict)
    injection_score: float | None = None
    domains: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    blocked_by: tuple[Trigger, ...] = ()

    def record(self) -> dict[str, Any]:
        return {"tier": self.tier, "action": self.action, "signals": self.signals,
                "injection_score": self.injection_score, "domains": self.domains, "reasons": self.reasons}

    def blocked_because(self) -> str:
        """`a secret (GITHUB_TOKEN) was found; to send it, remove the secret (...), or an
        administrator changes risk.secrets.action`: each blocking signal, what to change."""
        parts = []
        for t in self.blocked_by:
            remedy = _REMEDY.get(t.signal) or _REMEDY.get(t.signal.partition(":")[0])
            if remedy is None:
                parts.append(t.found)
            elif remedy.startswith(("remove", "send")):
                parts.append(f"{t.found}; to send it, {remedy}, or an administrator changes {t.setting}")
            else:
                parts.append(f"{t.found}; {remedy} (policy setting {t.setting})")
        return "; ".join(parts) + ("." if parts else "")


async def assess_risk(policy: RiskPolicy, texts: Texts, privacy: PrivacyPlan, declared: str | None) -> RiskAssessment:
    """`declared`: the data class the caller named in the policy's header, if any."""
    counts = privacy.detected()
    secrets = counts.pop("SECRET", 0)
    try:
        scoring = asyncio.to_thread(get_engine().assess, texts.scored, counts, secrets, declared, policy)
        result = await asyncio.wait_for(scoring, policy.timeout_s)
    except DataClassError as exc:
        raise APIError(400, str(exc), "invalid_data_class", param=policy.data_class.header) from None
    except TimeoutError:
        # Unscored is not low risk: the request may still be answered, but only inside the boundary.
        return RiskAssessment("high", "require_internal", signals={"timeout": True},
                              reasons=[f"risk scoring took longer than {policy.timeout_s} s"])
    tier, action = result.tier, result.action
    if privacy.held_inside:
        # Unanalysed text (or unreadable media) may contain anything: it stays inside the trust boundary.
        tier = max(tier, "high", key=TIERS.index)
        action = "block" if action == "block" else "require_internal"
    blocked_by = tuple(result.blocked_by)
    if secrets and any(t.signal == "secrets" for t in blocked_by):
        kinds = secret_kinds(privacy.inspection)
        blocked_by = tuple(_with_kinds(t, kinds, secrets) if t.signal == "secrets" else t for t in blocked_by)
    return RiskAssessment(tier, action, result.signals, result.injection_score, result.domains, result.reasons,
                          blocked_by)


def secret_kinds(inspection: Inspection | None) -> list[str]:
    """Which kinds of secret the PII stage found (`GITHUB_TOKEN`, `PASSWORD_ASSIGNMENT`): for each
    SECRET span, the best-scoring secret rule that matches it. Rule names only, never a value."""
    kinds: set[str] = set()
    if inspection is None:
        return []
    for text_field, entities in zip(inspection.fields, inspection.entities, strict=True):
        spans = [(e.start, e.end) for e in entities if e.type == SECRET]
        if not spans:
            continue
        found = find_secrets(text_field.text)
        for start, end in spans:
            overlapping = [(score, kind) for kind, s, e, score in found if s < end and start < e]
            if overlapping:
                kinds.add(max(overlapping)[1].upper())
    return sorted(kinds)


def _with_kinds(trigger: Trigger, kinds: list[str], count: int) -> Trigger:
    if not kinds:
        return trigger
    found = f"a secret ({kinds[0]}) was found" if count == 1 else f"{count} secrets ({', '.join(kinds)}) were found"
    return Trigger(trigger.signal, found, trigger.setting)
