"""OpenAI request bodies in, OpenAI response bodies and chunks out; shared by the in-process adapter
and the standalone server so both speak exactly the same dialect."""

from __future__ import annotations

import time
import uuid
from typing import Any

from local_moe.engine import Event, Result
from local_moe.sampling import SamplingParams
from local_moe.tokenizer import Tokenizer

DEFAULT_MAX_TOKENS = 256


class BadRequest(ValueError):
    """The body asks for something this backend cannot do; maps to HTTP 400."""


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise BadRequest("only text content parts are supported")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise BadRequest("message content must be a string or a list of text parts")


def sampling_params(body: dict[str, Any], max_context: int) -> SamplingParams:
    if int(body.get("n") or 1) != 1:
        raise BadRequest("n > 1 is not supported")
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else list(stop)
    if not all(isinstance(s, str) and s for s in stop) or len(stop) > 4:
        raise BadRequest("stop must be a string or up to 4 non-empty strings")
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS
    temperature = body.get("temperature")
    try:
        return SamplingParams(
            temperature=1.0 if temperature is None else float(temperature),
            top_p=1.0 if body.get("top_p") is None else float(body["top_p"]),
            top_k=int(body.get("top_k") or 0),
            seed=None if body.get("seed") is None else int(body["seed"]),
            max_tokens=min(int(max_tokens), max_context),
            stop=stop,
            ignore_eos=bool(body.get("ignore_eos", False)),
        )
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"invalid sampling parameters: {exc}") from None


def chat_prompt(tokenizer: Tokenizer, body: dict[str, Any]) -> list[int]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages must be a non-empty list")
    if body.get("tools") or body.get("functions"):
        raise BadRequest("tool calling is not supported by the local MoE backend")
    plain = []
    for m in messages:
        if not isinstance(m, dict) or "role" not in m:
            raise BadRequest("each message needs a role")
        plain.append({"role": str(m["role"]), "content": _text_of(m.get("content"))})
    return tokenizer.encode_chat(plain)


def completion_prompt(tokenizer: Tokenizer, body: dict[str, Any]) -> list[int]:
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if isinstance(prompt, list) and prompt and all(isinstance(t, int) for t in prompt):
        return list(prompt)
    if not isinstance(prompt, str) or not prompt:
        raise BadRequest("prompt must be a non-empty string (batches of prompts are not supported)")
    return tokenizer.encode(prompt)


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_response(result: Result, model: str) -> dict[str, Any]:
    return {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": result.text},
                "logprobs": None,
                "finish_reason": result.finish_reason,
            }
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def completion_response(result: Result, model: str) -> dict[str, Any]:
    return {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "text": result.text, "logprobs": None, "finish_reason": result.finish_reason}
        ],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


class ChunkWriter:
    """Turns engine events into `chat.completion.chunk` (or `text_completion`) dicts."""

    def __init__(self, model: str, chat: bool = True):
        self.model = model
        self.chat = chat
        self.id = new_id("chatcmpl" if chat else "cmpl")
        self.created = int(time.time())
        self.started = False

    def _base(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
        }

    def chunks(self, event: Event) -> list[dict[str, Any]]:
        out = []
        if self.chat:
            delta: dict[str, Any] = {}
            if not self.started:
                delta["role"] = "assistant"
                self.started = True
            if event.text or "role" in delta:
                delta["content"] = event.text
            if delta or event.finish_reason:
                out.append(
                    self._base()
                    | {
                        "choices": [
                            {
                                "index": 0,
                                "delta": delta,
                                "logprobs": None,
                                "finish_reason": event.finish_reason,
                            }
                        ]
                    }
                )
        elif event.text or event.finish_reason:
            out.append(
                self._base()
                | {
                    "choices": [
                        {
                            "index": 0,
                            "text": event.text,
                            "logprobs": None,
                            "finish_reason": event.finish_reason,
                        }
                    ]
                }
            )
        return out

    def usage_chunk(self, event: Event) -> dict[str, Any]:
        return self._base() | {"choices": [], "usage": usage(event.prompt_tokens, event.completion_tokens)}
