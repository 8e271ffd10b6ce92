import pytest
from pydantic import ValidationError

from gateway.pii.config import DEFAULT_ENTITIES, CustomRecognizer, PiiPolicy, Treatments


def test_defaults_are_production_safe():
    p = PiiPolicy()
    assert p.enabled and p.on_error == "fail" and p.timeout_s > 0
    for must in ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "SECRET"):
        assert must in p.entities
    assert p.treatment.for_entity("external", "PERSON") == "pseudonymize"
    assert p.treatment.for_entity("internal", "PERSON") == "allow"
    assert p.treatment.for_entity("external", "SECRET") == "block"
    assert p.treatment.for_entity("internal", "SECRET") == "block"
    assert p.output_scan.action == "flag"
    assert set(DEFAULT_ENTITIES) <= p.active_entities


def test_unknown_keys_and_entities_are_refused():
    with pytest.raises(ValidationError):
        PiiPolicy.model_validate({"enabeld": True})
    with pytest.raises(ValidationError, match="unknown entity"):
        PiiPolicy.model_validate({"entities": ["PERSON", "SHOE_SIZE"]})
    with pytest.raises(ValidationError):
        PiiPolicy.model_validate({"treatment": {"external": {"PERSON": "obliterate"}}})
    with pytest.raises(ValidationError):
        PiiPolicy.model_validate({"treatment": {"external": {"person": "redact"}}})


def test_zone_table_without_default_never_defaults_to_raw_for_external():
    t = Treatments(external={"PERSON": "redact"}, internal={})
    assert t.for_entity("external", "EMAIL_ADDRESS") == "pseudonymize"
    assert t.for_entity("external", "PERSON") == "redact"
    assert t.for_entity("internal", "EMAIL_ADDRESS") == "allow"


def test_custom_recognizers_are_validated():
    with pytest.raises(ValidationError, match="valid regular expression"):
        CustomRecognizer(name="x", entity="EMPLOYEE_ID", patterns=["(unclosed"])
    with pytest.raises(ValidationError, match="needs `patterns` or `deny_list`"):
        CustomRecognizer(name="x", entity="EMPLOYEE_ID")
    with pytest.raises(ValidationError, match="unique"):
        PiiPolicy(
            custom_recognizers=[
                CustomRecognizer(name="a", entity="A_B", deny_list=["x"]),
                CustomRecognizer(name="a", entity="A_C", deny_list=["y"]),
            ]
        )
    p = PiiPolicy(
        custom_recognizers=[CustomRecognizer(name="emp", entity="EMPLOYEE_ID", patterns=[r"E-\d{5}"])]
    )
    assert "EMPLOYEE_ID" in p.active_entities


def test_thresholds_and_fingerprint():
    p = PiiPolicy(thresholds={"PERSON": 0.7})
    assert p.threshold("PERSON") == 0.7 and p.threshold("EMAIL_ADDRESS") == 0.4
    assert p.fingerprint == PiiPolicy(thresholds={"PERSON": 0.7}).fingerprint != PiiPolicy().fingerprint
    with pytest.raises(ValidationError):
        PiiPolicy(thresholds={"PERSON": 1.5})
