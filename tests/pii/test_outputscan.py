import pytest

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.config import OutputScan, PiiPolicy
from gateway.pii.entities import Entity, PiiOutputBlockedError
from gateway.pii.outputscan import ascan_output, find_leaks, scan_output

ANSWER = "Sure, Maria Gonzalez. Also, Peter Parker's email is peter.parker@dailybugle.com."
REQUEST_VALUES = {"Maria Gonzalez"}


def analyzer_with(action: str) -> PiiAnalyzer:
    return PiiAnalyzer(PiiPolicy(output_scan=OutputScan(action=action)))


def test_flag_counts_only_what_the_request_did_not_contain(analyzer):
    scan = scan_output([ANSWER], REQUEST_VALUES, analyzer)
    assert scan.leaked.get("EMAIL_ADDRESS") == 1 and scan.leaked.get("PERSON") == 1
    assert scan.texts == [ANSWER] and scan.action == "flag"


def test_redact_replaces_only_leaked_values():
    scan = scan_output([ANSWER], REQUEST_VALUES, analyzer_with("redact"))
    assert "Maria Gonzalez" in scan.texts[0]
    assert "peter.parker@" not in scan.texts[0] and "[EMAIL_ADDRESS]" in scan.texts[0]


def test_block_names_types_only():
    with pytest.raises(PiiOutputBlockedError) as info:
        scan_output([ANSWER], REQUEST_VALUES, analyzer_with("block"))
    assert "EMAIL_ADDRESS" in str(info.value) and "peter" not in str(info.value)
    assert info.value.counts["EMAIL_ADDRESS"] == 1


async def test_async_and_disabled():
    scan = await ascan_output([ANSWER], REQUEST_VALUES, analyzer_with("flag"), timeout=30)
    assert scan.leaked_total >= 2
    off = PiiAnalyzer(PiiPolicy(output_scan=OutputScan(enabled=False)))
    assert scan_output([ANSWER], set(), off).leaked == {}


def test_what_the_request_said_is_not_a_leak_however_the_tagger_read_it():
    """A value the request held, found only in the answer (the tagger reads words in their context),
    is not a leak; a new one next to it still is, and so is a word that merely contains a request word."""
    request = "please book the cabin at maple river for the reunion"
    answer_entities = [[_entity("LOCATION", "maple river", ANSWER_2), _entity("PERSON", "Peter Parker", ANSWER_2),
                        _entity("PERSON", "Ann", ANSWER_2)]]
    leaks = find_leaks([ANSWER_2], answer_entities, set(), [request, "annual reunion notes"])
    assert [ANSWER_2[e.start:e.end] for e in leaks[0]] == ["Peter Parker", "Ann"]
    assert find_leaks([ANSWER_2], answer_entities, set())[0] == answer_entities[0]  # without the texts, as before


ANSWER_2 = "Booked: the cabin at Maple River. Peter Parker and Ann will bring the keys."


def _entity(kind: str, value: str, text: str) -> Entity:
    start = text.lower().index(value.lower())
    return Entity(kind, start, start + len(value), 0.9)
