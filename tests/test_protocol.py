"""Slow and oversized request heads against a live server, over raw sockets."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send

from service import signing
from service.config import Settings
from service.protocol import BoundedHttpProtocol, protocol_for
from tests.conftest import WEBHOOK, compact_json, free_port, load_fixture
from tests.test_main import cli_env, serving

SECRET = "protocol-secret"
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
MAX_HEADER_BYTES = 4096


@pytest.fixture(scope="module")
def server(database_url: str) -> Iterator[tuple[str, int]]:
    env = cli_env(
        DATABASE_URL=database_url,
        VOUCHERIFY_WEBHOOK_SECRET=SECRET,
        HEADER_TIMEOUT_SECONDS=str(HEADER_TIMEOUT),
        BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        MAX_HEADER_BYTES=str(MAX_HEADER_BYTES),
    )
    with serving(env) as (_, base):
        host, port = base.removeprefix("http://").split(":")
        yield host, int(port)


def _connect(server: tuple[str, int]) -> socket.socket:
    return socket.create_connection(server, timeout=10)


def _read_until_closed(sock: socket.socket) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks), time.monotonic()


def _status_and_body(answer: bytes) -> tuple[int, dict[str, object]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


def _read_head(sock: socket.socket) -> bytes:
    """Bytes up to the end of a response head (and whatever came with it). A head held
    back fails on the socket's 10 s timeout; a connection closed first fails at once."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    return data


def _read_response(sock: socket.socket) -> int:
    """One whole response on a kept-alive connection; its status."""
    head, _, body = _read_head(sock).partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside a response body"
        body += chunk
    return int(head.split(b" ")[1])


def _request(body: bytes, *, keep_alive: bool) -> bytes:
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
        f"x-voucherify-signature: {signing.sign(SECRET, body)}\r\n"
        f"content-length: {len(body)}\r\n"
        f"connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
    )
    return head.encode() + body


def test_headers_that_never_finish_get_408_after_the_header_timeout(
    server: tuple[str, int],
) -> None:
    """Slowloris: a header line every 0.2 s keeps the connection busy, never complete."""
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\n".encode())
        sock.settimeout(0.2)
        answer = b""
        for n in range(50):  # 10 s of trickling at most; the server must cut it well before
            try:
                sock.sendall(f"x-slow-{n}: a\r\n".encode())
                answer += sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        sock.settimeout(10)
        rest, closed = _read_until_closed(sock)
    status, body = _status_and_body(answer + rest)
    assert status == 408
    assert body["key"] == "request_timeout"
    # libuv timers have millisecond resolution: one may fire a hair early by this clock.
    assert HEADER_TIMEOUT - 0.01 <= closed - started < HEADER_TIMEOUT + 5


def test_a_connection_that_sends_nothing_is_closed(server: tuple[str, int]) -> None:
    with _connect(server) as sock:
        started = time.monotonic()
        answer, closed = _read_until_closed(sock)
    assert _status_and_body(answer)[0] == 408
    # libuv timers have millisecond resolution: one may fire a hair early by this clock.
    assert HEADER_TIMEOUT - 0.01 <= closed - started < HEADER_TIMEOUT + 5


def _head_refusals(server: tuple[str, int], status: int) -> float:
    """The server's count of heads refused with `status`, from its /metrics."""
    text = httpx.get(f"http://{server[0]}:{server[1]}/metrics", timeout=5).text
    match = re.search(rf'^voucherify_http_head_refusals_total{{status="{status}"}} (\S+)$',
                      text, re.M)  # fmt: skip
    assert match, "no voucherify_http_head_refusals_total series"
    return float(match[1])


