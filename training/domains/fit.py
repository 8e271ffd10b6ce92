"""Fit the sensitive-domain head (gateway/risk/domains.py: `DomainHead`) and score it.

One logistic regression per domain over the sentence embedder's windows, each window labelled with
its text's domain (a text's windows share its weight); a text's score is the max over its windows,
as at run time. Every source weighs the same, so a large set does not decide what a domain looks
like. Everything that is chosen is chosen on out-of-fold scores with whole sources held out (never
on texts a part was fitted on):
- the regularization, from a small grid, by the mean AUROC of each domain against general texts;
- one slope for all domains (Platt scaling), so that scores spread like probabilities;
- each domain's offset, so that the policy's default threshold (0.4) flags `target_fp` of general
  texts (every source weighing the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression

from gateway.risk.domains import HEAD_DOMAINS, THRESHOLD_LOGIT, DomainHead
from gateway.risk.prepare import prepare
from training.domains.sources import LABELS, Source
from training.injection.fit import auroc

C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


@dataclass(frozen=True)
class Data:
    vectors: np.ndarray  # (windows, DIM)
    owner: np.ndarray  # (windows,): the text each window belongs to
    label: np.ndarray  # (texts,): index into LABELS
    source: np.ndarray  # (texts,): index into `names`
    names: tuple[str, ...]
    norms: tuple[str, ...]  # normalized texts, for the lexicon baseline

    def subset(self, keep: np.ndarray) -> Data:
        keep = np.asarray(keep, dtype=np.int64)
        remap = np.full(len(self.label), -1, dtype=np.int64)
        remap[keep] = np.arange(len(keep))
        mask = remap[self.owner] >= 0
        return Data(self.vectors[mask], remap[self.owner[mask]], self.label[keep], self.source[keep], self.names,
                     tuple(self.norms[i] for i in keep))

    def of_sources(self, names: set[str]) -> np.ndarray:
        return np.flatnonzero(np.isin(self.source, [self.names.index(n) for n in names]))


def embed(sources: list[Source], embedder) -> Data:
    texts = [(s, t) for s in sources for t in s.texts]
    prepared = prepare([t for _, t in texts], embedder)
    owner = np.concatenate([np.full(len(p.vectors), i) for i, p in enumerate(prepared)])
    names = tuple(s.name for s in sources)
    return Data(np.concatenate([p.vectors for p in prepared]).astype(np.float32), owner,
                np.array([LABELS.index(s.domain) for s, _ in texts]), np.array([names.index(s.name) for s, _ in texts]),
                names, tuple(p.norm for p in prepared))


def _text_weights(d: Data) -> np.ndarray:
    """1 / the size of its source, for every text: every source weighs the same."""
    return 1.0 / np.bincount(d.source, minlength=len(d.names)).astype(np.float64)[d.source]


def _window_weights(d: Data) -> np.ndarray:
    text_w = _text_weights(d)
    per_text = np.bincount(d.owner, minlength=len(d.label))
    w = text_w[d.owner] / per_text[d.owner]
    return w * len(w) / w.sum()


def _fit(d: Data, c: float) -> tuple[np.ndarray, np.ndarray]:
    w = _window_weights(d)
    weights, biases = [], []
    for dom in HEAD_DOMAINS:
        y = (d.label[d.owner] == LABELS.index(dom)).astype(np.int64)
        if not y.any():  # an inner fold can hold no source of a rare domain: it then never fires
            weights.append(np.zeros(d.vectors.shape[1], np.float32))
            biases.append(-20.0)
            continue
        # within the binary problem the domain's windows and the rest weigh the same in total
        wy = np.where(y == 1, w / max(w[y == 1].sum(), 1e-9), w / max(w[y == 0].sum(), 1e-9)) * len(w) / 2
        lr = LogisticRegression(C=c, max_iter=2000).fit(d.vectors, y, sample_weight=wy)
        weights.append(lr.coef_[0])
        biases.append(lr.intercept_[0])
    return np.array(weights, np.float32), np.array(biases, np.float32)


def text_logits(weight: np.ndarray, bias: np.ndarray, d: Data) -> np.ndarray:
    """(texts, domains): the max over each text's windows."""
    win = d.vectors @ weight.T + bias
    out = np.full((len(d.label), len(bias)), -np.inf, dtype=np.float32)
    np.maximum.at(out, d.owner, win)
    return out


