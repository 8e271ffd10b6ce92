"""Putting original values back into the answer: whole responses and SSE streams.

Non-streaming: `restore_response(body, vault)` replaces placeholders in every choice's message
content, tool-call arguments (kept valid JSON) and legacy completion text.

Streaming: `StreamRestorer(vault)` is fed each chunk's text deltas, per choice and per channel
(content, or one tool call's arguments), and returns what may be sent now. It holds back only a
suffix that could still grow into a placeholder we issued (`<`, `<PER`, `<PERSON_`), so a
placeholder split across chunks (`<PER` + `SON_1>`) comes out whole and everything else goes out
at once. `feed_chunk` does this for an OpenAI chunk dict; `finish` flushes what is held.
"""

from __future__ import annotations

import copy
from typing import Any

from gateway.pii.vault import JSON_START, JsonState, Vault


class _Channel:
    __slots__ = ("held", "is_json", "state", "vault")

    def __init__(self, vault: Vault, is_json: bool) -> None:
        self.vault = vault
        self.is_json = is_json
        self.held = ""
        self.state: JsonState = JSON_START

    def feed(self, delta: str) -> str:
        text = self.held + delta
        cut = len(text)
        lt = text.rfind("<")
        if lt != -1 and ">" not in text[lt:] and self.vault.could_start_placeholder(text[lt:]):
            cut = lt
        self.held = text[cut:]
        return self._restore(text[:cut])

    def flush(self) -> str:
        text, self.held = self.held, ""
        return self._restore(text)

    def _restore(self, text: str) -> str:
        if not text:
            return ""
        if self.is_json:
            out, self.state = self.vault.restore_json(text, self.state)
            return out
        return self.vault.restore(text)


class StreamRestorer:
    """Incremental restore for one streamed response. Channels are keyed by (choice index, name)."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._channels: dict[tuple[int, str], _Channel] = {}

    def feed(self, choice: int, delta: str, channel: str = "content", *, is_json: bool = False) -> str:
        key = (choice, channel)
        ch = self._channels.get(key)
        if ch is None:
            ch = self._channels[key] = _Channel(self.vault, is_json)
        return ch.feed(delta)

    def flush(self, choice: int | None = None) -> dict[tuple[int, str], str]:
        """Held text per channel (of one choice, or all), restored; the channels are emptied."""
        out = {}
        for key, ch in self._channels.items():
            if (choice is None or key[0] == choice) and ch.held:
                out[key] = ch.flush()
        return out

    # -- OpenAI chunk dicts ----------------------------------------------------------------------

    def feed_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """Restore one `chat.completion.chunk` / `text_completion` chunk (a new dict is returned).

        When a choice carries a finish_reason, whatever that choice still holds is released into
        this chunk, before the client learns the choice is over.
        """
        choices = chunk.get("choices")
        if not self.vault or not isinstance(choices, list):
            return chunk
        out = dict(chunk)
        out["choices"] = [self._feed_choice(c) for c in choices]
        return out

    def _feed_choice(self, choice: Any) -> Any:
        if not isinstance(choice, dict):
            return choice
        idx = choice.get("index", 0)
        done = choice.get("finish_reason") is not None
        choice = copy.copy(choice)
        if isinstance(choice.get("text"), str):  # legacy completions
            choice["text"] = self.feed(idx, choice["text"]) + (self._take(idx, "content") if done else "")
        delta = choice.get("delta")
        if isinstance(delta, dict):
            delta = dict(delta)
            if isinstance(delta.get("content"), str):
                delta["content"] = self.feed(idx, delta["content"])
            calls = delta.get("tool_calls")
            if isinstance(calls, list):
                delta["tool_calls"] = [self._feed_call(idx, c) for c in calls]
            if done:
                rest = self._take(idx, "content")
                if rest:
                    delta["content"] = (delta.get("content") or "") + rest
                pending = self.flush(idx)
                if pending:
                    extra = [
                        {"index": int(name.split(":", 1)[1]), "function": {"arguments": text}}
                        for (_, name), text in sorted(pending.items())
                    ]
                    delta["tool_calls"] = [*(delta.get("tool_calls") or []), *extra]
            choice["delta"] = delta
        return choice

    def _feed_call(self, idx: int, call: Any) -> Any:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
            return call
        call = dict(call)
        call["function"] = {
            **fn,
            "arguments": self.feed(idx, fn["arguments"], f"tool:{call.get('index', 0)}", is_json=True),
        }
        return call

    def _take(self, idx: int, channel: str) -> str:
        ch = self._channels.get((idx, channel))
        return ch.flush() if ch else ""

    def finish(self) -> list[dict[str, Any]]:
        """Choices' held text as `delta`s (for a stream that ended without finish_reasons)."""
        out: list[dict[str, Any]] = []
        for (idx, name), text in sorted(self.flush().items()):
            if name == "content":
                out.append({"index": idx, "delta": {"content": text}})
            else:
                out.append(
                    {
                        "index": idx,
                        "delta": {
                            "tool_calls": [
                                {"index": int(name.split(":", 1)[1]), "function": {"arguments": text}}
                            ]
                        },
                    }
                )
        return out


def restore_response(body: dict[str, Any], vault: Vault) -> dict[str, Any]:
    """A copy of a chat/completions response body with placeholders restored."""
    if not vault or not isinstance(body.get("choices"), list):
        return body
    out = dict(body)
    out["choices"] = [_restore_choice(c, vault) for c in body["choices"]]
    return out


def _restore_choice(choice: Any, vault: Vault) -> Any:
    if not isinstance(choice, dict):
        return choice
    choice = dict(choice)
    if isinstance(choice.get("text"), str):
        choice["text"] = vault.restore(choice["text"])
    msg = choice.get("message")
    if isinstance(msg, dict):
        msg = dict(msg)
        if isinstance(msg.get("content"), str):
            msg["content"] = vault.restore(msg["content"])
        elif isinstance(msg.get("content"), list):
            msg["content"] = [
                {**p, "text": vault.restore(p["text"])}
                if isinstance(p, dict) and isinstance(p.get("text"), str)
                else p
                for p in msg["content"]
            ]
        if isinstance(msg.get("tool_calls"), list):
            msg["tool_calls"] = [_restore_call(c, vault) for c in msg["tool_calls"]]
        fc = msg.get("function_call")
        if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
            msg["function_call"] = {**fc, "arguments": vault.restore_json(fc["arguments"])[0]}
        choice["message"] = msg
    return choice


def _restore_call(call: Any, vault: Vault) -> Any:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("arguments"), str):
        return call
    return {**call, "function": {**fn, "arguments": vault.restore_json(fn["arguments"])[0]}}
