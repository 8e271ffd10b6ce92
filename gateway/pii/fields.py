"""Every string of a request body that can reach a backend, and writing transformed text back.

By construction, not by list: `extract_texts` walks the whole body and inspects every string value,
every number the schema does not declare, and every object key that is not a fixed field name,
except the positions in `STRUCTURAL`. Those are strings the request schema confines to a closed
set or a pattern (roles, part types, options, token ids), the client's `model` (adapters send the
backend's own name) and the opaque payloads of inline images, audio and files (bytes, not text:
the policy's `pii.media` rules decide whether they may cross). A field added to the schema
tomorrow is inspected unless someone adds it here, and `tests/pii/test_fields.py` walks the schema
to check that every position here is really confined.

Tool-call arguments are JSON inside a string: each string, number and key inside them becomes its
own field (with its key as context), so the analyzer sees decoded text, not escapes.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["content", "name", "arguments", "arguments_raw", "prompt", "input", "field", "key"]
Path = tuple[str | int, ...]
# In a path, what follows this marker addresses a value inside the JSON text at the path before it.
IN_JSON = "$json"
# A path ending in (KEY, k) addresses the key `k` itself of the object at the path before it.
KEY = "$key"
ANY = "*"

# Positions whose strings are never inspected, each with the reason it is safe. `*` is any list
# index. Request models keep these confined (Literal, pattern); the schema test holds them to it.
STRUCTURAL: dict[Path, str] = {
    ("model",): "never sent: adapters send the backend's configured model",
    ("bulkhead",): "never sent: the gateway's own options are removed before inspection",
    ("messages", ANY, "role"): "Literal",
    ("messages", ANY, "content", ANY, "type"): "Literal",
    ("messages", ANY, "content", ANY, "image_url", "detail"): "Literal",
    ("messages", ANY, "content", ANY, "input_audio", "format"): "Literal",
    ("messages", ANY, "content", ANY, "input_audio", "data"): "opaque: base64 audio (pii.media.inline)",
    ("messages", ANY, "content", ANY, "file", "file_data"): "opaque: base64 file (pii.media.inline)",
    ("messages", ANY, "tool_calls", ANY, "type"): "Literal",
    ("tools", ANY, "type"): "Literal",
    ("tool_choice",): "Literal (the string form)",
    ("tool_choice", "type"): "Literal",
    ("function_call",): "Literal (the string form)",
    ("response_format", "type"): "Literal",
    ("prediction", "type"): "Literal",
    ("reasoning_effort",): "Literal",
    ("service_tier",): "Literal",
    ("verbosity",): "Literal",
    ("modalities", ANY): "Literal",
    ("encoding_format",): "Literal",
    ("logit_bias", KEY): "pattern: token ids",
}
# An inline image (`data:` URL) is opaque like audio; an image link is text and is inspected.
IMAGE_URL: Path = ("messages", ANY, "content", ANY, "image_url", "url")

# Field names of the OpenAI request and JSON Schema keywords: fixed words, never personal data, so
# as keys (or as plain field values) they are not inspected; any other key is (metadata keys,
# schema property names, extras).
_WORDS = (
    "model messages role content name tool_calls tool_call_id id type function arguments refusal text "
    "image_url url detail input_audio data format file file_data file_id filename tools custom "
    "description parameters strict tool_choice parallel_tool_calls functions function_call "
    "response_format json_schema schema prediction metadata stream stream_options include_usage "
    "temperature top_p n stop max_tokens max_completion_tokens presence_penalty frequency_penalty "
    "logit_bias logprobs top_logprobs user seed store reasoning_effort modalities service_tier "
    "verbosity prompt echo best_of suffix input encoding_format dimensions bulkhead context "
    "properties required items enum const additionalProperties anyOf oneOf allOf not $ref $defs "
    "definitions title default examples minimum maximum minLength maxLength pattern minItems "
    "maxItems uniqueItems nullable object string integer number boolean array null"
)
FIXED_KEYS = frozenset(_WORDS.split())

# Where a string is an identifier (upstream: ^[a-zA-Z0-9_-]+$), so a replacement must be one too.
_IDENTIFIERS: frozenset[Path] = frozenset({
    ("messages", ANY, "name"),
    ("messages", ANY, "tool_call_id"),
    ("messages", ANY, "tool_calls", ANY, "id"),
    ("messages", ANY, "tool_calls", ANY, "function", "name"),
    ("messages", ANY, "tool_calls", ANY, "custom", "name"),
    ("messages", ANY, "function_call", "name"),
    ("tools", ANY, "function", "name"),
    ("tools", ANY, "custom", "name"),
    ("tool_choice", "function", "name"),
    ("tool_choice", "custom", "name"),
    ("function_call", "name"),
    ("functions", ANY, "name"),
})
_CONTENT: frozenset[Path] = frozenset({
    ("messages", ANY, "content"),
    ("messages", ANY, "content", ANY, "text"),
    ("messages", ANY, "content", ANY, "refusal"),
    ("messages", ANY, "refusal"),
})
_ARGUMENTS: frozenset[Path] = frozenset({
    ("messages", ANY, "tool_calls", ANY, "function", "arguments"),
    ("messages", ANY, "function_call", "arguments"),
})
# Numbers the schema declares besides the top-level parameters and logit biases: token ids.
_TOKEN_IDS: frozenset[Path] = frozenset({("prompt", ANY), ("prompt", ANY, ANY), ("input", ANY), ("input", ANY, ANY)})


@dataclass(frozen=True, slots=True)
class TextField:
    """One text to inspect. `context` is analysed in front of the text and never replaced ("phone: "
    before a bare number makes it recognisably a phone number)."""

    path: Path
    text: str
    kind: Kind
    context: str = ""
    number: bool = False  # a JSON number: left a number unless it must be replaced

    @property
    def is_json(self) -> bool:
        """Arguments that are not valid JSON are scrubbed as JSON text (replacements keep quoting)."""
        return self.kind == "arguments_raw"


def matches(path: Path, patterns: frozenset[Path] | dict[Path, str]) -> bool:
    """Whether a path fits one of the patterns. Every `*` in a pattern stands for a list index, so
    a path with its indices replaced by `*` is looked up as it is."""
    return _generic(path) in patterns


def _generic(path: Path) -> Path:
    return tuple(ANY if isinstance(step, int) else step for step in path)


def media_parts(body: dict[str, Any]) -> tuple[int, int]:
    """(inline payloads, image links) among the body's message content parts."""
    inline = links = 0
    for message in body.get("messages") or ():
        for part in message.get("content") or () if isinstance(message.get("content"), list) else ():
            image = part.get("image_url") if isinstance(part, dict) else None
            if isinstance(image, dict) and isinstance(image.get("url"), str):
                if image["url"][:5].lower() == "data:":
                    inline += 1
                else:
                    links += 1
            elif isinstance(part, dict) and (part.get("input_audio") or (part.get("file") or {}).get("file_data")):
                inline += 1
    return inline, links


