"""Shared helpers for the NER source converters in this folder (standard library only).

Each converter reads files from a bare git mirror at a pinned commit, converts them to
sentences of (tokens, BIO tags over PER/LOC/ORG), and calls `finalize()` which de-duplicates,
drops over-long sentences, runs the contamination check, samples down to a cap with a fixed
seed, writes `<out>/<source>.jsonl` and returns the manifest entry.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

TYPES = ("PER", "LOC", "ORG")
MAX_TOKENS = 120
DEFAULT_CAP = 15000
DEFAULT_SEED = 13

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
# the project's contamination checker sits beside the repository, not inside it
CHECK_SCRIPT = REPO_ROOT.parent / "shared" / "contamination" / "check.py"


# --------------------------------------------------------------------------- mirrors

def mirror_git_dir(mirrors: str | os.PathLike, repo: str) -> Path:
    """Bare git dir of `owner/name` under the mirrors root (layout: owner+name/repo)."""
    base = Path(mirrors) / repo.replace("/", "+")
    for cand in (base / "repo", base, base / ".git"):
        if (cand / "HEAD").exists():
            return cand
    raise SystemExit(f"no mirror of {repo} under {mirrors} (fetch it first)")


def git_show(mirrors, repo: str, commit: str, path: str) -> bytes:
    """Blob `path` of `repo` at `commit` (raises if absent, e.g. a file >= 4 MiB left out)."""
    gd = mirror_git_dir(mirrors, repo)
    r = subprocess.run(["git", "--git-dir", str(gd), "show", f"{commit}:{path}"],
                       capture_output=True)
    if r.returncode != 0:
        raise SystemExit(f"{repo}@{commit[:10]}:{path}: {r.stderr.decode(errors='replace').strip()}")
    return r.stdout


def git_text(mirrors, repo: str, commit: str, path: str) -> str:
    return git_show(mirrors, repo, commit, path).decode("utf-8", errors="replace")


def git_ls(mirrors, repo: str, commit: str, prefix: str = "") -> list[str]:
    """Paths of blobs under `prefix` at `commit`."""
    gd = mirror_git_dir(mirrors, repo)
    args = ["git", "--git-dir", str(gd), "ls-tree", "-r", "--name-only", commit]
    if prefix:
        args += ["--", prefix]
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{repo}@{commit[:10]}: {r.stderr.strip()}")
    return [p for p in r.stdout.splitlines() if p]


# --------------------------------------------------------------------------- reading / tags

def read_conll(text: str, token_col: int = 0, tag_col: int = -1, sep: str | None = None,
               docstart: str = "-DOCSTART-") -> list[tuple[list[str], list[str]]]:
    """Blank-line separated column format -> [(tokens, raw_tags)]."""
    out, toks, tags = [], [], []
    for line in text.splitlines():
        if not line.strip():
            if toks:
                out.append((toks, tags))
            toks, tags = [], []
            continue
        cols = line.split(sep) if sep else line.split()
        if cols[0].startswith(docstart):
            continue
        if len(cols) < 2:
            continue
        toks.append(cols[token_col])
        tags.append(cols[tag_col])
    if toks:
        out.append((toks, tags))
    return out


def conll_sentences(mirrors, repo: str, commit: str, paths, mapping: dict[str, str], *,
                    sep: str | None = None, skip_prefix: str | None = None):
    """(tokens, BIO tags) of the column-format files `paths` at `commit`: token in the first column,
    tag in the last, mapped by `to_bio`. Lines starting with `skip_prefix` are dropped first."""
    for p in paths:
        text = git_text(mirrors, repo, commit, p)
        if skip_prefix:
            text = "\n".join(line for line in text.splitlines() if not line.startswith(skip_prefix))
        for toks, raw in read_conll(text, 0, -1, sep=sep):
            yield toks, to_bio(raw, mapping)


def to_bio(raw_tags: list[str], mapping: dict[str, str]) -> list[str]:
    """Map raw tags (`B-X`, `I-X`, `E-X`, `S-X`, `L-X`, `U-X` or bare `X`) to BIO over PER/LOC/ORG.

    `mapping` maps the raw type name to PER/LOC/ORG; unmapped types become O. An `I-`
    (or bare type, as in IO schemes) that does not continue an entity of the same type
    starts a new one. Adjacent same-type entities in IO data cannot be told apart.
    """
    out, prev = [], "O"
    for raw in raw_tags:
        if raw in ("O", "", "_") or raw is None:
            out.append("O")
            prev = "O"
            continue
        if len(raw) > 2 and raw[1] in "-_" and raw[0] in "BIESLU":
            pref, typ = raw[0], raw[2:]
        else:
            pref, typ = "I", raw
        t = mapping.get(typ)
        if t is None:
            out.append("O")
            prev = "O"
            continue
        if pref in ("B", "S", "U") or prev != t:
            out.append("B-" + t)
        else:
            out.append("I-" + t)
        prev = "O" if pref in ("E", "L", "S", "U") else t
    return out


def is_cap(tok: str) -> bool:
    """A word that can be part of a name as written: it starts with a capital or a digit."""
    return tok[:1].isupper() or tok[:1].isdigit()


def repair_bio(tags: list[str]) -> list[str]:
    """Make a BIO sequence valid (I-X after O or another type becomes B-X)."""
    out, prev = [], "O"
    for t in tags:
        if t.startswith("I-") and prev[2:] != t[2:]:
            t = "B-" + t[2:]
        out.append(t)
        prev = t
    return out


def spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """[(start, end_exclusive, type)] of a BIO sequence."""
    res, start, typ = [], None, None
    for i, t in enumerate(list(tags) + ["O"]):
        if t.startswith("B-") or t == "O" or (t.startswith("I-") and t[2:] != typ):
            if start is not None:
                res.append((start, i, typ))
                start, typ = None, None
            if t.startswith("B-") or t.startswith("I-"):
                start, typ = i, t[2:]
    return res


def count_entities(sentences) -> dict[str, int]:
    c = Counter()
    for s in sentences:
        for _, _, typ in spans(s["tags"]):
            c[typ] += 1
    return {t: c.get(t, 0) for t in TYPES}


def split_long(tokens: list[str], tags: list[str], max_len: int = MAX_TOKENS):
    """Split a sentence longer than max_len at O positions, preferring after . ; : or ?"""
    if len(tokens) <= max_len:
        return [(tokens, tags)]
    pieces, start = [], 0
    n = len(tokens)
    while n - start > max_len:
        cut = None
        for i in range(start + max_len, start + max_len // 3, -1):
            # cut before position i; i must not be inside an entity
            if i < n and not tags[i].startswith("I-") and tokens[i - 1] in (".", ";", ":", "?", "!"):
                cut = i
                break
        if cut is None:
            for i in range(start + max_len, start, -1):
                if i < n and not tags[i].startswith("I-"):
                    cut = i
                    break
        if cut is None or cut <= start:
            return pieces  # give up on the rest (one giant entity); drop it
        pieces.append((tokens[start:cut], tags[start:cut]))
        start = cut
    pieces.append((tokens[start:], tags[start:]))
    return pieces


def valid_sentence(tokens: list[str], tags: list[str]) -> bool:
    if not tokens or len(tokens) != len(tags):
        return False
    if any((not t) or any(ch.isspace() for ch in t) for t in tokens):
        return False
    ok = {"O"} | {f"{p}-{t}" for p in "BI" for t in TYPES}
    if any(t not in ok for t in tags):
        return False
    return repair_bio(tags) == tags


# --------------------------------------------------------------------------- contamination

def check_script() -> Path:
    if CHECK_SCRIPT.exists():
        return CHECK_SCRIPT
    raise SystemExit(f"contamination check script not found ({CHECK_SCRIPT})")


def contamination_flags(texts: list[str]) -> set[int]:
    """Indices of texts that the project's contamination check flags."""
    if not texts:
        return set()
    with tempfile.TemporaryDirectory() as td:
        p = Path(td) / "records.jsonl"
        with open(p, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        r = subprocess.run([sys.executable, str(check_script()), "--show", str(len(texts) + 1), str(p)],
                           capture_output=True, text=True)
    if r.returncode not in (0, 1):
        raise SystemExit(f"contamination check failed: {r.stderr.strip()}")
    flagged = set()
    for line in r.stdout.splitlines():
        m = re.match(r"\s+line (\d+): ", line)
        if m:
            flagged.add(int(m.group(1)) - 1)
    m = re.search(r": (\d+) records, (\d+) overlap", r.stdout)
    if m and int(m.group(2)) != len(flagged):
        raise SystemExit(f"contamination check: parsed {len(flagged)} flags, script reports {m.group(2)}")
    return flagged


# --------------------------------------------------------------------------- output

def finalize(source: str, sentences, out_dir, *, cap: int = DEFAULT_CAP, seed: int = DEFAULT_SEED,
             max_len: int = MAX_TOKENS, max_contamination: float = 0.02) -> dict:
    """sentences: iterable of (tokens, tags). Splits over-long ones, drops invalid and exact
    duplicates, drops contamination-flagged ones (whole source if > max_contamination),
    samples `cap` with `seed`, writes <out_dir>/<source>.jsonl. Returns stats for the manifest."""
    pool, seen = [], set()
    n_in = n_invalid = n_dup = n_split = 0
    for toks, tags in sentences:
        n_in += 1
        parts = split_long(list(toks), list(tags), max_len)
        if len(parts) > 1:
            n_split += 1
        for pt, pg in parts:
            if not valid_sentence(pt, pg):
                n_invalid += 1
                continue
            key = (tuple(pt), tuple(pg))
            if key in seen:
                n_dup += 1
                continue
            seen.add(key)
            pool.append({"source": source, "tokens": pt, "tags": pg})
    flagged = contamination_flags([" ".join(s["tokens"]) for s in pool])
    frac = len(flagged) / len(pool) if pool else 0.0
    out_path = Path(out_dir) / f"{source}.jsonl"
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    stats = {"input_sentences": n_in, "split_long": n_split, "dropped_invalid": n_invalid,
             "dropped_duplicates": n_dup, "dropped_contamination": len(flagged),
             "contamination_fraction": round(frac, 5), "sample_seed": seed, "cap": cap}
    if frac > max_contamination:
        if out_path.exists():
            out_path.unlink()
        stats.update({"sentences": 0, "entities": {t: 0 for t in TYPES}, "source_dropped": True})
        print(f"{source}: {len(flagged)}/{len(pool)} flagged (> {max_contamination:.0%}); source dropped")
        return stats
    kept = [s for i, s in enumerate(pool) if i not in flagged]
    stats["pool_after_filters"] = len(kept)
    if len(kept) > cap:
        rng = random.Random(seed)
        idx = sorted(rng.sample(range(len(kept)), cap))
        kept = [kept[i] for i in idx]
    with open(out_path, "w", encoding="utf-8") as f:
        for s in kept:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    stats.update({"sentences": len(kept), "entities": count_entities(kept), "source_dropped": False})
    print(f"{source}: wrote {len(kept)} sentences to {out_path} "
          f"(contamination flagged {len(flagged)}, duplicates {n_dup}, invalid {n_invalid}) "
          f"entities {stats['entities']}")
    return stats


def manifest_entry(*, source: str, repo: str, commit: str, paths, licence: str, genre: str,
                   stats: dict, notes: str) -> dict:
    return {
        "source": source, "repo": repo, "commit": commit, "paths": list(paths),
        "licence": licence, "genre": genre, "sentences": stats["sentences"],
        "entities": stats["entities"], "dropped_contamination": stats["dropped_contamination"],
        "notes": notes,
        "stats": {k: v for k, v in stats.items() if k not in ("sentences", "entities", "dropped_contamination")},
    }


def write_manifest(path, entries: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(entries, f, indent=2, ensure_ascii=False)
        f.write("\n")


def standard_args(description: str, script: str) -> argparse.ArgumentParser:
    """The options every converter takes; the manifest defaults to <script>.json beside the script."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--mirrors", required=True, metavar="DIR",
                    help="root of the fetched bare git mirrors (owner+name/...)")
    ap.add_argument("--out", default=str(REPO_ROOT / "training" / "ner" / "build"))
    ap.add_argument("--cap", type=int, default=DEFAULT_CAP)
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--manifest", default=str(Path(script).resolve().with_suffix(".json")))
    return ap


def convert_single(args, *, source: str, sentences, repo: str, commit: str, paths, licence: str,
                   genre: str, notes: str) -> None:
    """Convert one source with fixed notes: finalize, then write a one-entry manifest to args.manifest."""
    stats = finalize(source, sentences, args.out, cap=args.cap, seed=args.seed)
    write_manifest(args.manifest, [manifest_entry(source=source, repo=repo, commit=commit, paths=paths,
                                                  licence=licence, genre=genre, stats=stats, notes=notes)])
