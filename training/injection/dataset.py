"""The injection training data: every source's records, deduplicated across sources.

A record is one segment as the gateway would score it: its text, the role it arrives in (`user`,
`tool`, `context`, `system`, `assistant`), its label (attack / benign), its family and its source.
The source is the unit of leave-one-source-out evaluation, so the same text may not sit in two
sources: exact repeats (after the normalization the detector uses) keep their first source, in the
order the manifest lists them.

Where the records come from: `training/injection/sources/*.json` (the manifest: repository, commit,
path, licence) and the converters beside them, which write `training/injection/build/<source>.jsonl`
from fetched snapshots; `authored/lookalikes.jsonl`, benign look-alikes written here; and the
project's dev file (`shared/evals/injection-dev.jsonl`), split by its upstream datasets so that each
is a source of its own.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from gateway.risk.text import normalize

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BUILD = HERE / "build"
AUTHORED = HERE / "authored" / "lookalikes.jsonl"
DEV = ROOT.parent / "shared" / "evals" / "injection-dev.jsonl"
ROLES = ("user", "tool", "context")
# Converted and scored, not trained on: the shipped head scores them left out (`bench/injection_eval.py
# --held-back`). indirect-agent-requests (plain requests planted in tool results, 2026-12-07): a
# leave-one-source-out round that trained on it moved no left-out figure beyond noise (bench/RESULTS.md),
# so the shipped head was not refitted and the source measures what it misses instead.
HELD_BACK = frozenset({"indirect-agent-requests"})

# The dev file's upstream datasets (its README names them): community jailbreaks, Self-Instruct tasks.
_DEV_SOURCES = {"garak": "dev-jailbreaks", "gptfuzz": "dev-jailbreaks", "self-instruct": "dev-self-instruct"}


@dataclass(frozen=True, slots=True)
class Example:
    id: str
    text: str
    attack: bool
    role: str
    family: str
    source: str


def _dev_source(raw: str) -> str:
    low = raw.lower()
    for key, name in _DEV_SOURCES.items():
        if key in low:
            return name
    return "dev-other"


def load_dev(path: Path = DEV) -> list[Example]:
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if not line.strip():
            continue
        r = json.loads(line)
        attack = r["label"] == "attack"
        family = "jailbreak" if attack else "benign"
        out.append(Example(r["id"], r["text"], attack, "user", family, _dev_source(r.get("source", ""))))
    return out


def load_build(build: Path = BUILD) -> list[Example]:
    out = []
    for path in sorted(build.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").split("\n"):
            if not line.strip():
                continue
            r = json.loads(line)
            role = r.get("role") or "user"
            if role not in ROLES:
                raise ValueError(f"{path.name}: {r.get('id')}: unknown role {role!r}")
            out.append(Example(str(r["id"]), r["text"], r["label"] == "attack", role, r.get("family", ""),
                               r["source"]))
    return out


def load_authored(path: Path = AUTHORED) -> list[Example]:
    """Benign look-alikes written here (system prompts, personas, style rules, games, fiction, talk
    about AI safety): one source, `authored-lookalikes`."""
    out = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            r = json.loads(line)
            out.append(Example(r["id"], r["text"], False, "user", "trigger", "authored-lookalikes"))
    return out


def manifest_order(sources_dir: Path = HERE / "sources") -> list[str]:
    names: list[str] = []
    for path in sorted(sources_dir.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8")):
            names.append(entry["source"])
    return names


def load_all(build: Path = BUILD, dev: Path | None = DEV, held_back: bool = False) -> list[Example]:
    """Every record of the recipe's sources, exact repeats dropped across and within sources (first
    listed source wins); `held_back`: the HELD_BACK sources too."""
    built = [e for e in load_build(build) if held_back or e.source not in HELD_BACK]
    records = (load_dev(dev) if dev is not None and dev.exists() else []) + load_authored() + built
    order = {name: i for i, name in enumerate(manifest_order())}
    first = ("dev-", "authored-")
    records.sort(key=lambda e: (order.get(e.source, -1 if e.source.startswith(first) else len(order)), e.id))
    seen: set[str] = set()
    out = []
    for e in records:
        key = normalize(e.text)
        if len(key) < 2 or key in seen:
            continue
        seen.add(key)
        out.append(e)
    return out


def summary(examples: list[Example]) -> str:
    by = Counter((e.source, e.attack) for e in examples)
    lines = []
    for source in sorted({e.source for e in examples}):
        lines.append(f"{source:32s} attack {by[(source, True)]:6d}  benign {by[(source, False)]:6d}")
    return "\n".join(lines)
