"""The HTTP/1.1 connection: uvicorn's httptools protocol with bounds on the request head.

uvicorn reads a request line and headers for as long as a client takes and for as many
bytes as it sends; httptools even buffers one endless header value whole. A client that
trickles its headers (slowloris) or streams megabytes of them holds a connection and
memory. Here the head must arrive within HEADER_TIMEOUT_SECONDS (counted from the
connection, or from a kept-alive connection's next request byte) and within
MAX_HEADER_BYTES, or the client gets 408 or 431 and the connection is closed. (A head
that completes in the read that brought it is not counted here: that read is bounded by
the transport, and the webhook checks its headers' size itself.) A connection answered
before its request's body was all in is closed too: nothing else would time the rest.
"""

from __future__ import annotations

import asyncio
import collections
import functools
from http import HTTPStatus
from typing import Any, cast

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from service.config import Settings
from service.responses import error_body, json_bytes

log = structlog.get_logger("service.http")

# How long a refused connection still drains what its client sends, before closing.
LINGER_SECONDS = 2.0

# Set in a request's ASGI scope once its whole body is in. A webhook's body nearly always
# comes in the same read as its head, before the app runs: the app then reads it without
# arming a body timer (an `asyncio.timeout` per request; docs/performance.md).
BODY_RECEIVED = "voucherify.body_received"

# Requests this process refused before their head was whole (408, 431), by status: no
# path or event yet, so they are not deliveries; /metrics shows them beside them.
HEAD_REFUSALS: collections.Counter[int] = collections.Counter()


