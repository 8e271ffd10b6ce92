"""`bench/grounding_holdout.py` decides which SummEdits records count as never seen: none of the dev
file's, no pair twice, text normalized as the dev file has it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import load_file


@pytest.fixture(scope="module")
def holdout():
    return load_file("bench/grounding_holdout.py")


def write_raw(tmp_path: Path, rows_by_domain: dict[str, list[dict]]) -> Path:
    raw = tmp_path / "summedits"
    raw.mkdir()
    for domain in ("ectsum", "news", "qmsumm", "sales_call", "sales_email", "scitldr"):
        (raw / f"summedits_{domain}.json").write_text(json.dumps(rows_by_domain.get(domain, [])), encoding="utf-8")
    return raw


def row(rid: str, doc: str, summary: str, label: str | int) -> dict:
    return {"id": rid, "doc": doc, "summary": summary, "label": label}


def test_keeps_only_records_outside_the_dev_file(holdout, tmp_path):
    dev = [holdout.Record("summedits-news:a_og", "Doc one.", "", "Sum one.", 1, "summedits/summedits_news.json")]
    raw = write_raw(tmp_path, {
        "news": [
            row("a_og", " Doc one.\n", "Sum one.", "1"),  # in the dev file by id
            row("a_1", "Doc one.\n", " Sum one.", 1),  # a dev pair under another id: a repeat
            row("a_2", "Doc one.\n", "Sum two.", 0),
            row("a_3", "Doc one.", "Sum two. ", "0"),  # repeats a_2 once stripped
        ],
        "sales_call": [row("b_og", "Call.", "Agent called.", 1)],
    })
    recs = holdout.load_holdout(raw, dev)
    assert [(r.id, r.context, r.answer, r.label, r.subsource) for r in recs] == [
        ("summedits-news:a_2", "Doc one.", "Sum two.", 0, "news"),
        ("summedits-sales_call:b_og", "Call.", "Agent called.", 1, "sales_call"),
    ]


def test_an_unknown_label_is_an_error(holdout, tmp_path):
    raw = write_raw(tmp_path, {"qmsumm": [row("q_1", "Meeting.", "They met.", "2")]})
    with pytest.raises(ValueError, match="unknown label"):
        holdout.load_holdout(raw, [])
