"""The `decide` stage: every request goes to the cheapest backend that is allowed for its risk and
good enough for its task, and the decision says why, backend by backend.

Allowed: the endpoint's mode, the tenant's access list, the key's allowlist, the risk action's trust
zone (`require_internal` admits internal backends only), the policy's regions, the context window,
and credentials: a backend whose `api_key_env` is unset is never a candidate (`unconfigured`).
Good enough: quality at least what the task's estimated difficulty asks for. Cheapest: expected
cost from the price map (or the policy's override), ties broken by observed latency. Fallbacks come
from the same allowed set only: nothing here can move a request across the trust boundary.

Sizes: difficulty, price tiers and the context window weigh the prompt (the window also the answer
the request asks for, when it names one); admission (gateway/limits.py) reserves the prompt plus
the most the answer may use, `ModelRequest.tokens`, a different number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from adapters.base import missing_credentials
from gateway import pricing
from gateway.auth import Principal
from gateway.errors import APIError
from gateway.policy import Backend, Policy
from gateway.request import ModelRequest, Texts


@dataclass(frozen=True, slots=True)
class Verdict:
    backend: str
    accepted: bool
    reason: str
    code: str = "accepted"
    expected_cost_usd: float | None = None


@dataclass(frozen=True, slots=True)
class RouteDecision:
    backend: Backend
    fallbacks: tuple[Backend, ...]
    verdicts: tuple[Verdict, ...]
    reason: str
    difficulty: int
    min_quality: int


@dataclass(frozen=True, slots=True)
class Risk:
    tier: str = "low"
    action: str = "allow"

    def blocked_because(self) -> str:
        """Which signal blocks the request and what would change that (never a value); the risk
        stage's assessment says, a bare tier cannot."""
        return ""


def visible_backends(policy: Policy, principal: Principal) -> list[Backend]:
    return [b for b in policy.backends if policy.tenant_may_use(b.name) and principal.may_use(b.name)]


_CODE = re.compile(r"```|\bdef |\bclass |\bfunction\b|#include|\bSELECT\b.+\bFROM\b|[{};]\s*\n", re.S)
_REASONING = re.compile(
    r"\b(step[- ]by[- ]step|prove|derive|explain why|trade-?offs?|analy[sz]e|compare|design|architecture|"
    r"optimi[sz]e|debug|refactor|plan|reason|evaluate|critique)\b", re.I)


def difficulty(body: dict, prompt_tokens: int, texts: Texts | None = None) -> int:
    """1 simple, 2 moderate, 3 hard: length, code, multi-step reasoning cues, a long conversation."""
    text = (texts or Texts.of(body)).joined
    score = 0
    score += 2 if prompt_tokens > 3000 else 1 if prompt_tokens > 600 else 0
    score += 2 if _CODE.search(text) else 0
    score += min(2, len(_REASONING.findall(text)))
    score += 1 if len(body.get("messages") or []) > 8 else 0
    score += 1 if body.get("tools") or (body.get("response_format") or {}).get("type") == "json_schema" else 0
    return 3 if score >= 3 else 2 if score >= 1 else 1


def _allowed(policy: Policy, principal: Principal, backend: Backend, mode: str, risk: Risk,
             window_tokens: int) -> Verdict | None:
    """The rejection that applies whatever the request asked for, or None. `window_tokens`: what
    must fit the context window (the prompt, and the answer when the request caps it)."""
    if mode not in backend.modes:
        return Verdict(backend.name, False, f"does not serve {mode}", "mode")
    if not policy.tenant_may_use(backend.name):
        return Verdict(backend.name, False, "the tenant's access list excludes it", "tenant_access")
    if not principal.may_use(backend.name):
        return Verdict(backend.name, False, "the key's model allowlist excludes it", "key_allowlist")
    if risk.action == "require_internal" and backend.trust != "internal":
        return Verdict(backend.name, False, f"risk tier {risk.tier} requires an internal backend", "trust")
    regions = policy.routing.regions
    if regions is not None and backend.region not in regions:
        return Verdict(backend.name, False, f"region {backend.region or 'unset'} is outside {regions}", "region")
    if backend.context_window and window_tokens > backend.context_window:
        return Verdict(backend.name, False, f"~{window_tokens} tokens exceed its context window "
                       f"({backend.context_window})", "context")
    return None


