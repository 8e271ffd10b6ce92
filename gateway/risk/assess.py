"""The risk stage: signals in, one tier and one action out, with the reasons that got there.

    engine = get_engine()              # at startup: loads the injection model (the embedder on first use)
    result = engine.assess(texts.scored, pii_counts, secrets, data_class, policy.risk)

Tiers only ever go up: each signal, each rule and the declared data class can raise the tier, none can
lower it. The action is the strictest of the tier's action and any action a matched rule names.
`signals` carries counts and scores only, never text, so it can go to the audit log as it is; so do
`blocked_by`'s triggers (which signal made the action `block`, and which policy setting decides it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gateway.request import SUPPLIED_ROLES
from gateway.risk.config import (
    DATA_CLASSES,
    TIERS,
    Action,
    RiskPolicy,
    Tier,
    action_rank,
    tier_rank,
)
from gateway.risk.domains import DomainHead, DomainScorer
from gateway.risk.embeddings import Embedder, get_embedder
from gateway.risk.injection import InjectionDetector
from gateway.risk.prepare import prepare

log = logging.getLogger("bulkhead.models")


class DataClassError(ValueError):
    """The request declared a data class the policy does not know (map to HTTP 400)."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """One signal that raised the tier or named an action, in words a refusal can carry: what was
    found (a type, a score, a name; never a value) and the policy setting that decides it."""

    signal: str  # secrets, injection, pii:TYPE, pii:bulk, domain:NAME, data_class:CLASS, rule:NAME
    found: str
    setting: str


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    tier: Tier
    action: Action
    signals: dict[str, object]
    injection_score: float
    domains: list[str]
    reasons: list[str] = field(default_factory=list)
    blocked_by: list[Trigger] = field(default_factory=list)  # empty unless the action is `block`


class _Verdict:
    """Accumulates the tier and action as signals are considered, remembering why."""

    def __init__(self, policy: RiskPolicy) -> None:
        self.policy = policy
        self.tier: Tier = "low"
        self.actions: list[Action] = []
        self.reasons: list[str] = []
        self.triggers: list[tuple[Tier, Action | None, Trigger]] = []

    def raise_to(self, tier: Tier, why: str, action: Action | None = None, trigger: Trigger | None = None) -> None:
        if tier_rank(tier) > tier_rank(self.tier):
            self.tier = tier
        if action is not None:
            self.actions.append(action)
        self.reasons.append(f"{why} -> {tier}" + (f", {action}" if action else ""))
        if trigger is not None:
            self.triggers.append((tier, action, trigger))

    def action(self) -> Action:
        return max([self.policy.tier_actions[self.tier], *self.actions], key=action_rank)

    def blocked_by(self) -> list[Trigger]:
        """The signals that make the action `block`: those that name it, and, where the final tier's
        own action is `block`, those that raised the request to that tier."""
        if self.action() != "block":
            return []
        tier_blocks = self.policy.tier_actions[self.tier] == "block"
        out: list[Trigger] = []
        for tier, action, trigger in self.triggers:
            if action == "block":
                out.append(trigger)
            elif tier_blocks and tier == self.tier:
                out.append(Trigger(trigger.signal, trigger.found,
                                   f"{trigger.setting} and risk.tier_actions.{tier}"))
        return out


class RiskEngine:
    """Holds the detectors (and through them the embedded exemplars). Thread-safe; build one per process."""

    def __init__(self, embedder: Embedder | None = None) -> None:
        self._embedder = embedder
        self._domains: dict[bool, DomainScorer] = {}
        # The committed head loads now (a small file): missing or corrupt, the engine cannot be built,
        # and the error names the file and the script that rebuilds it.
        self._injection = InjectionDetector()
        self._domain_head = DomainHead.load()
        self._lock = threading.Lock()
        for name, meta in (("injection", self._injection.head.meta), ("domain", self._domain_head.meta)):
            fitted = meta.get("embedder_precision", "fp32")
            if fitted != self.embedder.precision:
                # A head's operating point was chosen on `fitted` vectors; other vectors move its scores.
                log.warning("the %s model was fitted on %s sentence embeddings, the embedder runs %s "
                            "(BULKHEAD_EMBEDDER_PRECISION): its false-positive rate there is not measured",
                            name, fitted, self.embedder.precision)

    def _detectors(self, use_embeddings: bool) -> tuple[DomainScorer, InjectionDetector]:
        with self._lock:
            if use_embeddings not in self._domains:
                embedder = self.embedder if use_embeddings else None
                self._domains[use_embeddings] = DomainScorer(embedder, self._domain_head)
            return self._domains[use_embeddings], self._injection

    @property
    def embedder(self) -> Embedder:
        return self._embedder or get_embedder()

    def warm_up(self, policy: RiskPolicy | None = None) -> None:
        """Load the embedder and embed the domain exemplars now rather than on the first request."""
        policy = policy or RiskPolicy()
        self.assess(["warm up"], {}, 0, None, policy)

    def assess(
        self,
        texts: Sequence[str | tuple[str, str, str]],
        pii_counts: Mapping[str, int],
        secrets: int,
        data_class: str | None,
        policy: RiskPolicy,
    ) -> RiskAssessment:
        """`texts`: `(role, where, text)` (`Texts.scored`), or plain strings read as user text."""
        verdict = _Verdict(policy)
        declared = _declared_class(data_class, policy, verdict)

        items = [t if isinstance(t, tuple) else ("user", f"text {i + 1}", t) for i, t in enumerate(texts)]
        items = [t for t in items if t[2] and t[2].strip()]
        inject = policy.injection
        for_injection = [t for t in items if inject.enabled and t[0] in inject.roles]
        for_domains = [t for t in items if t[0] in SUPPLIED_ROLES]
        domain_scorer, injection = self._detectors(policy.embeddings.enabled)
        # One embedding pass for both detectors: the injection head always reads embeddings; the
        # domain scorer only when the policy keeps them on (else its lexicons alone).
        embedded = for_injection + [t for t in for_domains if policy.embeddings.enabled and t not in for_injection]
        vectors = prepare([(role, text) for role, _, text in embedded], self.embedder if embedded else None,
                          max_chunks=policy.embeddings.max_chunks)
        prepared = dict(zip(embedded, vectors, strict=True))
        lexical = [t for t in for_domains if t not in prepared]
        prepared |= dict(zip(lexical, prepare([(role, text) for role, _, text in lexical], None), strict=True))

        present: set[str] = set()
        pii = {k: int(v) for k, v in sorted(pii_counts.items()) if v > 0}
        for entity, count in pii.items():
            present.add(f"pii:{entity}")
            listed = entity in policy.pii.entities
            tier = policy.pii.entities[entity] if listed else policy.pii.default_tier
            setting = f"risk.pii.entities.{entity}" if listed else "risk.pii.default_tier"
            verdict.raise_to(tier, f"pii {entity} x{count}",
                             trigger=Trigger(f"pii:{entity}", f"personal data of type {entity} (x{count})", setting))
        total = sum(pii.values())
        if total:
            present.add("pii:any")
        if total >= policy.pii.bulk_count:
            verdict.raise_to(policy.pii.bulk_tier, f"{total} PII entities (bulk >= {policy.pii.bulk_count})",
                             trigger=Trigger("pii:bulk", f"{total} PII entities in one request (bulk from "
                                             f"{policy.pii.bulk_count})", "risk.pii.bulk_count, risk.pii.bulk_tier"))

        if secrets > 0:
            present.add("secrets")
            found = "a secret was found" if secrets == 1 else f"{secrets} secrets were found"
            verdict.raise_to(policy.secrets.tier, f"{secrets} secret(s)", policy.secrets.action,
                             Trigger("secrets", found, "risk.secrets.action"))

        domain_texts = [prepared[t] for t in for_domains]
        scores = domain_scorer.score(domain_texts) if domain_texts else {}
        domains: list[str] = []
        for name, score in scores.items():
            rule = policy.domains.get(name)  # type: ignore[call-overload]
            if rule is None or not rule.enabled or score < rule.threshold:
                continue
            domains.append(name)
            present.add(f"domain:{name}")
            verdict.raise_to(rule.tier, f"domain {name} {score:.2f} >= {rule.threshold:.2f}", rule.action,
                             Trigger(f"domain:{name}", f"{name} content (score {score:.2f} >= {rule.threshold:.2f})",
                                     f"risk.domains.{name}"))

        scored = sorted(((injection.score(prepared[t]), t[1]) for t in for_injection), reverse=True)
        injection_score, where = scored[0] if scored else (0.0, "")
        if inject.enabled and injection_score >= inject.threshold:
            present.add("injection")
            found = f"prompt injection score {injection_score:.2f} >= {inject.threshold:.2f} in {where}"
            verdict.raise_to(inject.tier, f"injection in {where} {injection_score:.2f} >= {inject.threshold:.2f}",
                             inject.action,
                             Trigger("injection", found, "risk.injection.threshold, risk.injection.action"))

        if declared is not None:
            present.add(f"data_class:{declared}")
            header = policy.data_class.header
            verdict.raise_to(policy.data_class.tiers[declared], f"declared data class {declared}",
                             trigger=Trigger(f"data_class:{declared}", f"declared data class '{declared}' ({header})",
                                             f"risk.data_class.tiers.{declared}"))

        for rule in policy.rules:
            if all(s in present for s in rule.when):
                found = f"the policy's rule '{rule.name}' ({', '.join(rule.when)})"
                verdict.raise_to(rule.tier, f"rule {rule.name!r}", rule.action,
                                 Trigger(f"rule:{rule.name}", found, f"risk.rules['{rule.name}']"))

        signals: dict[str, object] = {
            "pii": pii,
            "pii_total": total,
            "secrets": int(secrets),
            "domains": {k: round(v, 3) for k, v in scores.items()},
            "injection": round(injection_score, 3),
            # where each scored text stands (its role and position, never its content), most suspicious first
            "injection_by_text": {w: round(score, 3) for score, w in scored[:8]},
            "data_class": declared,
        }
        return RiskAssessment(
            tier=verdict.tier,
            action=verdict.action(),
            signals=signals,
            injection_score=round(injection_score, 4),
            domains=domains,
            reasons=verdict.reasons,
            blocked_by=verdict.blocked_by(),
        )


def _declared_class(value: str | None, policy: RiskPolicy, verdict: _Verdict) -> str | None:
    rule = policy.data_class
    if value is None or not value.strip():
        return rule.default
    name = value.strip().lower()
    if name in DATA_CLASSES:
        return name
    if rule.on_unknown == "reject":
        raise DataClassError(f"unknown data class; expected one of {', '.join(DATA_CLASSES)}")
    verdict.reasons.append("unknown data class treated as restricted")
    return "restricted"


_engine: RiskEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> RiskEngine:
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = RiskEngine()
    return _engine


def assess(
    texts: list[str],
    pii_counts: dict[str, int],
    secrets: int,
    data_class: str | None,
    policy: RiskPolicy,
) -> RiskAssessment:
    """The risk stage with the process-wide engine (see `RiskEngine.assess`)."""
    return get_engine().assess(texts, pii_counts, secrets, data_class, policy)


__all__ = ["TIERS", "DataClassError", "RiskAssessment", "RiskEngine", "Trigger", "assess", "get_engine"]
