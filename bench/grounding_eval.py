"""The grounding verifier, leave-one-source-out, beside content-word overlap.

    HF_HUB_OFFLINE=1 nice .venv/bin/python bench/grounding_eval.py --loso [--only S ...] [--epochs N]
    HF_HUB_OFFLINE=1 nice .venv/bin/python bench/grounding_eval.py --loso --frozen 3   # one more trained layer
    HF_HUB_OFFLINE=1 .venv/bin/python bench/grounding_eval.py            # the shipped model (trained-on)
    HF_HUB_OFFLINE=1 .venv/bin/python bench/grounding_eval.py --geometry 1x48   # ... reading other chunks

Protocol:
- Sources: every converted source under `training/grounding/build/` plus HaluEval QA from the dev
  file (`training/grounding/README.md`). Per source, EVAL_RECORDS records (balanced between the
  labels as far as the source allows, seed SEED + 1) are scored.
- `--loso`: for each source, a verifier is fitted exactly as `scripts/train_grounding.py` fits the
  shipped one (`training/grounding/fit.py`), on every other source, and scores the left-out one.
  The headline is the mean over left-out sources. The summary goes to
  `training/grounding/loso.json`, with the verdict threshold that maximizes the mean balanced
  accuracy over the left-out sources (the shipped model's default).
- Evaluation-only sources (`EVAL_ONLY` in `training/grounding/dataset.py`) are never trained on:
  their left-out fold is the shipped model's recipe.
- `--frozen N`: the folds train all but the lower N layers (the shipped verifier: `verifier.FROZEN`).
  An experiment: its per-record scores go to `build/loso-frozenN/`, and `loso.json` is not written.
- `--layers L` (with `--frozen N`, N < L): a shallower verifier, the package's lower L layers only
  (N frozen, the rest trained): issue 21's latency lever. Scores go to `build/loso-layersL-frozenN/`.
- Without `--loso`: the shipped model, through `GroundingCheck` as the gateway runs it, on the
  same records. It was trained on these sources: those figures are not held out and never the
  headline.
- Baseline: content-word overlap (`gateway/hallucination/overlap.py`).
- Intervals: 95% percentile bootstrap over documents (records that share a context are resampled
  together), 1,000 resamples.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.hallucination import verifier  # noqa: E402
from training.grounding import fit  # noqa: E402
from training.grounding.dataset import EVAL_ONLY, load_sources, sample  # noqa: E402
from training.injection.fit import auroc  # noqa: E402

CACHE = ROOT / "training" / "grounding" / "build" / "cache"
SUMMARY = ROOT / "training" / "grounding" / "loso.json"
SCORES = ROOT / "training" / "grounding" / "build" / "loso"  # per left-out record, for the combiner


def doc_groups(docs: list[str]) -> list[list[int]]:
    """Record indices by document, in order of first appearance: what a bootstrap resamples."""
    groups: dict[str, list[int]] = {}
    for i, d in enumerate(docs):
        groups.setdefault(d, []).append(i)
    return list(groups.values())


def resample(groups: list[list[int]], rng) -> np.ndarray:
    return np.concatenate([groups[k] for k in rng.integers(0, len(groups), len(groups))])


def doc_bootstrap(y: np.ndarray, s: np.ndarray, docs: list[str], reps: int = 1000, seed: int = 0):
    groups = doc_groups(docs)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(reps):
        idx = resample(groups, rng)
        if 0 < y[idx].sum() < len(idx):
            vals.append(auroc(s[idx][y[idx] == 1], s[idx][y[idx] == 0]))
    return float(np.percentile(vals, 2.5)), float(np.percentile(vals, 97.5))


def figures(y: np.ndarray, s: np.ndarray, docs: list[str]) -> dict:
    a = auroc(s[y == 1], s[y == 0])
    lo, hi = doc_bootstrap(y, s, docs)
    return {"auroc": round(a, 4), "ci": [round(lo, 4), round(hi, 4)]}


def balanced_accuracy(y: np.ndarray, s: np.ndarray, t: float) -> float:
    return 0.5 * (float(np.mean(s[y == 1] >= t)) + float(np.mean(s[y == 0] < t)))


def table(rows: list[dict], title: str) -> None:
    print(f"\n{title}")
    print(f"{'source':<16}{'records':>8}  {'verifier AUROC [95% CI]':<28}{'overlap AUROC [95% CI]':<28}{'diff':>7}")
    for r in rows:
        v, o = r["verifier"], r["overlap"]
        print(f"{r['source']:<16}{r['records']:>8}  {v['auroc']:.3f} [{v['ci'][0]:.3f}, {v['ci'][1]:.3f}]"
              f"{'':<7}{o['auroc']:.3f} [{o['ci'][0]:.3f}, {o['ci'][1]:.3f}]{'':<7}"
              f"{v['auroc'] - o['auroc']:>+7.3f}")
    mv = np.mean([r["verifier"]["auroc"] for r in rows])
    mo = np.mean([r["overlap"]["auroc"] for r in rows])
    print(f"{'mean':<16}{sum(r['records'] for r in rows):>8}  {mv:.3f}{'':<24}{mo:.3f}{'':<24}{mv - mo:>+7.3f}")


def run_loso(args) -> None:
    from gateway import minilm  # the tokenizer, only for the folds

    started = time.perf_counter()
    sources = load_sources()
    if args.sources:
        sources = {k: v for k, v in sources.items() if k in args.sources}
    model = fit.new_model()
    data = fit.prepare_sources(model, minilm.tokenizer(), sources, CACHE)
    init = fit.upper_state(model)
    rows = []
    for held in data:
        if args.only and held.name not in args.only:
            continue
        print(f"\nleft out: {held.name}", flush=True)
        fit.restore(model, init)
        train = [e for d in data if d.name != held.name and d.name not in EVAL_ONLY for e in d.train]
        secs = fit.train_upper(model, train, epochs=args.epochs)
        probs = fit.score_upper(model, held.eval_pairs)
        scores = fit.record_scores(held, probs)
        y = np.array([int(s.record.supported) for s in held.eval_records])
        docs = [s.record.doc for s in held.eval_records]
        ov = np.array([s.record.overlap() for s in held.eval_records])
        row = {"source": held.name, "records": len(y), "supported": int(y.sum()), "train_pairs": len(train),
               "fit_s": round(secs), "verifier": figures(y, scores, docs), "overlap": figures(y, ov, docs)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        SCORES.mkdir(parents=True, exist_ok=True)
        (SCORES / f"{held.name}.json").write_text(json.dumps({
            "y": y.tolist(), "verifier": scores.tolist(), "overlap": ov.tolist(), "docs": docs,
            "claims": [s.n_claims for s in held.eval_records]}))
    table(rows, "LEFT-OUT sources (each scored by a verifier that never saw it)")
    print(f"\n{time.perf_counter() - started:.0f} s in all")
    combine(write=not args.only and not args.sources and SCORES.name == "loso", epochs=args.epochs)


def record_signals(names: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """The cheap signals (`gateway/hallucination/signals.py`) of each source's evaluation records,
    drawn exactly as the folds drew them."""
    from gateway.hallucination.claims import answer_claims  # the gateway's own claim cutting
    from gateway.hallucination.signals import SIGNALS, signals

    sources = load_sources()
    out = {}
    for name in names:
        chosen = sample(sources[name], fit.EVAL_RECORDS, fit.SEED + 1)
        rows = [signals(r.context, [c.text for c in answer_claims(r.answer)]) for r in chosen]
        out[name] = {k: np.array([row[k] for row in rows]) for k in SIGNALS}
    return out


def matrix(part: dict, feats: list[str]) -> np.ndarray:
    cols = []
    for f in feats:
        if f == "verifier":
            v = np.clip(np.array(part["verifier"]), 1e-4, 1 - 1e-4)
            cols.append(np.log(v / (1 - v)))
        else:
            cols.append(part["signals"][f])
    return np.stack(cols, axis=1)


def fit_combiner(parts: list[dict], feats: list[str]):
    """Logistic regression over `feats`, every source weighing the same."""
    from sklearn.linear_model import LogisticRegression  # only for the combiner

    x = np.concatenate([matrix(p, feats) for p in parts])
    y = np.concatenate([p["y"] for p in parts])
    w = np.concatenate([np.full(len(p["y"]), len(y) / len(parts) / len(p["y"])) for p in parts])
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y, sample_weight=w)
    return [float(c) for c in model.coef_[0]], float(model.intercept_[0])


def stacked(parts: dict[str, dict], trained: list[str], feats: list[str]) -> dict[str, np.ndarray]:
    """Per source, scores from a combiner fitted on the other training sources' left-out scores."""
    out = {}
    for name, p in parts.items():
        coef, intercept = fit_combiner([parts[n] for n in trained if n != name], feats)
        z = matrix(p, feats) @ np.array(coef) + intercept
        out[name] = 1.0 / (1.0 + np.exp(-z))
    return out


