"""Property-based fuzzing (Hypothesis) of the three parsers that take hostile input: the request
parser (`http.jsonio.read_json` / `decode_json` + `schemas.parse`), the SSE stream restorer, and the
policy loader. Each property is the contract: an OpenAI-shaped 4xx or a value, a restored stream
identical to the restored whole, a located error or a valid policy. Never another exception, never
a hang (each example has a deadline). Bounded: well under a minute in all."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from gateway.errors import APIError
from gateway.http.jsonio import MAX_JSON_DEPTH, decode_json, read_json
from gateway.pii.restore import StreamRestorer
from gateway.pii.vault import Vault
from gateway.policy.loader import PolicyError, load_policy_set
from gateway.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, parse

FAST = settings(max_examples=200, deadline=2000, suppress_health_check=[HealthCheck.too_slow])

# -- the request parser -------------------------------------------------------------------------

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.text(max_size=20) | st.sampled_from(["user", "system", "tool", "echo", "function", ":", '":']))
FIELDS = ["model", "messages", "role", "content", "stream", "n", "max_tokens", "temperature", "tools", "type",
          "function", "name", "prompt", "input", "stop", "logit_bias", "bulkhead", "context", "api_base", "x"]
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6),
                                                                inner, max_size=5),
    max_leaves=30,
)


def message_like():
    return st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant", "tool", "robot"])},
                                 optional={"content": json_scalars | st.lists(json_values, max_size=2),
                                           "name": json_scalars, "tool_calls": json_values})


request_like = st.fixed_dictionaries(
    {"model": st.sampled_from(["echo", "", "x" * 201]) | json_scalars},
    optional={"messages": st.lists(message_like(), max_size=3) | json_values, "stream": json_scalars,
              "n": json_scalars, "max_tokens": json_scalars, "tools": json_values, "prompt": json_values,
              "input": json_values, "bulkhead": json_values, "temperature": json_scalars},
)


def check_error(exc: APIError) -> None:
    assert exc.status in (400, 413, 422), exc.status
    body = exc.body()["error"]
    assert body["message"] and body["code"] and body["type"] == "invalid_request_error"
    assert body["param"] is None or isinstance(body["param"], str)


def parse_all(raw: bytes) -> None:
    try:
        body = decode_json(raw)
    except APIError as exc:
        check_error(exc)
        return
    for schema in (ChatCompletionRequest, CompletionRequest, EmbeddingRequest):
        try:
            parse(schema, body)
        except APIError as exc:
            check_error(exc)


@FAST
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_a_value_or_a_400(raw):
    parse_all(raw)


@FAST
@given(request_like | json_values)
def test_request_shaped_values_are_accepted_or_refused_with_a_named_parameter(value):
    parse_all(orjson.dumps(value))


def render(value, duplicate: bool, spaces: str) -> str:
    """JSON text of `value`, with the first key of the first object written twice if `duplicate`."""
    state = {"dup": duplicate}

    def go(v) -> str:
        if isinstance(v, dict):
            items = [f"{json.dumps(k)}{spaces}:{spaces}{go(x)}" for k, x in v.items()]
            if state["dup"] and v:
                state["dup"] = False
                k, x = next(iter(v.items()))
                items.append(f"{json.dumps(k)}{spaces}:{go(x)}")
            return "{" + ",".join(items) + "}"
        if isinstance(v, list):
            return "[" + ",".join(go(x) for x in v) + "]"
        return json.dumps(v)

    return go(value)


def has_object(v) -> bool:
    return isinstance(v, dict) and bool(v) or isinstance(v, dict | list) and any(
        has_object(x) for x in (v.values() if isinstance(v, dict) else v))


@FAST
@given(json_values, st.booleans(), st.sampled_from(["", " ", "\n\t "]))
def test_duplicate_keys_are_found_exactly(value, duplicate, spaces):
    """Refused as `duplicate_key` if and only if an object repeats a key, whatever the strings hold
    (strings full of `":` take the exact path)."""
    raw = render(value, duplicate, spaces).encode()
    expect_dup = duplicate and has_object(value)
    try:
        decode_json(raw)
    except APIError as exc:
        if exc.code == "json_too_deep":
            return
        assert exc.code == "duplicate_key" and expect_dup, (exc.code, raw[:200])
        assert isinstance(exc.param, str)
        return
    assert not expect_dup, raw[:200]


def receive_from(chunks: list[bytes]):
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    messages = messages or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def split(data, cuts: list[int]) -> list:
    """`data` (bytes or str) cut at the given positions (taken modulo its length)."""
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, prev = [], 0
    for p in points:
        out.append(data[prev:p])
        prev = p
    return [*out, data[prev:]]


@settings(max_examples=100, deadline=2000)
@given(json_values, st.lists(st.integers(0, 2000), max_size=8), st.integers(1, 400),
       st.sampled_from([None, "application/json", "application/json; charset=utf-8", "text/plain"]),
       st.booleans())
def test_read_json_counts_received_bytes_whatever_the_chunking(value, cuts, limit, ctype, declare):
    raw = orjson.dumps(value)
    headers = [(b"content-type", ctype.encode())] if ctype else []
    if declare:
        headers.append((b"content-length", str(len(raw)).encode()))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": headers}
    request = Request(scope, receive_from(split(raw, cuts)))
    try:
        body = asyncio.run(read_json(request, limit))
    except APIError as exc:
        if ctype == "text/plain":
            assert exc.code == "unsupported_content_type"
        elif len(raw) > limit:
            assert exc.status == 413 and exc.code == "request_too_large"
        else:
            assert exc.code in ("json_too_deep", "duplicate_key"), exc.code
        return
    assert ctype != "text/plain" and len(raw) <= limit and body == orjson.loads(raw)


def test_depth_limit_edge():
    deep = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert decode_json(deep) is not None
    with pytest.raises(APIError, match="deeper"):
        decode_json(b"[" + deep + b"]")


# -- the SSE stream restorer ----------------------------------------------------------------------

entity_types = st.sampled_from(["PERSON", "EMAIL_ADDRESS", "US_SSN", "X", "PHONE_NUMBER_2"])
originals = st.text(min_size=1, max_size=12) | st.sampled_from(["<PERSON_1>", "a<b", "x>y", '"q"', "\\", "é€"])


@st.composite
def vaults(draw) -> Vault:
    vault = Vault(reserved=draw(st.lists(st.sampled_from(["<PERSON_1>", "<X_2>", "plain"]), max_size=2)))
    for entity, value in draw(st.lists(st.tuples(entity_types, originals), max_size=6)):
        vault.placeholder(entity, value)
    return vault


@st.composite
def stream_texts(draw, vault: Vault) -> str:
    issued = vault.placeholders or ["<PERSON_1>"]
    pieces = st.sampled_from(issued) | st.sampled_from(["<", "<PER", "_", ">", "<<", "<PERSON_", "1>", " ", "\n"]) \
        | st.text(max_size=6)
    return "".join(draw(st.lists(pieces, max_size=25)))


@settings(max_examples=300, deadline=2000)
@given(st.data())
def test_random_chunkings_of_several_choices_restore_exactly_as_the_whole(data):
    """Two choices interleaved, each cut anywhere, the last piece of each carrying finish_reason:
    each choice's concatenated deltas equal the whole text restored, and nothing is left held."""
    vault = data.draw(vaults())
    texts = [data.draw(stream_texts(vault)) for _ in range(2)]
    pieces = {i: split(t, data.draw(st.lists(st.integers(0, 400), max_size=12))) for i, t in enumerate(texts)}
    order = data.draw(st.permutations([i for i, ps in pieces.items() for _ in ps]))
    restorer = StreamRestorer(vault)
    out = {0: "", 1: ""}
    position = {0: 0, 1: 0}
    for choice in order:
        k = position[choice]
        position[choice] += 1
        last = k == len(pieces[choice]) - 1
        chunk = {"id": "c", "choices": [{"index": choice, "delta": {"content": pieces[choice][k]},
                                         "finish_reason": "stop" if last else None}]}
        restored = restorer.feed_chunk(chunk)
        out[choice] += restored["choices"][0]["delta"].get("content") or ""
    assert restorer.finish() == []
    for i in range(2):
        assert out[i] == vault.restore(texts[i])


