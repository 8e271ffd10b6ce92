"""The one interface every backend speaks.

Requests and responses are plain OpenAI-shaped dicts: the gateway already validated the client's
body, and keeping the wire shape avoids a translation layer per backend. An adapter raises
`UpstreamError` (never a library's own exception) so the pipeline can map failures to statuses,
retries and fallbacks without knowing which library sits underneath.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


class UpstreamError(Exception):
    """A backend failed. `kind` drives retry and status mapping in the pipeline.

    kind: "timeout" (504), "rate_limited" (429), "unavailable" (503), "bad_response" (502),
    "rejected" (the upstream refused the request itself: 400-class, passed through, not retried),
    "unconfigured" (503: the backend's credentials are not set; nothing was sent).
    The message must never carry request content.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        # An upstream's Retry-After is untrusted input: `nan` or a negative value means none, and a
        # day is the most it is believed.
        self.retry_after = min(retry_after, 86_400.0) if retry_after is not None and retry_after >= 0 else None
        self.retryable = kind in ("timeout", "rate_limited", "unavailable") if retryable is None else retryable


def missing_credentials(backend) -> str | None:
    """What keeps this backend from being called at all (`"OPENAI_API_KEY is not set"`), or None.
    The router leaves such a backend out of every request's candidates, and the gateway names it
    at start-up. Names the variable, never a value."""
    env = getattr(backend, "api_key_env", None)
    if env and not os.environ.get(env):
        return f"{env} is not set"
    return None


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: dict[str, Any] | None) -> Usage:
        if not usage:
            return cls()
        return cls(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))


@dataclass(slots=True)
class CallResult:
    """A complete (non-streamed) answer in OpenAI shape, plus what the audit needs."""

    body: dict[str, Any]
    usage: Usage
    provider_model: str
    extra: dict[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    """A backend. `chunks` of `stream_chat` are OpenAI `chat.completion.chunk` dicts; the final
    chunk may carry `usage` (adapters ask the upstream for it whenever the protocol allows)."""

    name: str
    provider_model: str

    async def chat(self, body: dict[str, Any], *, timeout: float) -> CallResult: ...

    def stream_chat(self, body: dict[str, Any], *, timeout: float) -> AsyncIterator[dict[str, Any]]: ...

    async def completion(self, body: dict[str, Any], *, timeout: float) -> CallResult: ...

    async def embeddings(self, body: dict[str, Any], *, timeout: float) -> CallResult: ...

    async def health(self) -> bool: ...

    async def aclose(self) -> None: ...