def extract_texts(body: dict[str, Any]) -> list[TextField]:
    fields: list[TextField] = []
    _walk(fields, (), (), body, "")
    return fields


def _walk(out: list[TextField], path: Path, generic: Path, node: Any, key: str) -> None:
    """`generic`: the path with list indices as `*`, what the pattern tables are keyed by."""
    # Recursion is bounded: bodies are depth-checked (64 levels) before they get here.
    if generic == ("bulkhead",):
        return
    if isinstance(node, dict):
        free_keys = (*generic, KEY) not in STRUCTURAL
        for k, v in node.items():
            k = str(k)
            if free_keys and k not in FIXED_KEYS:
                out.append(TextField((*path, KEY, k), k, "key"))
            _walk(out, (*path, k), (*generic, k), v, k)
    elif isinstance(node, list):
        inner = (*generic, ANY)
        for i, v in enumerate(node):
            _walk(out, (*path, i), inner, v, key)
    elif isinstance(node, str):
        if generic in STRUCTURAL or (generic == IMAGE_URL and node[:5].lower() == "data:"):
            return
        if generic in _ARGUMENTS:
            _argument_fields(out, path, node)
            return
        kind = _kind(generic)
        if kind == "field" and node in FIXED_KEYS:
            return  # "object", "string", "auto": the schema's own words
        out.append(TextField(path, node, kind, f"{key}: " if kind == "field" and key else ""))
    elif isinstance(node, int | float) and not isinstance(node, bool) and not _declared_number(generic):
        out.append(TextField(path, json.dumps(node), "field", f"{key}: " if key else "", number=True))


