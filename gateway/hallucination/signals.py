"""Cheap answer-level signals that the grounding combiner may weigh beside the verifier.

Each is a property of the answer and its context that needs no table of words: how many of the
answer's content words (and pairs of neighbouring content words) the context has, its numbers and
capitalised words that the context never has, its least covered claim, its length. Which of them
the shipped combiner uses was decided on left-out sources (`bench/grounding_eval.py --combine`):
a signal that did not move the left-out mean stayed out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gateway.hallucination.overlap import NUMBER, WORD, content_words, coverage

SIGNALS = ("overlap", "bigram_overlap", "novel_numbers", "novel_names", "min_claim_overlap", "length")

_CAPITALISED = re.compile(r"(?<=[^\s.!?]\s)[A-Z][\w'’-]*")


def _bigrams(words: list[str]) -> set[tuple[str, str]]:
    return set(zip(words, words[1:], strict=False))


def signals(context: str, claims: Sequence[str]) -> dict[str, float]:
    """The signals of an answer's claims (`answer_claims`: without the framing, markup and
    citations that assert nothing) against its context."""
    answer = "\n".join(claims)
    words = content_words(answer)
    context_words = content_words(context)  # once: every overlap below reads it
    known = set(context_words)
    pairs = _bigrams(words)
    known_pairs = _bigrams(context_words)
    numbers = set(NUMBER.findall(context))
    lowered = set(WORD.findall(context.lower()))
    names = [m.group() for m in _CAPITALISED.finditer(answer)]
    return {
        "overlap": coverage(words, known),
        "bigram_overlap": sum(p in known_pairs for p in pairs) / len(pairs) if pairs else 1.0,
        "novel_numbers": math.log1p(sum(n not in numbers for n in NUMBER.findall(answer))),
        "novel_names": math.log1p(sum(not set(WORD.findall(n.lower())) <= lowered for n in names)),
        "min_claim_overlap": min((coverage(content_words(c), known) for c in claims), default=1.0),
        "length": math.log1p(len(words)),
    }
