"""Misbehaving upstreams the stand-in does not cover, and a canary that records any connection.

`FaultServer` is a real OpenAI-shaped HTTP server on 127.0.0.1 whose upstream `model` name picks
the fault (the gateway sends the backend's `model`):

  stall-after-first   streams one content chunk, then sends nothing more (non-streaming: never answers)
  drip                streams its answer one piece every `drip_seconds`, then ends normally
  hold                streams one content chunk, then waits until `release()` before finishing
  break-mid-event     streams one chunk, then half an event, then drops the connection
  garbage-event       streams one chunk, then an event that is not JSON
  error-event         streams one chunk, then `data: {"error": ...}`
  no-done             streams its chunks and closes without `data: [DONE]`
  empty-stream        a 200 event stream with nothing but `data: [DONE]`
  drop                closes the connection without answering
  retry-after-nan     429 with `Retry-After: nan`
  retry-after-date    429 with an HTTP-date Retry-After
  json-array          200 whose body is JSON but not an object
  html-502            502 with an HTML body

Anything else answers like the stand-in's `echo`.

`TcpProxy` forwards to a real server (Redis) and can be switched to drop every connection or to
accept and never answer (a server that is down, or one that hangs).

`Canary` is a bare TCP listener: it accepts, records the peer and what arrived, and closes. A test
points every URL a client could try to smuggle at it, then asserts it saw no connection at all.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field

import orjson
from aiohttp import web

from tests.standin import LoopThread

CHUNK = {"id": "chatcmpl-fault", "object": "chat.completion.chunk", "created": 0, "model": "fault"}


def _event(delta: dict, finish: str | None = None) -> bytes:
    chunk = {**CHUNK, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


@dataclass
class FaultServer:
    host: str = "127.0.0.1"
    port: int = 0
    drip_seconds: float = 0.3
    calls: list[tuple[str, bool]] = field(default_factory=list)  # (model, stream)
    _release: threading.Event = field(default_factory=threading.Event)
    _server: LoopThread | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def release(self) -> None:
        self._release.set()

    def hold(self) -> None:
        """`hold` streams wait again from now on."""
        self._release.clear()

    def count(self, model: str) -> int:
        return sum(1 for m, _ in self.calls if m == model)

    async def _wait_release(self) -> None:
        while not self._release.is_set():
            await asyncio.sleep(0.02)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        model, stream = body.get("model", ""), bool(body.get("stream"))
        self.calls.append((model, stream))
        if model == "drop":
            request.transport.close()
            return web.Response()
        if model in ("retry-after-nan", "retry-after-date"):
            value = "nan" if model == "retry-after-nan" else "Wed, 21 Oct 2099 07:28:00 GMT"
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"retry-after": value})
        if model == "json-array":
            return web.Response(body=b"[1, 2, 3]", content_type="application/json")
        if model == "html-502":
            return web.Response(body=b"<html><body>Bad Gateway</body></html>", status=502, content_type="text/html")
        if not stream:
            if model in ("stall-after-first", "hold"):
                await (asyncio.sleep(3600) if model == "stall-after-first" else self._wait_release())
            return web.json_response({
                "id": "chatcmpl-fault", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        if model == "empty-stream":
            await resp.write(b"data: [DONE]\n\n")
            return resp
        await resp.write(_event({"role": "assistant", "content": ""}) + _event({"content": "first "}))
        if model == "stall-after-first":
            await asyncio.sleep(3600)
        elif model == "hold":
            await self._wait_release()
        elif model == "break-mid-event":
            await resp.write(b'data: {"id": "chatcmpl-fault", "cho')
            request.transport.close()
            return resp
        elif model == "garbage-event":
            await resp.write(b"data: this is not json\n\n")
        elif model == "error-event":
            await resp.write(b'data: {"error": {"message": "upstream fell over"}}\n\n')
        pieces = ["one ", "two ", "three"]
        for piece in pieces:
            if model == "drip":
                await asyncio.sleep(self.drip_seconds)
            await resp.write(_event({"content": piece}))
        await resp.write(_event({}, "stop"))
        if model != "no-done":
            await resp.write(b"data: [DONE]\n\n")
        return resp

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._chat)
        return app

    def start(self) -> FaultServer:
        self._server = LoopThread(self._app, self.host, self.port, "faults")
        self.port = self._server.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._release.set()  # a held stream ends, so the runner's cleanup does not wait on it
        self._server.stop()
        self._server = None


class Canary:
    """Any connection at all is a finding: nothing in these tests has a reason to reach it."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.hits: list[tuple[tuple[str, int], bytes]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="canary", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, peer = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(0.5)
            try:
                data = conn.recv(4096)
            except OSError:
                data = b""
            self.hits.append((peer, data))
            conn.close()

    def settle(self, seconds: float = 0.5) -> list:
        """The hits, after giving a connection that might still be on its way time to land."""
        time.sleep(seconds)
        return list(self.hits)

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
        self._thread.join(2)


class TcpProxy:
    """127.0.0.1:<port> -> target. mode: "pass" forwards, "drop" closes each connection at once,
    "blackhole" accepts and never answers. Switching mode also cuts the connections already open."""

    def __init__(self, target_host: str, target_port: int, mode: str = "pass") -> None:
        self.target = (target_host, target_port)
        self.mode = mode
        self.accepted: dict[str, int] = {}  # connections accepted, per mode
        self._generation = 0
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        threading.Thread(target=self._accept, name="proxy", daemon=True).start()

    def set(self, mode: str) -> None:
        self.mode = mode
        self._generation += 1

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted[self.mode] = self.accepted.get(self.mode, 0) + 1
            if self.mode == "drop":
                conn.close()
                continue
            threading.Thread(target=self._serve, args=(conn, self.mode, self._generation), daemon=True).start()

    def _serve(self, conn: socket.socket, mode: str, generation: int) -> None:
        upstream = None
        try:
            if mode == "pass":
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(0.2)
            conn.settimeout(0.2)
            while not self._stop.is_set() and generation == self._generation:
                for src, dst in ((conn, upstream), (upstream, conn)):
                    if src is None:
                        continue
                    try:
                        data = src.recv(65536)
                    except TimeoutError:
                        continue
                    if not data:
                        return
                    if dst is not None:
                        dst.sendall(data)
                if upstream is None:
                    time.sleep(0.05)  # blackhole: read, never answer
        except OSError:
            pass
        finally:
            conn.close()
            if upstream is not None:
                upstream.close()

    def close(self) -> None:
        self._stop.set()
        self._sock.close()