def _unconfigured(backend: Backend) -> Verdict | None:
    missing = missing_credentials(backend)
    if missing is None:
        return None
    return Verdict(backend.name, False, f"not configured: {missing} in the gateway's environment", "unconfigured")


def expected_cost(backend: Backend, prompt_tokens: int, completion_tokens: int) -> float:
    rate_in, rate_out = pricing.per_token_rates(backend, prompt_tokens)
    return prompt_tokens * rate_in + completion_tokens * rate_out


@dataclass
class _Evaluation:
    verdicts: list[Verdict]
    adequate: list[tuple[float, float, Backend]]
    alias: object | None
    named: Backend | None
    level: int
    min_quality: int


def _evaluate(policy: Policy, principal: Principal, request: ModelRequest, risk: Risk,
              latency_ms: dict[str, float], prompt_tokens: int) -> _Evaluation:
    routing, model, mode = policy.routing, request.model, request.mode
    alias = routing.aliases.get(model)
    named = policy.backend(model)
    level = difficulty(request.body, prompt_tokens, request.texts)
    min_quality = routing.min_quality[level] if alias is None else max(alias.min_quality, routing.min_quality[level])
    completion = request.max_completion_tokens or 512
    window = prompt_tokens + (request.max_completion_tokens or 0)
    out = _Evaluation([], [], alias, named, level, min_quality)
    for b in policy.backends:
        rejection = _allowed(policy, principal, b, mode, risk, window)
        cost = expected_cost(b, prompt_tokens, completion)
        if rejection is None and alias is None and b.name != model and not routing.substitute_named:
            rejection = Verdict(b.name, False, "not the requested model (substitution is off)", "not_requested")
        if rejection is None and (alias is not None or b.name != model) and b.quality < min_quality:
            rejection = Verdict(b.name, False, f"quality {b.quality} below the {min_quality} this task needs",
                                "quality")
        # Last, so that `unconfigured` means "would otherwise have been a candidate": the refusal
        # can then say which variable would make the request servable.
        rejection = rejection or _unconfigured(b)
        if rejection is not None:
            out.verdicts.append(Verdict(rejection.backend, False, rejection.reason, rejection.code, cost))
            continue
        out.adequate.append((cost, latency_ms.get(b.name, float("inf")), b))
        out.verdicts.append(Verdict(b.name, True, "allowed", "accepted", cost))
    return out


def decide(policy: Policy, principal: Principal, request: ModelRequest, risk: Risk = Risk(),
           latency_ms: dict[str, float] | None = None, *, tokens: int | None = None) -> RouteDecision:
    """`latency_ms`: observed latency per backend, the tie-break between equally cheap ones.
    `tokens`: the prompt size routing weighs for difficulty, price tier and context window (by
    default the request's prompt estimate; not the admission estimate, which adds the most the
    answer may use: a "Hello" without `max_tokens` is a simple task)."""
    if risk.action == "block":
        why = risk.blocked_because()
        raise APIError(403, f"The policy blocks this request (risk tier {risk.tier})" + (f": {why}" if why else ".")
                       + " It was not sent anywhere.", "request_blocked")
    model = request.model
    prompt = request.texts.prompt_tokens if tokens is None else tokens
    ev = _evaluate(policy, principal, request, risk, latency_ms or {}, prompt)
    if ev.alias is None and ev.named is None:
        raise APIError(404, f"The model '{model}' does not exist or you do not have access to it.",
                       "model_not_found", param="model")
    named = ev.named
    if ev.alias is None and named is not None and any(b is named for _, _, b in ev.adequate):
        # The app named a model it may use: it gets that model; substitutes only as fallbacks.
        others = sorted(((c, lat, b) for c, lat, b in ev.adequate if b is not named and b.quality >= named.quality),
                        key=lambda t: (t[0], t[1]))
        ordered = [named, *(b for _, _, b in others)]
        reason = "requested by name"
    else:
        if not ev.adequate:
            _refuse(ev.verdicts, model, risk)
        ordered = [b for _, _, b in sorted(ev.adequate, key=lambda t: (t[0], t[1]))]
        target = f"alias {model}" if ev.alias else f"a substitute for {model}"
        reason = f"cheapest adequate backend for {target} (difficulty {ev.level}, quality >= {ev.min_quality})"
    return RouteDecision(ordered[0], tuple(ordered[1:]), tuple(ev.verdicts), reason, ev.level, ev.min_quality)


