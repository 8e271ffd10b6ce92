"""`bulkhead check ...`: run the hallucination checks over JSON Lines.

    bulkhead check grounding [--threshold T] [--detail] < records.jsonl > scores.jsonl

Each input line is `{"id": ..., "context": str | [str, ...], "question": str, "answer": str}`
(`question` optional). Each output line is
`{"id", "score", "verdict", "claims": [{"start", "end", "score"}]}`, higher = better supported (with
`--detail`, also the offsets of the numbers and words the context never contains). A line that
cannot be read gets `{"id", "error"}` in its place (`id` null when it could not be read) and is
reported on stderr as `line N: reason`; the rest are still scored, and the exit status is 1 once
all are done. Blank lines are ignored. No input text is ever written to stderr or into an error.
Missing or corrupt verifier weights stop the command before any line is read (exit status 2, the
message names the file and the script that rebuilds it).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import IO, Any

from gateway.hallucination.grounding import GroundingCheck
from gateway.hallucination.verifier import VerifierWeightsError


class _BadRecord(ValueError):
    def __init__(self, why: str, record_id: Any = None) -> None:
        super().__init__(why)
        self.record_id = record_id


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
    record_id = obj.get("id")
    if record_id is not None and not isinstance(record_id, str | int | float):
        raise _BadRecord('"id" must be a string or a number')
    try:
        return _fields(obj)
    except _BadRecord as exc:
        raise _BadRecord(str(exc), record_id) from None


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
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
    return {"id": obj.get("id"), "context": context, "question": question, "answer": obj["answer"]}


def grounding(
    lines: Any,
    out: IO[str],
    err: IO[str],
    *,
    threshold: float | None = None,
    detail: bool = False,
    check: Any = None,
) -> int:
    if check is None:
        try:
            check = GroundingCheck()
        except VerifierWeightsError as exc:
            print(f"bulkhead check grounding: {exc}", file=err)
            return 2
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
            print(f"line {n}: {exc}", file=err)
            out.write(json.dumps({"id": exc.record_id, "error": str(exc)}) + "\n")
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
            for key in ("unsupported_numbers", "novel_words"):
                row[key] = full[key]
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
    out.flush()
    if bad:
        print(f"{bad} line(s) could not be read", file=err)
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
            detail=args.detail,
        )
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    raise SystemExit(main())
