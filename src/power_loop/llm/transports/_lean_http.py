"""A lean HTTP/1.1 exchange for the transports' hot path: one POST, JSON or SSE back.

Why it exists: the SDKs' HTTP stack (httpx, h11, anyio) costs ~0.6 ms CPU per call, more
than a whole durable send of hand-written code. The transports keep the official SDK
client for everything else — base URL, auth and default headers, body serialisation,
error classes — and use this only to move bytes: keep-alive connections on asyncio
streams, TLS, Content-Length and chunked bodies, line iteration for SSE, an inactivity
timeout (a read waiting longer than ``timeout_s`` aborts its connection; one watchdog
timer per client checks the connections in use, so a read costs no timer). It never
follows redirects and never uses a proxy: transports fall back to the SDK's own client
when a proxy is configured in the environment.

Invariants: a connection returns to the pool only after its response was read to the
end; a request on a reused connection that finds it closed before any response byte is
retried once on a fresh connection; every failure is ``HTTPExchangeError`` (transport
level: connect, reset, timeout) — HTTP error statuses are ordinary responses.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

_MAX_HEADER_BYTES = 1 << 20


class HTTPExchangeError(Exception):
    """The exchange failed below HTTP: connect, reset, truncated body or timeout."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        self.timed_out = timed_out
        super().__init__(message)


def proxy_configured(url: str) -> bool:
    """True when the environment routes ``url`` through a proxy (then use the SDK client)."""
    parts = urlsplit(url)
    proxies = getproxies()
    if not (proxies.get(parts.scheme) or proxies.get("all")):
        return False
    return not proxy_bypass(parts.hostname or "")


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi  # the SDKs' own CA bundle (a dependency of httpx)

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:
        return ssl.create_default_context()


