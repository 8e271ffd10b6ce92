"""What `bulkhead serve` adds to uvicorn: a bound on request header bytes, and a drain on SIGTERM.

Headers: httptools (uvicorn's `http="httptools"`) buffers a request's line and headers without any
limit (a 1 MB header was accepted when measured), so a client could make the gateway hold as much
as it cares to send. `BoundedHttpToolsProtocol` counts the bytes received before the end of the
headers and, past MAX_HEADER_BYTES, answers 431 with an OpenAI-shaped body and closes. Headers
that arrive complete but are still too large get the same 431 from the envelope in app.py, under
any server.

Drain: on SIGTERM `/readyz` answers 503 at once (the load balancer stops sending), the listener
stays open while requests are still in flight (what is still sent is served), then uvicorn's own
shutdown waits for the rest; BULKHEAD_DRAIN_SECONDS bounds the whole drain. The lifespan's
shutdown then flushes the audit queue, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import signal
import time

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.errors import APIError

MAX_HEADER_BYTES = 64 * 1024
_LINGER_SECONDS = 2.0


def headers_too_large() -> APIError:
    return APIError(431, f"The request headers exceed {MAX_HEADER_BYTES} bytes.", "request_headers_too_large")


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._headers_completed = 0
        self._refused = False

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the client closes or the linger ends, so it sees the 431
        awaiting, completed = self._awaiting_headers, self._headers_completed
        super().data_received(data)
        # Counted only when all of it arrived while headers were awaited and none ended: anything
        # after the end of a request's headers is body (or the next request, which starts a new count).
        if awaiting and self._awaiting_headers and self._headers_completed == completed \
                and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES:
                self._refuse()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        self._headers_completed += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._awaiting_headers = True

    def _refuse(self) -> None:
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier response is still being written on this connection
            return
        body = orjson.dumps(headers_too_large().body())
        head = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n" % len(body)]
        self.transport.write(b"".join(head) + body)
        # Half-close and keep reading (and dropping) for a moment: closing with the rest of the
        # client's headers unread would reset the connection before the client reads the answer.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER_SECONDS, self.transport.close)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self._drain_deadline: float | None = None

    def handle_exit(self, sig, frame) -> None:
        if self._drain_deadline is None:
            from gateway.state import request_drain

            request_drain()
            self._drain_deadline = time.monotonic() + self.drain_seconds
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after draining, which turns a clean SIGTERM stop into
        # exit status -15; orchestrators should see the drained stop as success.
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)

    async def shutdown(self, sockets=None) -> None:
        deadline = self._drain_deadline or time.monotonic() + self.drain_seconds
        while self.server_state.tasks and not self.force_exit and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.config.timeout_graceful_shutdown = max(0.0, deadline - time.monotonic())
        await super().shutdown(sockets)
