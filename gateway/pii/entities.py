"""What detection returns, and the errors the pipeline turns into responses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Entity:
    """A detected span: `text[start:end]` is the value (character offsets, end exclusive)."""

    type: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict:
        return {"type": self.type, "start": self.start, "end": self.end, "score": round(self.score, 4)}


class PiiAnalysisError(Exception):
    """Analysis failed or timed out. The caller must fail closed: nothing goes to an external backend.

    The message never contains request text.
    """

    def __init__(self, reason: str, *, timeout: bool = False) -> None:
        super().__init__(reason)
        self.timeout = timeout


class PiiBlockedError(Exception):
    """The policy's treatment for a detected type is `block` (4xx). Names the types, never a value."""

    def __init__(self, entity_types: list[str]) -> None:
        self.entity_types = sorted(set(entity_types))
        super().__init__(
            "The request contains data the policy does not allow to be sent: "
            + ", ".join(self.entity_types)
            + "."
        )


class PiiOutputBlockedError(PiiBlockedError):
    """The answer contained personal data that was not in the request and the policy blocks that."""

    def __init__(self, entity_types: list[str], counts: dict[str, int] | None = None) -> None:
        super().__init__(entity_types)
        self.counts = dict(counts) if counts else dict.fromkeys(self.entity_types, 1)
        self.args = (
            "The model's answer contained data the policy does not allow to be returned: "
            + ", ".join(self.entity_types)
            + ".",
        )
