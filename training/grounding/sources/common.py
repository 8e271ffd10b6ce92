"""Shared helpers for the grounding source converters in this folder (standard library only).

Each converter reads files from a fetched bare git mirror at a pinned commit, turns them into
grounding records and calls `convert()`, which validates, de-duplicates, runs the project's
contamination check, samples down to a cap with a fixed seed, writes `<out>/<source>.jsonl` and a
one-entry manifest `<converter>.json` beside the converter.

A record:

    {"id": "<source>:<key>", "source": "<source>", "family": "summary|dialogue|qa|rag|data2text|nli",
     "context": "...", "question": "...", "answer": "...", "label": "supported|hallucinated",
     "spans": [[start, end], ...]}          # optional

`context` is what the answer must be supported by, `question` the request ("" for summaries),
`answer` the text checked. `spans`, where the source localises its labels, are character ranges of
`answer` that are unsupported (a hallucinated answer with spans has at least one; a supported one
has none); without `spans` only the whole answer carries the label.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import random
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
FAMILIES = ("summary", "dialogue", "qa", "rag", "data2text", "nli")
LABELS = ("supported", "hallucinated")
DEFAULT_CAP = 4000
DEFAULT_SEED = 13
MAX_CONTEXT_CHARS = 12000

# the mirror and contamination helpers are the NER converters' (one copy of that code)
_spec = importlib.util.spec_from_file_location(
    "ner_sources_common", REPO_ROOT / "training" / "ner" / "sources" / "common.py")
_ner = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_ner)
mirror_git_dir = _ner.mirror_git_dir
git_show = _ner.git_show
git_text = _ner.git_text
git_ls = _ner.git_ls
contamination_flags = _ner.contamination_flags


def valid(rec: dict) -> bool:
    if rec.get("family") not in FAMILIES or rec.get("label") not in LABELS:
        return False
    if not all(isinstance(rec.get(k), str) for k in ("context", "question", "answer")):
        return False
    if not rec["context"].strip() or not rec["answer"].strip():
        return False
    spans = rec.get("spans")
    if spans is not None:
        n = len(rec["answer"])
        if any(not (0 <= s < e <= n) for s, e in spans):
            return False
        if (rec["label"] == "hallucinated") != bool(spans):
            return False
    return True


def convert(args, *, source: str, records, repo: str, commit: str, paths, licence: str,
            notes: str, max_contamination: float = 0.02) -> dict:
    """records: iterable of dicts (without "source"; "id" may be a bare key). Writes the jsonl
    and the manifest; returns the manifest entry."""
    pool, seen = [], set()
    n_in = n_invalid = n_dup = n_long = 0
    for rec in records:
        n_in += 1
        rec = dict(rec)
        rec["source"] = source
        key = str(rec.get("id", n_in - 1))
        rec["id"] = key if key.startswith(source + ":") else f"{source}:{key}"
        if not valid(rec):
            n_invalid += 1
            continue
        if len(rec["context"]) > MAX_CONTEXT_CHARS:
            n_long += 1
            continue
        h = hashlib.sha256((rec["context"] + "\x00" + rec["answer"]).encode()).hexdigest()
        if h in seen:
            n_dup += 1
            continue
        seen.add(h)
        pool.append(rec)
    flagged = contamination_flags([r["context"] + "\n" + r["question"] + "\n" + r["answer"]
                                   for r in pool])
    frac = len(flagged) / len(pool) if pool else 0.0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    out_path = out / f"{source}.jsonl"
    dropped = frac > max_contamination
    kept = [] if dropped else [r for i, r in enumerate(pool) if i not in flagged]
    if len(kept) > args.cap:
        rng = random.Random(args.seed)
        kept = [kept[i] for i in sorted(rng.sample(range(len(kept)), args.cap))]
    if dropped and out_path.exists():
        out_path.unlink()
    if not dropped:
        with open(out_path, "w", encoding="utf-8") as f:
            for r in kept:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    entry = {
        "source": source, "repo": repo, "commit": commit, "paths": list(paths), "licence": licence,
        "records": len(kept), "labels": dict(Counter(r["label"] for r in kept)),
        "families": dict(Counter(r["family"] for r in kept)),
        "with_spans": sum(1 for r in kept if "spans" in r),
        "dropped_contamination": len(flagged), "source_dropped": dropped, "notes": notes,
        "stats": {"input_records": n_in, "dropped_invalid": n_invalid, "dropped_duplicates": n_dup,
                  "dropped_long_context": n_long, "contamination_fraction": round(frac, 5),
                  "pool_after_filters": len(pool) - len(flagged), "cap": args.cap, "seed": args.seed},
    }
    with open(args.manifest, "w", encoding="utf-8") as f:
        json.dump([entry], f, indent=2, ensure_ascii=False)
        f.write("\n")
    print(f"{source}: {'DROPPED (contamination)' if dropped else f'wrote {len(kept)} records to {out_path}'}"
          f" labels {entry['labels']} flagged {len(flagged)} invalid {n_invalid} dup {n_dup} long {n_long}")
    return entry


def standard_args(description: str, script: str) -> argparse.ArgumentParser:
    """The NER converters' options, writing under training/grounding/build and capping at DEFAULT_CAP."""
    ap = _ner.standard_args(description, script)
    ap.set_defaults(out=str(REPO_ROOT / "training" / "grounding" / "build"), cap=DEFAULT_CAP, seed=DEFAULT_SEED)
    return ap
