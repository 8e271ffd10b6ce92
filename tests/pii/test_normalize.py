"""Character tricks that hid personal data from detection (security review, issue 24 item 5): each
is found on the text's shadow, the original span (hidden characters included) is what gets
treated, values split across fields are found joined, and identifiers are read as words."""

import json
import re

import pytest

from gateway.pii.config import PiiPolicy
from gateway.pii.entities import Entity
from gateway.pii.normalize import fold, original_span, shadow, split_identifier
from gateway.pii.outputscan import find_leaks
from gateway.pii.restore import restore_response
from gateway.pii.transform import inspect_request_sync, transform_request

POLICY = PiiPolicy()  # external: pseudonymize

# (trick, text, entity type, the value as written: hidden characters and all)
TRICKS = [
    ("zero-width space in e-mail", "Mail maria.gon\u200bzalez@example.com today.", "EMAIL_ADDRESS",
     "maria.gon\u200bzalez@example.com"),
    ("soft hyphen and ZWJ in e-mail", "Mail maria.gon\u00adzalez@exam\u200dple.com today.", "EMAIL_ADDRESS",
     "maria.gon\u00adzalez@exam\u200dple.com"),
    ("zero-width joiner in SSN", "My SSN is 219-09-\u200d9999.", "US_SSN", "219-09-\u200d9999"),
    ("soft hyphen in SSN", "My SSN is 219\u00ad-09-9999.", "US_SSN", "219\u00ad-09-9999"),
    ("bidi controls in SSN", "My SSN is 219-09-\u2066\u20699999.", "US_SSN", "219-09-\u2066\u20699999"),
    ("unicode hyphens in SSN", "My SSN is 219\u201009\u20119999.", "US_SSN", "219\u201009\u20119999"),
    ("zero-width spaces in card", "Card 4111\u200b1111\u200b1111\u200b1111 thanks", "CREDIT_CARD",
     "4111\u200b1111\u200b1111\u200b1111"),
    ("no-break spaces in card", "Card 4111\u00a01111\u00a01111\u00a01111 thanks", "CREDIT_CARD",
     "4111\u00a01111\u00a01111\u00a01111"),
    ("thin and figure spaces in card", "Card 4111\u202f1111\u20091111\u20071111 thanks", "CREDIT_CARD",
     "4111\u202f1111\u20091111\u20071111"),
    ("full-width digits in SSN", "SSN \uff12\uff11\uff19-\uff10\uff19-\uff19\uff19\uff19\uff19", "US_SSN",
     "\uff12\uff11\uff19-\uff10\uff19-\uff19\uff19\uff19\uff19"),
    ("Arabic-Indic digits in SSN", "SSN \u0662\u0661\u0669-\u0660\u0669-\u0669\u0669\u0669\u0669", "US_SSN",
     "\u0662\u0661\u0669-\u0660\u0669-\u0669\u0669\u0669\u0669"),
    ("Arabic-Indic digits in card", "card \u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 "
     "\u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661", "CREDIT_CARD",
     "\u0664\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661 \u0661\u0661\u0661\u0661"),
    ("zero-width space in IP address", "Blocked 10.\u200b20.30.40 today", "IP_ADDRESS", "10.\u200b20.30.40"),
    ("Cyrillic letter in IBAN", "IBAN GB82W\u0415ST12345698765432 please", "IBAN_CODE",
     "GB82W\u0415ST12345698765432"),
    ("Cyrillic letters in e-mail", "email m\u0430ria@\u0435x\u0430mple.\u0441om", "EMAIL_ADDRESS",
     "m\u0430ria@\u0435x\u0430mple.\u0441om"),
    ("Cyrillic letter in a name", "Ticket from M\u0430rgaret Thornbury: the printer is broken.", "PERSON",
     "M\u0430rgaret Thornbury"),
    ("combining mark in a name", "Ticket from Marga\u0301ret Thornbury: the printer is broken.", "PERSON",
     "Marga\u0301ret Thornbury"),
]


def _chat(*contents: str | list) -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": c} for c in contents]}


def test_ascii_text_is_its_own_shadow_at_no_cost():
    text = "Mail maria.gonzalez@example.com, SSN 219-09-9999."
    folded, offsets = shadow(text)
    assert folded is text and offsets is None
    assert shadow("Grüße aus Köln")[1] is None  # non-ASCII text that folds to itself: no offsets


