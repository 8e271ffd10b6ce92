"""The pipeline's risk stage: the request's texts, the PII stage's counts and the caller's declared
data class in; one tier and action out (gateway/risk/ does the scoring). The embedding model runs
off the event loop."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.errors import APIError
from gateway.pii.stage import Privacy
from gateway.risk.assess import DataClassError, get_engine
from gateway.risk.config import TIERS, RiskPolicy
from gateway.routing import Risk


def risk_texts(body: dict[str, Any]) -> list[str]:
    """What the caller supplied: user and tool messages, prompts, inputs. The app's own system
    prompt is its instructions, not the user's data, and would flag every request alike."""
    texts: list[str] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict) or message.get("role") not in ("user", "tool", "function"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    for key in ("prompt", "input"):
        value = body.get(key)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts += [v for v in value if isinstance(v, str)]
    return texts


async def assess_risk(policy: RiskPolicy, body: dict[str, Any], privacy: Privacy, headers) -> tuple[Risk, dict]:
    counts = dict(privacy.inspection.counts()) if privacy.inspection is not None else {}
    secrets = counts.pop("SECRET", 0)
    declared = headers.get(policy.data_class.header)
    try:
        scoring = asyncio.to_thread(get_engine().assess, risk_texts(body), counts, secrets, declared, policy)
        result = await asyncio.wait_for(scoring, policy.timeout_s)
    except DataClassError as exc:
        raise APIError(400, str(exc), "invalid_data_class", param=policy.data_class.header) from None
    except TimeoutError:
        # Unscored is not low risk: the request may still be answered, but only inside the boundary.
        record = {"tier": "high", "action": "require_internal", "signals": {"timeout": True}, "injection_score": None,
                  "domains": [], "reasons": [f"risk scoring took longer than {policy.timeout_s} s"]}
        return Risk("high", "require_internal"), record
    tier, action = result.tier, result.action
    if privacy.held_inside:
        # Unanalysed text (or unreadable media) may contain anything: it stays inside the trust boundary.
        tier = max(tier, "high", key=TIERS.index)
        action = "block" if action == "block" else "require_internal"
    record = {"tier": tier, "action": action, "signals": result.signals, "injection_score": result.injection_score,
              "domains": result.domains, "reasons": result.reasons}
    return Risk(tier, action), record