def mean_auroc(parts: dict[str, dict], scores: dict[str, np.ndarray]) -> float:
    return float(np.mean([auroc(scores[n][np.array(p["y"]) == 1], scores[n][np.array(p["y"]) == 0])
                          for n, p in parts.items()]))


def paired_ci(parts, a: dict[str, np.ndarray], b: dict[str, np.ndarray], reps: int = 300) -> tuple[float, float]:
    """95% bootstrap interval of mean_auroc(a) - mean_auroc(b), documents resampled per source."""
    rng = np.random.default_rng(1)
    groups = {n: doc_groups(p["docs"]) for n, p in parts.items()}
    diffs = []
    for _ in range(reps):
        d = []
        for n, p in parts.items():
            idx = resample(groups[n], rng)
            y = np.array(p["y"])[idx]
            if 0 < y.sum() < len(y):
                d.append(auroc(a[n][idx][y == 1], a[n][idx][y == 0]) - auroc(b[n][idx][y == 1], b[n][idx][y == 0]))
        diffs.append(np.mean(d))
    return float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))


def combine(*, write: bool, epochs: int = fit.EPOCHS) -> None:
    """Stacking on the left-out scores: for each source T, a combiner fitted on the other sources'
    left-out verifier scores and cheap signals (their labels; never T's) scores T. Signals are
    dropped one at a time, backwards, while the paired 95% interval of what dropping one costs the
    left-out mean includes zero. The shipped combiner, over what is left, is fitted on all training
    sources. Reads the per-record scores `--loso` saved."""
    from gateway.hallucination.signals import SIGNALS  # the candidates

    parts = {p.stem: json.loads(p.read_text()) for p in sorted(SCORES.glob("*.json"))}
    sig = record_signals(list(parts))
    for n, p in parts.items():
        p["signals"] = sig[n]
        p["y"] = np.array(p["y"])
    trained = [n for n in parts if n not in EVAL_ONLY]
    plain = {"verifier": {n: np.array(p["verifier"]) for n, p in parts.items()},
             "overlap": {n: np.array(p["overlap"]) for n, p in parts.items()}}
    feats = ["verifier", *SIGNALS]
    current = stacked(parts, trained, feats)
    print(f"\nstacked combiners, mean left-out AUROC: verifier alone {mean_auroc(parts, plain['verifier']):.3f}, "
          f"overlap alone {mean_auroc(parts, plain['overlap']):.3f}")
    print(f"  all: {' + '.join(feats)}: {mean_auroc(parts, current):.3f}")
    while len(feats) > 1:
        trials = {f: stacked(parts, trained, [g for g in feats if g != f]) for f in feats}
        f, reduced = max(trials.items(), key=lambda kv: mean_auroc(parts, kv[1]))
        lo, hi = paired_ci(parts, current, reduced)
        print(f"  without {f:<18} {mean_auroc(parts, reduced):.3f}  (cost of dropping it {lo:+.3f} .. {hi:+.3f})")
        if lo > 0:
            break
        feats = [g for g in feats if g != f]
        current = reduced
    print(f"  kept: {feats}")
    without_verifier = stacked(parts, trained, [f for f in feats if f != "verifier"]) if len(feats) > 1 else None
    rows, pooled = [], []
    for name, p in parts.items():
        y = p["y"]
        row = {"source": name, "records": len(y), "verifier": figures(y, plain["verifier"][name], p["docs"]),
               "overlap": figures(y, plain["overlap"][name], p["docs"]),
               "combined": figures(y, current[name], p["docs"])}
        if without_verifier is not None:
            row["signals_only"] = figures(y, without_verifier[name], p["docs"])
        rows.append(row)
        pooled.append((name, y, current[name]))
    print("\nLEFT-OUT (every figure from models and combiners fitted without the source it scores)")
    cols = ["verifier", "overlap", "combined"] + (["signals_only"] if without_verifier is not None else [])
    print(f"{'source':<16}{'records':>8}  " + "".join(f"{c:<24}" for c in cols) + f"{'comb - ovl':>10}")
    for r in rows:
        cells = "".join(f"{r[k]['auroc']:.3f} [{r[k]['ci'][0]:.3f}, {r[k]['ci'][1]:.3f}]  " for k in cols)
        print(f"{r['source']:<16}{r['records']:>8}  {cells}{r['combined']['auroc'] - r['overlap']['auroc']:>+10.3f}")
    means = {k: float(np.mean([r[k]["auroc"] for r in rows])) for k in cols}
    print(f"{'mean':<16}{'':>8}  " + "".join(f"{means[k]:.3f}{'':<19}" for k in cols))
    grid = np.linspace(0.05, 0.95, 91)
    mean_ba = [np.mean([balanced_accuracy(y, s, t) for _, y, s in pooled]) for t in grid]
    best = float(grid[int(np.argmax(mean_ba))])
    print(f"\nthreshold maximizing the mean balanced accuracy over left-out sources: {best:.2f} "
          f"(mean balanced accuracy {max(mean_ba):.3f}; at 0.50: {mean_ba[45]:.3f})")
    for name, y, s in pooled:
        print(f"  {name:<16} balanced accuracy {balanced_accuracy(y, s, best):.3f}, "
              f"flags {np.mean(s[y == 0] < best):.1%} of unsupported, {np.mean(s[y == 1] < best):.1%} of supported")
    if write:
        coef, intercept = fit_combiner([parts[n] for n in trained], feats)
        SUMMARY.write_text(json.dumps({
            "protocol": "bench/grounding_eval.py --loso", "epochs": epochs, "threshold": round(best, 2),
            **verifier.GEOMETRY,
            "combiner": {"features": feats, "coef": [round(x, 4) for x in coef], "intercept": round(intercept, 4)},
            "mean_auroc": {k: round(v, 4) for k, v in means.items()}, "sources": rows}, indent=1) + "\n",
            encoding="utf-8")
        print(f"wrote {SUMMARY.relative_to(ROOT)}")