def _oof(d: Data, c: float, folds: int) -> np.ndarray:
    """Out-of-fold text logits, whole sources held out together (sources dealt round-robin by
    domain so every fold keeps some of each)."""
    order = sorted(set(d.source.tolist()), key=lambda s: (d.label[d.source == s][0], s))
    fold_of = {s: i % folds for i, s in enumerate(order)}
    fold = np.array([fold_of[s] for s in d.source])
    out = np.zeros((len(d.label), len(HEAD_DOMAINS)), np.float32)
    for k in range(folds):
        test = np.flatnonzero(fold == k)
        train = d.subset(np.flatnonzero(fold != k))
        out[test] = text_logits(*_fit(train, c), d.subset(test))
    return out


def _mean_auroc(d: Data, logits: np.ndarray) -> float:
    general = d.label == LABELS.index("general")
    return float(np.mean([auroc(logits[d.label == LABELS.index(dom), j], logits[general, j])
                          for j, dom in enumerate(HEAD_DOMAINS) if (d.label == LABELS.index(dom)).any()]))


def _weighted_quantile(x: np.ndarray, w: np.ndarray, q: float) -> float:
    order = np.argsort(x)
    cum = np.cumsum(w[order]) / w.sum()
    return float(x[order][min(np.searchsorted(cum, q), len(x) - 1)])


def fit_head(d: Data, target_fp: float = 0.01, folds: int = 4) -> tuple[DomainHead, dict]:
    """The head and what was chosen on the way (regularization, slope, offsets, out-of-fold AUROC).

    On the chosen regularization's out-of-fold logits: one slope for all domains (Platt scaling,
    each domain's texts against general texts), so that scores spread like probabilities and a
    policy's threshold moves detection gradually while the domains stay comparable; then an offset
    per domain, so that the default threshold flags `target_fp` of general texts (every source
    weighing the same). A domain with fewer than two sources has no out-of-fold logits (its only
    source is never in training when it is scored): its offset is read from the fitted logits."""
    oofs = {c: _oof(d, c, folds) for c in C_GRID}
    by_c = {c: _mean_auroc(d, oofs[c]) for c in C_GRID}
    c = max(C_GRID, key=lambda k: by_c[k])
    weight, bias = _fit(d, c)
    fitted = text_logits(weight, bias, d)
    general = d.label == LABELS.index("general")
    text_w = _text_weights(d)
    xs, ys, ws, logits = [], [], [], oofs[c].copy()
    for j, dom in enumerate(HEAD_DOMAINS):
        own = d.label == LABELS.index(dom)
        if len(set(d.source[own].tolist())) < 2:
            logits[:, j] = fitted[:, j]
            continue
        keep = own | general
        xs.append(logits[keep, j])
        ys.append(own[keep])
        ws.append(np.where(own[keep], text_w[keep] / text_w[own].sum(), text_w[keep] / text_w[general].sum()))
    slope = float(LogisticRegression(C=100.0).fit(np.concatenate(xs)[:, None], np.concatenate(ys),
                                                  sample_weight=np.concatenate(ws)).coef_[0, 0])
    offsets = np.array([THRESHOLD_LOGIT - _weighted_quantile(slope * logits[general, j], text_w[general],
                                                             1 - target_fp)
                        for j in range(len(HEAD_DOMAINS))], np.float32)
    chosen = {"C": c, "oof_mean_auroc_by_C": {str(k): round(v, 4) for k, v in by_c.items()},
              "target_fp_per_domain": target_fp, "slope": round(slope, 4),
              "offsets": [round(float(x), 4) for x in offsets]}
    return DomainHead(weight * slope, bias * slope + offsets), chosen
