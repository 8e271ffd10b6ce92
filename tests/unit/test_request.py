"""A request's texts are read once, by role, from the validated body: what each stage is handed."""

from __future__ import annotations

import pytest

from gateway.errors import APIError
from gateway.request import SUPPLIED_ROLES, ModelRequest, Texts, admission_tokens

CHAT = {
    "model": "m",
    "max_tokens": 50,
    "messages": [
        {"role": "system", "content": "You answer from the documents."},
        {"role": "user", "content": [{"type": "text", "text": "Summarise"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                                     {"type": "text", "text": "<context>Revenue rose 5%.</context> briefly"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "Q3 revenue: 12M"},
        {"role": "user", "content": "And <document>Costs fell.</document> the costs?"},
    ],
    "bulkhead": {"context": ["Annual report 2025.", "   "]},
}


def test_texts_by_role_keep_the_parts_and_skip_what_is_not_text():
    texts = ModelRequest.of("chat", CHAT).texts
    assert [s.role for s in texts.segments] == ["system", "user", "assistant", "tool", "user"]
    assert texts.segments[1].parts == ("Summarise", "<context>Revenue rose 5%.</context> briefly")
    assert texts.segments[2].parts == () and texts.segments[2].text == ""
    # the risk stage scores each part with its role and place; domains read what the caller supplied,
    # never the app's own system prompt
    assert [t for role, _, t in texts.scored if role in SUPPLIED_ROLES] == [
        "Summarise", "<context>Revenue rose 5%.</context> briefly", "Q3 revenue: 12M",
        "And <document>Costs fell.</document> the costs?"]
    assert [(role, where) for role, where, _ in texts.scored] == [
        ("system", "system prompt 1"), ("user", "user message 1"), ("user", "user message 1"),
        ("tool", "tool result 1"), ("user", "user message 2"), ("context", "context document 1")]
    # the audit's content HMACs cover one text per message, parts joined
    assert texts.per_message[1] == "Summarise\n<context>Revenue rose 5%.</context> briefly"
    assert len(texts.per_message) == 5


def test_grounding_documents_and_the_question():
    texts = ModelRequest.of("chat", CHAT).texts
    assert texts.grounding == ["Annual report 2025.", "You answer from the documents.", "Revenue rose 5%.",
                               "Q3 revenue: 12M", "Costs fell."]
    assert texts.question == "And   the costs?"


def test_the_outbound_body_leaves_the_gateway_options_out_and_the_estimate_counts_the_answer():
    request = ModelRequest.of("chat", CHAT)
    assert "bulkhead" not in request.body and request.body["messages"] == CHAT["messages"]
    chars = sum(len(t) for t in ("You answer from the documents.", "Summarise",
                                 "<context>Revenue rose 5%.</context> briefly", "Q3 revenue: 12M",
                                 "And <document>Costs fell.</document> the costs?"))
    assert request.texts.prompt_tokens == chars // 4 + 1
    assert request.tokens == chars // 4 + 1 + 50 == admission_tokens(CHAT)


def test_prompts_and_inputs_are_user_text_and_token_ids_count_one_each():
    texts = Texts.of({"prompt": ["abcd", "efgh"]})
    assert [s.role for s in texts.segments] == ["user", "user"] and texts.prompt_chars == 8
    ids = ModelRequest.of("embeddings", {"model": "e", "input": [1, 2, 3]})
    assert ids.texts.segments == () and ids.texts.prompt_chars == 3
    assert ModelRequest.of("completions", {"model": "m", "prompt": "hi", "stream": True}).stream


def test_an_invalid_body_is_refused_before_anything_reads_it():
    with pytest.raises(APIError) as info:
        ModelRequest.of("chat", {"model": "m", "messages": [{"role": "robot", "content": "x"}]})
    assert info.value.status in (400, 422)
    with pytest.raises(APIError):
        ModelRequest.of("chat", ["not", "an", "object"])
