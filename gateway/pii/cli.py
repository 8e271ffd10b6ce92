"""`bulkhead pii scan [--policy FILE|DIR] [--tenant T] [--zone external|internal]`

Reads JSON Lines `{"id", "text"}` on stdin and writes `{"id", "entities": [{"type", "start",
"end", "score"}], "scrubbed"}` per line to stdout: what was found and the text as it would be sent
to a backend of that trust zone (`scrubbed` is null, and `blocked` names the types, when the
policy blocks it). `--policy` is a YAML file whose `pii:` section is the policy, or a policy
directory (`default.yaml` plus `tenants/<T>.yaml` for `--tenant`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson
import yaml

from gateway.pii.config import PiiPolicy
from gateway.pii.entities import PiiAnalysisError
from gateway.pii.transform import scan_record
from gateway.policy.loader import merge

BATCH = 64


def load_policy(path: str | None, tenant: str | None = None) -> PiiPolicy:
    if path is None:
        return PiiPolicy()
    p = Path(path)
    if p.is_dir():
        section = _pii_section(p / "default.yaml") if (p / "default.yaml").exists() else {}
        if tenant and (p / "tenants" / f"{tenant}.yaml").exists():
            # tenant overlays merge like the gateway's policy
            section = merge(section, _pii_section(p / "tenants" / f"{tenant}.yaml"))
        return PiiPolicy.model_validate(section)
    return PiiPolicy.model_validate(_pii_section(p))


def _pii_section(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    section = doc.get("pii", {})
    if not isinstance(section, dict):
        raise ValueError(f"{path}: `pii` must be a mapping")
    return section


def _records(stream: TextIO, errors: list[str]) -> Iterator[tuple[Any, str]]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            rec = orjson.loads(line)
            text = rec["text"]
            if not isinstance(text, str):
                raise TypeError
        except (orjson.JSONDecodeError, KeyError, TypeError):
            errors.append(f"line {n}: expected a JSON object with a string `text`")
            continue
        yield rec.get("id"), text


def scan(stream: TextIO, out: TextIO, policy: PiiPolicy, zone: str) -> int:
    # presidio + spaCy take seconds to import; `bulkhead pii --help` and usage errors don't pay it
    from gateway.pii.analyzer import PiiAnalyzer

    analyzer = PiiAnalyzer(policy)
    errors: list[str] = []
    batch: list[tuple[Any, str]] = []

    def emit() -> None:
        results = analyzer.analyze([t for _, t in batch])
        for (rid, text), ents in zip(batch, results, strict=True):
            rec = {"id": rid, **scan_record(text, ents, policy, zone)}  # type: ignore[arg-type]
            out.write(orjson.dumps(rec).decode() + "\n")
        batch.clear()

    for item in _records(stream, errors):
        batch.append(item)
        if len(batch) >= BATCH:
            emit()
    if batch:
        emit()
    out.flush()
    for err in errors:
        print(f"error: {err}", file=sys.stderr)
    return 1 if errors else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bulkhead pii", description="PII and secrets tools.")
    sub = ap.add_subparsers(dest="command", required=True)
    sc = sub.add_parser("scan", help="JSONL {id,text} on stdin -> JSONL {id,entities,scrubbed} on stdout")
    sc.add_argument("--policy", help="YAML file with a `pii:` section, or a policy directory")
    sc.add_argument("--tenant", help="with a policy directory: apply tenants/<TENANT>.yaml")
    sc.add_argument(
        "--zone",
        choices=("external", "internal"),
        default="external",
        help="trust zone whose treatment produces `scrubbed` (default: external)",
    )
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        policy = load_policy(args.policy, args.tenant)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return scan(sys.stdin, sys.stdout, policy, args.zone)
    except PiiAnalysisError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
