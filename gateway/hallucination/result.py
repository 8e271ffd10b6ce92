"""The outcome every hallucination check returns: a score, a verdict and per-claim offsets.

`GroundingResult` carries offsets into the answer, never its text, so it is safe to log;
`verdict_for` is the one rule that turns a score and a threshold into a verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


class ClaimScore(NamedTuple):
    start: int
    end: int
    score: float


@dataclass(slots=True)
class GroundingResult:
    """Outcome of a check. Offsets index the answer; no text is kept, so the result is safe to log."""

    kind: str
    version: str
    score: float  # in [0, 1], higher = better supported
    verdict: str  # "supported" | "unsupported"
    threshold: float
    claims: list[ClaimScore] = field(default_factory=list)
    unsupported_numbers: list[tuple[int, int]] = field(default_factory=list)
    novel_words: list[tuple[int, int]] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "score": round(self.score, 4),
            "verdict": self.verdict,
            "threshold": round(self.threshold, 4),
            "claims": [{"start": c.start, "end": c.end, "score": round(c.score, 4)} for c in self.claims],
            "unsupported_numbers": [list(s) for s in self.unsupported_numbers],
            "novel_words": [list(s) for s in self.novel_words],
            "detail": dict(self.detail),
        }


def verdict_for(score: float, threshold: float) -> str:
    return "supported" if score >= threshold else "unsupported"
