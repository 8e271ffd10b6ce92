"""Partial sections and overlays merge onto the defaults key by key, the built-in tables included: a
policy that names one row of a table (one entity's treatment) keeps every other row."""

from __future__ import annotations

import typing
from pathlib import Path

import yaml
from pydantic import BaseModel

from gateway.pii.config import PiiPolicy, Treatments
from gateway.policy import Policy
from gateway.policy.loader import PolicyError, load_policy_set

BASE = "backends:\n  - {name: ext, adapter: openai, model: m, api_base: 'http://127.0.0.1:9/v1'}\n"


def write(tmp: Path, default: str, **tenants: str) -> Path:
    (tmp / "default.yaml").write_text(default)
    (tmp / "tenants").mkdir(exist_ok=True)
    for name, text in tenants.items():
        (tmp / "tenants" / f"{name}.yaml").write_text(text)
    return tmp


def test_a_partial_treatment_keeps_the_secrets_block_and_the_default(tmp_path):
    write(tmp_path, BASE + "pii:\n  treatment:\n    external: {EMAIL_ADDRESS: redact}\n")
    t = load_policy_set(tmp_path).default.pii.treatment
    assert t.for_entity("external", "EMAIL_ADDRESS") == "redact"
    assert t.for_entity("external", "SECRET") == "block"
    assert t.for_entity("external", "PERSON") == "pseudonymize"
    assert t.external["default"] == "pseudonymize"
    assert t.internal == Treatments().internal
    # the built-in rows change only when named
    write(tmp_path, BASE + "pii:\n  treatment:\n    external: {SECRET: redact, default: hash}\n")
    t = load_policy_set(tmp_path).default.pii.treatment
    assert t.for_entity("external", "SECRET") == "redact" and t.for_entity("external", "PERSON") == "hash"


def test_overlays_merge_onto_the_default_files_table_and_the_built_in_one(tmp_path):
    write(tmp_path, BASE + "pii:\n  treatment:\n    external: {EMAIL_ADDRESS: redact}\n",
          acme="pii:\n  treatment:\n    external: {PERSON: mask}\n    internal: {US_SSN: redact}\n")
    acme = load_policy_set(tmp_path).for_tenant("acme").pii.treatment
    assert acme.external == {"default": "pseudonymize", "SECRET": "block", "EMAIL_ADDRESS": "redact",
                             "PERSON": "mask"}
    assert acme.internal == {"default": "allow", "SECRET": "block", "US_SSN": "redact"}


def test_a_pii_section_read_on_its_own_merges_too():
    # `bulkhead pii scan --policy` validates the section by itself
    p = PiiPolicy.model_validate({"treatment": {"internal": {"PERSON": "redact"}}})
    assert p.treatment.for_entity("internal", "SECRET") == "block"
    assert p.treatment.for_entity("internal", "EMAIL_ADDRESS") == "allow"
    # a Treatments built in Python is exactly what it was given
    assert PiiPolicy(treatment=Treatments(external={"default": "redact"})).treatment.external == {"default": "redact"}


def test_routing_tables_merge_too(tmp_path):
    write(tmp_path, BASE + "routing:\n  min_quality: {3: 5}\n  aliases: {fast: {min_quality: 2}}\n")
    routing = load_policy_set(tmp_path).default.routing
    assert routing.min_quality == {1: 1, 2: 2, 3: 5}
    assert set(routing.aliases) == {"bulkhead/auto", "fast"} and routing.aliases["fast"].min_quality == 2


def _tables(model: type[BaseModel], path: tuple[str, ...] = ()):
    """(path, built-in default) of every mapping field with built-in rows, anywhere in the policy."""
    for name, field in model.model_fields.items():
        default = field.get_default(call_default_factory=True)
        if isinstance(default, dict) and default:
            yield (*path, name), default
        for t in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(t, type) and issubclass(t, BaseModel):
                yield from _tables(t, (*path, name))


def test_naming_one_row_of_any_built_in_table_keeps_the_others(tmp_path):
    """Writing one row with its built-in value must compile to exactly the policy without it."""
    tables = dict(_tables(Policy))
    assert {("pii", "treatment", "external"), ("pii", "treatment", "internal"), ("routing", "min_quality"),
            ("routing", "aliases"), ("risk", "pii", "entities"), ("risk", "tier_actions")} <= set(tables)
    plain = Policy.model_validate(yaml.safe_load(BASE)).version
    dropped = []
    for path, default in tables.items():
        key = next(iter(default))
        value = default[key].model_dump(mode="json") if isinstance(default[key], BaseModel) else default[key]
        doc: dict = {key: value}
        for part in reversed(path):
            doc = {part: doc}
        write(tmp_path, BASE + yaml.safe_dump(doc))
        try:
            same = load_policy_set(tmp_path).default.version == plain
        except PolicyError:
            same = False
        if not same:
            dropped.append(".".join(path))
    assert dropped == [], f"naming one row replaced the whole table: {dropped}"
