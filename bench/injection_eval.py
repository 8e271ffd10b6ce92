"""Held-out evaluation of the injection detector on `injection-dev.jsonl`, and the fit that ships.

Protocol (printed with the figures):
- Near-duplicates are grouped into clusters (character 5-gram Jaccard >= 0.5, or first-chunk embedding
  cosine >= 0.95, joined transitively), so DAN 6.0 and DAN 6.2 always land in the same fold.
- 5-fold cross-validation stratified by label and grouped by cluster. For each outer fold the logistic
  regression is fitted on the other four, and its operating point (the score that becomes the 0.5 line)
  is chosen by an inner grouped 4-fold split of those four folds: the lowest score that keeps the inner
  out-of-fold false positives at or under `--target-fp`. The outer fold is then scored once.
- The shipped model stacks a word 1-2 gram TF-IDF logistic model (`gateway/risk/text_model.py`) onto
  the pattern, structure and embedding features: inside each outer fold the text model is fitted on the
  training folds only, and the stacked weight is fitted on its inner out-of-fold probabilities. The
  authored benign rows (`gateway/risk/data/injection_train_benign.jsonl`: system prompts, personas,
  style rules, games, fiction, talk about AI safety) join every training split and are never scored.
- The embedding exemplars are authored (`gateway/risk/data/injection_exemplars.json`), not taken from
  the dev set, so no attack ever sees itself or a near copy among the exemplars.
  `--dev-exemplars` adds, per outer fold, every chunk of the attacks in the *other* folds (and, for
  training records, minus their own cluster), to measure what exemplars from the dev set would add.
- Intervals: 95% percentile bootstrap over clusters (2,000 resamples), and the exact Clopper-Pearson
  interval next to it (the bootstrap collapses to [0, 0] when no false positive was seen).
- Baselines under the same folds: length only, 20 classic phrases, nearest authored exemplar.
- Extra sets, scored by the final model (never used for fitting): tests/risk/data/benign_scary.jsonl
  (benign text that sounds dangerous, long benign documents), tests/risk/data/benign_personas.jsonl
  (benign persona, style-rule, game and fiction prompts: the look of the community-labelled role-play
  attacks without the jailbreak) and tests/risk/data/attacks_extra.jsonl (short and indirect attacks).

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py            # figures only
    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_eval.py --write    # and refit the models
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scipy.stats import beta  # noqa: E402
from sklearn.feature_extraction.text import HashingVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.model_selection import StratifiedGroupKFold  # noqa: E402

from gateway.risk.embeddings import get_embedder  # noqa: E402
from gateway.risk.injection import (  # noqa: E402
    DATA,
    FEATURES,
    MODEL_PATH,
    PATTERN_FEATURES,
    PATTERN_MODEL_PATH,
    STRONG,
    TEXT_MODEL_PATH,
    Exemplars,
    InjectionDetector,
    InjectionModel,
    features,
)
from gateway.risk.prepare import Prepared, prepare  # noqa: E402
from gateway.risk.text import normalize  # noqa: E402
from gateway.risk.text_model import TOKEN, TextModel  # noqa: E402

DEV = Path(__file__).resolve().parents[2] / "shared" / "evals" / "injection-dev.jsonl"  # ../shared
SCARY = ROOT / "tests/risk/data/benign_scary.jsonl"
EXTRA = ROOT / "tests/risk/data/attacks_extra.jsonl"
PERSONAS = ROOT / "tests/risk/data/benign_personas.jsonl"  # benign persona/style/rules prompts, held out
TRAIN_BENIGN = DATA / "injection_train_benign.jsonl"  # authored negatives added to every training split
SEED = 20240611

# What a first attempt at a phrase list looks like: the baseline the issue quotes (~72% at 0% FP).
CLASSIC = [
    "ignore previous instructions",
    "ignore all previous instructions",
    "ignore the above",
    "disregard previous",
    "developer mode",
    "do anything now",
    "jailbreak",
    "dan mode",
    "no restrictions",
    "without any restrictions",
    "stay in character",
    "openai content policy",
    "openai's content policy",
    "as an ai language model",
    "unfiltered",
    "uncensored",
    "amoral",
    "no ethical",
    "system prompt",
    "break character",
]


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


# ---------------------------------------------------------------------------------------------- clusters


def clusters(texts: list[str], first_vectors: np.ndarray) -> np.ndarray:
    parent = list(range(len(texts)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    hv = HashingVectorizer(
        analyzer="char",
        ngram_range=(5, 5),
        n_features=2**20,
        binary=True,
        norm=None,
        alternate_sign=False,
        lowercase=True,
    )
    m = hv.transform(texts).astype(np.float32)
    sizes = np.asarray(m.sum(axis=1)).ravel()
    inter = (m @ m.T).toarray()
    union = sizes[:, None] + sizes[None, :] - inter
    jac = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    cos = first_vectors @ first_vectors.T
    close = (jac >= 0.5) | (cos >= 0.95)
    for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True):
        parent[find(i)] = find(j)
    roots = [find(i) for i in range(len(texts))]
    ids = {r: k for k, r in enumerate(dict.fromkeys(roots))}
    return np.array([ids[r] for r in roots])


# ---------------------------------------------------------------------------------------------- metrics


def rates(pred: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    return float(pred[y == 1].mean()), float(pred[y == 0].mean())


def cluster_bootstrap(pred: np.ndarray, y: np.ndarray, groups: np.ndarray, n: int = 2000) -> tuple:
    rng = np.random.default_rng(SEED)
    uniq = np.unique(groups)
    members = {g: np.nonzero(groups == g)[0] for g in uniq}
    det, fp = [], []
    for _ in range(n):
        idx = np.concatenate([members[g] for g in rng.choice(uniq, size=len(uniq), replace=True)])
        yy, pp = y[idx], pred[idx]
        if (yy == 1).any() and (yy == 0).any():
            det.append(pp[yy == 1].mean())
            fp.append(pp[yy == 0].mean())
    return tuple(np.percentile(det, [2.5, 97.5])), tuple(np.percentile(fp, [2.5, 97.5]))


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    lo = 0.0 if k == 0 else beta.ppf(0.025, k, n - k + 1)
    hi = 1.0 if k == n else beta.ppf(0.975, k + 1, n - k)
    return float(lo), float(hi)


def report(
    name: str, pred: np.ndarray, y: np.ndarray, groups: np.ndarray, scores: np.ndarray | None = None
) -> dict:
    det, fp = rates(pred, y)
    (d_lo, d_hi), (f_lo, f_hi) = cluster_bootstrap(pred, y, groups)
    k_det, n_att = int(pred[y == 1].sum()), int((y == 1).sum())
    k_fp, n_ben = int(pred[y == 0].sum()), int((y == 0).sum())
    cd, cf = clopper_pearson(k_det, n_att), clopper_pearson(k_fp, n_ben)
    auc = f"  AUROC {roc_auc_score(y, scores):.3f}" if scores is not None else ""
    print(
        f"{name:<44} detection {det:6.1%} ({k_det}/{n_att}) boot [{d_lo:.1%}, {d_hi:.1%}] "
        f"CP [{cd[0]:.1%}, {cd[1]:.1%}]"
        f" | FP {fp:5.2%} ({k_fp}/{n_ben}) boot [{f_lo:.2%}, {f_hi:.2%}] CP [{cf[0]:.2%}, {cf[1]:.2%}]{auc}"
    )
    return {
        "detection": det,
        "fp": fp,
        "detection_ci_boot": [d_lo, d_hi],
        "fp_ci_boot": [f_lo, f_hi],
        "detection_ci_cp": list(cd),
        "fp_ci_cp": list(cf),
    }


# ---------------------------------------------------------------------------------------------- fitting


def fit(x: np.ndarray, y: np.ndarray, c: float, extra: np.ndarray | None = None) -> LogisticRegression:
    """`extra`: authored benign rows that join every training split and are never scored."""
    if extra is not None and len(extra):
        x, y = np.concatenate([x, extra]), np.concatenate([y, np.zeros(len(extra), dtype=y.dtype)])
    return LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)


def threshold_for(scores: np.ndarray, y: np.ndarray, target_fp: float) -> float:
    """Lowest threshold (score >= t flags) whose false-positive rate on these scores is <= target_fp."""
    benign = np.sort(scores[y == 0])[::-1]
    allowed = int(math.floor(target_fp * len(benign)))
    # Flag strictly above the (allowed+1)-th highest benign score.
    return float(np.nextafter(benign[allowed], np.inf)) if allowed < len(benign) else float(benign[-1])


def oof_scores(x, y, groups, c, seed, n_splits=4, extra=None) -> np.ndarray:
    out = np.zeros(len(y))
    for tr, te in StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(
        x, y, groups
    ):
        out[te] = fit(x[tr], y[tr], c, extra).decision_function(x[te])
    return out


def nested_cv(x, y, groups, folds, c, target_fp, make_x=None, extra=None):
    """Outer held-out logits shifted so that 0 is the operating point chosen on the training folds."""
    out = np.zeros(len(y))
    for k, (tr, te) in enumerate(folds):
        xtr, xte = (x[tr], x[te]) if make_x is None else make_x(k, tr, te)
        inner = oof_scores(xtr, y[tr], groups[tr], c, SEED + k, extra=extra)
        t = threshold_for(inner, y[tr], target_fp)
        out[te] = fit(xtr, y[tr], c, extra).decision_function(xte) - t
    return out


def baseline_threshold_cv(score: np.ndarray, y, folds, target_fp) -> np.ndarray:
    pred = np.zeros(len(y), dtype=bool)
    for tr, te in folds:
        t = threshold_for(score[tr], y[tr], target_fp)
        pred[te] = score[te] >= t
    return pred


# ---------------------------------------------------------------------------------------------- main


def embed_all(texts: list[str], cache_dir: Path) -> list[Prepared]:
    """Prepared texts; chunk vectors cached on disk by content digest (the embedder is the slow part)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"prepared-{key}.npz"
    if path.exists():
        data = np.load(path)
        return [Prepared(t, normalize(t), data[str(i)]) for i, t in enumerate(texts)]
    t0 = time.perf_counter()
    prepared = prepare(texts, get_embedder())
    print(f"embedded {len(texts)} texts in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    np.savez(path, **{str(i): p.vectors for i, p in enumerate(prepared)})
    return prepared


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument(
        "--target-fp", type=float, default=0.005, help="false-positive rate the operating point aims at"
    )
    ap.add_argument("--c", type=float, default=0.5, help="inverse L2 strength of the logistic regression")
    ap.add_argument("--dev-exemplars", action="store_true", help="also use other folds' attacks as exemplars")
    ap.add_argument("--show-misses", action="store_true", help="print the held-out misses and false alarms")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/bulkhead-risk-bench"))
    ap.add_argument(
        "--write", action="store_true", help="refit on all records and write data/injection_model.json"
    )
    args = ap.parse_args(argv)

    rows = load(args.dev)
    texts = [r["text"] for r in rows]
    y = np.array([r["label"] == "attack" for r in rows], dtype=int)
    prepared = embed_all(texts, args.cache)
    embedder = get_embedder()
    ex_texts = json.loads((DATA / "injection_exemplars.json").read_text())
    ex = Exemplars(embedder.encode(ex_texts["attack"]), embedder.encode(ex_texts["benign"]))
    x = np.stack([features(p, ex) for p in prepared])
    groups = clusters(texts, np.stack([p.vectors[0] for p in prepared]))
    train_benign = load(TRAIN_BENIGN)
    xe = np.stack([features(p, ex) for p in prepare([r["text"] for r in train_benign], embedder)])
    folds = list(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=SEED).split(x, y, groups))
    n_clusters = len(np.unique(groups))
    print(
        f"{args.dev.name}: {len(rows)} records (attack {y.sum()}, benign {(y == 0).sum()}), "
        f"{n_clusters} clusters "
        f"(largest {np.bincount(groups).max()}); 5 outer folds grouped by cluster, operating point chosen on "
        f"inner folds at FP <= {args.target_fp:.1%}\n"
    )

    lengths = np.array([len(t) for t in texts], dtype=float)
    results = {}
    results["length_only"] = report(
        "baseline: length only", baseline_threshold_cv(lengths, y, folds, args.target_fp), y, groups, lengths
    )
    classic = np.array([any(c in p.norm for c in CLASSIC) for p in prepared], dtype=float)
    results["classic_phrases"] = report("baseline: 20 classic phrases", classic.astype(bool), y, groups)
    sim = x[:, FEATURES.index("attack_sim")]
    results["nearest_authored_exemplar"] = report(
        "baseline: nearest authored exemplar",
        baseline_threshold_cv(sim, y, folds, args.target_fp),
        y,
        groups,
        sim,
    )

    strong = x[:, [FEATURES.index(f) for f in STRONG]].any(axis=1)
    norms = np.array([FILLERS.sub(" ", p.norm) for p in prepared], dtype=object)
    enorms = np.array([normalize(r["text"]) for r in train_benign], dtype=object)
    no_text = tuple(f for f in FEATURES if f != "text_prob")
    idx = [FEATURES.index(f) for f in no_text]
    lg = nested_cv(x[:, idx], y, groups, folds, args.c, args.target_fp, extra=xe[:, idx])
    report("ablation: without the wording model + floor", (lg >= 0) | strong, y, groups, lg)
    logits = stacked_cv(x, y, groups, folds, args, xe, norms, enorms, FEATURES)
    report("fitted model alone (no strong-pattern floor)", logits >= 0, y, groups, logits)
    results["detector"] = report(
        "detector as shipped (model + strong floor)",
        (logits >= 0) | strong,
        y,
        groups,
        np.where(strong, np.maximum(logits, 1.4), logits),
    )
    if args.show_misses:
        for i in np.nonzero(((logits >= 0) | strong) != (y == 1))[0]:
            kind = "missed attack" if y[i] else "false alarm"
            print(f"  {kind} {rows[i]['id']} logit {logits[i]:+.2f}: {texts[i][:160]!r}")
    lg = stacked_cv(x, y, groups, folds, args, xe, norms, enorms, PATTERN_FEATURES)
    results["patterns_structure_only"] = report(
        "ablation: no embeddings (the fallback) + floor", (lg >= 0) | strong, y, groups, lg
    )

    short_att, long_ben = (y == 1) & (lengths < 500), (y == 0) & (lengths >= 500)
    flag = (logits >= 0) | strong
    print(
        f"\nlength slices (detector): attacks < 500 chars {np.mean(flag[short_att]):.1%} "
        f"of {short_att.sum()}; benign >= 500 chars flagged {np.mean(flag[long_ben]):.1%} of {long_ben.sum()}"
    )

    if args.dev_exemplars:
        dev_exemplar_variant(prepared, x, y, groups, folds, args, ex, xe)

    # Final models: all records; the stacked column is the text model's 5-fold out-of-fold probability
    # and the operating point comes from 5-fold out-of-fold scores.
    tpipe = text_fit(norms, y, enorms)
    tmodel = TextModel.from_sklearn(tpipe)
    tcol = FEATURES.index("text_prob")
    xa, xea = x.copy(), xe.copy()
    xa[:, tcol] = text_oof(norms, y, groups, enorms, SEED, n=5)
    xea[:, tcol] = [tmodel.prob(t) for t in enorms]

    def final_fit(cols: tuple[str, ...]) -> InjectionModel:
        idx = [FEATURES.index(f) for f in cols]
        oof = oof_scores(xa[:, idx], y, groups, args.c, SEED, n_splits=5, extra=xea[:, idx])
        t = threshold_for(oof, y, args.target_fp)
        lr = fit(xa[:, idx], y, args.c, xea[:, idx])
        return InjectionModel(cols, lr.coef_[0].astype(np.float32), float(lr.intercept_[0] - t), {})

    final, final_patterns = final_fit(FEATURES), final_fit(PATTERN_FEATURES)
    detector = InjectionDetector.__new__(InjectionDetector)
    detector.model, detector.exemplars, detector.text = final, ex, tmodel
    detector._strong = [FEATURES.index(f) for f in STRONG]
    print("\nfinal model (fitted on all dev records) on the authored extra sets, never used for fitting:")
    for path in (SCARY, PERSONAS, EXTRA):
        recs = load(path)
        preps = prepare([r["text"] for r in recs], embedder)
        scores = np.array([detector.score(p) for p in preps])
        flagged = scores >= 0.5
        print(f"  {path.name}: {len(recs)} records, flagged {flagged.sum()} ({flagged.mean():.1%})")
        by_cat: dict[str, list[bool]] = {}
        for r, f in zip(recs, flagged, strict=True):
            by_cat.setdefault(r["category"], []).append(bool(f))
        for cat, fs in by_cat.items():
            print(f"    {cat:<28} {sum(fs)}/{len(fs)}")
        for r, s in zip(recs, scores, strict=True):
            if (s >= 0.5) != (path == EXTRA):
                print(f"    miss/false alarm {r['id']} score {s:.2f}: {r['text'][:90]!r}")
    weights = sorted(zip(FEATURES, final.coef, strict=True), key=lambda kv: -abs(kv[1]))
    print("\nlargest weights:", ", ".join(f"{k} {v:+.2f}" for k, v in weights[:12]))

    if args.write:
        meta = {
            "fitted_by": "bench/injection_eval.py --write",
            "data": f"{args.dev.name}: all {len(rows)} records "
            f"(attack {int(y.sum())}, benign {int((y == 0).sum())})"
            f" + {len(train_benign)} authored benign rows ({TRAIN_BENIGN.name}) in every training split",
            "regularization_C": args.c,
            "class_weight": "balanced",
            "operating_point": f"intercept shifted by the 5-fold grouped out-of-fold threshold for FP <= "
            f"{args.target_fp:.1%}; score 0.5 is that threshold",
            "held_out": {
                k: {
                    kk: round(vv, 4) if isinstance(vv, float) else [round(z, 4) for z in vv]
                    for kk, vv in v.items()
                }
                for k, v in results.items()
            },
            "cv": f"5 outer folds, StratifiedGroupKFold by near-duplicate cluster, seed {SEED}; "
            "inner 4-fold for "
            f"the operating point; {n_clusters} clusters",
            "exemplars": "gateway/risk/data/injection_exemplars.json (authored; no dev-set text)",
        }
        TEXT_MODEL_PATH.write_text(tmodel.to_json(meta | {"model": "word 1-2 gram TF-IDF, logistic C=4"}))
        print(f"wrote {TEXT_MODEL_PATH}")
        for model, path in ((final, MODEL_PATH), (final_patterns, PATTERN_MODEL_PATH)):
            doc = {
                "features": list(model.features),
                "coef": [round(float(v), 6) for v in model.coef],
                "intercept": round(model.intercept, 6),
                "meta": meta,
            }
            path.write_text(json.dumps(doc, indent=1) + "\n")
            print(f"wrote {path}")
    return 0


