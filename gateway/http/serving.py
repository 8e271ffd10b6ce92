"""What `bulkhead serve` adds to uvicorn: bounds on request header bytes and on how long headers and
bodies may take to arrive, and a drain on SIGTERM.

Headers: httptools (uvicorn's `http="httptools"`) buffers a request's line and headers without any
limit (a 1 MB header was accepted when measured), so a client could make the gateway hold as much
as it cares to send. `BoundedHttpToolsProtocol` counts the bytes received before the end of the
headers and, past MAX_HEADER_BYTES, answers 431 with an OpenAI-shaped body and closes. Headers
that arrive complete but are still too large get the same 431 from the envelope in app.py, under
any server.

Slow clients: uvicorn waits for a request's headers, and for its body, as long as the client keeps
the connection open (20 trickling connections were held 45 s). The protocol below gives a request
`header_timeout` from its first byte (or from the connection's opening) to the end of its headers,
answering 408 and closing past it, and closes a connection whose body is still incomplete
`body_timeout` (plus a grace) after its headers. The envelope in app.py answers the body's 408
itself, audited, at `body_timeout` while the app is reading it; granian gets the header timeout
from its own setting (gateway/cli.py) and the body's from the envelope.

Drain: on SIGTERM `/readyz` answers 503 at once (the load balancer stops sending), the listener
stays open while requests are still in flight (what is still sent is served), then uvicorn's own
shutdown waits for the rest; BULKHEAD_DRAIN_SECONDS bounds the whole drain. The lifespan's
shutdown then flushes the audit queue, and the process exits 0. Each step is logged: the signal
and how many requests are in flight, the drain's end, and the stop (app.py's lifespan).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import time

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import Settings
from gateway.errors import APIError

log = logging.getLogger("bulkhead")

MAX_HEADER_BYTES = 64 * 1024
_LINGER_SECONDS = 2.0
_BODY_GRACE_SECONDS = 5.0  # the envelope's own 408 at body_timeout goes first; this only cuts the rest


def headers_too_large() -> APIError:
    return APIError(431, f"The request headers exceed {MAX_HEADER_BYTES} bytes.", "request_headers_too_large")


class _ClientTooSlow(APIError):
    type = "invalid_request_error"  # the client's doing (errors.py maps 408 to no type of its own)


def request_timeout(part: str) -> APIError:
    return _ClientTooSlow(408, f"The request {part} did not arrive in time.", "request_timeout")


@functools.cache
def _timeouts() -> tuple[float, float]:
    """(header, body) seconds, read once per process (uvicorn's workers each import this anew)."""
    settings = Settings()
    return settings.header_timeout, settings.body_timeout


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._awaiting_headers = True
        self._header_bytes = 0
        self._headers_completed = 0
        self._refused = False
        self._partial = False  # part of a request's headers arrived
        self._header_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()  # a connection that never sends a request is held no longer than a slow one

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._header_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._header_timer = self._body_timer = None
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(_timeouts()[0], self._headers_late)

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._awaiting_headers or self._refused or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_header_timer()  # pipelined behind a response still being written: its wait starts after
            return
        self._refused = True
        if self._partial:
            self._answer_and_close(b"408 Request Timeout", request_timeout("headers"))
        else:
            self.transport.close()  # nothing was asked: nobody to answer

    def _body_late(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            self._refused = True
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return  # read and dropped until the client closes or the linger ends, so it sees the 431
        if self._awaiting_headers:
            self._partial = True
            if self._header_timer is None:  # the next request on a kept-alive connection begins
                self._arm_header_timer()
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
        self._awaiting_headers = self._partial = False
        self._header_bytes = 0
        self._headers_completed += 1
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None
        self._body_timer = self.loop.call_later(_timeouts()[1] + _BODY_GRACE_SECONDS, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()
        self._awaiting_headers = True

    def _refuse(self) -> None:
        self._refused = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier response is still being written on this connection
            return
        self._answer_and_close(b"431 Request Header Fields Too Large", headers_too_large())

    def _answer_and_close(self, status_line: bytes, err: APIError) -> None:
        body = orjson.dumps(err.body())
        head = [b"HTTP/1.1 " + status_line + b"\r\n"]
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
        self._signal = ""

    def handle_exit(self, sig, frame) -> None:
        if self._drain_deadline is None:
            # gateway.state loads the whole request stack (~0.7 s); a --workers master never needs it
            from gateway.state import request_drain

            request_drain()
            self._drain_deadline = time.monotonic() + self.drain_seconds
            self._signal = signal.Signals(sig).name  # logged from shutdown(): not from a signal handler
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after draining, which turns a clean SIGTERM stop into
        # exit status -15; orchestrators should see the drained stop as success.
        if sig == signal.SIGTERM:
            self._captured_signals.remove(sig)

    async def shutdown(self, sockets=None) -> None:
        started = time.monotonic()
        deadline = self._drain_deadline or started + self.drain_seconds
        if self._drain_deadline is not None:
            log.info("%s: draining, /readyz answers 503; %d request(s) in flight, up to %.0f s",
                     self._signal, len(self.server_state.tasks), max(0.0, deadline - started))
        while self.server_state.tasks and not self.force_exit and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        left = len(self.server_state.tasks)
        log.log(logging.WARNING if left else logging.INFO, "drained in %.1f s%s", time.monotonic() - started,
                f"; {left} request(s) still open are cancelled" if left else "")
        self.config.timeout_graceful_shutdown = max(0.0, deadline - time.monotonic())
        await super().shutdown(sockets)
