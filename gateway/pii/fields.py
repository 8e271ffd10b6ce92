"""Every text-bearing field of an OpenAI request body, and writing transformed text back.

Inspected: chat `messages[].content` (a string, or the `text`/`refusal` of content parts),
`messages[].name`, assistant `tool_calls[].function.arguments` (and legacy `function_call`), tool
and function results (their `content`), legacy completions `prompt` (string or list of strings)
and embeddings `input` (string or list of strings). Token-id arrays are not text and are left
alone; so are images, audio and files.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["content", "name", "arguments", "arguments_raw", "prompt", "input"]
Path = tuple[str | int, ...]
# In a path, what follows this marker addresses a value inside the JSON text at the path before it.
IN_JSON = "$json"


@dataclass(frozen=True, slots=True)
class TextField:
    """One text to inspect. Tool-call arguments that parse as JSON become one field per string
    (or number) inside them, with the key as `context`: the analyzer then sees decoded text, not
    escapes, and "phone: 2125550187" is recognisably a phone number."""

    path: Path
    text: str
    kind: Kind
    context: str = ""  # analysed in front of the text, never replaced
    number: bool = False  # a JSON number: left a number unless it must be replaced

    @property
    def is_json(self) -> bool:
        """Arguments that are not valid JSON are scrubbed as JSON text (replacements keep quoting)."""
        return self.kind == "arguments_raw"


def extract_texts(body: dict[str, Any]) -> list[TextField]:
    fields: list[TextField] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, msg in enumerate(messages):
            if isinstance(msg, dict):
                _message_fields(fields, ("messages", i), msg)
    for key, kind in (("prompt", "prompt"), ("input", "input")):
        value = body.get(key)
        if isinstance(value, str):
            fields.append(TextField((key,), value, kind))
        elif isinstance(value, list):
            for j, item in enumerate(value):
                if isinstance(item, str):  # lists of ints / lists of lists are token ids
                    fields.append(TextField((key, j), item, kind))
    return fields


def _message_fields(out: list[TextField], base: Path, msg: dict[str, Any]) -> None:
    content = msg.get("content")
    if isinstance(content, str):
        out.append(TextField((*base, "content"), content, "content"))
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if isinstance(part, dict):
                for key in ("text", "refusal"):
                    if isinstance(part.get(key), str):
                        out.append(TextField((*base, "content", j, key), part[key], "content"))
    if isinstance(msg.get("name"), str):
        out.append(TextField((*base, "name"), msg["name"], "name"))
    if isinstance(msg.get("refusal"), str):
        out.append(TextField((*base, "refusal"), msg["refusal"], "content"))
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for k, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                _argument_fields(out, (*base, "tool_calls", k, "function", "arguments"), fn["arguments"])
    fc = msg.get("function_call")
    if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
        _argument_fields(out, (*base, "function_call", "arguments"), fc["arguments"])


def _argument_fields(out: list[TextField], path: Path, raw: str) -> None:
    try:
        doc = json.loads(raw)
    except ValueError:
        out.append(TextField(path, raw, "arguments_raw"))
        return
    if isinstance(doc, str | int | float) and not isinstance(doc, bool):
        out.append(TextField(path, raw, "arguments_raw"))
        return
    _walk(out, (*path, IN_JSON), doc, "")


def _walk(out: list[TextField], path: Path, node: Any, key: str) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            _walk(out, (*path, k), v, str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            _walk(out, (*path, i), v, key)
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
    for key in {f.path[0] for f, _ in changed}:
        out[key] = copy.deepcopy(body[key])
    documents: dict[Path, Any] = {}  # JSON arguments, parsed once, re-serialised after edits
    for f, text in changed:
        if IN_JSON in f.path:
            cut = f.path.index(IN_JSON)
            outer, inner = f.path[:cut], f.path[cut + 1 :]
            if outer not in documents:
                documents[outer] = json.loads(_get(out, outer))
            _set(documents[outer], inner, json.loads(text) if f.number and _is_number(text) else text)
        else:
            _set(out, f.path, text)
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
