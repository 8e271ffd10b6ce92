"""The self-hosted MoE model, in-process: the backend high-risk traffic goes to.

The model loads on first use (in a worker thread, so the event loop keeps serving) unless
`preload=True`. Requests run on `local_moe.Engine`'s continuous batch; an abandoned stream frees its
slot. Per-request expert statistics ride along in `CallResult.extra["experts"]`; the cumulative
per-layer picture comes from `expert_stats()`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from adapters.base import CallResult, UpstreamError, Usage
from local_moe import openai_api
from local_moe.engine import Engine
from local_moe.runtime import open_engine


def _compact(experts: dict[str, Any] | None) -> dict[str, Any] | None:
    if not experts:
        return None
    return {k: experts[k] for k in ("tokens", "mean_cv", "max_cv", "max_vio", "dead_experts", "mean_entropy")}


class LocalMoEAdapter:
    def __init__(self, name: str, model_dir: str, **options: Any):
        self.name = name
        self.model_dir = Path(model_dir)
        self.provider_model = str(options.pop("model_name", None) or self.model_dir.name)
        self._options = {
            k: options[k]
            for k in ("device", "dtype", "max_batch", "max_seq", "record_experts", "quantize")
            if k in options
        }
        self._engine: Engine | None = None
        self._load_error: str | None = None
        self._lock = asyncio.Lock()
        if options.get("preload"):
            self._engine = open_engine(self.model_dir, **self._options)

    async def _get(self) -> Engine:
        if self._engine is not None:
            return self._engine
        async with self._lock:
            if self._engine is None:
                try:
                    self._engine = await asyncio.to_thread(open_engine, self.model_dir, **self._options)
                    self._load_error = None
                except (OSError, ValueError, KeyError) as exc:
                    self._load_error = type(exc).__name__
                    raise UpstreamError("unavailable", f"local model {self.name!r} failed to load") from None
        return self._engine

    def _params(self, engine: Engine, body: dict[str, Any]):
        try:
            return openai_api.sampling_params(body, engine.max_seq)
        except openai_api.BadRequest as exc:
            raise UpstreamError("rejected", str(exc), status=400) from None

    async def _prompt(self, engine: Engine, body: dict[str, Any], chat: bool) -> list[int]:
        try:
            if chat:
                prompt = openai_api.chat_prompt(engine.tokenizer, body)
            else:
                prompt = openai_api.completion_prompt(engine.tokenizer, body)
        except openai_api.BadRequest as exc:
            raise UpstreamError("rejected", str(exc), status=400) from None
        except Exception:  # a chat template that raises on this conversation shape
            raise UpstreamError(
                "rejected", "the model's chat template rejected these messages", status=400
            ) from None
        if len(prompt) >= engine.max_seq:
            raise UpstreamError(
                "rejected", f"prompt exceeds the model's {engine.max_seq}-token context", status=400
            )
        return prompt

    async def _run(self, body: dict[str, Any], timeout: float, chat: bool) -> CallResult:
        engine = await self._get()
        prompt = await self._prompt(engine, body, chat)
        params = self._params(engine, body)
        try:
            result = await asyncio.wait_for(engine.complete(prompt, params), timeout)
        except TimeoutError:
            raise UpstreamError("timeout", f"local model {self.name!r} timed out") from None
        except RuntimeError:
            raise UpstreamError("unavailable", f"local model {self.name!r} failed") from None
        make = openai_api.chat_response if chat else openai_api.completion_response
        return CallResult(
            make(result, self.provider_model),
            Usage(result.prompt_tokens, result.completion_tokens),
            self.provider_model,
            {"experts": _compact(result.experts)},
        )

    async def chat(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._run(body, timeout, chat=True)

    async def completion(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        return await self._run(body, timeout, chat=False)

    async def stream_chat(self, body: dict[str, Any], *, timeout: float) -> AsyncIterator[dict[str, Any]]:
        engine = await self._get()
        prompt = await self._prompt(engine, body, True)
        params = self._params(engine, body)
        writer = openai_api.ChunkWriter(self.provider_model, chat=True)
        deadline = time.monotonic() + timeout
        events = engine.stream(prompt, params)
        try:
            while True:
                try:
                    event = await asyncio.wait_for(anext(events), max(0.0, deadline - time.monotonic()))
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise UpstreamError("timeout", f"local model {self.name!r} timed out") from None
                if event.finish_reason == "error":
                    raise UpstreamError("unavailable", f"local model {self.name!r} failed mid-stream")
                for chunk in writer.chunks(event):
                    yield chunk
                if event.finish_reason is not None:
                    final = writer.usage_chunk(event)
                    final["bulkhead_experts"] = _compact(event.experts)
                    yield final
                    return
        finally:
            await events.aclose()  # frees the engine slot when our consumer went away

    async def embeddings(self, body: dict[str, Any], *, timeout: float) -> CallResult:
        raise UpstreamError("rejected", "the local MoE backend does not serve embeddings", status=400)

    async def health(self) -> bool:
        if self._engine is not None:
            return self._engine.alive
        return (self.model_dir / "config.json").exists() and self._load_error is None

    def expert_stats(self) -> dict[str, Any]:
        """Cumulative per-layer expert utilization since load (empty before the model is loaded)."""
        if self._engine is None:
            return {"loaded": False, "tokens": 0, "layers": []}
        return {"loaded": True, "model": self.provider_model, **self._engine.expert_stats()}

    async def aclose(self) -> None:
        if self._engine is not None:
            engine, self._engine = self._engine, None
            await asyncio.to_thread(engine.close)
