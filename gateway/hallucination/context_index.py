"""The context a grounding check compares an answer with, indexed once per context.

`ContextIndex(context)` splits the context (one text or a list of passages) into sentences and keeps,
for each, its stems, content words, numbers (`notation.py`), the pairs of words and numbers that stand
near each other, and its negations; over the whole context it keeps their unions and each content
word's idf. `align` picks the sentences a claim is most likely drawn from, by the idf-weighted content
words and numbers they share. The item helpers here (`item_sequence`, `item_pairs`, `surface_items`,
`neighbours`) read a claim the same way, so the two sides compare.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.hallucination.claims import split_claims
from gateway.hallucination.implied import implied_words
from gateway.hallucination.notation import Numbers, find_numbers
from gateway.hallucination.stems import stem
from gateway.hallucination.tokens import STOPWORDS, Token, joined_stems, negation_scopes, tokenize


@dataclass(slots=True)
class Sentence:
    text: str
    stems: frozenset[str]
    content: frozenset[str]
    pairs: frozenset[tuple[str, str]]
    numbers: frozenset[float]
    negations: int
    negated: frozenset[str]  # stems in the scope of a negation ("not insured", "uninsured": "insur")
    items: tuple[tuple[frozenset[str], str], ...]  # `surface_items`: content words and numbers in order
    places: tuple[tuple[str, frozenset[str]], ...]  # each word's stem with its `neighbours`


def _num_token(key: float) -> str:
    return f"#{key:g}"


def _positioned(toks: Sequence[Token], numbers: Numbers) -> list[tuple[int, frozenset[str], str]]:
    """(offset, item, surface word or "" for a number): content stems and numbers ("#12") in text
    order; a number is one item with all its readings."""
    items = [(t.start, frozenset({t.stem}), t.low) for t in toks if t.content]
    items += [(a, frozenset(_num_token(k) for k in keys), "") for a, _, keys in numbers.spans]
    items.sort(key=lambda it: it[0])
    return items


def item_sequence(toks: Sequence[Token], numbers: Numbers) -> list[frozenset[str]]:
    return [item for _, item, _ in _positioned(toks, numbers)]


def surface_items(toks: Sequence[Token], numbers: Numbers) -> list[tuple[frozenset[str], str]]:
    """(item, surface word or ""): what a swapped word is looked for in (`claim_features`)."""
    return [(item, low) for _, item, low in _positioned(toks, numbers)]


def item_pairs(items: Sequence[frozenset[str]], window: int = 3) -> set[tuple[str, str]]:
    """Unordered pairs of items (stems, numbers) at most `window` items apart."""
    out = set()
    for i, left in enumerate(items):
        for right in items[i + 1 : i + 1 + window]:
            for a in left:
                for b in right:
                    if a != b:
                        out.add((a, b) if a < b else (b, a))
    return out


class ContextIndex:
    """Sentences of the context with their stems, numbers and word pairs; built once per context."""

    def __init__(self, context: str | Sequence[str], max_sentence_chars: int = 600) -> None:
        pieces = [context] if isinstance(context, str) else list(context)
        self.sentences: list[Sentence] = []
        for piece in pieces:
            for claim in split_claims(piece, glued=True, max_chars=max_sentence_chars):
                self.sentences.append(self._sentence(claim.text))
        self.stems: set[str] = set()  # stems of every word, plus "#12"-style number tokens
        self.numbers: set[float] = set()
        self.pairs: set[tuple[str, str]] = set()
        self.negated: set[str] = set()
        df: dict[str, int] = {}
        for s in self.sentences:
            self.stems |= s.stems
            self.negated |= s.negated
            self.numbers |= s.numbers
            self.stems |= {_num_token(k) for k in s.numbers}
            self.pairs |= s.pairs
            for w in s.content:
                df[w] = df.get(w, 0) + 1
        n = max(len(self.sentences), 1)
        self.idf = {w: math.log(1.0 + n / c) for w, c in df.items()}

    @staticmethod
    def _sentence(text: str) -> Sentence:
        toks = tokenize(text)
        numbers = find_numbers(text, context_side=True)
        implied = {stem(w) for w in implied_words(text)}  # "2024-03-03" also says "March"
        positioned = _positioned(toks, numbers)
        sequence = [item for _, item, _ in positioned]
        pairs = item_pairs(sequence)
        # A notation's words stand where the notation does; pairing them with the whole sentence is
        # simpler than tracking where, and cheap: notations are few.
        items = {x for item in sequence for x in item} | implied
        pairs |= {(a, b) if a < b else (b, a) for a in implied for b in items if a != b}
        # A compound written apart or hyphenated ("e-mail") also stands joined ("email"), paired with
        # the items around it (not inserted into the sequence: that would push its neighbours apart).
        offsets = [at for at, _, _ in positioned]
        compounds = set()
        for i, joined in joined_stems(toks, text):
            compounds.add(joined)
            k = bisect.bisect_left(offsets, toks[i].start)
            for item in sequence[max(k - 3, 0) : k + 4]:
                pairs |= {(joined, x) if joined < x else (x, joined) for x in item if x != joined}
        extra = implied | compounds
        return Sentence(
            text=text,
            stems=frozenset(t.stem for t in toks) | extra,
            content=frozenset(t.stem for t in toks if t.content) | (extra - STOPWORDS),
            pairs=frozenset(pairs),
            numbers=frozenset(numbers.keys),
            negations=sum(t.negation for t in toks),
            negated=frozenset(w for scope in negation_scopes(toks) for w in scope),
            items=tuple((item, low) for _, item, low in positioned),
            places=tuple((t.stem, frozenset(neighbours(toks, i))) for i, t in enumerate(toks)),
        )

    def align(self, content: set[str], numbers: set[float], k: int) -> list[int]:
        """Indices of the `k` sentences sharing the most (idf-weighted) content words and numbers."""
        if not self.sentences:
            return []
        scores = []
        for i, s in enumerate(self.sentences):
            # fsum: correctly rounded whatever the set's order, so that tied sentences tie exactly and
            # the fit is the same under every PYTHONHASHSEED
            score = math.fsum(self.idf.get(w, 0.0) for w in content & s.content) + 1.5 * len(numbers & s.numbers)
            scores.append((-score, i))
        scores.sort()
        return [i for neg, i in scores[:k] if neg < 0] or [scores[0][1]]


def neighbours(toks: Sequence[Token], i: int, width: int = 4) -> set[str]:
    return {t.stem for t in toks[max(i - width, 0) : i + width + 1] if t.content} - {toks[i].stem}
