"""Fine-tuned top layers against the shipped head, scored on sources each model was not fitted on.

Sources are dealt into `--folds` groups (seeded); each group is scored by models fitted on the
other groups' sources only: the shipped model's parts (`training/injection/fit.py: fit_parts`,
the window head over frozen embeddings and the word model) and the fine-tuned branch
(`training/injection/tune.py`), alone and summed with the same word model. A grouped fold holds out
several sources at once, so each model sees less than in `bench/injection_eval.py`'s
leave-one-source-out: the figures are, if anything, low for both.
The frozen head reads the sentence embedder's vectors at the gateway's precision (int8 by default,
as it ships); the branch is fitted and scored in fp32 torch. `--near-copies` drops from each fold's
training the texts whose first window is a near copy of a left-out text's (as `injection_eval.py`).

Every text's left-out logits are written to `--out` (npz); `--report` reads them back and prints
per-source detection and false positives at one threshold per role chosen on the other groups'
left-out benign scores (each source weighing the same), and AUROC.

    HF_HUB_OFFLINE=1 nice -n 10 .venv/bin/python bench/injection_tune_eval.py --out FILE [--near-copies]
    .venv/bin/python bench/injection_tune_eval.py --report build/injection-oof.npz [--target-fp 0.01]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.risk.injection import role_index  # noqa: E402
from training.injection.dataset import load_all, summary  # noqa: E402
from training.injection.features import embed_windows, flat_windows  # noqa: E402
from training.injection.fit import (  # noqa: E402
    Data,
    auroc,
    fit_parts,
    part_logits,
    rate,
    role_thresholds,
    threshold_for,
)
from training.injection.tune import branch_logits, fit_branch, lower_states  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from injection_eval import near_copies  # noqa: E402


def groups(sources: list[str], folds: int, seed: int = 0) -> dict[str, int]:
    s = sorted(sources)
    random.Random(seed).shuffle(s)
    return {name: i % folds for i, name in enumerate(s)}


def run(out: Path, folds: int, draws: int, near: bool) -> None:
    started = time.time()
    examples = load_all()
    print(summary(examples), flush=True)
    flat, owner = flat_windows(examples)
    states, lens = lower_states(flat)
    print(f"{len(examples)} texts, {len(flat)} windows; lower states in {time.time() - started:.0f} s", flush=True)
    data = Data.of(examples, embed_windows(flat), owner)
    fold_of = groups(sorted({e.source for e in examples}), folds)
    n = len(examples)
    words, window, branch = np.zeros(n), np.zeros(n), np.zeros(n)
    group = np.array([fold_of[e.source] for e in examples])
    for f in range(folds):
        test = np.nonzero(group == f)[0]
        train = np.nonzero(group != f)[0]
        if near:  # as bench/injection_eval.py: no near copy of a left-out text in the fold's training
            train = np.setdiff1d(train, near_copies(data.vectors, data.owner, train, test))
        t0 = time.time()
        head = fit_parts(data.subset(train))
        words[test], window[test] = part_logits(head, data.subset(test))
        t1 = time.time()
        model = fit_branch(examples, owner, states, lens, train, draws=draws)
        branch[test] = branch_logits(model, examples, owner, states, lens, test)
        print(f"fold {f}: {sorted({examples[i].source for i in test})} shipped parts {t1 - t0:.0f} s, "
              f"branch {time.time() - t1:.0f} s", flush=True)
        np.savez(out, words=words, window=window, branch=branch, group=group, done=f + 1, draws=draws,
                 source=np.array([e.source for e in examples]), attack=np.array([e.attack for e in examples]),
                 role=np.array([role_index(e.role) for e in examples]))
    print(f"{time.time() - started:.0f} s")


def report(path: Path, target_fp: float) -> None:
    z = np.load(path)
    examples = load_all()
    if list(z["source"]) != [e.source for e in examples]:
        raise SystemExit(f"{path} was written for other training data: rerun with --out")
    group, source, y = z["group"], z["source"], z["attack"]
    done = group < int(z["done"])
    roles = np.array([role_index(e.role) for e in examples])
    models = {"frozen head (window + words)": z["window"] + z["words"],
              "window head alone": z["window"], "branch alone": z["branch"], "branch + words": z["branch"] + z["words"],
              "mean of both heads + words": (z["window"] + z["branch"]) / 2 + z["words"]}

    def flagged(logit: np.ndarray, target: float) -> np.ndarray:
        """Each scored text flagged or not, its group's thresholds chosen on the other groups' scores."""
        hit = np.zeros(len(y), dtype=bool)
        for f in sorted(set(group[done])):
            test = np.nonzero(group == f)[0]
            other = np.nonzero((group != f) & done)[0]
            hit[test] = logit[test] >= role_thresholds([examples[i] for i in other], logit[other], target)[roles[test]]
        return hit

    scored = sorted(set(source[done]))
    for name, logit in models.items():
        hit = flagged(logit, target_fp)
        det, fp, au = [], [], []
        rows = []
        for s in scored:
            m = source == s
            a, b = m & y, m & ~y
            row = f"  {s:26s}"
            if a.any():
                r = rate(hit[a])
                det.append(r[0])
                row += f" det {r[0]:.3f} [{r[1]:.2f}, {r[2]:.2f}]"
            if b.any():
                r = rate(hit[b])
                fp.append(r[0])
                row += f" fp {r[0]:.3f} [{r[1]:.2f}, {r[2]:.2f}]"
            if a.any() and b.any():
                au.append(auroc(logit[a], logit[b]))
                row += f" auroc {au[-1]:.3f}"
            rows.append(row)
        pooled = auroc(logit[done & y], logit[done & ~y])
        print(f"{name}: mean detection {np.mean(det):.3f}, false positives {np.mean(fp):.3f}, "
              f"AUROC where both {np.mean(au):.3f}, pooled AUROC {pooled:.3f}")
        curve = []
        for t in (0.01, 0.02, 0.03, 0.05):  # operating points chosen as above, at other targets
            h = flagged(logit, t)
            d = np.mean([h[(source == s) & y].mean() for s in scored if ((source == s) & y).any()])
            fp_rate = np.mean([h[(source == s) & ~y].mean() for s in scored if ((source == s) & ~y).any()])
            curve.append(f"{t:.0%}: {d:.3f} / {fp_rate:.3f}")
        print("  out-of-fold targets, left-out detection / false positives: " + ", ".join(curve))
        at = [(t, *matched(examples, logit, done, roles, t)) for t in (0.01, 0.03, 0.05)]
        print("  matched false positives (thresholds set on the scored texts themselves: a ranking comparison, "
              "not an operating point): " + ", ".join(f"{t:.0%}: {d:.3f} / {f:.3f}" for t, d, f in at))
        print("\n".join(rows))


def matched(examples, logit: np.ndarray, done: np.ndarray, roles: np.ndarray, target: float) -> tuple[float, float]:
    """Mean detection and false positives over sources, each role's threshold at `target` benign
    false positives over the scored texts (each source weighing the same)."""
    hit = np.zeros(len(logit), dtype=bool)
    for r in set(roles[done]):
        idx = np.nonzero(done & (roles == r))[0]
        hit[idx] = logit[idx] >= threshold_for([examples[i] for i in idx], logit[idx], target)
    src = np.array([e.source for e in examples])
    y = np.array([e.attack for e in examples])
    det = [hit[(src == s) & y].mean() for s in sorted(set(src[done])) if ((src == s) & y).any()]
    fp = [hit[(src == s) & ~y].mean() for s in sorted(set(src[done])) if ((src == s) & ~y).any()]
    return float(np.mean(det)), float(np.mean(fp))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--report", type=Path)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--draws", type=int, default=15000, help="training texts drawn per fold")
    ap.add_argument("--target-fp", type=float, default=0.01)
    ap.add_argument("--near-copies", action="store_true",
                    help="drop training texts whose first window is a near copy of a left-out text's")
    args = ap.parse_args(argv)
    if args.report:
        report(args.report, args.target_fp)
    elif args.out:
        run(args.out, args.folds, args.draws, args.near_copies)
    else:
        ap.error("give --out (fit and score the folds) or --report (read a run back)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