@settings(max_examples=200, deadline=2000)
@given(st.data())
def test_a_stream_that_ends_without_finish_reason_is_flushed_by_finish(data):
    vault = data.draw(vaults())
    text = data.draw(stream_texts(vault))
    restorer = StreamRestorer(vault)
    out = ""
    for piece in split(text, data.draw(st.lists(st.integers(0, 300), max_size=10))):
        chunk = {"choices": [{"index": 0, "text": piece, "finish_reason": None}]}
        out += restorer.feed_chunk(chunk)["choices"][0]["text"]
    out += "".join(c["delta"]["content"] for c in restorer.finish())
    assert out == vault.restore(text)


@settings(max_examples=150, deadline=2000)
@given(st.data())
def test_tool_call_arguments_stay_valid_json_under_any_chunking(data):
    vault = data.draw(vaults())
    issued = vault.placeholders or ["<PERSON_1>"]
    args = json.dumps({f"k{i}": v for i, v in enumerate(
        data.draw(st.lists(st.sampled_from(issued) | st.text(max_size=6), max_size=5)))}, ensure_ascii=False)
    restorer = StreamRestorer(vault)
    out = ""
    for piece in split(args, data.draw(st.lists(st.integers(0, 300), max_size=10))):
        call = {"index": 0, "function": {"arguments": piece}}
        chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]}
        for c in restorer.feed_chunk(chunk)["choices"][0]["delta"]["tool_calls"]:
            out += c["function"]["arguments"]
    for c in restorer.finish():
        out += c["delta"]["tool_calls"][0]["function"]["arguments"]
    assert out == vault.restore_json(args)[0]
    json.loads(out)


