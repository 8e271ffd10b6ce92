import io
import json

from gateway.pii import cli


def run(lines: list[str], *args: str, monkeypatch) -> tuple[int, list[dict], str]:
    monkeypatch.setattr("sys.stdin", io.StringIO("".join(line + "\n" for line in lines)))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    rc = cli.main(["scan", *args])
    return rc, [json.loads(x) for x in out.getvalue().splitlines()], err.getvalue()


def test_scan_jsonl(monkeypatch):
    text = "Dear Maria Gonzalez, write to maria@example.com"
    rc, rows, _ = run(
        [json.dumps({"id": "a", "text": text}), json.dumps({"id": 2, "text": "plain"})],
        monkeypatch=monkeypatch,
    )
    assert rc == 0
    assert rows[0]["id"] == "a" and rows[1] == {"id": 2, "entities": [], "scrubbed": "plain"}
    ents = rows[0]["entities"]
    assert {"type", "start", "end", "score"} == set(ents[0])
    assert {(e["type"], text[e["start"] : e["end"]]) for e in ents} >= {
        ("PERSON", "Maria Gonzalez"),
        ("EMAIL_ADDRESS", "maria@example.com"),
    }
    assert rows[0]["scrubbed"] == "Dear <PERSON_1>, write to <EMAIL_ADDRESS_1>"


def test_policy_file_tenant_overlay_and_blocked(tmp_path, monkeypatch):
    (tmp_path / "tenants").mkdir()
    (tmp_path / "default.yaml").write_text(
        "pii:\n  treatment:\n    external: {default: redact, SECRET: block}\n"
    )
    (tmp_path / "tenants" / "acme.yaml").write_text(
        "pii:\n  custom_recognizers:\n    - {name: codes, entity: PROJECT, deny_list: [Nightjar]}\n"
    )
    lines = [
        json.dumps({"id": 1, "text": "the nightjar project for Maria Gonzalez"}),
        json.dumps({"id": 2, "text": "token ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"}),
    ]
    rc, rows, _ = run(lines, "--policy", str(tmp_path), "--tenant", "acme", monkeypatch=monkeypatch)
    assert rc == 0
    assert rows[0]["scrubbed"] == "the [PROJECT] project for [PERSON]"
    assert rows[1]["scrubbed"] is None and rows[1]["blocked"] == ["SECRET"]
    rc, rows, _ = run(lines[:1], "--policy", str(tmp_path / "default.yaml"), monkeypatch=monkeypatch)
    assert rows[0]["scrubbed"] == "the nightjar project for [PERSON]"


def test_bad_input_and_bad_policy(tmp_path, monkeypatch):
    rc, rows, err = run(["not json", json.dumps({"id": 1, "text": "ok"})], monkeypatch=monkeypatch)
    assert rc == 1 and len(rows) == 1 and "line 1" in err
    bad = tmp_path / "p.yaml"
    bad.write_text("pii:\n  entities: [SHOE_SIZE]\n")
    rc, rows, err = run([], "--policy", str(bad), monkeypatch=monkeypatch)
    assert rc == 2 and "SHOE_SIZE" in err
