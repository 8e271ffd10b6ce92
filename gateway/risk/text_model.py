"""A word uni- and bigram TF-IDF logistic model: the wording of attacks that no pattern names.

Jailbreak prompts share a vocabulary ("stay in character", "two responses", "as a reminder you")
that a hand-written family list only partly covers. This model learns it from the evaluation data
and the authored benign prompts (`data/injection_train_benign.jsonl`: system prompts, personas,
style rules, games, fiction, talk about AI safety), and its probability is one more feature of the
injection model (`text_prob`), fitted on out-of-fold probabilities so that it is weighed by what it
does on text it has not seen.

Fitted by `bench/injection_eval.py --write` with scikit-learn's `TfidfVectorizer` (word analyzer,
`\\b\\w+\\b` tokens, 1-2 grams, sublinear tf, smooth idf, l2 norm) and `LogisticRegression`;
scoring here reimplements that transform with numpy so the gateway does not need scikit-learn.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TOKEN = re.compile(r"(?u)\b\w+\b")


def terms(norm: str) -> Counter[str]:
    """Unigrams and bigrams of the normalized text, as scikit-learn's word analyzer makes them."""
    tokens = TOKEN.findall(norm)
    out = Counter(tokens)
    out.update(f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False))
    return out


@dataclass(frozen=True)
class TextModel:
    vocabulary: dict[str, int]
    weights: np.ndarray  # idf * coef, per vocabulary index
    idf: np.ndarray
    intercept: float

    def prob(self, norm: str) -> float:
        idx, tf = [], []
        for term, count in terms(norm).items():
            j = self.vocabulary.get(term)
            if j is not None:
                idx.append(j)
                tf.append(1.0 + math.log(count))
        z = self.intercept
        if idx:
            t = np.asarray(tf)
            z += float(t @ self.weights[idx]) / float(np.linalg.norm(t * self.idf[idx]))
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    @staticmethod
    def from_sklearn(pipeline) -> TextModel:
        vec, lr = pipeline.steps[0][1], pipeline.steps[-1][1]
        idf = np.asarray(vec.idf_, dtype=np.float64)
        coef = np.asarray(lr.coef_[0], dtype=np.float64)
        return TextModel(dict(vec.vocabulary_), idf * coef, idf, float(lr.intercept_[0]))

    def to_json(self, meta: dict) -> str:
        order = sorted(self.vocabulary, key=self.vocabulary.__getitem__)
        coef = self.weights / self.idf
        doc = {
            "terms": order,
            "idf": [round(float(self.idf[self.vocabulary[t]]), 6) for t in order],
            "coef": [round(float(coef[self.vocabulary[t]]), 6) for t in order],
            "intercept": round(self.intercept, 6),
            "meta": meta,
        }
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"

    @staticmethod
    def load(path: Path) -> TextModel:
        doc = json.loads(path.read_text(encoding="utf-8"))
        idf = np.array(doc["idf"], dtype=np.float64)
        coef = np.array(doc["coef"], dtype=np.float64)
        if not (len(doc["terms"]) == len(idf) == len(coef)):
            raise ValueError(f"{path} is inconsistent; refit it with bench/injection_eval.py --write")
        return TextModel({t: i for i, t in enumerate(doc["terms"])}, idf * coef, idf, float(doc["intercept"]))
