import pytest

from gateway.pii.analyzer import PiiAnalyzer
from gateway.pii.config import OutputScan, PiiPolicy
from gateway.pii.entities import PiiOutputBlockedError
from gateway.pii.outputscan import ascan_output, scan_output

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
