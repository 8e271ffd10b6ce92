import json

import pytest

from gateway.errors import APIError
from gateway.pii.fields import STRUCTURAL, apply_texts, extract_texts, matches, media_parts
from gateway.schemas import REQUEST_TYPES, parse
from tests.pii.schema_positions import build, string_positions


def test_chat_fields_all_found():
    body = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "be nice"},
            {
                "role": "user",
                "name": "ana_dias",
                "content": [
                    {"type": "text", "text": "hello"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "result text"},
            {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
        ],
        "metadata": {"customer": "Jane Roe"},
        "user": "u-1",
        "stop": ["END"],
        "tools": [{"type": "function", "function": {"name": "lookup", "description": "find a client",
                                                    "parameters": {"type": "object", "properties": {"q": {}}}}}],
        "temperature": 0.2,
        "logit_bias": {"50256": -100},
    }
    got = {(f.path, f.text, f.kind) for f in extract_texts(body)}
    assert got == {
        (("messages", 0, "content"), "be nice", "content"),
        (("messages", 1, "content", 0, "text"), "hello", "content"),
        (("messages", 1, "name"), "ana_dias", "name"),
        (("messages", 2, "tool_calls", 0, "id"), "c1", "name"),
        (("messages", 2, "tool_calls", 0, "function", "name"), "lookup", "name"),
        (("messages", 2, "tool_calls", 0, "function", "arguments", "$json", "$key", "q"), "q", "key"),
        (("messages", 2, "tool_calls", 0, "function", "arguments", "$json", "q"), "x", "arguments"),
        (("messages", 3, "tool_call_id"), "c1", "name"),
        (("messages", 3, "content"), "result text", "content"),
        (("messages", 4, "function_call", "name"), "f", "name"),
        (("metadata", "$key", "customer"), "customer", "key"),
        (("metadata", "customer"), "Jane Roe", "field"),
        (("user",), "u-1", "field"),
        (("stop", 0), "END", "field"),
        (("tools", 0, "function", "name"), "lookup", "name"),
        (("tools", 0, "function", "description"), "find a client", "field"),
        (("tools", 0, "function", "parameters", "properties", "$key", "q"), "q", "key"),
    }
    assert media_parts(body) == (1, 0)


SENTINEL = "Jane Roe 219-09-9999"


@pytest.mark.parametrize("model", sorted(REQUEST_TYPES))
def test_every_string_position_of_the_schema_is_inspected_or_refused(model):
    """Walks the request schema: a string put at any position either is refused by validation,
    reaches the inspector, or sits where nothing is sent upstream (`model`, the `bulkhead` options)."""
    schema = REQUEST_TYPES[model].model_json_schema()
    positions = string_positions(schema)
    assert len(positions) >= 5
    unchecked = []
    for position in sorted(positions, key=str):
        body = build(schema, schema, position, SENTINEL)
        assert body is not None, position
        try:
            parse(REQUEST_TYPES[model], body)
        except APIError:
            continue  # refused: never sent
        if position[0] in ("model", "bulkhead"):
            assert matches(position[:1], STRUCTURAL)
            continue
        sent = {k: v for k, v in body.items() if k != "bulkhead"}
        if not any(SENTINEL in f.text for f in extract_texts(sent)):
            unchecked.append(position)
    assert unchecked == []


def test_structural_positions_are_confined_by_the_schema():
    """What the walker skips must not be able to carry free text: a closed set or a pattern."""
    for position, reason in STRUCTURAL.items():
        if reason.startswith("never sent"):
            continue
        model = "embeddings" if position == ("encoding_format",) else "chat"
        schema = REQUEST_TYPES[model].model_json_schema()
        body = build(schema, schema, position, SENTINEL)
        assert body is not None, position
        with pytest.raises(APIError):
            parse(REQUEST_TYPES[model], body)


def test_inline_media_are_opaque_but_links_are_text():
    body = {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://img.example/a.png?email=jane@example.com"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "jane_roe.pdf"}},
    ]}]}
    texts = [f.text for f in extract_texts(body)]
    assert texts == ["https://img.example/a.png?email=jane@example.com", "jane_roe.pdf"]
    assert media_parts(body) == (2, 1)


def test_keys_are_renamed_in_place_and_values_under_them_kept():
    body = {"metadata": {"jane@example.com": "Jane Roe", "plan": "gold"}}
    fields = extract_texts(body)
    texts = [{"jane@example.com": "<EMAIL_ADDRESS_1>", "Jane Roe": "<PERSON_1>"}.get(f.text, f.text) for f in fields]
    out = apply_texts(body, fields, texts)
    assert list(out["metadata"].items()) == [("<EMAIL_ADDRESS_1>", "<PERSON_1>"), ("plan", "gold")]
    assert body["metadata"] == {"jane@example.com": "Jane Roe", "plan": "gold"}


def test_json_arguments_become_decoded_values_with_their_key_as_context():
    args = '{"customer": {"name": "Ana \\"A\\" Dias", "phones": ["555 0100", 2125550187]}, "ok": true}'
    body = {
        "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": args}}]}]
    }
    fields = extract_texts(body)
    assert [(f.text, f.context, f.number) for f in fields if f.kind == "arguments"] == [
        ('Ana "A" Dias', "name: ", False),
        ("555 0100", "phones: ", False),
        ("2125550187", "phones: ", True),
    ]
    assert [f.text for f in fields if f.kind == "key"] == ["customer", "phones", "ok"]
    replace = {'Ana "A" Dias': "<PERSON_1>", "2125550187": "<PHONE_NUMBER_1>"}
    out = apply_texts(body, fields, [replace.get(f.text, f.text) for f in fields])
    new = json.loads(out["messages"][0]["tool_calls"][0]["function"]["arguments"])
    assert new == {"customer": {"name": "<PERSON_1>", "phones": ["555 0100", "<PHONE_NUMBER_1>"]}, "ok": True}
    assert json.loads(args)["customer"]["name"] == 'Ana "A" Dias'  # the original body is untouched


def test_invalid_json_arguments_are_scrubbed_as_text():
    body = {"messages": [{"role": "assistant", "tool_calls": [{"function": {"arguments": '{"a": "Ana'}}]}]}
    [f] = extract_texts(body)
    assert f.kind == "arguments_raw" and f.is_json


def test_prompt_and_input_strings_but_not_token_ids():
    assert [f.text for f in extract_texts({"prompt": "a"})] == ["a"]
    assert [f.text for f in extract_texts({"prompt": ["a", "b"]})] == ["a", "b"]
    assert extract_texts({"prompt": [1, 2, 3]}) == []
    assert extract_texts({"prompt": [[1, 2], [3]]}) == []
    assert [f.path for f in extract_texts({"input": ["x", "y"]})] == [("input", 0), ("input", 1)]
    assert extract_texts({"input": [[1, 2]]}) == []


def test_apply_texts_copies_and_leaves_original_untouched():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "secret"}]}],
        "temperature": 0,
    }
    fields = extract_texts(body)
    out = apply_texts(body, fields, ["<X_1>"])
    assert out["messages"][0]["content"][0]["text"] == "<X_1>"
    assert body["messages"][0]["content"][0]["text"] == "secret"
    assert out["temperature"] == 0 and out["model"] == "m"
