"""A minimal HTTP/1.1 listener for ``GET /metrics``: one request per connection, rendered on the event loop.

prometheus_client ships its own servers (``start_http_server``, WSGI/ASGI apps), but they run collectors in another
thread, while our collectors read state owned by the event loop; and the host must own what it starts (an
``async with`` that stops it, no threads). So the exposition is rendered here, in the loop, on each scrape.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup

from plugin_host._service import TaskGroupService

__all__ = ["MetricsServer", "Renderer"]

logger = logging.getLogger(__name__)

Renderer = Callable[[str], tuple[bytes, str]]
"""Renders the exposition for an ``Accept`` header: the body and its content type."""

METRICS_PATH = "/metrics"
# A scrape request is a request line and a few headers; anything longer is not a scraper.
_MAX_HEAD = 16 * 1024
# A client gets this long to send its request and take the reply: a stalled client must not hold a slot.
_CLIENT_TIMEOUT = 10.0
# Connections served at once; more are closed at once (scrapers retry, a flood cannot exhaust the host).
_MAX_CONNECTIONS = 32

_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 500: "Internal Server Error"}


class MetricsServer(TaskGroupService):
    """Serves ``render``'s output on ``GET /metrics`` at ``host:port`` for the lifetime of an ``async with`` block.

    Port 0 binds a free port (see :attr:`addresses`). A host name binds every address it resolves to.
    """

    def __init__(self, host: str, port: int, render: Renderer) -> None:
        super().__init__()
        self._host = host
        self._port = port
        self._render = render
        self._listeners: list[SocketListener] = []
        self._active = 0

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        """The (host, port) pairs listened on (empty when not serving)."""
        out = []
        for listener in self._listeners:
            address = listener.extra(SocketAttribute.local_address)
            if isinstance(address, tuple):
                out.append((str(address[0]), int(address[1])))
        return tuple(out)

    async def _service_prepare(self) -> None:
        multi = await anyio.create_tcp_listener(local_host=self._host, local_port=self._port)
        self._listeners = [listener for listener in multi.listeners if isinstance(listener, SocketListener)]

    async def _service_start(self, tg: TaskGroup) -> None:
        for listener in self._listeners:
            tg.start_soon(self._accept, listener, tg)
        logger.info("serving metrics on %s", ", ".join(f"http://{_url_host(h)}:{p}/metrics" for h, p in self.addresses))

    async def _service_release(self) -> None:
        with anyio.CancelScope(shield=True):
            for listener in self._listeners:
                await listener.aclose()
        self._listeners = []

    async def _accept(self, listener: SocketListener, tg: TaskGroup) -> None:
        while True:
            try:
                stream = await listener.accept()
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except OSError as exc:
                # Out of file descriptors and the like: metrics must never take the host down; try again shortly.
                logger.warning("metrics listener: accept failed: %s", exc)
                await anyio.sleep(0.5)
                continue
            if self._active >= _MAX_CONNECTIONS:
                await stream.aclose()
                continue
            self._active += 1
            tg.start_soon(self._serve_one, stream)

    async def _serve_one(self, stream: SocketStream) -> None:
        try:
            async with stream:
                with anyio.move_on_after(_CLIENT_TIMEOUT):
                    head = await _read_head(stream)
                    if head is not None:
                        await stream.send(self._respond(head))
        except (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream) as exc:
            logger.debug("metrics connection ended early: %r", exc)
        finally:
            self._active -= 1

    def _respond(self, head: bytes) -> bytes:
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            return _response(400, b"malformed request line\n")
        method, target, _ = parts
        if target.split("?", 1)[0] != METRICS_PATH:
            return _response(404, b"not found: metrics are served at /metrics\n")
        if method not in ("GET", "HEAD"):
            return _response(405, b"only GET and HEAD\n", extra=(("Allow", "GET, HEAD"),))
        accept = ""
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "accept":
                accept = value.strip()
        try:
            body, content_type = self._render(accept)
        except Exception:
            logger.warning("rendering the metrics failed", exc_info=True)
            return _response(500, b"rendering the metrics failed; see the host's log\n")
        return _response(200, body, content_type=content_type, head_only=method == "HEAD")


async def _read_head(stream: SocketStream) -> bytes | None:
    """The request line and headers, or None when the client sent too much or went away first."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > _MAX_HEAD:
            await stream.send(_response(400, b"request head too large\n"))
            return None
        try:
            data += await stream.receive()
        except anyio.EndOfStream:
            return None
    return data.split(b"\r\n\r\n", 1)[0]


def _response(
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    extra: tuple[tuple[str, str], ...] = (),
    head_only: bool = False,
) -> bytes:
    headers = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *(f"{name}: {value}" for name, value in extra),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1") + (b"" if head_only else body)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
