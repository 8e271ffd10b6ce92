import json

from gateway.pii.fields import apply_texts, extract_texts


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
    }
    got = {(f.path, f.text, f.kind) for f in extract_texts(body)}
    assert got == {
        (("messages", 0, "content"), "be nice", "content"),
        (("messages", 1, "content", 0, "text"), "hello", "content"),
        (("messages", 1, "name"), "ana_dias", "name"),
        (("messages", 2, "tool_calls", 0, "function", "arguments", "$json", "q"), "x", "arguments"),
        (("messages", 3, "content"), "result text", "content"),
    }


def test_json_arguments_become_decoded_values_with_their_key_as_context():
    args = '{"customer": {"name": "Ana \\"A\\" Dias", "phones": ["555 0100", 2125550187]}, "ok": true}'
    body = {
        "messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": args}}]}]
    }
    fields = extract_texts(body)
    assert [(f.text, f.context, f.number) for f in fields] == [
        ('Ana "A" Dias', "name: ", False),
        ("555 0100", "phones: ", False),
        ("2125550187", "phones: ", True),
    ]
    out = apply_texts(body, fields, ["<PERSON_1>", "555 0100", "<PHONE_NUMBER_1>"])
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