def _refuse(verdicts: list[Verdict], model: str, risk: Risk):
    mine = next((v for v in verdicts if v.backend == model), None)
    if mine is not None and mine.code in ("tenant_access", "key_allowlist"):
        who = "tenant" if mine.code == "tenant_access" else "key"
        raise APIError(403, f"This {who} may not use the model '{model}'.", "model_not_allowed", param="model")
    if mine is not None and mine.code == "mode":
        raise APIError(400, f"The model '{model}' does not serve this endpoint.", "unsupported_model_mode",
                       param="model")
    if mine is not None and mine.code == "trust":
        # The client named a backend outside the zone this request must stay in: a refusal of this
        # request, which no retry changes (503 would invite one).
        raise APIError(403, f"Risk tier {risk.tier} keeps this request on internal backends; the model '{model}' is "
                       "external. Name an internal model or a routing alias.", "no_allowed_backend", param="model")
    unconfigured = [v for v in verdicts if v.code == "unconfigured"]
    if mine is not None and mine.code == "unconfigured":
        raise APIError(503, f"The model '{model}' has no provider credentials on the gateway: {_missing(mine)}. "
                       "An operator sets it in the gateway's environment and restarts it; nothing was sent.",
                       "backend_not_configured", param="model")
    if unconfigured:
        # Every backend that could have served it lacks credentials: say which variable would help.
        by_variable: dict[str, list[str]] = {}
        for v in unconfigured:
            by_variable.setdefault(_missing(v), []).append(v.backend)
        names = "; ".join(f"{missing} ({', '.join(backends)})" for missing, backends in by_variable.items())
        raise APIError(503, "No configured backend can serve this request; it was not sent anywhere. Backends that "
                       f"could, once an operator sets their credentials in the gateway's environment: {names}. "
                       + _rejections(verdicts, skip="unconfigured"), "backend_not_configured")
    if risk.action == "require_internal":
        raise APIError(503, f"Risk tier {risk.tier} requires an internal backend and none is allowed and available "
                       f"for this request; it was not sent anywhere. {_rejections(verdicts)}", "no_allowed_backend")
    raise APIError(503, "No backend the policy allows can serve this request; it was not sent anywhere. "
                   + _rejections(verdicts), "no_allowed_backend")


def _missing(verdict: Verdict) -> str:
    return verdict.reason.removeprefix("not configured: ").removesuffix(" in the gateway's environment")


def _rejections(verdicts: list[Verdict], skip: str = "") -> str:
    """Why each backend was left out, for the client: names and policy reasons, no request content.
    Backends the caller may not use, or that serve another endpoint, are not named to it."""
    hidden = ("tenant_access", "key_allowlist", "mode", skip)
    shown = [v for v in verdicts if not v.accepted and v.code not in hidden]
    return ("Rejected: " + "; ".join(f"{v.backend} ({v.reason})" for v in shown) + ".") if shown else ""


def explain(policy: Policy, principal: Principal, request: ModelRequest,
            risk: Risk = Risk()) -> tuple[tuple[Verdict, ...], RouteDecision | None, APIError | None]:
    """The decide stage for `policy explain` (gateway/explain.py runs the stages before and after it):
    every backend's verdict, and the decision or the refusal a request would get."""
    try:
        decision = decide(policy, principal, request, risk)
    except APIError as exc:
        ev = _evaluate(policy, principal, request, risk, {}, request.texts.prompt_tokens)
        return tuple(ev.verdicts), None, exc
    return decision.verdicts, decision, None