@FAST
@given(st.lists(json_values, max_size=6))
def test_malformed_chunks_pass_through_without_crashing(chunks):
    vault = Vault()
    vault.placeholder("PERSON", "Ana")
    restorer = StreamRestorer(vault)
    for chunk in chunks:
        restorer.feed_chunk(chunk if isinstance(chunk, dict) else {"choices": chunk})
    restorer.finish()


# -- the policy loader ----------------------------------------------------------------------------

yaml_scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False)
                | st.text(max_size=12) | st.sampled_from(["openai/gpt-4o", "external", "internal", "http://x/v1",
                                                        "ftp://x", "local_moe", "open", "closed", "redact"]))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(st.text(max_size=10), inner, max_size=3), max_leaves=15)
backend = st.fixed_dictionaries(
    {"name": st.sampled_from(["a", "b", ""]) | yaml_scalars, "model": st.sampled_from(["m"]) | yaml_scalars},
    optional={"adapter": st.sampled_from(["litellm", "openai", "local_moe", "nope"]),
              "api_base": st.sampled_from(["http://127.0.0.1:9/v1", "file:///etc/passwd"]) | yaml_scalars,
              "trust": st.sampled_from(["internal", "external", "public"]), "quality": yaml_scalars,
              "timeout_s": yaml_scalars, "price": yaml_values, "modes": yaml_values})
SECTIONS = {
    "backends": st.lists(backend, max_size=3) | yaml_values,
    "limits": st.fixed_dictionaries({}, optional={"rpm_per_key": yaml_scalars,
                                                  "on_redis_error": st.sampled_from(["open", "closed", "maybe"])}),
    "routing": st.fixed_dictionaries({}, optional={"aliases": yaml_values, "min_quality": yaml_values,
                                                   "max_attempts": yaml_scalars}),
    "pii": st.fixed_dictionaries({}, optional={"enabled": yaml_scalars, "treatment": yaml_values,
                                               "custom_recognizers": yaml_values}),
    "risk": st.fixed_dictionaries({}, optional={"tier_actions": yaml_values, "rules": yaml_values,
                                                "injection": yaml_values}),
    "audit": yaml_values, "breaker": yaml_values, "hallucination": yaml_values, "typo": yaml_values,
}
policy_docs = st.fixed_dictionaries({}, optional=SECTIONS)
YAML_TRICKS = ["a: &x [1, 2]\nb: *x\n", "<<: {limits: {}}\n", "!!python/object/apply:os.system ['true']\n",
               "x: !!binary aGk=\n", "--- {}\n--- {}\n", "backends: []\nbackends: []\n", "k: !!set {a, b}\n",
               "t: 2001-12-14t21:59:43.10-05:00\n", "? [complex, key]\n: v\n", "%YAML 1.1\n---\n{}\n",
               "\t- tab\n", "s: 'unterminated\n", "limits: {rpm_per_key: 1e999}\n", "\ufeffbackends: []\n"]


def located(exc: PolicyError) -> None:
    assert exc.errors
    for e in exc.errors:
        assert e.file and e.message and e.line >= 0 and e.column >= 0


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(policy_docs, st.none() | policy_docs)
def test_random_policy_sets_load_or_fail_with_located_errors(tmp_path, default, overlay):
    import yaml

    directory = tmp_path / "p"
    (directory / "tenants").mkdir(parents=True, exist_ok=True)
    (directory / "default.yaml").write_text(yaml.safe_dump(default))
    tenant = directory / "tenants" / "t.yaml"
    tenant.unlink(missing_ok=True)
    if overlay is not None:
        tenant.write_text(yaml.safe_dump(overlay))
    try:
        policies = load_policy_set(directory)
    except PolicyError as exc:
        located(exc)
        return
    assert policies.default.version


@settings(max_examples=150, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(st.lists(st.sampled_from(YAML_TRICKS) | st.text(max_size=40), max_size=5))
def test_yaml_tricks_give_a_located_error_or_a_policy(tmp_path, parts):
    directory: Path = tmp_path / "q"
    directory.mkdir(exist_ok=True)
    (directory / "default.yaml").write_text("".join(parts), encoding="utf-8", errors="surrogatepass")
    try:
        load_policy_set(directory)
    except PolicyError as exc:
        located(exc)
