"""Grounding check: is an answer supported by the context it was supposed to be drawn from?

`GroundingCheck().score(context, answer, question="")` splits the answer into claims
(`claims.answer_claims`: sentences, without citation markers, markup, conversational framing and
abstentions) and asks the learned verifier (`verifier.py`) how well each claim is supported by its
best context chunk. An answer is as weak as its weakest claim: the verifier's answer score is the
lowest claim probability, and the per-claim scores show where the problem is. Where the weights
carry a combiner (fitted on left-out scores by `bench/grounding_eval.py --loso`), the answer's
score is a logistic combination of that verifier score and the cheap signals (`signals.py`) that
earned a place on left-out sources.

The result also lists, as offsets, the claim words and numbers that the context never contains:
not part of the score (they did not earn a place in it on left-out sources, see
`training/grounding/README.md`), but what a reviewer looks at first.

Nothing here logs or keeps text: results carry offsets into the answer, never its words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from gateway.hallucination.claims import Claim, answer_claims, split_claims
from gateway.hallucination.overlap import NUMBER, STOPWORDS
from gateway.hallucination.result import ClaimScore, GroundingResult, verdict_for
from gateway.hallucination.signals import signals
from gateway.hallucination.verifier import Verifier, get_verifier

# A number (with its separators) or a run of letters.
_TOKEN = re.compile(NUMBER.pattern + r"|[^\W\d_]+")


class GroundingCheck:
    """Scores how well an answer is supported by its context. Thread-safe; reuse one instance.

    `verifier`: a `Verifier` to use instead of the process-wide one (a fold's model in evaluation).
    `max_claims`: claims past this many are not scored (a bound on the cost of one check)."""

    kind = "grounding"

    def __init__(self, *, threshold: float | None = None, verifier: Verifier | None = None,
                 max_claims: int = 48) -> None:
        self.verifier = verifier or get_verifier()
        self.threshold = self.verifier.threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        self.max_claims = max_claims

    @property
    def version(self) -> str:
        return self.verifier.version

    def combine(self, verifier: float, context: str, claims: Sequence[Claim]) -> float:
        """The answer's score: the verifier's, or where the weights carry a combiner, its logistic
        combination with the cheap signals it kept (`signals.py`)."""
        combiner = self.verifier.meta.get("combiner")
        if not combiner:
            return verifier
        v = min(max(verifier, 1e-4), 1 - 1e-4)
        values = {"verifier": math.log(v / (1 - v))}
        if len(combiner["features"]) > 1:
            values.update(signals(context, [c.text for c in claims]))
        z = combiner["intercept"] + sum(w * values[f] for f, w in zip(combiner["features"], combiner["coef"],
                                                                       strict=True))
        return 1.0 / (1.0 + math.exp(-z))

    def claim_probabilities(self, passages: Sequence[str], claims: Sequence[Claim],
                            question: str = "") -> tuple[list[float], int]:
        """Per claim, the probability that the context supports it; and the pairs scored."""
        return self.verifier.claim_scores(passages, [c.text for c in claims], question)

    def score(
        self,
        context: str | Sequence[str],
        answer: str,
        question: str = "",
        *,
        threshold: float | None = None,
    ) -> GroundingResult:
        """Score `answer` against `context` (one text or a list of passages)."""
        if not isinstance(answer, str):
            raise TypeError("answer must be a string")
        if isinstance(context, str):
            pieces: list[str] = [context]
        elif isinstance(context, Sequence) and all(isinstance(p, str) for p in context):
            pieces = list(context)
        else:
            raise TypeError("context must be a string or a list of strings")
        threshold = self.threshold if threshold is None else threshold
        claims = answer_claims(answer)
        if not claims:
            # Nothing is asserted (or only framing and "the context does not say"), so nothing can be
            # unsupported; "skipped" counts the sentences left out.
            detail = {"claims": 0, "skipped": len(split_claims(answer))}
            return GroundingResult(self.kind, self.version, 1.0, "supported", threshold, detail=detail)
        claims = claims[: self.max_claims]
        if not any(p.strip() for p in pieces):
            # An answer checked against no context at all is not grounded in anything.
            scores = [ClaimScore(c.start, c.end, 0.0) for c in claims]
            return GroundingResult(self.kind, self.version, 0.0, "unsupported", threshold, claims=scores,
                                   detail={"context": "empty"})
        probs, pairs = self.claim_probabilities(pieces, claims, question)
        score = self.combine(min(probs), "\n".join(pieces), claims)
        numbers, novel = absent_from(pieces, answer, claims)
        return GroundingResult(
            kind=self.kind,
            version=self.version,
            score=score,
            verdict=verdict_for(score, threshold),
            threshold=threshold,
            claims=[ClaimScore(c.start, c.end, p) for c, p in zip(claims, probs, strict=True)],
            unsupported_numbers=numbers,
            novel_words=novel,
            detail={"model": self.version, "claims": len(claims), "pairs": pairs},
        )


def absent_from(passages: Sequence[str], answer: str, claims: Sequence[Claim]):
    """Offsets of the claims' numbers, and of their other content words, that the context never
    contains (as lower-cased tokens)."""
    known = set()
    for p in passages:
        known.update(_TOKEN.findall(p.lower()))
    numbers, novel = [], []
    for c in claims:
        for m in _TOKEN.finditer(answer, c.start, c.end):
            word = m.group().lower()
            if word in known:
                continue
            if any(ch.isdigit() for ch in word):
                numbers.append(m.span())
            elif len(word) >= 3 and word not in STOPWORDS:
                novel.append(m.span())
    return numbers, novel
