"""The `pii:` section of a tenant policy.

`PiiPolicy()` with no arguments is the production default: the common personal data types and
secrets are detected, anything crossing to an external backend is pseudonymized, secrets are
blocked before any backend, and a failed or slow analysis fails the request closed.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Set
from functools import cached_property
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

Treatment = Literal["pseudonymize", "redact", "mask", "hash", "block", "allow"]
Zone = Literal["external", "internal"]

ENTITY_NAME = r"^[A-Z][A-Z0-9_]{0,63}$"

# Entity types this engine can find: the one list of names a policy may use (with its custom
# recognizers' entities) wherever it names an entity type. TITLE and AGE are deliberately absent:
# "Dr." or "42" alone identify nobody, and rewriting them makes answers worse.
KNOWN_ENTITIES: frozenset[str] = frozenset(
    {
        "PERSON",
        "LOCATION",
        "ADDRESS",
        "ORGANIZATION",
        "NRP",
        "DATE_TIME",
        "EMAIL_ADDRESS",
        "PHONE_NUMBER",
        "CREDIT_CARD",
        "US_SSN",
        "IBAN_CODE",
        "IP_ADDRESS",
        "URL",
        "US_BANK_NUMBER",
        "US_DRIVER_LICENSE",
        "US_PASSPORT",
        "US_ITIN",
        "CRYPTO",
        "MEDICAL_LICENSE",
        "UK_NHS",
        "MAC_ADDRESS",
        "SECRET",
    }
)

# Organisations, dates, nationalities and URLs are off by default: they are rarely personal on
# their own, spaCy's small model is noisy on them, and scrubbing them breaks ordinary prompts.
DEFAULT_ENTITIES: tuple[str, ...] = (
    "PERSON",
    "LOCATION",
    "ADDRESS",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "US_BANK_NUMBER",
    "US_DRIVER_LICENSE",
    "US_PASSPORT",
    "US_ITIN",
    "CRYPTO",
    "MEDICAL_LICENSE",
    "UK_NHS",
    "SECRET",
)


def check_entity_names(title: str, found: Iterable[tuple[tuple[str | int, ...], str]], known: Set[str]) -> None:
    """Raises one validation error per entity type name that is not in `known`, located at its own
    key or list item (`loc`), so that a typo such as CREDITCARD is refused at its file and line
    instead of silently naming nothing."""
    errors = []
    for loc, name in found:
        if name in known:
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        errors.append(InitErrorDetails(
            type=PydanticCustomError(
                "unknown_entity", "unknown entity type '{entity}'{hint}; known: {known}, or a custom "
                "recognizer's entity", {"entity": name, "hint": hint, "known": ", ".join(sorted(known))}),
            loc=loc, input=name))
    if errors:
        raise ValidationError.from_exception_data(title, errors)


def over_defaults(model: type[BaseModel], data: Mapping[str, Any], fields: Iterable[str]) -> dict[str, Any]:
    """`data` with each mapping it gives for one of `fields` merged key by key over that field's
    built-in default: a policy that names one row of a table keeps the table's other rows."""
    out = dict(data)
    for name in fields:
        if isinstance(out.get(name), Mapping):
            default = model.model_fields[name].get_default(call_default_factory=True)
            out[name] = {**default, **out[name]}
    return out


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CustomRecognizer(_Strict):
    """A tenant's own entity: regexes and/or a deny list (exact phrases, case-insensitive unless told)."""

    name: str = Field(min_length=1, max_length=100)
    entity: str = Field(pattern=ENTITY_NAME, description="Entity type reported, e.g. EMPLOYEE_ID.")
    patterns: list[str] = Field(default_factory=list, max_length=50, description="Regular expressions.")
    deny_list: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Phrases that are always this entity (project code names).",
    )
    context: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="Words that raise a pattern match's score when near it.",
    )
    score: float = Field(0.6, ge=0, le=1, description="Score of a pattern match without context.")
    require_context: bool = Field(
        False, description="Report pattern matches only when a context word is near."
    )
    case_sensitive: bool = False

    @field_validator("patterns")
    @classmethod
    def _compiles(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a valid regular expression: {exc}") from None
        return v

    @model_validator(mode="after")
    def _something_to_match(self) -> CustomRecognizer:
        if not self.patterns and not self.deny_list:
            raise ValueError(f"custom recognizer {self.name!r} needs `patterns` or `deny_list`")
        if self.require_context and not self.context:
            raise ValueError(f"custom recognizer {self.name!r} sets require_context without `context` words")
        return self


def _zone_default(default: Treatment) -> dict[str, Treatment]:
    return {"default": default, "SECRET": "block"}


class Treatments(_Strict):
    """Per trust zone: entity type -> treatment, with `default` for every type not named. A zone table
    in a policy merges over the built-in one: naming EMAIL_ADDRESS keeps `SECRET: block` and `default`."""

    # PiiPolicy does that merge; built in Python, a Treatments holds exactly the tables it is given.
    external: dict[str, Treatment] = Field(
        default_factory=lambda: _zone_default("pseudonymize"),
        description="Backends with trust `external`: entity type (or `default`) -> treatment. Merged over "
        "the built-in {default: pseudonymize, SECRET: block}.")
    internal: dict[str, Treatment] = Field(
        default_factory=lambda: _zone_default("allow"),
        description="Backends with trust `internal`: entity type (or `default`) -> treatment. Merged over "
        "the built-in {default: allow, SECRET: block}.")

    @field_validator("external", "internal")
    @classmethod
    def _keys(cls, v: dict[str, Treatment]) -> dict[str, Treatment]:
        for key in v:
            if key != "default" and not re.match(ENTITY_NAME, key):
                raise ValueError(f"{key!r} is neither `default` nor an entity type name")
        return v

    def for_entity(self, zone: Zone, entity: str) -> Treatment:
        table = self.external if zone == "external" else self.internal
        if entity in table:
            return table[entity]
        # A zone table that omits `default` still never lets raw text out of the building by accident.
        return table.get("default", "pseudonymize" if zone == "external" else "allow")


class OutputScan(_Strict):
    enabled: bool = True
    action: Literal["redact", "flag", "block"] = Field(
        "flag", description="What to do with PII in an answer that was not in the request."
    )


class Media(_Strict):
    """Content the analyzer cannot read: inline images, audio and files are bytes; an image link is
    text (its URL is inspected like any text) but someone will fetch what it points to."""

    inline: Literal["internal", "allow", "refuse"] = Field(
        "internal",
        description="Inline images, audio and files (base64): `internal` keeps such requests inside the "
        "trust boundary (internal backends only), `allow` lets them cross unread, `refuse` answers 400.",
    )
    links: Literal["provider", "allow", "refuse"] = Field(
        "provider",
        description="Image links: `provider` passes them only to backends whose provider fetches them "
        "(OpenAI-compatible), never where litellm would download them from the gateway's host; `allow` "
        "passes them everywhere; `refuse` answers 400.",
    )


class PiiPolicy(_Strict):
    enabled: bool = True
    entities: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ENTITIES),
        description="Entity types to detect (custom recognizer entities are added).",
    )
    score_threshold: float = Field(0.4, ge=0, le=1)
    thresholds: dict[str, float] = Field(
        default_factory=dict, description="Per entity type, overrides the global."
    )
    recall_first: dict[str, float] = Field(
        default_factory=dict,
        description="Recall-first external zone: per entity type, a lower score threshold that applies "
        "to external backends only (the internal zone keeps `thresholds`). The name tagger's PERSON, "
        "LOCATION and ORGANIZATION spans between the two are pseudonymized on the way out, trading "
        "precision for fewer leaks; policies/README.md gives the measured precision and recall.",
    )
    allow_list: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="Values never treated as PII (exact, case-insensitive).",
    )
    custom_recognizers: list[CustomRecognizer] = Field(default_factory=list, max_length=100)
    treatment: Treatments = Field(default_factory=Treatments)
    output_scan: OutputScan = Field(default_factory=OutputScan)
    on_error: Literal["fail", "internal"] = Field(
        "fail",
        description="Analysis failed or timed out: `fail` answers 503; `internal` routes to an internal "
        "backend only. Nothing ever goes to an external backend unanalysed.",
    )
    timeout_s: float = Field(5.0, gt=0, le=60, description="Analysis time limit per request.")
    max_chars: int = Field(400_000, ge=1, description="Longer requests fail closed (a 413-style refusal).")
    max_fields: int = Field(
        4096, ge=1, description="Requests with more strings to inspect (parts, keys, tool arguments) are refused."
    )
    media: Media = Field(default_factory=Media)

    @field_validator("entities")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = sorted(set(v) - KNOWN_ENTITIES)
        if unknown:
            raise ValueError(
                f"unknown entity types {unknown}; known: {sorted(KNOWN_ENTITIES)} "
                "(add your own with custom_recognizers)"
            )
        return v

    @field_validator("thresholds", "recall_first")
    @classmethod
    def _threshold_range(cls, v: dict[str, float]) -> dict[str, float]:
        for key, value in v.items():
            if not re.match(ENTITY_NAME, key):
                raise ValueError(f"{key!r} is not an entity type name")
            if not 0 <= value <= 1:
                raise ValueError(f"threshold for {key} must be between 0 and 1")
        return v

    @model_validator(mode="before")
    @classmethod
    def _treatment_over_defaults(cls, data: Any) -> Any:
        # A partial zone table written in a policy must not drop the built-in rows: without this,
        # `external: {EMAIL_ADDRESS: redact}` lost `SECRET: block` and secrets left pseudonymized.
        if isinstance(data, Mapping) and isinstance(data.get("treatment"), Mapping):
            data = {**data, "treatment": over_defaults(Treatments, data["treatment"], ("external", "internal"))}
        return data

    @model_validator(mode="after")
    def _unique_recognizers(self) -> PiiPolicy:
        names = [r.name for r in self.custom_recognizers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"custom recognizer names must be unique: {dupes}")
        return self

    @model_validator(mode="after")
    def _known_entity_keys(self) -> PiiPolicy:
        found: list[tuple[tuple[str | int, ...], str]] = [
            (("treatment", zone, key), key)
            for zone in ("external", "internal")
            for key in getattr(self.treatment, zone)
            if key != "default"
        ]
        found += [(("thresholds", key), key) for key in self.thresholds]
        found += [(("recall_first", key), key) for key in self.recall_first]
        check_entity_names(type(self).__name__, found, self.known_entities)
        return self

    @cached_property
    def known_entities(self) -> frozenset[str]:
        """Entity type names this policy may refer to: the engine's and its custom recognizers'."""
        return KNOWN_ENTITIES | {r.entity for r in self.custom_recognizers}

    @cached_property
    def active_entities(self) -> frozenset[str]:
        return frozenset(self.entities) | {r.entity for r in self.custom_recognizers}

    def threshold(self, entity: str) -> float:
        return self.thresholds.get(entity, self.score_threshold)

    def zone_threshold(self, entity: str, zone: Zone) -> float:
        """The score a detection needs to be treated for a backend of `zone`."""
        normal = self.threshold(entity)
        return min(normal, self.recall_first.get(entity, normal)) if zone == "external" else normal

    def keep_threshold(self, entity: str) -> float:
        """The score the analyzer keeps a detection from: the lower of the two zones'."""
        return self.zone_threshold(entity, "external")

    @cached_property
    def fingerprint(self) -> str:
        """Stable identity of what the analyzer depends on (to cache one analyzer per policy)."""
        return orjson.dumps(self.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS).decode()
