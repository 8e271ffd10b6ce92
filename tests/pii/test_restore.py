import json

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.pii.restore import StreamRestorer, restore_response
from gateway.pii.vault import Vault


def make_vault() -> Vault:
    v = Vault()
    v.placeholder("PERSON", 'Ana "AD" Dias')
    v.placeholder("PERSON", "Bo")
    v.placeholder("ADDRESS", "1 Main St\nApt. 4\\B")
    v.placeholder("EMAIL_ADDRESS", "ana@example.com")
    return v


PIECES = [
    "<PERSON_1>",
    "<PERSON_2>",
    "<ADDRESS_1>",
    "<EMAIL_ADDRESS_1>",
    "<PERSON_9>",
    "<",
    "<PER",
    "<b>",
    ">",
    "hello ",
    "x<y",
    "€ ",
    "\n",
    "<PERSON_",
    "<<",
    "PERSON_1>",
]


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(text[prev:p])
        prev = p
    out.append(text[prev:])
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES) | st.text(max_size=5), max_size=20),
    st.lists(st.integers(0, 400), max_size=30),
)
def test_any_chunking_gives_exactly_the_restored_whole(pieces, cuts):
    vault = make_vault()
    text = "".join(pieces)
    r = StreamRestorer(vault)
    out = "".join(r.feed(0, chunk) for chunk in split(text, cuts)) + "".join(r.flush().values())
    assert out == vault.restore(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["<PERSON_1>", "<ADDRESS_1>", "<PERSON_2>", "plain", 'q\\"t', "<", "{}"]), max_size=8
    ),
    st.lists(st.integers(0, 300), max_size=20),
)
def test_json_arguments_stream_stays_valid_json(values, cuts):
    vault = make_vault()
    args = json.dumps({f"k{i}": v for i, v in enumerate(values)})
    r = StreamRestorer(vault)
    out = "".join(r.feed(0, c, "tool:0", is_json=True) for c in split(args, cuts)) + "".join(
        r.flush().values()
    )
    assert out == vault.restore_json(args)[0]
    restored = json.loads(out)
    for i, v in enumerate(values):
        assert restored[f"k{i}"] == (vault.original(v) or v)


def test_only_possible_placeholder_prefixes_are_held_back():
    r = StreamRestorer(make_vault())
    assert r.feed(0, "a <b>c <d") == "a <b>c <d"  # cannot become a placeholder we issued
    assert r.feed(0, "x <PER") == "x "
    assert r.feed(0, "SON_1> and <") == 'Ana "AD" Dias and '
    assert r.flush() == {(0, "content"): "<"}


def test_feed_chunk_restores_content_and_tool_calls_and_flushes_on_finish():
    r = StreamRestorer(make_vault())
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hi <PERSON"}}]},
        {"choices": [{"index": 0, "delta": {"content": "_1>, mail <EMAIL_"}}]},
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "c",
                                "function": {"name": "send", "arguments": '{"to": "<PERSON_2'},
                            }
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '>"}'}}]},
                    "finish_reason": None,
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    out = [r.feed_chunk(c) for c in chunks]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in out)
    args = "".join(
        tc["function"]["arguments"] for c in out for tc in c["choices"][0]["delta"].get("tool_calls", [])
    )
    assert content == 'Hi Ana "AD" Dias, mail <EMAIL_'  # held text released on finish, unrestorable as-is
    assert json.loads(args) == {"to": "Bo"}
    assert chunks[0]["choices"][0]["delta"]["content"] == "Hi <PERSON"  # input chunks untouched


def test_legacy_completion_text_chunks():
    r = StreamRestorer(make_vault())
    a = r.feed_chunk({"choices": [{"index": 1, "text": "to <ADD", "finish_reason": None}]})
    b = r.feed_chunk({"choices": [{"index": 1, "text": "RESS_1>", "finish_reason": "length"}]})
    assert a["choices"][0]["text"] + b["choices"][0]["text"] == "to 1 Main St\nApt. 4\\B"


def test_restore_response_content_and_tool_arguments():
    vault = make_vault()
    body = {
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Dear <PERSON_1>,",
                    "tool_calls": [
                        {
                            "id": "1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a": "<ADDRESS_1>", "b": <PERSON_2>}'},
                        }
                    ],
                },
            }
        ]
    }
    out = restore_response(body, vault)
    msg = out["choices"][0]["message"]
    assert msg["content"] == 'Dear Ana "AD" Dias,'
    assert json.loads(msg["tool_calls"][0]["function"]["arguments"]) == {
        "a": "1 Main St\nApt. 4\\B",
        "b": "Bo",
    }
    assert body["choices"][0]["message"]["content"] == "Dear <PERSON_1>,"


def test_empty_vault_is_a_no_op():
    chunk = {"choices": [{"index": 0, "delta": {"content": "<PERSON_1>"}}]}
    assert StreamRestorer(Vault()).feed_chunk(chunk) is chunk
