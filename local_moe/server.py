"""Standalone OpenAI-compatible server for a local MoE checkpoint (`bulkhead moe serve`).

For a separate GPU host: the gateway reaches it through `adapters/openai_http.py`, exactly as it
reaches vLLM or SGLang. Routes: GET /v1/models, POST /v1/completions, POST /v1/chat/completions
(SSE streaming when `stream: true`), GET /v1/bulkhead/moe/experts, GET /healthz.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from local_moe import openai_api
from local_moe.engine import Engine


def _error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": None}}, status_code=status)


def create_app(engine: Engine, model_name: str) -> Starlette:
    async def models(_: Request) -> Response:
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {
                        "id": model_name,
                        "object": "model",
                        "created": int(time.time()),
                        "owned_by": "local_moe",
                    }
                ],
            }
        )

    async def experts(_: Request) -> Response:
        return JSONResponse({"model": model_name, **engine.expert_stats()})

    async def healthz(_: Request) -> Response:
        return JSONResponse({"ok": engine.alive, **engine.load}, status_code=200 if engine.alive else 503)

    async def handle(request: Request, chat: bool) -> Response:
        try:
            body: dict[str, Any] = await request.json()
            if not isinstance(body, dict):
                raise openai_api.BadRequest("the body must be a JSON object")
            if body.get("model") not in (None, model_name):
                return _error(404, f"model {body.get('model')!r} does not exist", "not_found_error")
            prompt = (openai_api.chat_prompt if chat else openai_api.completion_prompt)(
                engine.tokenizer, body
            )
            params = openai_api.sampling_params(body, engine.max_seq)
            if len(prompt) >= engine.max_seq:
                raise openai_api.BadRequest(f"prompt exceeds the {engine.max_seq}-token context")
        except (json.JSONDecodeError, openai_api.BadRequest) as exc:
            return _error(400, str(exc) if isinstance(exc, openai_api.BadRequest) else "invalid JSON body")
        if not body.get("stream"):
            try:
                result = await engine.complete(prompt, params)
            except RuntimeError:
                return _error(503, "generation failed", "server_error")
            make = openai_api.chat_response if chat else openai_api.completion_response
            return JSONResponse(make(result, model_name))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            _sse(engine, prompt, params, model_name, chat, include_usage),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    async def chat_completions(request: Request) -> Response:
        return await handle(request, chat=True)

    async def completions(request: Request) -> Response:
        return await handle(request, chat=False)

    return Starlette(
        routes=[
            Route("/v1/models", models),
            Route("/v1/chat/completions", chat_completions, methods=["POST"]),
            Route("/v1/completions", completions, methods=["POST"]),
            Route("/v1/bulkhead/moe/experts", experts),
            Route("/healthz", healthz),
        ]
    )


async def _sse(
    engine: Engine, prompt: list[int], params, model: str, chat: bool, include_usage: bool
) -> AsyncIterator[bytes]:
    writer = openai_api.ChunkWriter(model, chat=chat)
    events = engine.stream(prompt, params)
    try:
        async for event in events:
            if event.finish_reason == "error":
                err = {"error": {"message": "generation failed", "type": "server_error", "code": None}}
                yield f"data: {json.dumps(err)}\n\n".encode()
                break
            for chunk in writer.chunks(event):
                yield f"data: {json.dumps(chunk)}\n\n".encode()
            if event.finish_reason is not None and include_usage:
                yield f"data: {json.dumps(writer.usage_chunk(event))}\n\n".encode()
        yield b"data: [DONE]\n\n"
    finally:
        await events.aclose()  # a disconnected client frees its slot
