"""The grounding check's answer-level features and the logistic model that turns them into a score.

`answer_features` aggregates the claim features (`claim_features.py`) of an answer into one row of
`ANSWER_FEATURES` (sums, the worst claim, the count); `GroundingModel`, a standardized logistic
regression whose weights live in `data/grounding_model.json` (fitted by `scripts/fit_grounding.py`),
gives the probability that the answer is supported, halved for each number, currency, name or
closed-class value the context lacks (`DECISIVE`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gateway.hallucination.claim_features import CLAIM_FEATURES, FEATURE_INDEX

MODEL_PATH = Path(__file__).resolve().parent / "data" / "grounding_model.json"

# Answer-level features: (name, claim feature, aggregation). The "worst claim" enters through the
# max (or, for the embedding similarity, min) aggregations; sums count evidence over the whole answer.
# Sizes, and counts that may raise the score, enter as log(1 + x): the data's answers are one to
# three sentences, and a linear size weight extrapolated to a twelve-sentence answer copied word for
# word from its context scored it 0.19 (lr-8).
ANSWER_FEATURES: tuple[tuple[str, str, str], ...] = (
    ("n_claims_log", "", "logcount"),
    ("n_content_log", "n_content", "logsum"),
    ("novel_log", "novel", "logsum"),
    ("novel_frac_max", "novel_frac", "max"),
    ("novel_in_question_sum", "novel_in_question", "sum"),
    ("novel_cap_sum", "novel_cap", "sum"),
    ("class_novel_sum", "class_novel", "sum"),
    ("local_novel_max", "local_novel", "max"),
    ("local_frac_max", "local_frac", "max"),
    ("num_log", "num", "logsum"),
    ("num_novel_sum", "num_novel", "sum"),
    ("num_local_sum", "num_local", "sum"),
    ("pair_novel_sum", "pair_novel", "sum"),
    ("pair_frac_max", "pair_frac", "max"),
    ("num_pair_novel_sum", "num_pair_novel", "sum"),
    ("cap_local_sum", "cap_local", "sum"),
    ("neg_unsupported_sum", "neg_unsupported", "sum"),
    ("neg_added_max", "neg_added", "max"),
    ("neg_dropped_sum", "neg_dropped", "sum"),
    ("neg_contradicts_sum", "neg_contradicts", "sum"),
    ("lone_swap_sum", "lone_swap", "sum"),
    ("antonym_sum", "antonym", "sum"),
    ("prefix_flip_sum", "prefix_flip", "sum"),
    ("flip_anchored_sum", "flip_anchored", "sum"),
    ("swap_word_sum", "swap_word", "sum"),
    ("swap_number_sum", "swap_number", "sum"),
    ("hedge_sum", "hedge", "sum"),
    ("novel_syn_log", "novel_syn", "logsum"),
    ("novel_syn2_log", "novel_syn2", "logsum"),
    ("emb_min", "emb", "min"),
)


def answer_features(claim_values: np.ndarray, emb_default: float) -> np.ndarray:
    """Aggregate a (claims x CLAIM_FEATURES) matrix into one ANSWER_FEATURES row.

    Embedding similarities not computed (NaN) are ignored by the min; if none was computed, the
    model's `emb_default` (the training mean) stands in."""
    if claim_values.ndim != 2 or claim_values.shape[1] != len(CLAIM_FEATURES):
        raise ValueError("claim_values must have one row per claim and one column per CLAIM_FEATURES")
    out = np.zeros(len(ANSWER_FEATURES), dtype=np.float64)
    n = claim_values.shape[0]
    for j, (_, feat, how) in enumerate(ANSWER_FEATURES):
        if how == "logcount":
            out[j] = math.log1p(n)
        elif n == 0:
            out[j] = emb_default if feat == "emb" else 0.0
        else:
            col = claim_values[:, FEATURE_INDEX[feat]]
            if feat == "emb":
                col = col[~np.isnan(col)]
                out[j] = float(col.min()) if col.size else emb_default
            elif how == "sum":
                out[j] = float(col.sum())
            elif how == "logsum":
                out[j] = math.log1p(float(col.sum()))
            else:
                out[j] = float(col.max())
    return out


# Numbers (currencies among them) and names that the context never states are decisive, whatever the
# rest of the answer looks like: each one halves the score (up to four). The fitted weights alone let a
# short answer in a long context through with an invented number ("The meeting starts at 4 pm." against
# "15:00" in 3,800 characters scored 0.63 under lr-9), because the dev data's short answers are mostly
# right ones. On the dev file's out-of-fold scores the rule costs nothing measurable (SummEdits 0.7532
# -> 0.7530): of the 3,000 answers, 40 supported ones and 534 hallucinated ones hold such a number or name.
DECISIVE = ("num_novel_sum", "novel_cap_sum", "class_novel_sum")
DECISIVE_FACTOR = 0.5
DECISIVE_MAX = 4


@dataclass(frozen=True)
class GroundingModel:
    """Standardized logistic regression over ANSWER_FEATURES; P(supported) = sigmoid(w . z + b).

    Each feature is first clipped to the range the model was fitted on (`lower`, `upper`), so that
    no answer is scored by extrapolating a weight past the data (the data's answers are one to three
    sentences; lr-8's linear size weight scored a twelve-sentence verbatim answer 0.19)."""

    version: str
    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    threshold: float
    emb_default: float
    meta: dict[str, Any] = field(default_factory=dict)
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GroundingModel:
        features = tuple(data["features"])
        expected = tuple(name for name, _, _ in ANSWER_FEATURES)
        if features != expected:
            raise ValueError(f"grounding model features {features} do not match the code's {expected}; refit it")
        return cls(
            version=str(data["version"]),
            features=features,
            mean=np.asarray(data["mean"], dtype=np.float64),
            scale=np.asarray(data["scale"], dtype=np.float64),
            coef=np.asarray(data["coef"], dtype=np.float64),
            intercept=float(data["intercept"]),
            threshold=float(data["threshold"]),
            emb_default=float(data["emb_default"]),
            meta=dict(data.get("meta", {})),
            lower=np.asarray(data["lower"], dtype=np.float64) if "lower" in data else None,
            upper=np.asarray(data["upper"], dtype=np.float64) if "upper" in data else None,
        )

    @classmethod
    def load(cls, path: Path | str = MODEL_PATH) -> GroundingModel:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "features": list(self.features),
            "mean": [round(float(x), 6) for x in self.mean],
            "scale": [round(float(x), 6) for x in self.scale],
            "coef": [round(float(x), 6) for x in self.coef],
            "intercept": round(self.intercept, 6),
            "threshold": round(self.threshold, 6),
            "emb_default": round(self.emb_default, 6),
            **({"lower": [round(float(x), 6) for x in self.lower]} if self.lower is not None else {}),
            **({"upper": [round(float(x), 6) for x in self.upper]} if self.upper is not None else {}),
            "meta": self.meta,
        }

    def predict(self, rows: np.ndarray) -> np.ndarray:
        rows = np.atleast_2d(rows)
        decisive = sum(rows[:, self.features.index(name)] for name in DECISIVE)
        if self.lower is not None and self.upper is not None:
            rows = np.clip(rows, self.lower, self.upper)
        z = (rows - self.mean) / self.scale
        logits = z @ self.coef + self.intercept
        p = 1.0 / (1.0 + np.exp(-np.clip(logits, -40.0, 40.0)))
        return p * DECISIVE_FACTOR ** np.minimum(decisive, DECISIVE_MAX)


@lru_cache(maxsize=4)
def load_model(path: str) -> GroundingModel:
    return GroundingModel.load(path)
