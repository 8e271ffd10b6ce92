"""Content words, and the overlap baseline the verifier is measured against.

`content_words(text)`: the lower-cased alphanumeric tokens of length >= 3 that are not among the
100 commonest English function words. `overlap(context, answer)`: the share of the answer's
content words that occur in the context (1.0 when it has none) — ten lines that every learned
check must beat on data it was not trained on (issue 21), and the way the verifier picks which
context chunks a claim is compared with.
"""

from __future__ import annotations

import re

WORD = re.compile(r"[^\W_]+")  # letters and digits
NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")  # keeps its separators: "4.7", "15:00", "1,200"

_STOP = """
    the and for are but not you all any can had her was one our out has him his how its may new now
    old see two who did get let say she too use that with have this will your from they know want
    been good much some time very when come here just like long make many more only over such take
    than them well were what which their there these those would could should about after again also
    into other then because where while being does each most both under between through during before
    off own same
"""
STOPWORDS = frozenset(_STOP.split())


def content_words(text: str) -> list[str]:
    return [w for w in WORD.findall(text.lower()) if len(w) >= 3 and w not in STOPWORDS]


def coverage(words: list[str], known: set[str]) -> float:
    """The share of `words` in `known` (1.0 when there are none)."""
    return sum(w in known for w in words) / len(words) if words else 1.0


def overlap(context: str, answer: str) -> float:
    return coverage(content_words(answer), set(content_words(context)))
