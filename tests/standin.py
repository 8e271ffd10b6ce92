"""A real OpenAI-compatible HTTP server on 127.0.0.1 that stands in for external providers.

It records every body it receives (that record is how leak tests prove what left the gateway) and
its behaviour is chosen by the upstream model name the gateway sends:

  echo          answers "echo: <last user text>" (tool calls when tools are offered)
  say           answers the last user text exactly (a test scripts the answer word for word)
  fail-500      HTTP 500          fail-503   HTTP 503        fail-429  HTTP 429 with Retry-After
  malformed     200 with a body that is not JSON
  slow          waits 30 s before answering (timeouts)
  reset         streams a few chunks, then drops the connection
  flaky         HTTP 503 on every other call, else echo
  reject        HTTP 400 with an OpenAI error

Run standalone with `python -m tests.standin --port 9000` to try the gateway by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import threading
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web


async def serve_app(app: web.Application, host: str, port: int, backlog: int = 128) -> tuple[web.AppRunner, int]:
    """Serve `app` on the running loop; returns its runner and the port it got (port 0 = any)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, shutdown_timeout=0.5, backlog=backlog)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


class LoopThread:
    """An aiohttp app on its own event loop in a daemon thread: how the tests run their upstreams
    beside a gateway process."""

    def __init__(self, make_app, host: str, port: int, name: str, backlog: int = 128) -> None:
        self._make_app, self._host, self._port, self._backlog = make_app, host, port, backlog
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._ready = threading.Event()

    def _run(self) -> None:
        self._runner, self._port = self._loop.run_until_complete(
            serve_app(self._make_app(), self._host, self._port, self._backlog)
        )
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> int:
        """Starts the thread and returns the port once the app listens."""
        self._thread.start()
        self._ready.wait(10)
        return self._port

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


@dataclass
class Recorded:
    path: str
    body: dict
    headers: dict


