"""Hallucination checks: is an answer supported by its context (`GroundingCheck`), by the model's own
resamples (`SelfConsistencyCheck`), or in the opinion of a judge model (`JudgeCheck`)?

All three return a `GroundingResult` (score in [0, 1], higher = better supported; per-claim offsets
into the answer; never the text itself). Names are imported lazily, so that importing the package
does not load numpy-heavy modules or torch; the verifier model loads on the first grounding check.
"""

from importlib import import_module

_EXPORTS = {
    "Claim": "claims",
    "split_claims": "claims",
    "answer_claims": "claims",
    "ClaimScore": "result",
    "GroundingCheck": "grounding",
    "Verifier": "verifier",
    "GroundingResult": "result",
    "SelfConsistencyCheck": "consistency",
    "JudgeCheck": "judge",
    "JudgeParseError": "judge",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"gateway.hallucination.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gateway.hallucination' has no attribute {name!r}")