class _Conn:
    __slots__ = ("deadline", "reader", "reused", "timed_out", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reused = False
        self.deadline = math.inf
        """``time.monotonic()`` by which the read in progress must get data (inf: none waits)."""
        self.timed_out = False

    def close(self) -> None:
        self.writer.close()


class LeanResponse:
    """A response whose body is either read (``content``) or iterated (``aiter_lines``)."""

    def __init__(self, client: LeanHTTPClient, conn: _Conn, status_code: int, headers: dict[str, str]) -> None:
        self._client = client
        self._conn: _Conn | None = conn
        self.status_code = status_code
        self.headers = headers
        self.content = b""
        self._chunked = headers.get("transfer-encoding", "").lower().endswith("chunked")
        length = headers.get("content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        self._keep_alive = headers.get("connection", "").lower() != "close"

    async def read(self) -> bytes:
        """Read the whole body into ``content``."""
        conn = self._require()
        guard = self._client.guard
        try:
            if self._length is not None:
                self.content = await guard(conn, conn.reader.readexactly(self._length))
            elif self._chunked:
                parts = []
                while True:
                    chunk = await self._next_chunk(conn)
                    if not chunk:
                        break
                    parts.append(chunk)
                self.content = b"".join(parts)
            else:
                self.content = await guard(conn, conn.reader.read())
                self._keep_alive = False
        except asyncio.IncompleteReadError as exc:
            self._discard()
            raise HTTPExchangeError(f"response body cut off after {len(exc.partial)} bytes") from exc
        except BaseException:
            self._discard()
            raise
        self._release()
        return self.content

    async def _next_chunk(self, conn: _Conn) -> bytes:
        guard = self._client.guard
        size_line = await guard(conn, conn.reader.readuntil(b"\r\n"))
        try:
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        except ValueError as exc:
            raise HTTPExchangeError(f"malformed chunk size {size_line[:40]!r}") from exc
        if size == 0:
            while (await guard(conn, conn.reader.readuntil(b"\r\n"))) != b"\r\n":
                pass  # trailers
            return b""
        data = await guard(conn, conn.reader.readexactly(size + 2))
        return data[:-2]

    async def aiter_lines(self) -> AsyncIterator[str]:
        """Decoded lines of the body (SSE), without line endings."""
        conn = self._require()
        guard = self._client.guard
        buffer = b""
        try:
            while True:
                if self._chunked:
                    data = await self._next_chunk(conn)
                elif self._length is not None:
                    if self._length == 0:
                        data = b""
                    else:
                        data = await guard(conn, conn.reader.read(min(self._length, 65536)))
                        if not data:
                            raise HTTPExchangeError("stream cut off before its declared length")
                        self._length -= len(data)
                else:
                    data = await guard(conn, conn.reader.read(65536))
                    self._keep_alive = False
                if not data:
                    break
                buffer += data
                if b"\n" in buffer:
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        yield line.rstrip(b"\r").decode("utf-8")
            if buffer:
                yield buffer.rstrip(b"\r").decode("utf-8")
        except asyncio.IncompleteReadError as exc:
            self._discard()
            raise HTTPExchangeError("stream cut off mid-chunk") from exc
        except BaseException:
            self._discard()
            raise
        self._release()

    async def aclose(self) -> None:
        """Drop the connection unless the body was consumed (then it is already back)."""
        if self._conn is not None:
            self._discard()

    def _require(self) -> _Conn:
        if self._conn is None:
            raise HTTPExchangeError("response body already consumed")
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.checkin(conn, keep=self._keep_alive)

    def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._client.forget(conn)
            conn.close()


class LeanHTTPClient:
    """Keep-alive HTTP/1.1 connections to one origin (bound to the event loop that uses it)."""

    def __init__(self, base_url: str, *, timeout_s: float, max_idle: int = 256) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported base URL {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self._ssl = _ssl_context() if parts.scheme == "https" else None
        self._idle: list[_Conn] = []
        self._busy: set[_Conn] = set()
        """Connections checked out (a request or its response in progress): what the watchdog checks."""
        self._watchdog: asyncio.TimerHandle | None = None
        self._watchdog_loop: asyncio.AbstractEventLoop | None = None
        self._tick_s = min(1.0, timeout_s / 8)
        """Watchdog period: a timed-out read is aborted within ``timeout_s + tick``."""
        self._heads: dict[tuple[str, tuple[tuple[str, str], ...]], bytes] = {}
        self._max_idle = max_idle
        self._closed = False

    async def guard(self, conn: _Conn, awaitable: Awaitable[bytes]) -> bytes:
        """Await one read; the watchdog aborts the socket after ``timeout_s`` without data.

        (A deadline on the connection costs one clock read; a timer handle per read, or
        ``asyncio.wait_for``, which starts a task, would cost far more per streamed chunk.)
        """
        conn.deadline = time.monotonic() + self.timeout_s
        if self._watchdog is None or conn not in self._busy:
            self._watch(conn)
        try:
            data = await awaitable
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if conn.timed_out:
                raise self._timed_out() from exc
            raise
        finally:
            conn.deadline = math.inf
        if conn.timed_out:  # a read until EOF ends "cleanly" when the watchdog aborts it
            raise self._timed_out()
        return data

    def _timed_out(self) -> HTTPExchangeError:
        return HTTPExchangeError(f"no data from {self.host}:{self.port} within {self.timeout_s}s", timed_out=True)

    def _watch(self, conn: _Conn) -> None:
        """Have the watchdog look at ``conn`` (armed on the running loop when it is not)."""
        self._busy.add(conn)
        loop = asyncio.get_running_loop()
        if self._watchdog is None or self._watchdog_loop is not loop:
            self._watchdog_loop = loop  # a handle of an earlier, closed loop never fires: replace it
            self._watchdog = loop.call_later(self._tick_s, self._sweep)

    def _sweep(self) -> None:
        """Abort every read past its deadline; forget connections not reading (they re-enter
        with their next read); re-arm while any is watched."""
        now = time.monotonic()
        for conn in list(self._busy):
            if conn.writer.is_closing() or conn.deadline == math.inf:
                self._busy.discard(conn)
            elif conn.deadline <= now:
                conn.timed_out = True
                self._busy.discard(conn)
                conn.writer.transport.abort()
        self._watchdog = None
        if self._busy:
            self._watchdog = asyncio.get_running_loop().call_later(self._tick_s, self._sweep)

    async def _connect(self) -> _Conn:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port, ssl=self._ssl, limit=_MAX_HEADER_BYTES),
                self.timeout_s)
        except asyncio.TimeoutError as exc:
            raise HTTPExchangeError(f"connecting to {self.host}:{self.port} timed out", timed_out=True) from exc
        except OSError as exc:
            raise HTTPExchangeError(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return _Conn(reader, writer)

    def forget(self, conn: _Conn) -> None:
        """Stop watching a connection that is being dropped."""
        self._busy.discard(conn)

    def checkin(self, conn: _Conn, *, keep: bool) -> None:
        """Return a connection whose response was fully read."""
        self._busy.discard(conn)
        if keep and not self._closed and len(self._idle) < self._max_idle and not conn.writer.is_closing():
            conn.reused = True
            self._idle.append(conn)
        else:
            conn.close()

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> LeanResponse:
        """Send one POST; return once the status line and headers arrived."""
        key = (path, tuple(headers.items()))
        head = self._heads.get(key)
        if head is None:
            lines = [f"POST {self.base_path}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"]
            lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
            head = self._heads[key] = "".join(lines).encode("latin-1")
        payload = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        for attempt in (0, 1):
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                conn.writer.write(payload)
                raw = await self.guard(conn, conn.reader.readuntil(b"\r\n\r\n"))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                conn.close()
                if conn.reused and attempt == 0 and not getattr(exc, "partial", b""):
                    continue  # the server closed an idle keep-alive connection: once more, fresh
                raise HTTPExchangeError(f"connection to {self.host}:{self.port} dropped: {exc!r}") from exc
            except asyncio.LimitOverrunError as exc:
                conn.close()
                raise HTTPExchangeError("response headers too large") from exc
            except BaseException:
                conn.close()
                raise
            return self._parse_head(conn, raw)
        raise AssertionError("unreachable")  # pragma: no cover

    def _parse_head(self, conn: _Conn, raw: bytes) -> LeanResponse:
        lines = raw.decode("latin-1").split("\r\n")
        try:
            status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError) as exc:
            conn.close()
            raise HTTPExchangeError(f"malformed status line {lines[0]!r}") from exc
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        return LeanResponse(self, conn, status, headers)

    async def aclose(self) -> None:
        """Close the idle connections; reads still in flight keep their timeout."""
        self._closed = True
        if self._watchdog is not None and not self._busy:
            self._watchdog.cancel()
            self._watchdog = None
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
