from __future__ import annotations

import pytest

from gateway.hallucination.judge import JudgeCheck, JudgeParseError, locate

ANSWER = "Revenue was $2.3 million. The company opened 45 stores."


@pytest.fixture
def judge():
    return JudgeCheck()


def test_build_messages_has_rubric_and_data_blocks(judge):
    msgs = judge.build_messages(["Doc one.", "Doc two."], "How many stores?", ANSWER)
    assert [m["role"] for m in msgs] == ["system", "user"]
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert '"verdict"' in system and '"unsupported_claims"' in system and "JSON" in system
    assert "[1] Doc one." in user and "[2] Doc two." in user
    assert "How many stores?" in user and ANSWER in user
    summary = judge.build_messages("ctx", "", "ans")[1]["content"]
    assert "summary" in summary


def test_parse_plain_json(judge):
    r = judge.parse('{"verdict": "supported", "score": 0.93, "unsupported_claims": []}')
    assert (r.kind, r.verdict, r.score) == ("judge", "supported", 0.93)


@pytest.mark.parametrize(
    "reply",
    [
        '```json\n{"verdict": "unsupported", "score": 0.1, "unsupported_claims": ["opened 45 stores"]}\n```',
        'Here is my assessment:\n{"verdict": "unsupported", "score": 0.1, "unsupported_claims": '
        '["The company opened 45 stores."]}\nLet me know if you need more.',
        '{"note": "x"} {"verdict": "Unsupported ", "score": 0, "unsupported_claims": ["the company OPENED 45 stores"]}',
    ],
)
def test_parse_tolerates_fences_and_prose_and_locates_claims(judge, reply):
    r = judge.parse(reply, answer=ANSWER)
    assert r.verdict == "unsupported"
    assert r.score <= 0.1
    flagged = [c for c in r.claims if c.score == 0.0]
    assert len(flagged) == 1
    assert ANSWER[flagged[0].start : flagged[0].end] == "The company opened 45 stores."
    assert r.detail["unlocated"] == 0


@pytest.mark.parametrize(
    "reply",
    [
        "",
        "I think the answer is supported.",
        "```json\n{verdict: supported, score: 1}\n```",
        '{"verdict": "supported", "score": 0.9,}',
        '{"verdict": "maybe", "score": 0.5, "unsupported_claims": []}',
        '{"verdict": "supported", "score": 1.5, "unsupported_claims": []}',
        '{"verdict": "supported", "score": "high", "unsupported_claims": []}',
        '{"verdict": "supported", "score": true, "unsupported_claims": []}',
        '{"verdict": "supported", "unsupported_claims": []}',
        '{"verdict": "unsupported", "score": 0.2, "unsupported_claims": "all of it"}',
        '{"verdict": "unsupported", "score": 0.2, "unsupported_claims": [3]}',
        '["supported", 1.0]',
        '{"score": 1.0}',
    ],
)
def test_junk_raises_judge_parse_error(judge, reply):
    with pytest.raises(JudgeParseError):
        judge.parse(reply)


def test_parse_error_never_quotes_the_reply(judge):
    secret = "patient John Smith SSN 123-45-6789"
    with pytest.raises(JudgeParseError) as exc:
        judge.parse(f"{secret} {{broken")
    assert "John" not in str(exc.value) and "123" not in str(exc.value)


def test_unlocated_claims_are_counted(judge):
    r = judge.parse('{"verdict": "unsupported", "score": 0.3, "unsupported_claims": ["zebras fly"]}', answer=ANSWER)
    assert r.detail["unlocated"] == 1
    assert all(c.score == 0.3 for c in r.claims)


def test_locate():
    assert locate(ANSWER, "Revenue was $2.3 million.") == (0, 25)
    assert locate(ANSWER, "revenue   WAS $2.3 million") == (0, 24)
    assert locate(ANSWER, "nothing like it") is None