def dev_exemplar_variant(prepared, x, y, groups, folds, args, ex, xe) -> None:
    """Exemplars = authored + training folds' attack chunks (own cluster excluded for training rows)."""
    owner = np.concatenate([[i] * len(p.vectors) for i, p in enumerate(prepared)])
    allv = np.concatenate([p.vectors for p in prepared])
    att_rows = np.isin(owner, np.nonzero(y == 1)[0])
    a_vecs, a_owner = allv[att_rows], owner[att_rows]
    sims = allv @ a_vecs.T  # chunk x attack chunk
    col = {f: FEATURES.index(f) for f in ("attack_sim", "sim_margin", "attack_sim_mean")}

    def feats(rows: np.ndarray, allowed_records: np.ndarray) -> np.ndarray:
        out = x[rows].copy()
        allowed = np.isin(a_owner, allowed_records)
        for k, r in enumerate(rows):
            mask = allowed & (groups[a_owner] != groups[r])
            ch = np.nonzero(owner == r)[0]
            if not mask.any() or not len(ch):
                continue
            dev_best = sims[np.ix_(ch, np.nonzero(mask)[0])].max(axis=1)
            p = prepared[r]
            auth_best = (p.vectors @ ex.attack.T).max(axis=1)
            ben_best = (p.vectors @ ex.benign.T).max(axis=1)
            best = np.maximum(dev_best, auth_best)
            out[k, col["attack_sim"]] = best.max()
            out[k, col["sim_margin"]] = (best - ben_best).max()
            out[k, col["attack_sim_mean"]] = best.mean()
        return out

    def make_x(k, tr, te):
        return feats(tr, tr), feats(te, tr)

    strong = x[:, [FEATURES.index(f) for f in STRONG]].any(axis=1)
    lg = nested_cv(x, y, groups, folds, args.c, args.target_fp, make_x=make_x, extra=xe)
    report("variant: + other folds' attacks as exemplars", (lg >= 0) | strong, y, groups, lg)
    pred, nn = np.zeros(len(y), dtype=bool), np.zeros(len(y))
    for tr, te in folds:
        s_tr, s_te = feats(tr, tr)[:, col["attack_sim"]], feats(te, tr)[:, col["attack_sim"]]
        pred[te] = s_te >= threshold_for(s_tr, y[tr], args.target_fp)
        nn[te] = s_te
    report("baseline: nearest exemplar incl. other folds", pred, y, groups, nn)