@dataclass
class StandIn:
    host: str = "127.0.0.1"
    port: int = 0
    chunk_size: int = 3
    requests: list[Recorded] = field(default_factory=list)
    _calls: dict[str, int] = field(default_factory=dict)
    _server: LoopThread | None = None
    record: bool = True

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def bodies(self) -> list[dict]:
        return [r.body for r in self.requests]

    def clear(self) -> None:
        self.requests.clear()

    # -- behaviour ---------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/embeddings", self._embeddings)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _receive(self, request: web.Request) -> tuple[dict, web.Response | None]:
        raw = await request.read()
        body = orjson.loads(raw)
        if self.record:
            self.requests.append(Recorded(request.path, body, dict(request.headers)))
        model = body.get("model", "")
        self._calls[model] = self._calls.get(model, 0) + 1
        if model == "fail-500":
            return body, web.json_response({"error": {"message": "boom"}}, status=500)
        if model == "fail-503" or (model == "flaky" and self._calls[model] % 2 == 1):
            return body, web.json_response({"error": {"message": "overloaded"}}, status=503)
        if model == "fail-429":
            limited = {"error": {"message": "slow down"}}
            return body, web.json_response(limited, status=429, headers={"retry-after": "7"})
        if model == "reject":
            return body, web.json_response({"error": {"message": "bad", "type": "invalid_request_error"}}, status=400)
        if model == "malformed":
            return body, web.Response(body=b"{not json", content_type="application/json")
        if model == "slow":
            await asyncio.sleep(30)
        return body, None

    @staticmethod
    def _last_user_text(messages: list[dict]) -> str:
        for message in reversed(messages):
            if message.get("role") in ("user", "tool"):
                content = message.get("content")
                if isinstance(content, list):
                    return " ".join(p.get("text") or "" for p in content if isinstance(p, dict))
                return content or ""
        return ""

    @staticmethod
    def _usage(prompt: str, answer: str) -> dict:
        p, c = len(prompt.split()), len(answer.split())
        return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        prompt = " ".join(str(m.get("content") or "") for m in body.get("messages", []))
        text = "echo: " + self._last_user_text(body.get("messages", []))
        if body.get("model") == "say":
            text = self._last_user_text(body.get("messages", []))
        if body.get("model") == "leak":  # personal data the request never had, for the output scan
            text = "Call Jane Roe at jane.roe@example.com, SSN 219-09-9999."
        if body.get("model") == "judge":  # a judge that finds every answer supported
            text = '{"verdict": "supported", "score": 0.9, "unsupported_claims": []}'
        if body.get("model") == "quote":  # answers with its system message: a perfectly grounded model
            text = next((str(m.get("content")) for m in body.get("messages", []) if m.get("role") == "system"), "")
        tool_call = None
        fn = next((t["function"].get("name") for t in body.get("tools") or []
                   if isinstance(t, dict) and isinstance(t.get("function"), dict)), None)  # function tools only
        if isinstance(fn, str):
            tool_call = {"id": "call_1", "type": "function",
                         "function": {"name": fn, "arguments": orjson.dumps({"echo": text}).decode()}}
        created, rid = int(time.time()), "chatcmpl-standin"
        if body.get("stream"):
            return await self._stream_chat(request, body, text, tool_call, prompt)
        message = {"role": "assistant", "content": None if tool_call else text}
        if tool_call:
            message["tool_calls"] = [tool_call]
        choices = [{"index": i, "message": message, "finish_reason": "tool_calls" if tool_call else "stop",
                    "logprobs": None} for i in range(body.get("n") or 1)]
        return web.json_response({"id": rid, "object": "chat.completion", "created": created,
                                  "model": body["model"], "choices": choices, "usage": self._usage(prompt, text)},
                                 dumps=lambda o: orjson.dumps(o).decode())

    async def _stream_chat(self, request, body, text, tool_call, prompt) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        base = {"id": "chatcmpl-standin", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": body["model"]}

        async def send(delta: dict | None, finish: str | None = None, usage: dict | None = None) -> None:
            chunk = dict(base)
            chunk["choices"] = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            if usage is not None:
                chunk["usage"] = usage
            await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")

        await send({"role": "assistant", "content": ""})
        pieces = [text[i:i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        if tool_call:
            args = tool_call["function"]["arguments"]
            await send({"tool_calls": [{"index": 0, "id": tool_call["id"], "type": "function",
                                        "function": {"name": tool_call["function"]["name"], "arguments": ""}}]})
            for i in range(0, len(args), self.chunk_size):
                await send({"tool_calls": [{"index": 0, "function": {"arguments": args[i:i + self.chunk_size]}}]})
        else:
            for n, piece in enumerate(pieces):
                if body["model"] == "reset" and n == 3:
                    request.transport.close()
                    return resp
                await send({"content": piece})
        await send({}, "tool_calls" if tool_call else "stop")
        if body["model"] == "late-usage":  # a client that stops reading at finish_reason misses the usage
            await asyncio.sleep(3)
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(None, usage=self._usage(prompt, text))
        await resp.write(b"data: [DONE]\n\n")
        return resp

    async def _completions(self, request: web.Request) -> web.Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        prompt = body.get("prompt")
        prompt = prompt if isinstance(prompt, str) else " ".join(map(str, prompt or []))
        text = "echo: " + prompt
        if body.get("stream"):
            resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
            await resp.prepare(request)
            base = {"id": "cmpl-standin", "object": "text_completion", "created": int(time.time()),
                    "model": body["model"]}
            for i in range(0, len(text), self.chunk_size):
                chunk = {**base, "choices": [{"index": 0, "text": text[i:i + self.chunk_size], "finish_reason": None}]}
                await resp.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
            if (body.get("stream_options") or {}).get("include_usage"):
                await resp.write(b"data: " + orjson.dumps({**base, "choices": [], "usage": self._usage(prompt, text)})
                                 + b"\n\n")
            await resp.write(b"data: [DONE]\n\n")
            return resp
        return web.json_response({"id": "cmpl-standin", "object": "text_completion", "created": int(time.time()),
                                  "model": body["model"],
                                  "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
                                  "usage": self._usage(prompt, text)})

    async def _embeddings(self, request: web.Request) -> web.Response:
        body, failure = await self._receive(request)
        if failure is not None:
            return failure
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, item in enumerate(inputs):
            digest = hashlib.sha256(str(item).encode()).digest()
            data.append({"object": "embedding", "index": i, "embedding": [b / 255 for b in digest[:8]]})
        tokens = sum(len(str(x).split()) for x in inputs)
        return web.json_response({"object": "list", "data": data, "model": body["model"],
                                  "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "echo", "object": "model"}]})

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StandIn:
        self._server = LoopThread(self._app, self.host, self.port, "standin", backlog=1024)
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--no-record", action="store_true", help="keep no bodies (for load tests)")
    args = parser.parse_args()
    standin = StandIn(port=args.port, record=not args.no_record)
    asyncio.run(_serve_forever(standin))


async def _serve_forever(standin: StandIn) -> None:
    _, standin.port = await serve_app(standin._app(), standin.host, standin.port, backlog=1024)
    print(f"stand-in upstream on {standin.base_url}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    main()
