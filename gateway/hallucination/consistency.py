"""Self-consistency check (SelfCheckGPT-style): are the answer's claims repeated by other samples?

Given the answer and N alternative answers sampled for the same prompt, each claim of the answer is
scored against each sample with the grounding check's claim scoring (the sample plays the context),
and the per-sample scores are averaged: a claim that the model states only once, and contradicts or
omits in its other samples, is likely made up. The answer's score is the mean over samples of the
grounding score of the whole answer against that sample.

The grounding model was fitted on answers checked against source documents, not against other
samples, so the scores rank claims usefully but the default threshold is not calibrated for this
use: pick `threshold` from your own data. By default no embeddings are computed (N samples would
multiply their cost); pass `use_embeddings=True` to include them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gateway.hallucination.context_index import ContextIndex
from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.result import ClaimScore, GroundingResult, verdict_for


class SelfConsistencyCheck:
    kind = "self_consistency"
    version = "self-consistency-1"

    def __init__(
        self,
        *,
        threshold: float | None = None,
        grounding: GroundingCheck | None = None,
        use_embeddings: bool = False,
        min_samples: int = 1,
    ) -> None:
        self.grounding = grounding or GroundingCheck(use_embeddings=use_embeddings)
        self.threshold = self.grounding.threshold if threshold is None else float(threshold)
        self.min_samples = min_samples

    def score(self, answer: str, samples: Sequence[str], question: str = "") -> GroundingResult:
        if isinstance(samples, str) or not all(isinstance(s, str) for s in samples):
            raise TypeError("samples must be a list of strings")
        usable = [s for s in samples if s.strip()]
        if len(usable) < self.min_samples:
            raise ValueError(f"need at least {self.min_samples} non-empty sample(s), got {len(usable)}")
        per_sample = []
        for sample in usable:
            analysis = self.grounding.analyze(ContextIndex(sample), answer, question)
            per_sample.append(self.grounding.result(analysis, self.threshold))
        if not per_sample or not per_sample[0].claims:
            return GroundingResult(
                self.kind, self.version, 1.0, "supported", self.threshold, detail={"claims": 0, "samples": len(usable)}
            )
        agreement = np.mean([[c.score for c in r.claims] for r in per_sample], axis=0)
        score = float(np.mean([r.score for r in per_sample]))
        claims = [
            ClaimScore(c.start, c.end, float(a)) for c, a in zip(per_sample[0].claims, agreement, strict=True)
        ]

        def seen_in_most(field: str) -> list[tuple[int, int]]:
            # Offsets flagged against at least half of the samples.
            counts: dict[tuple[int, int], int] = {}
            for r in per_sample:
                for span in getattr(r, field):
                    counts[span] = counts.get(span, 0) + 1
            return sorted(s for s, n in counts.items() if 2 * n >= len(per_sample))

        return GroundingResult(
            kind=self.kind,
            version=self.version,
            score=score,
            verdict=verdict_for(score, self.threshold),
            threshold=self.threshold,
            claims=claims,
            unsupported_numbers=seen_in_most("unsupported_numbers"),
            unsupported_entities=seen_in_most("unsupported_entities"),
            unsupported_negations=seen_in_most("unsupported_negations"),
            novel_words=seen_in_most("novel_words"),
            detail={"samples": len(usable), "claims": len(claims), "min_claim": round(float(agreement.min()), 4)},
        )
