"""A model request as the stages see it: the validated body, its typed model, and its texts by
role, extracted once (the risk, routing, limits, verify and audit stages all read them).

The body is walked only after `schemas.parse` has validated it, so message content is a string, a
list of content parts or null, and `prompt`/`input` a string or a list; nothing here re-checks that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from gateway.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, parse

# mode -> (request model, adapter method, its streaming twin)
ENDPOINTS: dict[str, tuple[type[BaseModel], str, str | None]] = {
    "chat": (ChatCompletionRequest, "chat", "stream_chat"),
    "completions": (CompletionRequest, "completion", "stream_completion"),
    "embeddings": (EmbeddingRequest, "embeddings", None),
}

CONTEXT_ROLES = ("system", "developer", "tool", "function")  # what the app supplies as ground truth
# what the caller supplies, as `Texts.scored` names roles: the domain detector's input (the app's own
# system prompt is its instructions, not the user's data, and would flag every request alike)
SUPPLIED_ROLES = ("user", "tool")
# message role -> (role the risk stage scores it as, how the audit names it)
_SCORED_ROLES = {"user": ("user", "user message"), "tool": ("tool", "tool result"),
                 "function": ("tool", "function result"), "assistant": ("assistant", "assistant turn"),
                 "system": ("system", "system prompt"), "developer": ("system", "developer prompt")}
CONTEXT_TAGS = "context|document|documents|source"  # <context>...</context> in a user message: grounding
_CONTEXT_TAG = re.compile(rf"<({CONTEXT_TAGS})>(.*?)</\1>", re.S | re.I)


@dataclass(frozen=True, slots=True)
class Segment:
    """One message's text (or one prompt / input item): `parts` as sent, one per content part."""

    role: str
    parts: tuple[str, ...]

    @property
    def text(self) -> str:
        return self.parts[0] if len(self.parts) == 1 else "\n".join(self.parts)  # "" for no text


@dataclass(frozen=True, slots=True)
class Texts:
    segments: tuple[Segment, ...]  # in order: messages, or the prompt's / input's strings as "user"
    documents: tuple[str, ...]  # `bulkhead.context`: documents the answer must be grounded in
    prompt_chars: int  # what the token estimate counts (a token id counts one)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Texts:
        segments: list[Segment] = []
        chars = 0
        for message in body.get("messages") or ():
            content = message.get("content")
            if isinstance(content, str):
                parts: tuple[str, ...] = (content,)
            elif isinstance(content, list):
                parts = tuple(p["text"] for p in content if isinstance(p.get("text"), str))
            else:
                parts = ()
            chars += sum(map(len, parts))
            segments.append(Segment(message.get("role") or "", parts))
        for key in ("prompt", "input"):
            value = body.get(key)
            if isinstance(value, str):
                segments.append(Segment("user", (value,)))
                chars += len(value)
            elif isinstance(value, list):
                items = [v for v in value if isinstance(v, str)]
                segments += [Segment("user", (v,)) for v in items]
                chars += sum(map(len, items)) + len(value) - len(items)
        ext = body.get("bulkhead")
        docs = tuple(d for d in (ext.get("context") or ()) if d.strip()) if isinstance(ext, dict) else ()
        return cls(tuple(segments), docs, chars)

    @property
    def scored(self) -> list[tuple[str, str, str]]:
        """Every text as the risk stage scores it: `(role, where, text)`, where `where` names its
        place for the audit record ("tool result 2", "context document 1"), never its content."""
        out: list[tuple[str, str, str]] = []
        seen: dict[str, int] = {}
        for s in self.segments:
            role, name = _SCORED_ROLES.get(s.role, ("user", "user message"))
            seen[name] = seen.get(name, 0) + 1
            out += [(role, f"{name} {seen[name]}", part) for part in s.parts]
        out += [("context", f"context document {i}", d) for i, d in enumerate(self.documents, 1)]
        return out

    @property
    def per_message(self) -> list[str]:
        """One text per message (or prompt / input string): what the audit's content HMACs cover."""
        return [s.text for s in self.segments]

    @property
    def grounding(self) -> list[str]:
        """What the app supplied to ground the answer: `bulkhead.context` documents, system and tool
        messages, and <context>/<document> blocks inside user messages."""
        docs = list(self.documents)
        for s in self.segments:
            text = s.text
            if s.role in CONTEXT_ROLES:
                if text.strip():
                    docs.append(text)
            elif s.role == "user":
                docs += [m.group(2) for m in _CONTEXT_TAG.finditer(text) if m.group(2).strip()]
        return docs

    @property
    def question(self) -> str:
        """The last user message without its context blocks: what the answer answers."""
        for s in reversed(self.segments):
            if s.role == "user":
                return _CONTEXT_TAG.sub(" ", s.text)
        return ""

    @property
    def joined(self) -> str:
        return " ".join(s.text for s in self.segments)

    @property
    def prompt_tokens(self) -> int:
        """About 4 characters a token."""
        return self.prompt_chars // 4 + 1


@dataclass(frozen=True, slots=True)
class ModelRequest:
    mode: str  # chat | completions | embeddings
    body: dict[str, Any]  # the validated JSON, the gateway's own `bulkhead` options left out
    parsed: BaseModel  # the typed request
    texts: Texts
    large: bool = False  # big enough that walking it belongs off the event loop

    @classmethod
    def of(cls, mode: str, body: Any, *, large: bool = False) -> ModelRequest:
        """Validate `body` for `mode` (an OpenAI-shaped 400 if it is not) and read its texts."""
        parsed = parse(ENDPOINTS[mode][0], body)
        return cls.validated(mode, body, parsed, large=large)

    @classmethod
    def validated(cls, mode: str, body: dict[str, Any], parsed: BaseModel, *, large: bool = False) -> ModelRequest:
        outbound = {k: v for k, v in body.items() if k != "bulkhead"}
        return cls(mode, outbound, parsed, Texts.of(body), large)

    @property
    def model(self) -> str:
        return self.parsed.model

    @property
    def stream(self) -> bool:
        return bool(getattr(self.parsed, "stream", False))

    @property
    def wants_stream_usage(self) -> bool:
        options = getattr(self.parsed, "stream_options", None)
        return bool(options and options.include_usage)

    def adapter_method(self, *, stream: bool) -> str | None:
        """The adapter's method for this endpoint; None where the endpoint cannot stream."""
        return ENDPOINTS[self.mode][2 if stream else 1]

    @property
    def max_completion_tokens(self) -> int | None:
        value = self.body.get("max_completion_tokens") or self.body.get("max_tokens")
        return int(value) if value else None

    @property
    def tokens(self) -> int:
        """Prompt tokens plus the most the answer may use: what admission reserves."""
        return admission_tokens(self.body, self.texts)


def admission_tokens(body: dict[str, Any], texts: Texts | None = None) -> int:
    """Prompt tokens (about 4 characters each) plus the most the answer may use (1024 a choice
    when the request sets no limit): what admission reserves against limits and budgets."""
    completion = body.get("max_completion_tokens") or body.get("max_tokens") or 1024
    return (texts or Texts.of(body)).prompt_tokens + int(completion) * int(body.get("n") or 1)
