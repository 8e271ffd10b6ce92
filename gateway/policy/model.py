"""The tenant policy: one pydantic model is the single definition of what the YAML may say.

Loading is strict (unknown keys are errors) because a typo in a security policy that is silently
ignored is worse than a refused file.
"""

from __future__ import annotations

import hashlib
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateway.pii.config import PiiPolicy, check_entity_names, over_defaults
from gateway.risk.config import RiskPolicy


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Price(Strict):
    """USD per million tokens; overrides litellm's offline price map for this backend."""

    input_per_mtok: float = Field(ge=0)
    output_per_mtok: float = Field(ge=0)


class Backend(Strict):
    name: str = Field(min_length=1, max_length=100, description="The `model` name apps ask for.")
    adapter: Literal["litellm", "openai", "local_moe"] = "litellm"
    model: str = Field(min_length=1, description="Provider model: a litellm model string, or the upstream's name.")
    api_base: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    trust: Literal["internal", "external"] = "external"
    region: str | None = None
    price: Price | None = None
    modes: list[Literal["chat", "completions", "embeddings"]] = Field(default_factory=lambda: ["chat", "completions"])
    via: Literal["auto", "litellm", "direct"] = Field(
        "auto",
        description="litellm adapter only: `auto` serves OpenAI-compatible providers through the gateway's own "
        "pooled client (measured ~10x cheaper per call) and everything else through litellm.",
    )
    timeout_s: float = Field(60.0, gt=0, le=600)
    max_retries: int = Field(1, ge=0, le=2)
    model_dir: str | None = Field(None, description="local_moe adapter: checkpoint directory.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Adapter options; local_moe: device (cpu|cuda), dtype (float32|bfloat16), "
        "max_batch, max_seq, quantize (int8: CPU weight-only int8, see local_moe/kernels.py).")
    quality: int = Field(3, ge=1, le=5, description="Capability, 1 (small) to 5 (frontier): the router's "
                         "'good enough' scale.")
    context_window: int | None = Field(None, ge=1, description="Prompt tokens it accepts; unset means no check.")
    gpu_hour_usd: float | None = Field(None, ge=0, description="Self-hosted backends: what an hour of its GPUs "
                                       "costs; with tokens_per_second it prices each token.")
    tokens_per_second: float | None = Field(None, gt=0, description="Self-hosted backends: measured throughput "
                                            "(bench/moe.py prints it).")

    @field_validator("api_base")
    @classmethod
    def _http_only(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith(("http://", "https://")):
            raise ValueError("api_base must be an http(s) URL")
        return v


class Limits(Strict):
    rpm_per_key: int | None = Field(None, ge=1, description="Requests per minute per API key.")
    rpm_per_tenant: int | None = Field(None, ge=1, description="Requests per minute for the tenant.")
    tpm_per_key: int | None = Field(None, ge=1, description="Tokens per minute per API key (estimated, then settled).")
    tpm_per_tenant: int | None = Field(None, ge=1, description="Tokens per minute for the tenant.")
    on_redis_error: Literal["open", "closed"] = Field(
        "closed", description="Redis (where replicas share limits and budgets) unreachable or slow: `closed` answers "
        "503 to requests that a limit or budget applies to; `open` enforces them in this process only (per replica) "
        "and logs it.")


class Budgets(Strict):
    period: Literal["day", "month"] = "day"
    tenant_usd: float | None = Field(None, ge=0, description="USD the tenant may spend per period.")
    key_usd: float | None = Field(None, ge=0, description="USD one API key may spend per period.")


class Breaker(Strict):
    failure_threshold: int = Field(5, ge=1, le=1000, description="Consecutive upstream failures that open it.")
    open_seconds: float = Field(30, gt=0, le=3600, description="How long it stays open before one probe.")


class Cache(Strict):
    enabled: bool = Field(False, description="Exact-match response cache (non-streaming), per tenant and backend.")
    ttl_seconds: int = Field(300, ge=1, le=86400)


class Alias(Strict):
    min_quality: int = Field(1, ge=1, le=5, description="The least quality any request to this alias gets.")


class Routing(Strict):
    premium: str | None = Field(None, description="The backend `bulkhead report savings` compares against "
                                "(default: the highest-quality chat backend).")
    aliases: dict[str, Alias] = Field(
        default_factory=lambda: {"bulkhead/auto": Alias()},
        description="Model names that mean 'let the router choose'; merged over the built-in bulkhead/auto.")
    substitute_named: bool = Field(
        False, description="May the router replace a model the app named (for cost, or when its risk requires "
        "an internal backend)? Off: a named model is served as named or refused.")
    min_quality: dict[int, int] = Field(
        default_factory=lambda: {1: 1, 2: 2, 3: 4},
        description="Estimated task difficulty (1 simple, 2 moderate, 3 hard) -> least backend quality; "
        "merged over the built-in {1: 1, 2: 2, 3: 4}.")
    regions: list[str] | None = Field(None, description="Residency: only backends in these regions (unset: any).")
    max_attempts: int = Field(3, ge=1, le=3, description="Attempts per request across retries and fallbacks.")

    @model_validator(mode="before")
    @classmethod
    def _tables_over_defaults(cls, data: Any) -> Any:
        return over_defaults(cls, data, ("aliases", "min_quality")) if isinstance(data, dict) else data

    @field_validator("min_quality")
    @classmethod
    def _levels(cls, v: dict[int, int]) -> dict[int, int]:
        if set(v) != {1, 2, 3} or any(not 1 <= q <= 5 for q in v.values()):
            raise ValueError("min_quality maps each difficulty 1, 2 and 3 to a quality from 1 to 5")
        return v


class MoeAlarm(Strict):
    max_cv: float = Field(1.5, gt=0, description="Expert-collapse alarm: per-layer load CV above this.")
    max_dead_fraction: float = Field(0.5, ge=0, le=1, description="...or this share of experts never routed to.")
    min_tokens: int = Field(2000, ge=1, description="Tokens seen before the alarm can be raised.")


class Access(Strict):
    models: list[str] | None = Field(
        None, description="Backends this tenant may use (by name); unset means every backend in the policy.")


class AuditPolicy(Strict):
    mode: Literal["available", "strict"] = Field(
        "available", description="`strict`: a response is sent only once its audit event is committed (503 if it "
        "cannot be within strict_timeout_s). `available`: events the database cannot take go to the fsynced local "
        "spool and are replayed; when the spool is full the gateway answers 503.")
    strict_timeout_s: float = Field(5.0, gt=0, le=60)
    retention_days: int | None = Field(None, ge=1, description="`bulkhead audit prune` removes older events, only "
                                       "up to a signed checkpoint. Unset: keep everything.")
    legal_hold: bool = Field(False, description="Blocks pruning for this tenant whatever retention_days says.")
    store_content: Literal["hmac", "scrubbed", "none"] = Field(
        "hmac", description="`hmac`: per-tenant HMACs of each message and the answer (prove what was sent without "
        "keeping it). `scrubbed`: also the text after PII treatment. `none`: neither.")


class CheckWhen(Strict):
    """Every listed condition must hold; an empty list means any."""

    tiers: list[Literal["low", "medium", "high", "critical"]] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list, description="risk domains, e.g. medical, financial, legal")
    models: list[str] = Field(default_factory=list, description="requested model names or aliases")
    context: bool = Field(False, description="only when the request supplies grounding context")


