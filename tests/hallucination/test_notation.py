from __future__ import annotations

import pytest

from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.implied import implied_words
from gateway.hallucination.notation import find_numbers


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


def test_spoken_decimals_and_prices():
    # how a meeting transcript writes 12.50; the answer side reads "point"/"dot" too
    assert keys("under twelve dot fifty Euros") == [("twelve dot fifty", {12.5})]
    assert keys("twenty five point two five percent") == [("twenty five point two five", {25.25})]
    assert keys("one point five million") == [("one point five million", {1_500_000.0})]
    assert keys("zero point eight") == [("zero point eight", {0.8})]
    # "twelve Euro fifty" is 12.50 on the context side, and still holds a twelve and a fifty there
    assert keys("twelve Euro fifty", context_side=True) == [("twelve Euro fifty", {12.0, 12.5, 50.0})]
    assert keys("twelve euros and fifty cents", context_side=True)[0][1] >= {12.5}
    assert keys("twelve Euro fifty") == [("twelve", {12.0}), ("fifty", {50.0})]


def test_cents_short_years_and_scales():
    assert keys("EPS of $.50") == [("$.50", {0.5})]
    assert keys("50 cents a share") == [("50", {50.0, 0.5})]
    assert keys("in FY21") == [("FY21", {2021.0, 21.0})]
    assert keys("FY 2021") == [("FY 2021", {2021.0, 21.0})]
    assert ("'21", {2021.0, 21.0}) in keys("Q3 '21")
    assert keys("3.2 mln") == [("3.2 mln", {3_200_000.0})]


def test_context_numbers_support_their_roundings():
    assert keys("up 40.6%", context_side=True) == [("40.6%", {40.6, 41.0})]
    assert keys("$2.34 billion", context_side=True)[0][1] >= {2.3e9, 2.34e9}
    assert keys("2,345 staff", context_side=True) == [("2,345", {2345.0, 2300.0, 2350.0})]
    assert keys("12.5", context_side=True) == [("12.5", {12.5, 13.0})]  # half up
    # never to one significant figure (41.2 -> 40 would let an edited 40 through), never a year
    assert keys("41.2", context_side=True) == [("41.2", {41.2, 41.0})]
    assert keys("3.2", context_side=True) == [("3.2", {3.2})]
    assert keys("in 2019", context_side=True) == [("2019", {2019.0})]
    assert keys("up 40.6%") == [("40.6%", {40.6})]  # the answer's own number is not rounded


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
        ("The cost must stay under twelve dot fifty Euros.", "The cost must stay under 12.50 Euros."),
        ("Earnings were 50 cents per share in FY21.", "Earnings were $0.50 per share in fiscal 2021."),
        ("Revenue was $2.34 billion, up 40.6% from a year ago.", "Revenue was about $2.3 billion, up 41%."),
        ("We want to maximise the benefit for the organisation.", "They maximize the benefit for the organization."),
        ("The new centre opens in the theatre district.", "The new center opens in the theater district."),
        ("Each bag weighs 5 lb.", "Each bag weighs 5 pounds."),  # the weight, not the currency
        ("Revenue rose 12% in Q3 2021.", "Revenue rose 12% in the third quarter of 2021."),
        # a duration in another unit
        ("Support answers within 24 hours.", "Support answers within a day."),
        ("Support answers within 48 hours.", "Support answers within two days."),
        ("Support answers within a day.", "Support answers within 24 hours."),
        ("The warranty lasts 18 months.", "The warranty lasts 1.5 years."),
        ("The course takes an hour.", "The course takes 60 minutes."),
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
        ("The cost must stay under twelve dot fifty Euros.", "The cost must stay under 15.50 Euros.", "15.50"),
        ("Earnings were 50 cents per share in FY21.", "Earnings were $0.70 per share in fiscal 2021.", "$0.70"),
        ("Revenue was $2.34 billion, up 40.6% a year ago.", "Revenue was about $2.8 billion, up 46%.", "$2.8 billion"),
        ("Revenue was $2.3 million.", "Revenue was €2.3 million.", "€"),
        # a reporting period is a number in an answer too
        ("Revenue rose 12% in the third quarter of 2021.", "Revenue rose 12% in the fourth quarter of 2021.", "fourth"),
        ("Revenue rose 12% in Q3 2021.", "Revenue rose 12% in the first half of 2021.", "first"),
        # a duration's unit, or a colour, the context never states, where it states another
        ("Support answers within 24 hours.", "Support answers within 24 minutes.", "minutes"),
        ("Delivery takes three to five working days.", "Delivery takes three to five weeks.", "weeks"),
        ("The jacket comes in red, blue and black.", "The jacket comes in green.", "green"),
    ],
)
def test_a_changed_fact_in_another_notation_is_still_flagged(context, answer, flagged):
    result = GroundingCheck().score(context, answer)
    assert result.verdict == "unsupported"
    spans = result.unsupported_numbers + result.novel_words
    assert flagged in [answer[a:b] for a, b in spans]
