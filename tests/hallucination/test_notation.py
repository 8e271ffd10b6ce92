from __future__ import annotations

import pytest

from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.notation import find_numbers, implied_words


def keys(text: str, *, context_side: bool = False) -> list[tuple[str, set[float]]]:
    return [(text[a:b], set(k)) for a, b, k in find_numbers(text, context_side=context_side).spans]


def test_spelled_out_numbers():
    assert keys("four hundred and twenty dollars") == [("four hundred and twenty", {420.0})]
    assert keys("nine hundred ninety-nine thousand") == [("nine hundred ninety-nine thousand", {999_000.0})]
    assert keys("two million") == [("two million", {2_000_000.0})]
    # Not one number: "and" joins numbers only after "hundred"/"thousand"/..., and two units never do.
    assert keys("between one and two percent") == [("two", {2.0})]
    assert keys("two three-bedroom houses") == [("two", {2.0}), ("three", {3.0})]


def test_times_are_keyed_apart_from_counts():
    (span, pm), = keys("at 3 pm")
    (_, clock), = keys("at 15:00")
    assert span == "3 pm" and pm & clock and 15.0 not in clock
    (_, half_past), = keys("3:30 p.m.")
    assert not clock & half_past
    assert keys("the score was 3:1") == [("3", {3.0}), ("1", {1.0})]


def test_context_reads_half_as_fifty_percent():
    assert keys("half of the staff") == []
    assert keys("half of the staff", context_side=True) == [("half", {0.5, 50.0})]


def test_implied_words():
    assert "march" in implied_words("due 2024-03-03")
    assert {"march", "april"} <= implied_words("due 3/4/2024")  # either reading
    assert {"third", "quarter"} <= implied_words("in Q3")
    assert {"first", "half"} <= implied_words("in H1")
    assert {"dollar", "usd"} <= implied_words("$420")
    assert "euro" in implied_words("EUR 1.5 billion") and "eur" in implied_words("1.5 billion euros")
    assert "sec" in implied_words("The Securities and Exchange Commission said")
    assert "ceo" in implied_words("its chief executive officer") and "officer" in implied_words("its CEO")
    assert implied_words("no notation here") == set()


@pytest.mark.parametrize(
    ("context", "answer"),
    [
        ("Payment is due on 2024-03-03.", "Payment is due on March 3, 2024."),
        ("Payment is due on March 3, 2024.", "Payment is due on the 3rd of March, 2024."),
        ("Revenue was $2.3 million.", "Revenue was 2.3 million dollars."),
        ("Revenue was $2.3 million.", "Revenue was USD 2,300,000."),
        ("Revenue was 1.5 billion euros.", "Revenue was €1.5bn."),
        ("Half of the staff left.", "50% of the staff left."),
        ("The meeting starts at 3 pm.", "The meeting starts at 15:00."),
        ("Sales rose 5% in Q3.", "Sales rose 5% in the third quarter."),
        ("The fee is 420 dollars.", "The fee is four hundred and twenty dollars."),
        ("The Securities and Exchange Commission fined the bank.", "The SEC fined the bank."),
        ("The chief executive officer resigned in May.", "The CEO resigned in May."),
        ("The CEO resigned in May.", "The chief executive officer resigned in May."),
        ("Revenue grew 10% year over year.", "Revenue grew 10% YoY."),
        ("Customers can reach support by e-mail.", "Customers can reach support by email."),
        ("Customers can reach support by email.", "Customers can reach support by e-mail."),
        ("The company sells healthcare software.", "The company sells health care software."),
        ("The United Kingdom left in 2020.", "The UK left in 2020."),
    ],
)
def test_the_same_fact_in_another_notation_is_supported(context, answer):
    result = GroundingCheck().score(context, answer)
    assert result.verdict == "supported", result.to_dict()
    assert result.unsupported_numbers == [] and result.novel_words == []


@pytest.mark.parametrize(
    ("context", "answer", "flagged"),
    [
        ("Payment is due on 2024-03-03.", "Payment is due on April 3, 2024.", "April"),
        ("Payment is due on March 3.", "Payment is due on May 3.", "May"),  # a month, though "may" is a stopword
        ("The meeting starts at 15:00.", "The meeting starts at 4 pm.", "4 pm"),
        ("The fee is 420 dollars.", "The fee is four hundred and ten dollars.", "four hundred and ten"),
        ("Revenue was $2.3 million.", "Revenue was 2.3 million euros.", "euros"),
        ("The chief executive officer resigned in May.", "The CFO resigned in May.", "CFO"),
        ("The company sells healthcare software.", "The company sells hardware.", "hardware"),
        ("The Securities and Exchange Commission fined the bank.", "The FDA fined the bank.", "FDA"),
    ],
)
def test_a_changed_fact_in_another_notation_is_still_flagged(context, answer, flagged):
    result = GroundingCheck().score(context, answer)
    assert result.verdict == "unsupported"
    spans = result.unsupported_numbers + result.novel_words
    assert flagged in [answer[a:b] for a, b in spans]