# The 16 harmless questions the dataset builder put into the attacks' prompt slots (README, injection-dev).
# A text model would learn them as attack words, so they are cut from its training text.
FILLERS = re.compile(
    "|".join(
        re.escape(f)
        for f in (
            "bake a loaf of sourdough bread",
            "write a polite email declining a meeting",
            "summarize the plot of pride and prejudice",
            "write a short poem about autumn leaves",
            "good weekly workout routine for a beginner",
            "set up a monthly household budget in a spreadsheet",
            "main causes of the french revolution",
            "how does compound interest work",
            "get a red wine stain out of a carpet",
            "pack for a weekend hiking trip",
            "best way to memorize spanish vocabulary",
            "teach my puppy to sit",
            "brew a good cup of pour-over coffee",
            "tips for growing tomatoes on a balcony",
            "fix a flat tire on my bike",
            "explain how photosynthesis works",
        )
    )
)


def text_fit(norms: np.ndarray, y: np.ndarray, enorms: np.ndarray):
    """The word TF-IDF logistic model on these rows plus the authored benign rows (never scored)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline

    vec = TfidfVectorizer(
        analyzer="word",
        ngram_range=(1, 2),
        min_df=2,
        sublinear_tf=True,
        max_features=30000,
        lowercase=False,
        token_pattern=TOKEN.pattern,
    )
    model = make_pipeline(vec, LogisticRegression(C=4.0, class_weight="balanced", max_iter=3000))
    return model.fit(np.concatenate([norms, enorms]), np.concatenate([y, np.zeros(len(enorms))]))


def text_oof(norms, y, groups, enorms, seed, n=4) -> np.ndarray:
    """Grouped out-of-fold probabilities: what the stacked weight is fitted on, so that it weighs the
    text model by what it does on prompts it has not memorised."""
    out = np.zeros(len(y))
    for a, b in StratifiedGroupKFold(n, shuffle=True, random_state=seed).split(norms, y, groups):
        out[b] = text_fit(norms[a], y[a], enorms).predict_proba(norms[b])[:, 1]
    return out


def stacked_cv(x, y, groups, folds, args, xe, norms, enorms, cols) -> np.ndarray:
    """Outer held-out logits of the shipped model: per outer fold the text model is fitted on the
    training folds only; training rows get its inner out-of-fold probability, the test fold the
    probability from the model fitted on all training folds."""
    out = np.zeros(len(y))
    idx = [FEATURES.index(f) for f in cols]
    tcol = FEATURES.index("text_prob")
    for k, (tr, te) in enumerate(folds):
        m = text_fit(norms[tr], y[tr], enorms)
        xtr, xte, xe2 = x[tr].copy(), x[te].copy(), xe.copy()
        xtr[:, tcol] = text_oof(norms[tr], y[tr], groups[tr], enorms, SEED + k)
        xte[:, tcol] = m.predict_proba(norms[te])[:, 1]
        xe2[:, tcol] = m.predict_proba(enorms)[:, 1]
        xtr, xte, xe2 = xtr[:, idx], xte[:, idx], xe2[:, idx]
        t = threshold_for(oof_scores(xtr, y[tr], groups[tr], args.c, SEED + k, extra=xe2), y[tr], args.target_fp)
        out[te] = fit(xtr, y[tr], args.c, xe2).decision_function(xte) - t
    return out


if __name__ == "__main__":
    raise SystemExit(main())