def _declared_number(generic: Path) -> bool:
    return len(generic) == 1 or generic[0] == "logit_bias" or generic in _TOKEN_IDS


def _kind(generic: Path) -> Kind:
    if generic[0] in ("prompt", "input"):
        return generic[0]  # type: ignore[return-value]
    if generic in _CONTENT or generic == ("suffix",):
        return "content"
    if generic in _IDENTIFIERS:
        return "name"
    return "field"


def _argument_fields(out: list[TextField], path: Path, raw: str) -> None:
    try:
        doc = json.loads(raw)
    except ValueError:
        out.append(TextField(path, raw, "arguments_raw"))
        return
    if isinstance(doc, str | int | float) and not isinstance(doc, bool):
        out.append(TextField(path, raw, "arguments_raw"))
        return
    _walk_document(out, (*path, IN_JSON), doc, "")


def _walk_document(out: list[TextField], path: Path, node: Any, key: str) -> None:
    """Inside JSON arguments every key, string and number is the caller's data."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k not in FIXED_KEYS:
                out.append(TextField((*path, KEY, k), k, "key"))
            _walk_document(out, (*path, k), v, str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk_document(out, (*path, i), v, key)
    elif isinstance(node, str):
        out.append(TextField(path, node, "arguments", f"{key}: " if key else ""))
    elif isinstance(node, int | float) and not isinstance(node, bool):
        out.append(TextField(path, json.dumps(node), "arguments", f"{key}: " if key else "", number=True))


def apply_texts(body: dict[str, Any], fields: list[TextField], texts: list[str]) -> dict[str, Any]:
    """A copy of `body` with each field's text replaced; the original body is not modified."""
    if len(fields) != len(texts):
        raise ValueError("one replacement text per field is required")
    changed = [(f, t) for f, t in zip(fields, texts, strict=True) if t != f.text]
    if not changed:
        return dict(body)
    out = dict(body)
    # Only the top-level keys holding changed fields are deep-copied; strings are shared anyway.
    for top in {f.path[0] for f, _ in changed}:
        out[top] = copy.deepcopy(body[top])
    documents: dict[Path, Any] = {}  # JSON arguments, parsed once, re-serialised after edits
    renames: list[tuple[Any, Path, str]] = []  # keys are renamed last: values are addressed by old keys
    for f, text in changed:
        root, path = out, f.path
        if IN_JSON in f.path:
            cut = f.path.index(IN_JSON)
            outer, path = f.path[:cut], f.path[cut + 1 :]
            if outer not in documents:
                documents[outer] = json.loads(_get(out, outer))
            root = documents[outer]
        if len(path) >= 2 and path[-2] == KEY:
            renames.append((root, path, text))
        else:
            _set(root, path, json.loads(text) if f.number and _is_number(text) else text)
    for root, path, text in sorted(renames, key=lambda r: len(r[1]), reverse=True):
        parent = _get(root, path[:-2])
        # Rebuilt rather than popped, so the keys keep their order.
        items = [(text if k == path[-1] else k, v) for k, v in parent.items()]
        parent.clear()
        parent.update(items)
    for outer, doc in documents.items():
        _set(out, outer, json.dumps(doc, ensure_ascii=False))
    return out


def _is_number(text: str) -> bool:
    try:
        return isinstance(json.loads(text), int | float)
    except ValueError:
        return False


def _get(root: Any, path: Path) -> Any:
    for step in path:
        root = root[step]
    return root


def _set(root: Any, path: Path, value: Any) -> None:
    if not path:
        raise ValueError("empty path")
    _get(root, path[:-1])[path[-1]] = value
