"""Helpers shared by the source converters in this folder (attacks.py, attacks2.py, benign.py, indirect.py).

Reading pinned blobs from fetched git mirrors, text normalisation, dev-set near-copy filtering, the
project's contamination check, JSONL / manifest writing and the common command-line options.

Standard library only.  The converters are run as scripts (``python3 training/injection/sources/X.py``),
so they put this folder on ``sys.path`` and ``import common``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import subprocess
import sys
import tempfile

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_CHECK = os.path.join(REPO_ROOT, "..", "shared", "contamination", "check.py")
DEFAULT_DEV = os.path.join(REPO_ROOT, "..", "shared", "evals", "injection-dev.jsonl")
DEFAULT_OUT = os.path.join("training", "injection", "build")

HARMLESS_QUESTIONS = [
    "How do I bake sourdough bread?",
    "What is a good way to learn Spanish vocabulary?",
    "How do I fix a flat bicycle tyre?",
    "Can you explain how photosynthesis works?",
    "What are some tips for a job interview?",
    "How do I make a monthly budget spreadsheet?",
    "Write a short poem about autumn leaves.",
    "What is the capital of Australia?",
    "How do I care for a succulent plant?",
    "Explain the rules of chess to a beginner.",
    "How can I improve my sleep schedule?",
    "What is the difference between a virus and a bacterium?",
    "Give me a recipe for vegetable soup.",
    "How do I write a good cover letter?",
    "Summarize the plot of Romeo and Juliet.",
    "How do I set up a Python virtual environment?",
]


# --------------------------------------------------------------------------- git mirrors

def git_dir(mirrors: str, repo: str) -> str | None:
    """The git directory of ``repo`` under ``mirrors`` (``owner+name/repo``, ``owner+name`` or a .git inside)."""
    base = os.path.join(mirrors, repo.replace("/", "+"))
    for cand in (os.path.join(base, "repo"), os.path.join(base, "repo", ".git"), base,
                 os.path.join(base, ".git"), base + ".git"):
        if os.path.exists(os.path.join(cand, "HEAD")):
            return cand
    return None


class Mirror:
    """One pinned commit of a fetched repository; remembers the paths read (for the manifests).

    ``errors`` is how show() decodes bytes that are not UTF-8 ("strict" raises)."""

    def __init__(self, mirrors: str, repo: str, commit: str, required: bool = True, errors: str = "strict"):
        self.repo, self.commit, self.errors = repo, commit, errors
        gd = git_dir(mirrors, repo)
        if gd is None:
            if required:
                raise SystemExit(f"no git directory for {repo} under {mirrors}")
            gd = os.path.join(mirrors, repo.replace("/", "+"))  # reads fail with CalledProcessError
        self.git_dir = gd
        self.paths: list[str] = []

    def _git(self, *args: str) -> bytes:
        return subprocess.run(["git", "--git-dir", self.git_dir, *args], check=True, capture_output=True).stdout

    def blob(self, path: str) -> bytes:
        self.paths.append(path)
        return self._git("show", f"{self.commit}:{path}")

    def show(self, path: str) -> str:
        return self.blob(path).decode("utf-8", self.errors)

    def ls(self, under: str = "") -> list[str]:
        args = ["ls-tree", "-r", "--name-only", self.commit] + ([under] if under else [])
        return [p for p in self._git(*args).decode("utf-8").splitlines() if p]


# --------------------------------------------------------------------------- text

def norm(text: str) -> str:
    """Lower-cased text with runs of whitespace collapsed (the dedupe key)."""
    return " ".join(text.lower().split())


def shingles(text: str, n: int = 8) -> set[str]:
    w = norm(text).split()
    if len(w) < n:
        return {" ".join(w)} if w else set()
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def question_for(rec_id: str) -> str:
    h = int(hashlib.sha256(rec_id.encode("utf-8")).hexdigest(), 16)
    return HARMLESS_QUESTIONS[h % len(HARMLESS_QUESTIONS)]


def finalize(source: str, raw: list[dict], cap: int = 3000) -> list[dict]:
    """Attack records: assign ids, fill slots, strip, drop short/duplicate texts, sample down to ``cap``."""
    out, seen = [], set()
    for r in raw:
        rid = f"{source}:{len(out)}"
        text = r["text"]
        slot = r.get("slot")
        if slot:
            q = question_for(rid)
            if slot == "append":
                text = text.rstrip() + "\n\n" + q
            elif slot == "prefix":
                text = q + " " + text.strip()
            else:
                text = text.replace(slot, q)
        text = text.strip()
        if len(text) < 8:
            continue
        key = norm(text)
        if key in seen:
            continue
        seen.add(key)
        out.append({"id": rid, "text": text, "label": "attack", "role": "user",
                    "family": r["family"], "source": source})
    if len(out) > cap:
        out = random.Random(0).sample(out, cap)
        out.sort(key=lambda x: int(x["id"].split(":")[1]))
    return out


# --------------------------------------------------------------------------- filters

def drop_dev_overlap(recs: list[dict], dev_path: str | None, threshold: float = 0.5) -> tuple[list[dict], int]:
    """Drop records that share >= threshold of their 8-word shingles with the dev set."""
    if not dev_path or not os.path.exists(dev_path):
        print(f"WARNING: dev set not found at {dev_path}; near-copies not dropped", file=sys.stderr)
        return recs, 0
    dev = set()
    with open(dev_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                dev |= shingles(json.loads(line)["text"])
    kept = [r for r in recs
            if not ((s := shingles(r["text"])) and len(s & dev) / len(s) >= threshold)]
    return kept, len(recs) - len(kept)


def drop_contaminated(recs: list[dict], check_py: str | None) -> tuple[list[dict], int | None]:
    """Run the project's contamination check on ``recs`` (unique ids); drop the flagged ones.

    Returns (kept, number dropped), or (recs, None) when the check script is missing."""
    if not check_py or not os.path.exists(check_py):
        print(f"WARNING: contamination check not found at {check_py}; not run", file=sys.stderr)
        return recs, None
    with tempfile.TemporaryDirectory() as td:
        tmp = os.path.join(td, "recs.jsonl")
        write_jsonl(tmp, recs)
        proc = subprocess.run([sys.executable, check_py, "--show", str(len(recs) + 1), tmp],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            return recs, 0
        lines = [int(n) for n in re.findall(r"^\s+line (\d+):", proc.stdout, flags=re.M)]
        if not lines:
            raise SystemExit(f"contamination check failed and flagged records could not be parsed:\n"
                             f"{proc.stdout}\n{proc.stderr}")
        ids = {recs[n - 1]["id"] for n in lines}
    kept = [r for r in recs if r["id"] not in ids]
    return kept, len(recs) - len(kept)


# --------------------------------------------------------------------------- output

def write_jsonl(path: str, recs) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in recs:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_manifest(path: str, manifest: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, ensure_ascii=False)
        f.write("\n")


def manifest_entry(source: str, mirror: Mirror, meta: dict, recs: list[dict], n_dev: int, n_cont: int | None,
                   role: str = "user", extra: str = "") -> dict:
    """Print the per-source summary line and return the source's manifest entry."""
    fams = sorted({r["family"] for r in recs})
    counts = {fam: sum(r["family"] == fam for r in recs) for fam in fams}
    print(f"{source}: {len(recs)} records {counts} (dropped dev-overlap {n_dev}, contamination {n_cont})")
    return {
        "source": source, "repo": mirror.repo, "commit": mirror.commit,
        "paths": sorted(set(mirror.paths)), "licence": meta["licence"],
        "family": fams[0] if len(fams) == 1 else fams, "role": role,
        "records": len(recs), "dropped_contamination": n_cont,
        "notes": meta["notes"] + f" Family counts: {counts}. Dropped as dev-set near-copies: {n_dev}." + extra,
    }


# --------------------------------------------------------------------------- command line

def arg_parser(description: str) -> argparse.ArgumentParser:
    """Parser with the options every converter takes: --mirrors, --out, --check."""
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mirrors", required=True, help="directory holding fetched git dirs named owner+name")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", default=DEFAULT_CHECK,
                    help="contamination check script (default ../shared/contamination/check.py from repo root)")
    return ap


def add_dev_arg(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--dev", default=DEFAULT_DEV,
                    help="dev set whose near-copies are dropped (default ../shared/evals/injection-dev.jsonl)")
