"""Fit the injection model (gateway/risk/injection.py) and score it.

Two parts, each fitted on the same texts: the window head (multiple-instance learning: a text is
labelled, its windows are not, so a text's logit is the max over its windows' and the loss is on
that) and the word model (logistic regression over hashed word 1-2 grams, by role); their logits
are summed. Each role's operating point is chosen on leave-one-source-out scores, never on the
texts the parts were fitted on.

Every source weighs the same and, inside a source, attacks and benign texts weigh the same in total:
a large source must not decide what a small one means, and the operating point is not a property of
one corpus's class balance.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from gateway.risk.injection import ROLES, InjectionHead, role_index, word_rows
from gateway.risk.text import normalize
from training.injection.dataset import Example


@dataclass(frozen=True)
class Data:
    examples: list[Example]
    vectors: np.ndarray  # (windows, DIM)
    owner: np.ndarray  # (windows,): the text each window belongs to
    words: Any  # sparse (texts, word columns)

    @staticmethod
    def of(examples: list[Example], vectors: np.ndarray, owner: np.ndarray) -> Data:
        return Data(examples, vectors, owner, word_rows([normalize(e.text) for e in examples],
                                                        [e.role for e in examples]))

    def subset(self, keep: np.ndarray) -> Data:
        """The texts at indices `keep`, with their windows, owners renumbered."""
        keep = np.asarray(keep, dtype=np.int64)
        remap = np.full(len(self.examples), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        mask = remap[self.owner] >= 0
        return Data([self.examples[i] for i in keep], self.vectors[mask], remap[self.owner[mask]], self.words[keep])

    @property
    def y(self) -> np.ndarray:
        return np.array([e.attack for e in self.examples])


def role_matrix(examples: list[Example]) -> np.ndarray:
    out = np.zeros((len(examples), len(ROLES)), dtype=np.float32)
    for i, e in enumerate(examples):
        out[i, role_index(e.role)] = 1.0
    return out


def weights(examples: list[Example]) -> np.ndarray:
    groups = Counter((e.source, e.attack) for e in examples)
    sources = {e.source for e in examples}
    w = np.array([1.0 / groups[(e.source, e.attack)] for e in examples], dtype=np.float64)
    w *= len(examples) / (2 * len(sources)) / max(1e-9, w.sum() / (2 * len(sources)))
    # equal total weight for the two classes, whichever sources hold only one of them
    y = np.array([e.attack for e in examples])
    for label in (True, False):
        mask = y == label
        if mask.any():
            w[mask] *= (len(examples) / 2) / w[mask].sum()
    return w.astype(np.float32)


def fit_window(d: Data, *, hidden: int = 32, steps: int = 300, lr: float = 5e-3, weight_decay: float = 1e-3,
               seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    examples, vectors, owner = d.examples, d.vectors, d.owner
    torch.manual_seed(seed)
    random.seed(seed)
    roles = torch.from_numpy(role_matrix(examples))
    own = torch.from_numpy(owner.astype(np.int64))
    x = torch.cat([torch.from_numpy(vectors.astype(np.float32)), roles[own]], dim=1)
    y = torch.tensor([float(e.attack) for e in examples])
    w = torch.from_numpy(weights(examples))
    slots = _slots(owner, len(examples))  # (texts, most windows): each text's window rows, -1 padded
    pad = slots < 0
    take = slots.clamp(min=0)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in range(steps):
        opt.zero_grad()
        z = model(x).squeeze(1)
        seg = z[take].masked_fill(pad, -1e4).amax(dim=1)
        loss = (torch.nn.functional.binary_cross_entropy_with_logits(seg, y, reduction="none") * w).mean()
        loss.backward()
        opt.step()
    lin1, lin2 = model[0], model[2]
    return (lin1.weight.detach().numpy().T.copy(), lin1.bias.detach().numpy().copy(),
            lin2.weight.detach().numpy()[0].copy(), float(lin2.bias.detach()[0]))


def _slots(owner: np.ndarray, n: int) -> torch.Tensor:
    counts = np.bincount(owner, minlength=n)
    out = np.full((n, max(1, int(counts.max()))), -1, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = np.argsort(owner, kind="stable")
    for i, (start, count) in enumerate(zip(starts, counts, strict=True)):
        out[i, :count] = order[start : start + count]
    return torch.from_numpy(out)


def fit_words(d: Data, c: float = 4.0) -> tuple[np.ndarray, float]:
    m = LogisticRegression(C=c, max_iter=2000)
    m.fit(d.words, d.y, sample_weight=weights(d.examples))
    return m.coef_[0].astype(np.float32), float(m.intercept_[0])


def fit_parts(d: Data) -> InjectionHead:
    """Both parts, their logits summed (each is a log-odds; their sum, a product of experts: a text
    both call an attempt is one more surely). A mix fitted per role on out-of-fold logits was tried:
    for typed text it weighed the word model negatively (it does not carry over to unseen sources
    there), and the result missed "Ignore all previous instructions" in the shipped model."""
    w1, b1, w2, b2 = fit_window(d)
    words, words_b = fit_words(d)
    return InjectionHead(w1, b1, w2, b2, {"dim": d.vectors.shape[1]}, words, words_b,
                         np.zeros(len(ROLES), np.float32))


def part_logits(head: InjectionHead, d: Data) -> tuple[np.ndarray, np.ndarray]:
    """(word logits, window logits: each text's windows' max)."""
    window = np.full(len(d.examples), -np.inf)
    for role in {e.role for e in d.examples}:
        idx = np.array([i for i, e in enumerate(d.examples) if e.role == role])
        mask = np.isin(d.owner, idx)
        np.maximum.at(window, d.owner[mask], head.window_logits(d.vectors[mask], role))
    return head.word_logits(d.words), window


def source_oof(d: Data) -> np.ndarray:
    """Each text's summed part logits from the parts fitted on every source but its own: the score a
    source gets when it is new, as the operating point must hold on tomorrow's sources. (Three
    grouped folds, before: which sources shared a fold, a seeded deal, moved typed text's operating
    point from 1.0 to 1.9 logits between seeds, and pooling five deals still from 1.7 to 2.5.)"""
    z = np.zeros(len(d.examples))
    for source in sorted({e.source for e in d.examples}):
        test = np.array([i for i, e in enumerate(d.examples) if e.source == source])
        train = np.array([i for i, e in enumerate(d.examples) if e.source != source])
        words, window = part_logits(fit_parts(d.subset(train)), d.subset(test))
        z[test] = words + window
    return z


def fit_model(d: Data, target_fp: float) -> InjectionHead:
    """Both parts fitted on everything given; each role's operating point chosen on leave-one-source-
    out scores of the same data (never on what the parts were fitted on)."""
    parts = fit_parts(d)
    t = role_thresholds(d.examples, source_oof(d), target_fp)
    return InjectionHead(parts.w1, parts.b1, parts.w2, parts.b2, {**parts.meta, "threshold_logit": t.tolist()},
                         parts.words, parts.words_b, t.astype(np.float32))


def predict(head: InjectionHead, d: Data) -> np.ndarray:
    """Each text's logit relative to its role's operating point (flagged at >= 0)."""
    words, window = part_logits(head, d)
    return head.combine(words, window, [e.role for e in d.examples])


# --- the operating point ---------------------------------------------------------------------------

def threshold_for(examples: list[Example], logits: np.ndarray, target_fp: float) -> float:
    """The lowest logit that keeps the benign false-positive rate, every source weighing the same,
    at or under `target_fp`."""
    benign = [i for i, e in enumerate(examples) if not e.attack]
    per_source = Counter(examples[i].source for i in benign)
    w = np.array([1.0 / per_source[examples[i].source] for i in benign])
    w /= w.sum()
    z = logits[benign]
    order = np.argsort(-z)
    flagged = np.cumsum(w[order])  # the FP rate if the threshold sat just under z[order[k]]
    k = int(np.searchsorted(flagged, target_fp, side="right"))  # how many top benign may be flagged
    if k >= len(order):
        return float(z.min())
    return float(z[order[k]]) + 1e-6  # just above the first benign text that must not be flagged


def role_thresholds(examples: list[Example], logits: np.ndarray, target_fp: float) -> np.ndarray:
    """One threshold per role the head tells apart: typed text and data differ in how often benign
    text looks like an instruction (a clean document's twin is the hardest benign text there is), so
    one threshold for both would be set by the harder and cost the other its detection."""
    overall = threshold_for(examples, logits, target_fp)
    out = np.full(len(ROLES), overall)
    for r in range(len(ROLES)):
        idx = [i for i, e in enumerate(examples) if role_index(e.role) == r]
        if any(not examples[i].attack for i in idx):
            out[r] = threshold_for([examples[i] for i in idx], logits[idx], target_fp)
    return out


# --- figures -------------------------------------------------------------------------------------

def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    if not len(pos) or not len(neg):
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = allv.argsort(kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and sorted_v[j + 1] == sorted_v[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def auroc_ci(pos: np.ndarray, neg: np.ndarray, reps: int = 200, seed: int = 0) -> tuple[float, float]:
    if not len(pos) or not len(neg):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    vals = [auroc(rng.choice(pos, len(pos)), rng.choice(neg, len(neg))) for _ in range(reps)]
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    d = 1 + z * z / n
    c = p + z * z / (2 * n)
    r = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (c - r) / d, (c + r) / d


def rate(flags: np.ndarray) -> tuple[float, float, float]:
    """The share of `flags` that are set, with its 95% Wilson interval."""
    k, n = int(flags.sum()), len(flags)
    lo, hi = wilson(k, n)
    return (k / n if n else float("nan")), lo, hi
