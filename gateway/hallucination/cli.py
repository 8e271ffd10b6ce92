"""`bulkhead check ...`: run the hallucination checks over JSON Lines.

    bulkhead check grounding [--threshold T] [--no-embeddings] [--detail] < records.jsonl > scores.jsonl

Each input line is `{"id": ..., "context": str | [str, ...], "question": str, "answer": str}`
(`question` optional). Each output line is
`{"id", "score", "verdict", "claims": [{"start", "end", "score"}]}` (with `--detail`, also the offsets
of unsupported numbers, names, negations and novel words). A line that cannot be read is reported on
stderr as `line N: reason` and skipped; the exit status is then 1 once all other lines are done.
Blank lines are ignored. No input text is ever written to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from gateway.hallucination.grounding import GroundingCheck


class _BadRecord(ValueError):
    pass


def _record(raw: bytes) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadRecord(f"not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadRecord(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise _BadRecord("expected a JSON object")
    context = obj.get("context")
    if isinstance(context, list):
        if not all(isinstance(p, str) for p in context):
            raise _BadRecord('"context" must be a string or a list of strings')
    elif not isinstance(context, str):
        raise _BadRecord('missing or non-string "context"')
    if not isinstance(obj.get("answer"), str):
        raise _BadRecord('missing or non-string "answer"')
    question = obj.get("question", "")
    if question is None:
        question = ""
    if not isinstance(question, str):
        raise _BadRecord('"question" must be a string')
    record_id = obj.get("id")
    if record_id is not None and not isinstance(record_id, str | int | float):
        raise _BadRecord('"id" must be a string or a number')
    return {"id": record_id, "context": context, "question": question, "answer": obj["answer"]}


def grounding(
    lines: Any,
    out: IO[str],
    err: IO[str],
    *,
    threshold: float | None = None,
    use_embeddings: bool = True,
    detail: bool = False,
    check: Any = None,
) -> int:
    if check is None:
        check = GroundingCheck(use_embeddings=use_embeddings)
    bad = 0
    for n, raw in enumerate(lines, 1):
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        if not raw.strip():
            continue
        try:
            rec = _record(raw.strip())
        except _BadRecord as exc:
            bad += 1
            print(f"line {n}: {exc}; skipped", file=err)
            continue
        result = check.score(rec["context"], rec["answer"], rec["question"], threshold=threshold)
        row: dict[str, Any] = {
            "id": rec["id"],
            "score": round(result.score, 4),
            "verdict": result.verdict,
            "claims": [{"start": c.start, "end": c.end, "score": round(c.score, 4)} for c in result.claims],
        }
        if detail:
            full = result.to_dict()
            for key in ("unsupported_numbers", "unsupported_entities", "unsupported_negations", "novel_words"):
                row[key] = full[key]
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
    if bad:
        print(f"{bad} line(s) skipped", file=err)
    return 1 if bad else 0


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("threshold must be within [0, 1]")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bulkhead check", description="Hallucination checks over JSON Lines.")
    sub = parser.add_subparsers(dest="command", required=True)
    g = sub.add_parser("grounding", help="score answers against their context (JSONL on stdin)")
    g.add_argument("--threshold", type=_threshold, default=None, help="verdict cut (default: the model's)")
    g.add_argument("--no-embeddings", action="store_true", help="lexical evidence only (no MiniLM)")
    g.add_argument("--detail", action="store_true", help="also output the offsets of unsupported spans")
    return parser


def main(
    argv: list[str] | None = None,
    *,
    stdin: IO[bytes] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    if args.command == "grounding":
        return grounding(
            stdin if stdin is not None else sys.stdin.buffer,
            out,
            err,
            threshold=args.threshold,
            use_embeddings=not args.no_embeddings,
            detail=args.detail,
        )
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