class CheckRule(Strict):
    when: CheckWhen = Field(default_factory=CheckWhen)
    checks: list[Literal["grounding", "self_consistency", "judge"]] = Field(default_factory=lambda: ["grounding"],
                                                                             min_length=1)
    threshold: float | None = Field(None, ge=0, le=1, description="below it an answer is `unsupported`; "
                                    "unset: the check's calibrated default")
    action: Literal["record", "flag", "block", "escalate"] = "flag"
    escalate_to: str | None = Field(None, description="escalate: this backend (must be allowed for the request); "
                                    "unset: the highest-quality allowed backend above the one that answered")
    judge_band: tuple[float, float] | None = Field(
        None, description="cascade: with checks [grounding, judge], the judge is asked only when the grounding "
        "score lies in [low, high]; there the judge's verdict decides (the grounding outcome is recorded as "
        "`uncertain`), elsewhere the grounding verdict stands (the judge is recorded as `skipped`)")

    @model_validator(mode="after")
    def _band(self) -> CheckRule:
        if self.judge_band is not None:
            low, high = self.judge_band
            if not 0.0 <= low <= high <= 1.0:
                raise ValueError("judge_band must be [low, high] with 0 <= low <= high <= 1")
            if self.checks != ["grounding", "judge"]:
                raise ValueError("judge_band needs checks: [grounding, judge] (the judge settles the grounding "
                                 "check's uncertain band)")
        return self


