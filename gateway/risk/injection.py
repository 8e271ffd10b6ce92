"""Prompt-injection and jailbreak score in [0, 1], by where the text arrived.

A small learned head over the sentence embeddings the risk stage already computes for every window
of every text (`prepare.py`: the domain detector reads the same vectors, so this costs one matrix
product per request). The head sees each window's embedding and the text's role (user turn, tool
result, supplied context, assistant turn, system prompt): an instruction addressed to the assistant
is expected in a user turn and is the signal itself inside data. A text scores as its most
suspicious window (an instruction hidden in one paragraph of a long document is not averaged away).

The weights are fitted by `scripts/train_injection.py` on many public sources
(`training/injection/sources/`, the manifest) and measured leave-one-source-out by
`bench/injection_eval.py`; the intercept is set so that 0.5 is the operating point chosen there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import sklearn
from scipy.sparse import csr_matrix
from sklearn.feature_extraction.text import HashingVectorizer

from gateway.risk import headfile
from gateway.risk.prepare import Prepared

DATA = Path(__file__).resolve().parent / "data"
HEAD_PATH = DATA / "injection_head.npz"
REBUILD = "scripts/train_injection.py"
# What the head tells apart: text someone types at the model, and data handed to it (tool and function
# results, context documents), where an instruction to the assistant is itself the signal. Assistant
# turns and system prompts read as typed text.
ROLES = ("user", "data")
_ROLE = {"tool": "data", "context": "data"}


def role_index(role: str) -> int:
    return ROLES.index(_ROLE.get(role, "user"))


def role_features(role: str) -> np.ndarray:
    out = np.zeros(len(ROLES), dtype=np.float32)
    out[role_index(role)] = 1.0
    return out


WORD_FEATURES = 2**18


@cache
def _vectorizer() -> HashingVectorizer:
    # sklearn's hashing trick: no vocabulary to ship, the same columns at fit and at run time
    return HashingVectorizer(n_features=WORD_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2",
                             token_pattern=r"(?u)\b\w+\b")


def word_rows(norms: list[str], roles: list[str]):
    """Hashed word 1-2 grams of normalized texts (`text.normalize`: decoded views included), once
    as they are and once more for data roles, so a word can weigh differently inside a document:
    the rows of `[x, x * is_data, is_data]`, built directly (scipy's hstack and multiply cost ~0.4 ms
    a request, more than the hashing itself)."""
    # The vectorizer's arguments are ours and fixed: sklearn's per-call argument checks are skipped.
    with sklearn.config_context(skip_parameter_validation=True):
        x = _vectorizer().transform(norms).tocsr()
    is_data = np.array([role_index(r) == 1 for r in roles], dtype=bool)
    counts = np.diff(x.indptr)
    indptr = np.zeros(len(roles) + 1, dtype=np.int64)
    np.cumsum(counts + is_data * (counts + 1), out=indptr[1:])
    indices = np.empty(indptr[-1], dtype=np.int64)
    values = np.empty(indptr[-1], dtype=np.float64)
    for i in range(len(roles)):
        a, b, o, n = x.indptr[i], x.indptr[i + 1], indptr[i], counts[i]
        indices[o : o + n], values[o : o + n] = x.indices[a:b], x.data[a:b]
        if is_data[i]:
            indices[o + n : o + 2 * n], values[o + n : o + 2 * n] = x.indices[a:b] + WORD_FEATURES, x.data[a:b]
            indices[o + 2 * n], values[o + 2 * n] = 2 * WORD_FEATURES, 1.0
    return csr_matrix((values, indices, indptr), shape=(len(roles), 2 * WORD_FEATURES + 1))


@dataclass(frozen=True)
class InjectionHead:
    """Two learned parts, their logits summed:
    - `window`: one hidden layer over [window embedding, role one-hot]; a text's logit is its worst
      window's (the embeddings are the ones the domain detector reads too);
    - `words`: a logistic model over hashed word 1-2 grams of the whole text, by role;
    minus `offsets[role]`, the logit chosen as that role's operating point on leave-one-source-out
    scores (which the score's 0.5 becomes)."""

    w1: np.ndarray  # (DIM + len(ROLES), hidden)
    b1: np.ndarray
    w2: np.ndarray  # (hidden,)
    b2: float
    meta: dict
    words: np.ndarray | None = None  # (2 * WORD_FEATURES + 1,) coefficients
    words_b: float = 0.0
    offsets: np.ndarray | None = None  # (len(ROLES),)

    def window_logits(self, vectors: np.ndarray, role: str) -> np.ndarray:
        x = np.concatenate([vectors, np.broadcast_to(role_features(role), (len(vectors), len(ROLES)))], axis=1)
        h = np.maximum(x @ self.w1 + self.b1, 0.0)
        return h @ self.w2 + self.b2

    def word_logits(self, rows) -> np.ndarray:
        # Each row's few dozen hashed n-grams, looked up and summed: O(n-grams). `rows @ self.words`
        # gives the same sums but converts the whole 2^19-long vector to float64 on every call
        # (~1 ms a request, measured: a third of the gateway's CPU on the plain path).
        rows = rows.tocsr()
        owner = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
        sums = np.bincount(owner, weights=rows.data * self.words[rows.indices], minlength=rows.shape[0])
        return sums + self.words_b

    def combine(self, words: np.ndarray, window: np.ndarray, roles: list[str]) -> np.ndarray:
        return words + window - self.offsets[[role_index(r) for r in roles]]

    def score(self, vectors: np.ndarray, role: str, norm: str) -> float:
        if not len(vectors):
            return 0.0
        window = float(self.window_logits(vectors, role).max())
        z = float(self.combine(self.word_logits(word_rows([norm], [role])), np.array([window]), [role])[0])
        if math.isnan(z):
            return 1.0  # fail closed: a number we cannot trust is treated as an attempt
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def save(self, path: Path) -> None:
        headfile.save(path, self.meta, w1=self.w1.astype(np.float16), b1=self.b1.astype(np.float16),
                      w2=self.w2.astype(np.float16), b2=np.array([self.b2], dtype=np.float32),
                      words=self.words.astype(np.float16), words_b=np.array([self.words_b], np.float32),
                      offsets=self.offsets.astype(np.float32))

    @staticmethod
    def load(path: Path = HEAD_PATH) -> InjectionHead:
        z, meta = headfile.load(path, ("w1", "b1", "w2", "b2", "words", "words_b", "offsets"), "injection model",
                                REBUILD)
        head = InjectionHead(z["w1"], z["b1"], z["w2"], float(z["b2"][0]), meta, z["words"], float(z["words_b"][0]),
                             z["offsets"])
        headfile.check_shape(head.w1.shape[0] == head.meta.get("dim", 384) + len(ROLES)
                             and head.w1.shape[1] == len(head.w2) and head.words.shape == (2 * WORD_FEATURES + 1,)
                             and head.offsets.shape == (len(ROLES),), path, "injection model", REBUILD)
        return head


class InjectionDetector:
    """Scores prepared texts with the committed model."""

    def __init__(self, head: InjectionHead | None = None) -> None:
        self.head = head or InjectionHead.load()

    def score(self, p: Prepared) -> float:
        return self.head.score(p.vectors, p.role, p.norm)