def test_shadow_folds_and_maps_every_character_back():
    text = "a\u200bb\u00a0\uff11\u0661\u0430e\u0301\ufb01"
    folded, offsets = shadow(text)
    assert folded == "ab 11aefi"
    assert offsets is not None and len(offsets) == len(folded)
    assert original_span(offsets, 0, 2) == (0, 3)  # "ab" covers the zero-width space inside it
    assert original_span(offsets, 5, 6) == (6, 7)  # the Cyrillic "а"
    assert original_span(offsets, 6, 7) == (7, 9)  # "e" takes its combining mark along
    assert original_span(offsets, 7, 8) == (9, 10) and original_span(offsets, 8, 9) == (9, 10)  # "ﬁ"
    assert fold("219\u2010\uff10\uff19-\u0669\u0669\u0669\u0669") == "219-09-9999"


def test_identifier_words_map_back():
    assert split_identifier("plain") == ("plain", None)
    words, offsets = split_identifier("MargaretThornbury_x")
    assert words == "Margaret Thornbury x"
    assert original_span(offsets, 0, len("Margaret Thornbury")) == (0, len("MargaretThornbury"))


@pytest.mark.parametrize(("trick", "text", "entity_type", "value"), TRICKS, ids=[t[0] for t in TRICKS])
def test_character_trick_is_detected_and_treated_whole(analyzer, trick, text, entity_type, value):
    found = {(e.type, text[e.start : e.end]) for e in analyzer.analyze([text])[0]}
    assert (entity_type, value) in found, found
    body = _chat(text)
    result = transform_request(body, inspect_request_sync(body, analyzer), POLICY, "external")
    sent = result.body["messages"][0]["content"]
    assert fold(value) not in fold(sent) and value not in sent
    # the hidden characters went with the value
    hidden = [c for c in value if not c.isascii() and not c.isalnum() and not c.isspace()]
    assert not any(c in sent for c in hidden), sent
    echo = {"choices": [{"index": 0, "message": {"role": "assistant", "content": sent}}]}
    assert restore_response(echo, result.vault)["choices"][0]["message"]["content"] == text


@pytest.mark.parametrize(
    "body",
    [
        _chat("My SSN is 219-09-", "9999, please update it."),
        _chat([{"type": "text", "text": "SSN 219-0"}, {"type": "text", "text": "9-9999"}]),
        _chat("SSN 219", "-09-", "9999"),
    ],
    ids=["two messages", "two content parts", "three messages"],
)
def test_ssn_split_across_fields_is_treated_in_every_piece_and_counted_once(analyzer, body):
    inspection = inspect_request_sync(body, analyzer)
    assert inspection.counts() == {"US_SSN": 1}
    assert "219-09-9999" in inspection.values()
    result = transform_request(body, inspection, POLICY, "external")
    sent = json.dumps(result.body)
    assert not re.search(r"219|9999", sent), sent


def test_values_split_across_messages_of_other_types(analyzer):
    body = _chat("Charge card 4111 1111", "1111 1111 today. Receipt to maria.gonzalez@", "example.com")
    inspection = inspect_request_sync(body, analyzer)
    assert inspection.counts() == {"CREDIT_CARD": 1, "EMAIL_ADDRESS": 1}
    sent = json.dumps(transform_request(body, inspection, POLICY, "external").body)
    assert "1111" not in sent and "maria" not in sent and "example.com" not in sent


def test_values_inside_single_fields_next_to_a_boundary_are_counted_once_each(analyzer):
    body = _chat("first SSN 219-09-9999", "second SSN 536-22-8714 end")
    assert inspect_request_sync(body, analyzer).counts() == {"US_SSN": 2}


@pytest.mark.parametrize("name", ["Margaret_Thornbury", "MargaretThornbury", "margaret-thornbury"])
def test_name_in_an_identifier_is_replaced_whole_by_a_valid_identifier(analyzer, name):
    body = {"model": "m", "messages": [{"role": "user", "name": name, "content": "Hi, I am <PERSON_1>."}]}
    inspection = inspect_request_sync(body, analyzer)
    result = transform_request(body, inspection, POLICY, "external")
    sent = result.body["messages"][0]["name"]
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", sent), sent
    assert "hornbury" not in sent and "argaret" not in sent and sent.startswith("PERSON_")
    # The client's own `<PERSON_1>` is reserved, so the answer restores to exactly what was sent.
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"Hello {sent}, <PERSON_1>"}}]}
    assert restore_response(answer, result.vault)["choices"][0]["message"]["content"] == f"Hello {sent}, <PERSON_1>"


def test_output_scan_knows_a_request_value_written_without_its_tricks():
    answer = "Your SSN 219-09-9999 is on file."
    entity = Entity("US_SSN", 9, 20, 0.9)
    assert find_leaks([answer], [[entity]], {"219-09-\u200b9999"}) == [[]]
    assert find_leaks([answer], [[entity]], {"\u0662\u0661\u0669-\u0660\u0669-\u0669\u0669\u0669\u0669"}) == [[]]
    assert find_leaks([answer], [[entity]], {"536-22-8714"}) == [[entity]]