class HallucinationPolicy(Strict):
    rules: list[CheckRule] = Field(default_factory=list, description="the first rule whose `when` matches applies")
    timeout_s: float = Field(2.0, gt=0, le=60, description="latency budget per check; a check that runs out is "
                             "recorded as `error`, never as passed")
    samples: int = Field(3, ge=1, le=10, description="self_consistency: further answers sampled")
    sample_backend: str | None = Field(None, description="self_consistency: backend to sample (default: the "
                                       "internal backend allowed for the request)")
    judge_backend: str | None = Field(None, description="judge: backend asked for a verdict (default: the internal "
                                      "backend allowed for the request)")
    buffer_streams: bool = Field(False, description="let block/escalate apply to streams by buffering the whole "
                                 "answer before sending it (time to first token becomes the full answer time)")


class SpotlightPolicy(Strict):
    """Spotlighting (Hines et al. 2024): untrusted segments marked as data before a model reads
    them, so an injection the risk stage missed is weaker. Applied after the PII treatment."""

    mode: Literal["off", "delimit", "datamark", "encode"] = Field(
        "off", description="`delimit`: each segment between marks random per request. `datamark`: also every "
        "space inside it replaced by U+02C6 (stays readable). `encode`: also base64 inside it (strongest, costs "
        "about a third more tokens; weaker models cannot read it). `off`: the body is sent as it is.")
    roles: list[Literal["tool", "context"]] = Field(
        default_factory=lambda: ["tool", "context"], min_length=1,
        description="`tool`: tool and function results. `context`: <context>/<document>/<documents>/<source> "
        "blocks inside user, system and developer messages.")
    notice: bool = Field(True, description="Add a system notice naming the marks and saying that text inside "
                         "them is data whose instructions must never be followed.")

    @field_validator("roles")
    @classmethod
    def _once(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("each role may be listed once")
        return v


class Policy(Strict):
    backends: list[Backend] = Field(default_factory=list)
    access: Access = Field(default_factory=Access)
    limits: Limits = Field(default_factory=Limits)
    budgets: Budgets = Field(default_factory=Budgets)
    breaker: Breaker = Field(default_factory=Breaker)
    cache: Cache = Field(default_factory=Cache)
    routing: Routing = Field(default_factory=Routing)
    pii: PiiPolicy = Field(default_factory=PiiPolicy)
    risk: RiskPolicy = Field(default_factory=RiskPolicy)
    moe: MoeAlarm = Field(default_factory=MoeAlarm)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    hallucination: HallucinationPolicy = Field(default_factory=HallucinationPolicy)
    spotlight: SpotlightPolicy = Field(default_factory=SpotlightPolicy)

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        seen: set[str] = set()
        for b in self.backends:
            if b.name in seen:
                raise ValueError(f"backend name {b.name!r} is declared twice")
            seen.add(b.name)
        return self

    @model_validator(mode="after")
    def _risk_names_known_entities(self) -> Policy:
        """The risk section names entity types too (a tier per type, `pii:TYPE` in a rule); one the
        PII section cannot report (a typo) would silently never match."""
        found: list[tuple[tuple[str | int, ...], str]] = [
            (("risk", "pii", "entities", name), name) for name in self.risk.pii.entities]
        found += [(("risk", "rules", i, "when", j), signal.removeprefix("pii:"))
                  for i, rule in enumerate(self.risk.rules) for j, signal in enumerate(rule.when)
                  if signal.startswith("pii:") and signal != "pii:any"]
        check_entity_names(type(self).__name__, found, self.pii.known_entities)
        return self

    @cached_property
    def version(self) -> str:
        canonical = orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(canonical).hexdigest()

    def backend(self, name: str) -> Backend | None:
        return next((b for b in self.backends if b.name == name), None)

    def tenant_may_use(self, name: str) -> bool:
        return self.access.models is None or name in self.access.models


def json_schema() -> dict:
    """The JSON Schema editors use to validate and autocomplete policy YAML (`policies/schema.json`)."""
    schema = Policy.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Bulkhead policy"
    schema["description"] = "policies/default.yaml, or an overlay in policies/tenants/<tenant>.yaml"
    return schema
