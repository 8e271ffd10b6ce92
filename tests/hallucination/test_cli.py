from __future__ import annotations

import io
import json

import pytest

from gateway.hallucination import cli

CTX = "Acme Corp reported revenue of $2.3 million in 2020. The company opened 12 new stores in Ohio."


def run(lines: list[str], *args: str) -> tuple[int, list[dict], str]:
    stdin = io.BytesIO("".join(line + "\n" for line in lines).encode())
    out, err = io.StringIO(), io.StringIO()
    status = cli.main(["grounding", *args], stdin=stdin, stdout=out, stderr=err)
    return status, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_round_trip_with_a_bad_line():
    lines = [
        json.dumps({"id": "good", "context": CTX, "question": "Revenue?", "answer": "Revenue was $2.3 million."}),
        '{"id": "broken", "context": ',
        "",
        json.dumps({"id": "made-up", "context": CTX, "question": "", "answer": "Acme opened 45 stores in Texas."}),
        json.dumps({"id": "no-answer", "context": CTX}),
        json.dumps({"id": 7, "context": [CTX], "answer": "The company opened 12 new stores."}),
    ]
    status, rows, err = run(lines)
    assert status == 1
    assert [r["id"] for r in rows] == ["good", None, "made-up", "no-answer", 7]
    assert set(rows[0]) == {"id", "score", "verdict", "claims"}
    assert rows[0]["score"] > rows[2]["score"]
    assert rows[0]["claims"] == [{"start": 0, "end": 25, "score": rows[0]["claims"][0]["score"]}]
    assert set(rows[1]) == {"id", "error"} and "invalid JSON" in rows[1]["error"]
    assert rows[3] == {"id": "no-answer", "error": 'missing or non-string "answer"'}
    assert "line 2:" in err and "invalid JSON" in err
    assert "line 5:" in err and '"answer"' in err
    assert "Acme" not in err and "Acme" not in json.dumps(rows)  # no input text in errors


def test_all_good_lines_exit_zero_and_threshold_option():
    line = json.dumps({"id": "a", "context": CTX, "answer": "Revenue was $2.3 million."})
    status, rows, err = run([line], "--threshold", "1.0")
    assert status == 0 and err == ""
    assert rows[0]["verdict"] == "unsupported"
    status, rows, _ = run([line], "--threshold", "0", "--detail")
    assert rows[0]["verdict"] == "supported"
    assert "unsupported_numbers" in rows[0]


def test_invalid_utf8_and_non_object_lines():
    stdin = io.BytesIO(b"\xff\xfe\n[1, 2]\n")
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["grounding"], stdin=stdin, stdout=out, stderr=err) == 1
    assert "line 1: not UTF-8" in err.getvalue() and "line 2: expected a JSON object" in err.getvalue()
    rows = [json.loads(x) for x in out.getvalue().splitlines()]
    assert rows == [{"id": None, "error": "not UTF-8 (byte 0)"}, {"id": None, "error": "expected a JSON object"}]


def test_missing_weights_stop_the_command_with_the_rebuild_script(monkeypatch, tmp_path):
    monkeypatch.setenv("BULKHEAD_GROUNDING_VERIFIER", str(tmp_path / "absent.npz"))
    stdin = io.BytesIO(b'{"id": 1, "context": "x", "answer": "y"}\n')
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["grounding"], stdin=stdin, stdout=out, stderr=err) == 2
    assert "scripts/train_grounding.py" in err.getvalue() and out.getvalue() == ""


def test_bad_threshold_is_rejected():
    with pytest.raises(SystemExit):
        cli.main(["grounding", "--threshold", "2"])