def run_shipped(args) -> None:
    from gateway.hallucination.grounding import GroundingCheck  # the shipped check, as the gateway runs it

    check = GroundingCheck()
    if args.geometry:  # the same model, comparing claims with other chunks (bench/grounding.py times it)
        from bench.grounding import parse_geometry

        top_chunks, chunk = parse_geometry(args.geometry)
        check.verifier.set_geometry(chunk=chunk, top_chunks=top_chunks)
    rows = []
    for name, records in load_sources().items():
        if args.sources and name not in args.sources:
            continue
        chosen = sample(records, fit.EVAL_RECORDS, fit.SEED + 1)
        y = np.array([int(r.supported) for r in chosen])
        s = np.array([check.score(r.context, r.answer, r.question).score for r in chosen])
        ov = np.array([r.overlap() for r in chosen])
        docs = [r.doc for r in chosen]
        label = f"{name} *" if name in EVAL_ONLY else name
        rows.append({"source": label, "records": len(y), "verifier": figures(y, s, docs),
                     "overlap": figures(y, ov, docs)})
    table(rows, "The shipped check on each source's evaluation records. It was trained on these sources (not a "
                "held-out figure), except those marked *, which no model ever trained on")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loso", action="store_true", help="leave one source out (the headline)")
    ap.add_argument("--only", nargs="*", default=[], help="--loso: leave out only these sources")
    ap.add_argument("--sources", nargs="*", default=[], help="use only these sources")
    ap.add_argument("--epochs", type=int, default=fit.EPOCHS)
    ap.add_argument("--combine", action="store_true", help="only the stacking step, on the scores --loso saved")
    ap.add_argument("--geometry", help="without --loso: compare each claim with K chunks of N word pieces (KxN)")
    ap.add_argument("--frozen", type=int, choices=range(verifier.LAYERS), default=verifier.FROZEN,
                    help="--loso: freeze only the lower N layers (an experiment; loso.json is not written)")
    ap.add_argument("--layers", type=int, choices=range(2, verifier.LAYERS + 1), default=verifier.LAYERS,
                    help="--loso: the package's lower N layers only, the top ones trained (an experiment: a "
                    "shallower verifier for issue 21's latency; with --frozen below N)")
    args = ap.parse_args()
    if args.frozen != verifier.FROZEN or args.layers != verifier.LAYERS:
        global SCORES
        if args.frozen >= args.layers:
            ap.error("--frozen must be below --layers")
        shallower = f"-layers{args.layers}" if args.layers != verifier.LAYERS else ""
        verifier.FROZEN = args.frozen  # read when the folds' model is built and its outputs cached
        verifier.LAYERS = args.layers
        SCORES = SCORES.with_name(f"loso{shallower}-frozen{args.frozen}")
    if args.combine:
        combine(write=SCORES.name == "loso", epochs=args.epochs)
        return
    (run_loso if args.loso else run_shipped)(args)


if __name__ == "__main__":
    main()