class BoundedHttpProtocol(HttpToolsProtocol):
    """One connection; bytes of a request head are counted and timed until it is complete."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float,
        max_header_bytes: int,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        # A request head is awaited from the connection, then from each request's first
        # byte until its headers are complete. The timer is armed only when a read leaves
        # a head incomplete: most heads arrive whole in one read and need none.
        self.awaiting_head = False
        self.head_since = 0.0
        self.head_timer: asyncio.TimerHandle | None = None
        self.head_bytes = 0
        self.body_bytes_read = 0  # in the read being parsed
        self.closing = False  # answered and closing: what the client still sends is dropped

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()
        self._arm_head_timer()  # a connection that never sends a byte

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.body_bytes_read = 0
        super().data_received(data)
        if not self.awaiting_head or self.transport.is_closing():
            return
        self._arm_head_timer()
        # A read that left a head incomplete counts toward it (httptools keeps its bytes),
        # less the bodies of earlier requests it carried (pipelined: megabytes, maybe).
        # Their heads, if any, still count: a pipelining client is refused a little early,
        # never late.
        self.head_bytes += len(data) - self.body_bytes_read
        if self.head_bytes > self.max_header_bytes:
            if self.cycle is not None and not self.cycle.response_complete:
                # An earlier request is still to be answered (pipelined): answer it,
                # then close, reading no more of this head meanwhile. A refusal now
                # would half-close in the middle of that answer.
                self.cycle.keep_alive = False
                self.flow.pause_reading()
                return
            message = f"request line and headers over {self.max_header_bytes} bytes"
            self._refuse(431, "headers_too_large", message)

    def eof_received(self) -> None:
        if self.closing:
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self.awaiting_head:
            self._await_head()

    def on_body(self, body: bytes) -> None:
        self.body_bytes_read += len(body)
        super().on_body(body)

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()
        # A HEAD response has no body write to carry its head: it goes out as it is.
        if self.cycle is not None and self.cycle.scope["method"] != "HEAD":
            head_with_body = HeadWithBody(self.transport, self.cycle.scope)
            self.cycle.transport = cast(asyncio.Transport, head_with_body)

    def on_response_complete(self) -> None:
        # Answered before its request's body was all in (a refusal that left it unread, a
        # route that reads none): uvicorn would read and drop the rest for as long as it
        # comes, with no timer running (each read cancels the keep-alive timer, and no
        # head is awaited), so a client trickling bytes held the connection for ever.
        # Closed instead, as the answer's head said (`HeadWithBody`). (A later pipelined
        # request has its own cycle: this one's body is then all in.)
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and BODY_RECEIVED not in cycle.scope:
            self.close_lingering()
        super().on_response_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None:
            cast(dict[str, Any], self.cycle.scope)[BODY_RECEIVED] = True

    def _await_head(self) -> None:
        self.awaiting_head = True
        self.head_since = self.loop.time()
        self.head_bytes = 0

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            deadline = self.head_since + self.header_timeout
            self.head_timer = self.loop.call_at(deadline, self._head_timed_out)

    def _head_done(self) -> None:
        self.awaiting_head = False
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if not self.awaiting_head or self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined head is late while an earlier response is still being written:
            # finish that response, then close.
            self.cycle.keep_alive = False
            return
        message = f"request headers not received within {self.header_timeout} s"
        self._refuse(408, "request_timeout", message)

    def _refuse(self, status: int, key: str, message: str) -> None:
        self._head_done()
        body = json_bytes(error_body(status, key, message))
        head = (
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(head.encode("ascii") + body)
        self.close_lingering()
        HEAD_REFUSALS[status] += 1
        client = f"{self.client[0]}:{self.client[1]}" if self.client else None
        log.warning("request refused", status=status, key=key, reason=message, client=client)

    def close_lingering(self) -> None:
        """Close after an answer: a refusal here, or a response (other than to HEAD)
        that uvicorn closes the connection after (the app's 408/413 on a body, a
        client's `connection: close`, shutdown). The client's bytes may still be
        coming, and closing with them unread
        would reset the connection and could destroy the answer before the client reads
        it: half-close, drop what still comes, close at the client's end of data or
        after a short linger. Requests already parsed behind this one are dropped, as a
        plain close drops them (half-closed, the transport is not `is_closing()`, and
        uvicorn would start the next one and answer it after the end of data)."""
        if self.closing or self.transport.is_closing():
            return
        self.closing = True
        self._head_done()  # no refusal can follow: nothing more is written
        self.pipeline.clear()
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)
        else:
            self.transport.close()


class HeadWithBody:
    """A response's view of the connection: uvicorn writes a response's head and its body
    in two writes, which on a TCP_NODELAY socket are two sends and two packets, waking the
    client twice. This holds the head until the first body write and sends both as one
    (a webhook answer is one small body: half the sends). Interim 1xx heads pass at once.
    A response sent before its request's body was all in says `connection: close`, on
    every route: the protocol closes that connection after it (`on_response_complete`),
    and a pooled client should not send its next request into it."""

    __slots__ = ("_head", "_passing", "_scope", "_transport")

    def __init__(self, transport: asyncio.Transport, scope: Any) -> None:
        self._transport = transport
        self._scope = scope  # the request's: BODY_RECEIVED once its body is all in
        self._head: bytes | None = None
        self._passing = False

    def write(self, data: bytes) -> None:
        if self._passing or data.startswith(b"HTTP/1.1 1"):
            self._transport.write(data)
        elif self._head is None:
            self._head = data
        else:
            self._passing = True
            self._transport.write(self._final_head() + data)

    def close(self) -> None:
        if self._head is not None:  # a response that ended without a body
            self._transport.write(self._final_head())
        # Through the connection's protocol (found from the transport: a reference held
        # here made each closed connection a reference cycle, left to the rarely run
        # cyclic collector; RSS crept 71 -> 74 MB over a soak), which lingers.
        protocol = self._transport.get_protocol()
        if isinstance(protocol, BoundedHttpProtocol):
            protocol.close_lingering()
        else:  # the connection is gone already
            self._transport.close()

    def _final_head(self) -> bytes:
        head, self._head = self._head or b"", None
        if BODY_RECEIVED in self._scope or b"\r\nconnection: close\r\n" in head.lower():
            return head
        return head[:-2] + b"connection: close\r\n\r\n"

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def protocol_for(settings: Settings) -> type[asyncio.Protocol]:
    """What uvicorn's `http` option takes; a partial of a module-level class, so it
    pickles into `--workers` subprocesses."""
    bounded = functools.partial(
        BoundedHttpProtocol,
        header_timeout=settings.header_timeout_seconds,
        max_header_bytes=settings.max_header_bytes,
    )
    return cast(type[asyncio.Protocol], bounded)
