import json

import pytest

from gateway.pii.config import PiiPolicy, Treatments
from gateway.pii.entities import Entity, PiiBlockedError
from gateway.pii.transform import inspect_request, inspect_request_sync, mask, scrub_text, transform_request
from gateway.pii.vault import Vault

P = PiiPolicy()


def test_pseudonymize_is_consistent_within_a_request(analyzer):
    body = {
        "messages": [
            {"role": "user", "content": "Dear Maria Gonzalez, email maria@example.com."},
            {"role": "assistant", "content": "Maria Gonzalez wrote from maria@example.com"},
        ]
    }
    out = transform_request(body, inspect_request_sync(body, analyzer), P, "external")
    a, b = out.body["messages"][0]["content"], out.body["messages"][1]["content"]
    assert "Maria" not in a + b and "maria@" not in a + b
    assert "<PERSON_1>" in a and "<PERSON_1>" in b and "<EMAIL_ADDRESS_1>" in a and "<EMAIL_ADDRESS_1>" in b
    assert out.counts["PERSON"] == {"pseudonymize": 2}
    assert out.vault.original("<PERSON_1>") == "Maria Gonzalez"


def test_internal_zone_allows_raw_by_default(analyzer):
    body = {"messages": [{"role": "user", "content": "Dear Maria Gonzalez"}]}
    out = transform_request(body, inspect_request_sync(body, analyzer), P, "internal")
    assert out.body["messages"][0]["content"] == "Dear Maria Gonzalez"
    assert out.counts["PERSON"] == {"allow": 1}


def test_block_names_type_never_value(analyzer):
    key = "AKIA" + "Z3Q7W2XK9LMN4PRT"
    body = {"messages": [{"role": "user", "content": f"deploy with {key} please, Maria Gonzalez"}]}
    with pytest.raises(PiiBlockedError) as info:
        transform_request(body, inspect_request_sync(body, analyzer), P, "internal")
    assert info.value.entity_types == ["SECRET"]
    assert key not in str(info.value) and "SECRET" in str(info.value)


def test_redact_mask_hash():
    text = "card 4111 1111 1111 1111 for Ana"
    ents = [Entity("CREDIT_CARD", 5, 24, 1.0), Entity("PERSON", 29, 32, 0.85)]
    for treatment, expect in [
        ("redact", "card [CREDIT_CARD] for [PERSON]"),
        ("mask", "card **** **** **** 1111 for ***"),
    ]:
        policy = PiiPolicy(treatment=Treatments(external={"default": treatment}))
        assert scrub_text(text, ents, policy, "external", Vault())[0] == expect
    policy = PiiPolicy(treatment=Treatments(external={"default": "hash"}))
    h1 = scrub_text(text, ents, policy, "external", Vault())[0]
    h2 = scrub_text(text, ents, policy, "external", Vault())[0]
    assert h1 == h2 and "4111" not in h1 and "<CREDIT_CARD:" in h1
    assert mask("PERSON", "Jo-Ann") == "**-***"


def test_tool_arguments_stay_valid_json(analyzer):
    args = json.dumps(
        {
            "name": 'Maria "Mia" Gonzalez',
            "address": "742 Evergreen Terrace\nSpringfield",
            "phone": 2125550187,
            "email": "maria@example.com",
        }
    )
    body = {
        "messages": [
            {
                "role": "assistant",
                "tool_calls": [{"id": "1", "type": "function", "function": {"name": "f", "arguments": args}}],
            }
        ]
    }
    out = transform_request(body, inspect_request_sync(body, analyzer), P, "external")
    scrubbed = out.body["messages"][0]["tool_calls"][0]["function"]["arguments"]
    parsed = json.loads(scrubbed)
    assert "maria@example.com" not in scrubbed and "Gonzalez" not in scrubbed
    assert parsed["email"].startswith("<EMAIL_ADDRESS_")
    assert parsed["name"] == "<PERSON_1>" and parsed["address"] == "<ADDRESS_1>"
    # Restoring the model's echo of the same arguments gives back the original values, as valid
    # JSON (the number that had to be replaced comes back as a string).
    restored = json.loads(out.vault.restore_json(scrubbed)[0])
    assert restored == {**json.loads(args), "phone": "2125550187"}


def test_unparseable_arguments_keep_their_quoting(analyzer):
    raw = '{"note": "mail maria@example.com \\"now\\"", "x": '
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": raw}}]}]}
    out = transform_request(body, inspect_request_sync(body, analyzer), P, "external")
    scrubbed = out.body["messages"][0]["tool_calls"][0]["function"]["arguments"]
    assert "maria@example.com" not in scrubbed
    assert json.loads(scrubbed + "1}")["note"] == 'mail <EMAIL_ADDRESS_1> "now"'


def test_message_name_stays_a_valid_name(analyzer):
    body = {"messages": [{"role": "user", "name": "Maria Gonzalez", "content": "hi"}]}
    insp = inspect_request_sync(body, analyzer)
    if insp.types:  # the model may or may not call a bare name a PERSON
        out = transform_request(body, insp, P, "external")
        assert all(c.isalnum() or c in "_-" for c in out.body["messages"][0]["name"])


def test_vault_never_issues_a_placeholder_the_client_sent(analyzer):
    body = {"messages": [{"role": "user", "content": "Literal <PERSON_1> here; Dear Maria Gonzalez"}]}
    out = transform_request(body, inspect_request_sync(body, analyzer), P, "external")
    content = out.body["messages"][0]["content"]
    assert content.startswith("Literal <PERSON_1> here") and "<PERSON_2>" in content
    assert out.vault.restore(content) == body["messages"][0]["content"]


async def test_async_inspect(analyzer):
    body = {"input": ["Dear Maria Gonzalez", "nothing"]}
    insp = await inspect_request(body, analyzer, timeout=30)
    assert insp.counts() == {"PERSON": 1}
    assert insp.values() == {"Maria Gonzalez"}
