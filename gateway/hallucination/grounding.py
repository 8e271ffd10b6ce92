"""Grounding check: is an answer supported by the context it was supposed to be drawn from?

`GroundingCheck().score(context, answer, question="")` splits the answer into claims
(`claims.answer_claims`: sentences, without citation markers, markup, conversational framing and
abstentions), indexes the context (`context_index.py`), measures for each claim what it says that its
aligned context sentences do not (`claim_features.py`), aggregates those measures over the answer and
applies the fitted model (`grounding_model.py`). The score is the model's probability that the answer
is supported; each claim gets the same model applied to that claim alone, so the weakest claims show
where the problem is.

Embeddings: by default (`use_embeddings=None`) the check embeds only when the fitted model gives the
claim-to-sentence similarity a weight; when it does, only the `max_embed_claims` claims whose words
are worst covered are embedded, with their aligned sentences, in one batch (the shared MiniLM
embedder, loaded on first use).

Nothing here logs or keeps text: results carry offsets into the answer, never its words.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from gateway.hallucination.claim_features import CLAIM_FEATURES, FEATURE_INDEX, ClaimEvidence, claim_evidence
from gateway.hallucination.claims import Claim, answer_claims, split_claims
from gateway.hallucination.context_index import ContextIndex
from gateway.hallucination.grounding_model import MODEL_PATH, GroundingModel, answer_features, load_model
from gateway.hallucination.result import ClaimScore, GroundingResult, verdict_for
from gateway.hallucination.tokens import tokenize
from gateway.risk.embeddings import get_embedder


class SupportsEncode(Protocol):
    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


@dataclass(slots=True)
class Analysis:
    """Everything `GroundingCheck.analyze` found; `score` turns it into a `GroundingResult`."""

    claims: list[ClaimEvidence]
    features: np.ndarray  # ANSWER_FEATURES row
    embedded_claims: int


class GroundingCheck:
    """Scores how well an answer is supported by its context. Thread-safe; reuse one instance.

    `embedder`: anything with `encode(list[str]) -> unit rows` (default: the shared MiniLM embedder,
    loaded on first use). `use_embeddings`: None (default) embeds only when the fitted model gives the
    similarity a weight (the shipped one does not: see `data/grounding_model.json`), True always
    (the fitting script), False never (the model's default similarity stands in).
    `max_embed_claims`: only the claims whose words are worst covered are embedded (with their
    aligned sentences), which bounds the cost whatever the answer's length.
    `model`: a `GroundingModel` to use instead of the one in `model_path` (the fitting script).
    """

    kind = "grounding"
    version = "grounding-11"  # bump when the features or their meaning change

    def __init__(
        self,
        *,
        threshold: float | None = None,
        model_path: Path | str = MODEL_PATH,
        model: GroundingModel | None = None,
        embedder: SupportsEncode | None = None,
        use_embeddings: bool | None = None,
        max_embed_claims: int = 2,
        align_k: int = 4,
        max_claims: int = 64,
    ) -> None:
        self.model = model if model is not None else load_model(str(model_path))
        self.threshold = self.model.threshold if threshold is None else float(threshold)
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be within [0, 1]")
        self._embedder = embedder
        weighs_embeddings = bool(self.model.coef[self.model.features.index("emb_min")] != 0.0)
        self.use_embeddings = weighs_embeddings if use_embeddings is None else use_embeddings
        self.max_embed_claims = max_embed_claims
        self.align_k = align_k
        self.max_claims = max_claims

    @property
    def embedder(self) -> SupportsEncode:
        if self._embedder is None:
            self._embedder = get_embedder()
        return self._embedder

    # -- the parts, public so that the fitting script and the self-consistency check can reuse them --

    def analyze(
        self,
        context: str | Sequence[str] | ContextIndex,
        answer: str,
        question: str = "",
        claims: Sequence[Claim] | None = None,
    ) -> Analysis:
        """`claims`: the answer's `answer_claims`, when the caller has them already."""
        index = context if isinstance(context, ContextIndex) else ContextIndex(context)
        question_stems = {t.stem for t in tokenize(question) if t.content} if question else set()
        claims = list(answer_claims(answer) if claims is None else claims)[: self.max_claims]
        evidence = [claim_evidence(index, c, question_stems, k=self.align_k) for c in claims]
        embedded = 0
        if self.use_embeddings and evidence and index.sentences and self.max_embed_claims > 0:
            embedded = self._embed(index, evidence)
        matrix = np.array([e.values for e in evidence]).reshape(len(evidence), len(CLAIM_FEATURES))
        row = answer_features(matrix, self.model.emb_default)
        return Analysis(evidence, row, embedded)

    def _embed(self, index: ContextIndex, evidence: list[ClaimEvidence]) -> int:
        worst = sorted(range(len(evidence)), key=lambda i: -evidence[i].suspicion)[: self.max_embed_claims]
        texts: list[str] = []
        slots: dict[str, int] = {}

        def slot(text: str) -> int:
            if text not in slots:
                slots[text] = len(texts)
                texts.append(text)
            return slots[text]

        plan = []
        for i in worst:
            ev = evidence[i]
            plan.append((i, slot(ev.claim.text), [slot(index.sentences[j].text) for j in ev.aligned]))
        rows = np.asarray(self.embedder.encode(texts), dtype=np.float32)
        for i, c, sents in plan:
            if sents:
                evidence[i].values[FEATURE_INDEX["emb"]] = float(np.max(rows[sents] @ rows[c]))
        return len(plan)

    def result(self, analysis: Analysis, threshold: float | None = None) -> GroundingResult:
        threshold = self.threshold if threshold is None else threshold
        model = self.model
        score = float(model.predict(analysis.features)[0])
        claim_scores: list[ClaimScore] = []
        if analysis.claims:
            rows = np.array(
                [
                    answer_features(ev.values[None, :], model.emb_default)
                    for ev in analysis.claims
                ]
            )
            for ev, p in zip(analysis.claims, model.predict(rows), strict=True):
                claim_scores.append(ClaimScore(ev.claim.start, ev.claim.end, float(p)))
        return GroundingResult(
            kind=self.kind,
            version=self.version,
            score=score,
            verdict=verdict_for(score, threshold),
            threshold=threshold,
            claims=claim_scores,
            unsupported_numbers=[s for ev in analysis.claims for s in ev.number_spans],
            unsupported_entities=[s for ev in analysis.claims for s in ev.entity_spans],
            unsupported_negations=[s for ev in analysis.claims for s in ev.negation_spans],
            novel_words=[s for ev in analysis.claims for s in ev.novel_spans],
            detail={
                "model": model.version,
                "claims": len(analysis.claims),
                "embedded_claims": analysis.embedded_claims,
            },
        )

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
        index = ContextIndex(pieces)
        if not index.sentences:
            # An answer checked against no context at all is not grounded in anything.
            scores = [ClaimScore(c.start, c.end, 0.0) for c in claims[: self.max_claims]]
            return GroundingResult(
                self.kind, self.version, 0.0, "unsupported", threshold, claims=scores, detail={"context": "empty"}
            )
        return self.result(self.analyze(index, answer, question, claims), threshold)
