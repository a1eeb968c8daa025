"""The lean HTTP client's inactivity timeout, against a real asyncio socket server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from power_loop.llm.transports._lean_http import HTTPExchangeError, LeanHTTPClient

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _read_request(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    await reader.readexactly(length)


async def _server(serve: Serve) -> AsyncIterator[str]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.close()


async def _stall_after_first_line(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
    writer.write(b"8\r\ndata: 1\n\r\n")
    await writer.drain()
    await asyncio.sleep(30)  # then silence


async def _answer_slowly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(6):  # a line every 0.1 s: never silent for timeout_s (0.3 s)
        writer.write(b"8\r\ndata: %d\n\r\n" % i)
        await writer.drain()
        await asyncio.sleep(0.1)
    writer.write(b"0\r\n\r\n")
    await writer.drain()


async def test_a_read_silent_for_timeout_s_is_aborted_as_a_timeout() -> None:
    async for url in _server(_stall_after_first_line):
        client = LeanHTTPClient(url, timeout_s=0.3)
        response = await client.post("/chat", b"{}", {"Content-Type": "application/json"})
        lines = []
        started = time.monotonic()
        with pytest.raises(HTTPExchangeError, match=r"within 0\.3s") as info:
            async for line in response.aiter_lines():
                lines.append(line)
        waited = time.monotonic() - started
        assert info.value.timed_out and lines == ["data: 1"]
        assert 0.3 <= waited < 0.3 + 0.5  # timeout_s plus at most a watchdog tick (and slack)
        await client.aclose()


async def test_a_stream_that_keeps_talking_and_a_slow_consumer_never_time_out() -> None:
    async for url in _server(_answer_slowly):
        client = LeanHTTPClient(url, timeout_s=0.3)
        response = await client.post("/chat", b"{}", {})
        lines = []
        async for line in response.aiter_lines():
            lines.append(line)
            await asyncio.sleep(0.4)  # the consumer dawdles: not the server's silence
        assert lines == [f"data: {i}" for i in range(6)]
        assert not client._busy  # the connection went back to the pool: nothing left to watch
        await client.aclose()


async def _silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    await asyncio.sleep(30)


async def _body_until_eof_then_silence(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await _read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\ndata: part\n")  # no length: body ends at EOF
    await writer.drain()
    await asyncio.sleep(30)


async def test_a_request_in_flight_keeps_its_timeout_after_aclose() -> None:
    async for url in _server(_silent):
        client = LeanHTTPClient(url, timeout_s=0.3)
        post = asyncio.ensure_future(client.post("/chat", b"{}", {}))
        await asyncio.sleep(0.05)
        await client.aclose()
        with pytest.raises(HTTPExchangeError) as info:
            await asyncio.wait_for(post, 3)
        assert info.value.timed_out


async def test_a_body_read_to_eof_that_times_out_is_a_timeout_not_a_short_body() -> None:
    async for url in _server(_body_until_eof_then_silence):
        client = LeanHTTPClient(url, timeout_s=0.3)
        response = await client.post("/chat", b"{}", {})
        with pytest.raises(HTTPExchangeError) as info:
            await asyncio.wait_for(response.read(), 3)
        assert info.value.timed_out
        await client.aclose()


async def test_a_dropped_response_stops_the_watchdog() -> None:
    async for url in _server(_answer_slowly):
        client = LeanHTTPClient(url, timeout_s=0.4)
        response = await client.post("/chat", b"{}", {})
        del response  # never read nor closed: nothing waits on that connection
        await asyncio.sleep(0.3)  # past a few ticks (0.05 s)
        assert not client._busy and client._watchdog is None
        await client.aclose()


def test_a_client_reused_on_a_new_event_loop_still_times_out() -> None:
    async def first(client: LeanHTTPClient) -> None:  # a loop that ends with the watchdog armed
        pending = asyncio.ensure_future(client.post("/chat", b"{}", {}))
        await asyncio.sleep(0.01)
        assert not pending.done()

    async def second(client: LeanHTTPClient) -> bool:
        with pytest.raises(HTTPExchangeError) as info:
            await asyncio.wait_for(client.post("/chat", b"{}", {}), 3)
        return info.value.timed_out

    async def main() -> bool:
        async for url in _server(_silent):
            client = LeanHTTPClient(url, timeout_s=0.3)
            await asyncio.get_running_loop().run_in_executor(None, asyncio.run, first(client))
            return await second(client)
        return False

    assert asyncio.run(main())