def test_an_endless_header_gets_431_without_waiting_for_its_end(
    server: tuple[str, int],
) -> None:
    """httptools would buffer one header value for ever; the head is cut at the limit,
    and counted in /metrics (no path was read: it is not a delivery)."""
    before = _head_refusals(server, 431)
    with _connect(server) as sock:
        sock.sendall(f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\nx-big: ".encode())
        sent = 0
        while sent < 50 * MAX_HEADER_BYTES and not select.select([sock], [], [], 0.01)[0]:
            sock.sendall(b"a" * 1024)
            sent += 1024
        answer, _ = _read_until_closed(sock)
    status, body = _status_and_body(answer)
    assert status == 431
    assert body["key"] == "headers_too_large"
    assert sent < 50 * MAX_HEADER_BYTES
    assert _head_refusals(server, 431) == before + 1


def test_an_oversized_head_behind_a_pipelined_request_lets_its_answer_out_first(
    server: tuple[str, int],
) -> None:
    """A request, then (same write) the start of a head over the limit: the request is
    answered whole, then the connection closes; a 431 then would half-close in the
    middle of that answer."""
    event = compact_json(load_fixture("customer.created") | {"id": "evcus_protocol_before_431"})
    oversized = f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\nx-big: ".encode() + b"a" * 5000
    with _connect(server) as sock:
        sock.sendall(_request(event, keep_alive=True) + oversized)
        answer, _ = _read_until_closed(sock)
    first, _, rest = answer.partition(b'"outcome":"processed"}')
    assert first.startswith(b"HTTP/1.1 202 ")
    assert first.count(b"HTTP/1.1 ") == 1
    # Read apart from the request (it may come in a later read), the head may still get
    # its own 431, after the answer.
    assert rest == b"" or rest.startswith(b"HTTP/1.1 431 ")


def test_a_large_body_is_not_counted_toward_the_head_pipelined_behind_it(
    server: tuple[str, int],
) -> None:
    """A read that completes one request's head, carries its body (over MAX_HEADER_BYTES
    here) and begins the next head: only head bytes count toward the next head's limit,
    so both requests are answered (the body's bytes once cut the connection at the
    first answer)."""
    first = load_fixture("customer.created") | {"id": "evcus_protocol_large_pipelined"}
    first["data"]["customer"]["metadata"] = {"note": "x" * (2 * MAX_HEADER_BYTES)}
    second = load_fixture("customer.created") | {"id": "evcus_protocol_after_large"}
    large, after = (
        _request(compact_json(first), keep_alive=True),
        _request(compact_json(second), keep_alive=False),
    )
    with _connect(server) as sock:
        # Three reads: the first head's start; the rest of it, its body and the second
        # head's start; the rest. Only the middle one holds bytes of both requests.
        sock.sendall(large[:40])
        time.sleep(0.2)
        sock.sendall(large[40:] + after[:40])
        time.sleep(0.2)
        sock.sendall(after[40:])
        answer, _ = _read_until_closed(sock)
    assert answer.count(b"HTTP/1.1 202 ") == 2, answer[:300]
    assert answer.endswith(b'"event_id":"evcus_protocol_after_large","outcome":"processed"}')


def test_an_oversized_next_head_on_a_kept_alive_connection_gets_431_at_once(
    server: tuple[str, int],
) -> None:
    """The limit holds for a kept-alive connection's next head as for a first one, even
    when the whole oversized head comes in one read (it once went uncounted, and the
    client got a 408 only at the header timeout)."""
    event = compact_json(load_fixture("customer.created") | {"id": "evcus_protocol_next_431"})
    oversized = f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\nx-big: ".encode() + b"a" * 5000
    with _connect(server) as sock:
        sock.sendall(_request(event, keep_alive=True))
        assert _read_response(sock) == 202
        started = time.monotonic()
        sock.sendall(oversized)
        answer, closed = _read_until_closed(sock)
    status, body = _status_and_body(answer)
    assert (status, body["key"]) == (431, "headers_too_large")
    assert closed - started < HEADER_TIMEOUT / 2


def test_a_kept_alive_connection_is_timed_again_for_its_next_request(
    server: tuple[str, int],
) -> None:
    """Quick requests on one connection are served for longer than the header timeout;
    a later request whose head stalls is cut off like a first one."""
    event = compact_json(load_fixture("customer.created") | {"id": "evcus_protocol_keepalive"})
    with _connect(server) as sock:
        deadline = time.monotonic() + HEADER_TIMEOUT * 2
        statuses = []
        while time.monotonic() < deadline:
            sock.sendall(_request(event, keep_alive=True))
            statuses.append(_read_response(sock))
            time.sleep(0.1)
        sock.sendall(f"POST {WEBHOOK} HTTP/1.1\r\nhost: te".encode())
        started = time.monotonic()
        answer, closed = _read_until_closed(sock)
    assert statuses[0] == 202
    assert set(statuses[1:]) == {200}  # the same event again: duplicate
    assert _status_and_body(answer)[0] == 408
    assert HEADER_TIMEOUT * 0.5 <= closed - started < HEADER_TIMEOUT + 5


def test_expect_100_continue_is_answered_before_the_body_is_sent(
    server: tuple[str, int],
) -> None:
    """The interim answer goes out at once, not held back with the final response's head."""
    event = compact_json(load_fixture("customer.created") | {"id": "evcus_protocol_expect"})
    head, _, body = _request(event, keep_alive=False).partition(b"\r\n\r\n")
    with _connect(server) as sock:
        sock.sendall(head + b"\r\nexpect: 100-continue\r\n\r\n")
        interim = _read_head(sock)
        sock.sendall(body)
        answer, _ = _read_until_closed(sock)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert _status_and_body(answer) == (202, {"event_id": "evcus_protocol_expect",
                                              "outcome": "processed"})  # fmt: skip


def test_pipelined_requests_get_whole_responses_in_order(server: tuple[str, int]) -> None:
    """Each response leaves as one write (head with body); two requests sent together
    on one connection get two complete answers, the second a duplicate."""
    event = compact_json(load_fixture("customer.created") | {"id": "evcus_protocol_pipelined"})
    with _connect(server) as sock:
        sock.sendall(_request(event, keep_alive=True) + _request(event, keep_alive=False))
        answer, _ = _read_until_closed(sock)
    first, _, rest = answer.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 202 ")
    assert rest.count(b"HTTP/1.1 200 ") == 1
    assert rest.endswith(b'"outcome":"duplicate"}')


def test_a_body_that_stops_halfway_gets_408_after_the_body_timeout(
    server: tuple[str, int],
) -> None:
    """Pipelined behind a whole request, on one connection: the first is stored, the
    second, stopped halfway, is cut off with 408 once its body is late, and the
    connection closed. (The first's body came whole and is read without a timer,
    `BODY_RECEIVED`; this shows the flag does not pass to the next request.)"""
    whole, cut = (
        compact_json(load_fixture("customer.created") | {"id": f"evcus_protocol_{name}"})
        for name in ("whole", "cut")
    )
    second = _request(cut, keep_alive=True)
    with _connect(server) as sock:
        sock.sendall(_request(whole, keep_alive=True) + second[: len(second) - len(cut) // 2])
        started = time.monotonic()
        assert _read_response(sock) == 202
        answer, closed = _read_until_closed(sock)
    status, body = _status_and_body(answer)
    assert (status, body["key"]) == (408, "request_timeout")
    # The rest of that body cannot be told from a next request: the connection is closed
    # with the answer, not left to uvicorn's keep-alive timeout (5 s).
    assert b"\r\nconnection: close\r\n" in answer.lower()
    # libuv timers have millisecond resolution: one may fire a hair early by this clock.
    assert BODY_TIMEOUT - 0.01 <= closed - started < BODY_TIMEOUT + 4


def test_a_body_over_the_limit_gets_413_and_the_connection_is_closed(
    server: tuple[str, int],
) -> None:
    """Refused on its declared length, its body unread: answered, then closed."""
    with _connect(server) as sock:
        sock.sendall(
            f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            f"content-length: {100 * 2**20}\r\n\r\n".encode()
            + b"{" * 1024
        )
        started = time.monotonic()
        answer, closed = _read_until_closed(sock)
    status, body = _status_and_body(answer)
    assert (status, body["key"]) == (413, "payload_too_large")
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert closed - started < 4  # not uvicorn's keep-alive timeout (5 s)


@pytest.mark.parametrize(
    "head",
    [
        f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\ncontent-type: text/plain\r\n",  # 415
        "GET /healthz HTTP/1.1\r\nhost: test\r\n",  # a route that reads no body
        "POST /v1/exports HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n",  # 401
    ],
)
def test_a_connection_answered_before_its_body_is_in_is_closed_despite_trickling(
    server: tuple[str, int], head: str
) -> None:
    """The rest of an unread body would be read and dropped for as long as it comes, with
    no timer running: a client sending a byte now and then held the connection for ever.
    It is closed after the answer (half-closed at once, the client sees its end)."""
    with _connect(server) as sock:
        sock.sendall(f"{head}content-length: 100000\r\n\r\n".encode() + b"x" * 10)
        answer = _read_head(sock)
        answered = time.monotonic()
        sock.settimeout(0.2)
        closed = None
        while time.monotonic() - answered < 8:  # past uvicorn's 5 s keep-alive timeout
            try:
                sock.sendall(b"x")
                if sock.recv(65536) == b"":
                    closed = time.monotonic()
                    break
            except TimeoutError:
                continue
            except OSError:  # reset once the linger is over
                closed = time.monotonic()
                break
    assert answer.startswith((b"HTTP/1.1 415 ", b"HTTP/1.1 200 ", b"HTTP/1.1 401 "))
    # Said in the answer on every route, so a pooled client sends nothing more on it.
    assert b"\r\nconnection: close\r\n" in answer.lower()
    assert closed is not None
    assert closed - answered < 3


def test_a_client_that_sends_its_whole_refused_body_still_gets_the_answer(
    server: tuple[str, int],
) -> None:
    """Many clients send the whole body before they read. Refused on its declared
    length, the rest of the body is taken and dropped for a while (a lingering close), so
    the sending completes and the 413 is read. (Closed at once with the client's bytes
    unread, the connection is reset: the client's send fails before it reads anything.)"""
    size = 8 * 2**20
    with _connect(server) as sock:
        sock.sendall(
            f"POST {WEBHOOK} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n"
            f"content-length: {size}\r\n\r\n".encode()
        )
        time.sleep(0.2)  # the answer is out before the body is sent
        sock.sendall(b"{" * size)
        answer = _read_head(sock)
    assert answer.startswith(b"HTTP/1.1 413 ")


@pytest.mark.parametrize("method", ["HEAD", "GET"])
def test_a_response_without_a_body_write_is_not_held_back(
    server: tuple[str, int], method: str
) -> None:
    """HEAD answers a head and no body; on a kept-alive connection it must still arrive."""
    with _connect(server) as sock:
        sock.sendall(f"{method} /healthz HTTP/1.1\r\nhost: test\r\n\r\n".encode())
        answer = _read_head(sock)
    assert answer.startswith(b"HTTP/1.1 200 ")


async def test_a_closed_connection_is_freed_without_the_garbage_collector() -> None:
    """The service runs Python's cyclic collector rarely (`GC_THRESHOLDS`), so a closed
    connection must be freed by reference counting alone: its protocol, the last request's
    cycle and its `HeadWithBody` form no reference cycle. (One did, and RSS crept from 71
    to 73-74 MB over 500,000-1,000,000 deliveries in `make bench-soak`.)"""

    async def ok(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})  # fmt: skip
            await send({"type": "http.response.body", "body": b"ok"})

    port = free_port()
    config = uvicorn.Config(ok, port=port, http=protocol_for(Settings()), lifespan="off",
                            log_level="error")  # fmt: skip
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())

    def alive() -> int:
        return sum(isinstance(o, BoundedHttpProtocol) for o in gc.get_objects())

    gc.disable()
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3):
                writer.write(b"POST / HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\nhi")
                await reader.readuntil(b"ok")
            writer.close()
            await writer.wait_closed()
        for _ in range(100):  # the server sees each close a moment later
            if alive() == 0:
                break
            await asyncio.sleep(0.01)
        assert alive() == 0
    finally:
        gc.enable()
        server.should_exit = True
        await serving


async def test_requests_pipelined_behind_an_answer_that_closes_are_not_run() -> None:
    """An answer with `connection: close` (a 408/413 on a body, uvicorn's 500, shutdown)
    ends the connection with a lingering close; requests already read behind it are
    dropped, as a plain close drops them, not started on the half-closed connection
    (where they would run, and their answers fail after the end of data)."""
    calls: list[str] = []

    async def closing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        calls.append(scope["path"])
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-length", b"2"), (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": b"no"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(closing, port=port, http=protocol_for(Settings()),
                                           lifespan="off", log_level="error"))  # fmt: skip
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(1000):
            if server.started:
                break
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(
            f"POST /{n} HTTP/1.1\r\nhost: test\r\ncontent-length: 2\r\n\r\nhi".encode()
            for n in range(3)
        ))  # fmt: skip
        answer = await asyncio.wait_for(reader.read(), 10)  # to the server's end of data
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await serving
    assert answer.count(b"HTTP/1.1 413 ") == 1
    assert calls == ["/0"]
