"""The words a text's notations stand for, and the currencies it names.

`implied_words(text)` lists the words a notation stands for, so that an answer may spell out what
the context abbreviates, or abbreviate what it spells out: "2024-03-03" and "3/3/2024" imply
"march", "Q3" implies "third quarter", "48 hours" implies "day", "$" and "USD" imply "dollar" (and
the other way round), "Securities and Exchange Commission" implies "sec", and common business
acronyms ("CEO", "EPS", "YoY", "IPO") imply their words and the other way round.

`currency_marks(text)` finds currency symbols and words, for the check that an answer's currency is
one its context names.
"""

from __future__ import annotations

import re

from gateway.hallucination.notation import ORDINAL_WORDS, QUARTER, WORD, durations

_ISO_DATE = re.compile(r"\b\d{4}-(\d{1,2})-\d{1,2}\b")
_SLASH_DATE = re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.]\d{2,4}\b")

MONTHS = (
    "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december",
)

_CURRENCY_SYMBOLS = {"$": ("dollar", "usd"), "€": ("euro", "eur"), "£": ("pound", "gbp"), "¥": ("yen", "jpy")}
_CURRENCY_WORDS = {
    "usd": "dollar", "dollar": "usd", "dollars": "usd", "eur": "euro", "euro": "eur", "euros": "eur",
    "gbp": "pound", "pound": "gbp", "pounds": "gbp", "jpy": "yen", "yen": "jpy",
}


# The currencies an answer may name, as a word ("euros", "USD") or a symbol, with the words that
# stand for each in a context (its own and the other spelling's, "$" and "dollar" and "usd").
CURRENCIES = {
    **{symbol: frozenset(words) for symbol, words in _CURRENCY_SYMBOLS.items()},
    **{w: frozenset({w.rstrip("s"), other.rstrip("s")}) for w, other in _CURRENCY_WORDS.items()},
}


def currency_marks(text: str) -> list[tuple[int, int, frozenset[str]]]:
    """(start, end, names) of each currency symbol or word in `text`."""
    out = [(i, i + 1, CURRENCIES[ch]) for i, ch in enumerate(text) if ch in _CURRENCY_SYMBOLS]
    out += [(m.start(), m.end(), CURRENCIES[m.group(0).lower()]) for m in WORD.finditer(text)
            if m.group(0).lower() in _CURRENCY_WORDS]
    return sorted(out)


ACRONYMS = {
    "ceo": "chief executive officer", "cfo": "chief financial officer", "coo": "chief operating officer",
    "cto": "chief technology officer", "cio": "chief information officer", "cmo": "chief marketing officer",
    "ciso": "chief information security officer", "vp": "vice president", "hq": "headquarters",
    "eps": "earnings per share", "yoy": "year over year", "qoq": "quarter over quarter",
    "mom": "month over month", "ytd": "year to date", "fy": "fiscal year", "ipo": "initial public offering",
    "gdp": "gross domestic product", "roi": "return on investment", "kpi": "key performance indicator",
    "cagr": "compound annual growth rate", "arr": "annual recurring revenue",
    "mrr": "monthly recurring revenue", "cogs": "cost of goods sold", "capex": "capital expenditure",
    "opex": "operating expense", "sla": "service level agreement", "nda": "non disclosure agreement",
    "saas": "software as a service", "api": "application programming interface", "ai": "artificial intelligence",
    "hr": "human resources", "faq": "frequently asked questions", "eta": "estimated time of arrival",
    "pii": "personally identifiable information", "phi": "protected health information",
    "ev": "electric vehicle", "uk": "united kingdom", "eu": "european union", "un": "united nations",
    "usa": "united states of america", "uae": "united arab emirates",
}
# A run of capitalised words, small words allowed inside: "Securities and Exchange Commission".
_NAME_RUN = re.compile(r"\b(?!The\b)[A-Z][a-z]+(?:\s+(?:(?:of|and|for|the|on|in|&)\s+)?[A-Z][a-z]+)+")


def implied_words(text: str) -> set[str]:
    """Words (lower case) that notations in `text` stand for; see the module doc."""
    out: set[str] = set()
    for m in _ISO_DATE.finditer(text):
        month = int(m.group(1))
        if 1 <= month <= 12:
            out.add(MONTHS[month - 1])
    for m in _SLASH_DATE.finditer(text):
        for part in {int(m.group(1)), int(m.group(2))}:  # 3/4/2024 is March 4 or 3 April
            if 1 <= part <= 12:
                out.add(MONTHS[part - 1])
    for m in QUARTER.finditer(text):
        n = int(m.group(2))
        if m.group(1) in "Qq":
            out |= {ORDINAL_WORDS[n - 1], "quarter"}
        elif n <= 2:
            out |= {ORDINAL_WORDS[n - 1], "half"}
    for _, _, same in durations(text):
        out.update(same)
    for symbol, words in _CURRENCY_SYMBOLS.items():
        if symbol in text:
            out.update(words)
    words = [m.group(0).lower() for m in WORD.finditer(text)]
    for w in words:
        other = _CURRENCY_WORDS.get(w)
        if other:
            out.add(other)
        elif w in ("cent", "cents"):  # "50 cents" is $0.50 (or €0.50)
            out |= {"dollar", "usd", "euro", "eur"}
        elif w in ("lb", "lbs"):  # the weight: "5 lb" supports "5 pounds", which is not a currency then
            out |= {"pound", "gbp"}
    padded = f" {' '.join(words)} "
    present = set(words)
    for acronym, phrase in ACRONYMS.items():
        if acronym in present:
            out.update(phrase.split())
        elif f" {phrase} " in padded or f" {phrase}s " in padded:
            out.add(acronym)
    for m in _NAME_RUN.finditer(text):
        initials = "".join(w[0] for w in re.findall(r"[A-Z][a-z]+", m.group(0)))
        out.add(initials.lower())
    return out
