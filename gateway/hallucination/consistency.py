"""Self-consistency check (SelfCheckGPT-style): are the answer's claims repeated by other samples?

Given the answer and N alternative answers sampled for the same prompt, each claim of the answer is
scored against each sample with the grounding check's claim scoring (the sample plays the context),
and the per-sample scores are averaged: a claim that the model states only once, and contradicts or
omits in its other samples, is likely made up. The answer's score is the mean over samples of the
grounding score of the whole answer against that sample.

The verifier was trained on answers checked against source documents, not against other samples,
so the scores rank claims usefully but the default threshold is not calibrated for this use: pick
`threshold` from your own data.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.hallucination.claims import answer_claims
from gateway.hallucination.grounding import GroundingCheck, absent_from
from gateway.hallucination.result import ClaimScore, GroundingResult, verdict_for


class SelfConsistencyCheck:
    kind = "self_consistency"
    version = "self-consistency-1"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        grounding: GroundingCheck | None = None,
        min_samples: int = 1,
    ) -> None:
        self.grounding = grounding or GroundingCheck()
        self.threshold = self.grounding.threshold if threshold is None else float(threshold)
        self.min_samples = min_samples

    def score(self, answer: str, samples: Sequence[str], question: str = "") -> GroundingResult:
        if isinstance(samples, str) or not all(isinstance(s, str) for s in samples):
            raise TypeError("samples must be a list of strings")
        usable = [s for s in samples if s.strip()]
        if len(usable) < self.min_samples:
            raise ValueError(f"need at least {self.min_samples} non-empty sample(s), got {len(usable)}")
        claims = answer_claims(answer)[: self.grounding.max_claims]
        if not claims:
            return GroundingResult(
                self.kind, self.version, 1.0, "supported", self.threshold, detail={"claims": 0, "samples": len(usable)}
            )
        per_sample = np.array([self.grounding.claim_probabilities([s], claims, question)[0] for s in usable])
        agreement = per_sample.mean(axis=0)
        # Per sample the answer is as weak as its weakest claim (as in the grounding check).
        score = float(per_sample.min(axis=1).mean())
        claim_scores = [ClaimScore(c.start, c.end, float(a)) for c, a in zip(claims, agreement, strict=True)]

        absent = [absent_from([s], answer, claims) for s in usable]  # (numbers, words) per sample

        def seen_in_most(which: int) -> list[tuple[int, int]]:
            # Offsets absent from at least half of the samples.
            counts: dict[tuple[int, int], int] = {}
            for found in absent:
                for span in found[which]:
                    counts[span] = counts.get(span, 0) + 1
            return sorted(s for s, n in counts.items() if 2 * n >= len(usable))

        return GroundingResult(
            kind=self.kind,
            version=self.version,
            score=score,
            verdict=verdict_for(score, self.threshold),
            threshold=self.threshold,
            claims=claim_scores,
            unsupported_numbers=seen_in_most(0),
            novel_words=seen_in_most(1),
            detail={"samples": len(usable), "claims": len(claims), "min_claim": round(float(agreement.min()), 4)},
        )
