"""The host's admin socket: newline-delimited JSON over a Unix socket (mode 0600).

A request is one line ``{"method": "status"}``; the answer is one line, ``{"result": ...}`` or ``{"error": "..."}``.
A connection may carry several requests in turn. :class:`AdminServer` serves it, :func:`query_status` asks it.

The ``status`` answer only ever grows: fields are added with defaults, never renamed or removed, and a reader ignores
fields it does not know (so a ``plugin-host status`` of one version reads the answer of a host of another).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketListener, SocketStream, TaskGroup, UNIXSocketStream
from anyio.streams.buffered import BufferedByteReceiveStream
from pydantic import BaseModel, ConfigDict, ValidationError

from plugin_host._json_limits import TooDeepError, loads_bounded
from plugin_host._service import TaskGroupService
from plugin_host._sockets import claim_socket_path, remove_socket_if_ours
from plugin_host._text import clipped
from plugin_host.errors import (
    PluginHostError,
    PluginProtocolError,
    PluginTimeoutError,
    PluginUnavailableError,
)

__all__ = [
    "MAX_ANSWER_LINE",
    "AdminServer",
    "DeviceGroupStatus",
    "DeviceStatus",
    "DriverStatus",
    "EncodedJSON",
    "HostStatus",
    "KubeletExportStatus",
    "KubeletResourceStatus",
    "PluginStatus",
    "TaskEntry",
    "admin_request",
    "query_status",
]

logger = logging.getLogger(__name__)

# A request is one small object; an answer (a whole host's status) may be large. Both nest a few levels only: the
# depth bound keeps json.loads from recursing into a RecursionError on a line of "[[[[...".
MAX_REQUEST_LINE = 64 * 1024
MAX_ANSWER_LINE = 64 << 20
"""The longest answer line a client reads by default (64 MiB): a ``status`` costs about 60 bytes a device, so this
holds a host with 100,000 devices whose descriptions are several hundred characters long, and still bounds what a
hostile process on the socket can make a client buffer. ``admin_request(..., max_answer=)`` sets another bound."""
MAX_DEPTH = 64
_EXAMPLE = '{"method": "status"}'
# A client that connects and never finishes a request must not hold a task forever.
_IDLE_TIMEOUT = 30.0
_REQUEST_TIMEOUT = 10.0

# Read from hosts of other versions: unknown fields of a newer host are ignored, missing ones of an older take defaults.
_FROZEN = ConfigDict(frozen=True, extra="ignore")


# --- what ``status`` answers ------------------------------------------------------------------------------------


class DeviceStatus(BaseModel):
    """One device and its health."""

    model_config = _FROZEN

    id: str
    healthy: bool
    health_description: str = ""


class DeviceGroupStatus(BaseModel):
    """One device group (``vendor/type/name``) of a plugin."""

    model_config = _FROZEN

    id: str
    devices: tuple[DeviceStatus, ...] = ()


class PluginStatus(BaseModel):
    """One plugin: its registration (type, version, socket) and, for device plugins, what the manager sees."""

    model_config = _FROZEN

    name: str
    type: str
    state: str
    """``starting``/``running``/``restarting`` for managed device plugins; ``healthy``/``unhealthy`` for supervised CSI
    plugins (``csi-controller``, ``csi-node``: the CsiManager's last probe, ``last_error`` saying why when unhealthy);
    ``registered`` otherwise; ``disconnected`` for a kubelet-hosted plugin whose ListAndWatch stream ended (it has
    not registered again; ``last_error`` says why)."""
    version: str = ""
    socket_path: str | None = None
    alloc_id: str = ""
    last_error: str | None = None
    groups: tuple[DeviceGroupStatus, ...] = ()
    kubelet_hosted: bool = False
    """A Kubernetes device plugin that registered on the host's kubelet registration socket (``kubelet_server {}``)."""


class DriverStatus(BaseModel):
    """One task driver and its health, as its latest fingerprint says."""

    model_config = _FROZEN

    name: str
    health: str = "unknown"
    """``healthy``/``unhealthy``/``undetected`` as the driver reports it; ``unknown`` before its first fingerprint or
    once its fingerprint stream failed."""
    health_description: str = ""
    """The driver's description of its health, or why the fingerprint stream failed."""


class KubeletResourceStatus(BaseModel):
    """One extended resource the host serves to kubelet (``kubelet {}``) and whether kubelet holds its registration."""

    model_config = _FROZEN

    name: str
    """``<namespace>/<device type>``, as kubelet advertises it."""
    group: str = ""
    """The Nomad device group it serves."""
    plugins: tuple[str, ...] = ()
    """The device plugins providing that group."""
    devices: int = 0
    healthy: int = 0
    registered: bool = False
    socket_path: str = ""


class KubeletExportStatus(BaseModel):
    """The host's device plugins as served to kubelet (``kubelet {}``)."""

    model_config = _FROZEN

    namespace: str
    plugin_dir: str
    resources: tuple[KubeletResourceStatus, ...] = ()


class TaskEntry(BaseModel):
    """One task a task driver runs (or ran) for the host, or a stored task its driver could not recover."""

    model_config = _FROZEN

    id: str
    driver: str
    """The driver's name (for an unrecovered task, the driver that could not recover it)."""
    state: str
    """``running``/``exited``/``unknown`` as the driver reports it, or ``unrecovered``."""
    exit_code: int | None = None
    signal: int = 0
    """The signal that ended the task (0: none)."""
    detail: str = ""
    """The exit error, why recovery failed, or why the driver could not be asked."""


class HostStatus(BaseModel):
    """The whole host at one moment."""

    model_config = _FROZEN

    pid: int
    version: str
    state_file: str
    admin_socket: str
    plugins: tuple[PluginStatus, ...] = ()
    drivers: tuple[str, ...] = ()
    """The task drivers the host runs (their names; ``driver_health`` has their health)."""
    tasks: tuple[TaskEntry, ...] = ()
    driver_health: tuple[DriverStatus, ...] = ()
    """Each task driver and its health, in the order of ``drivers``."""
    kubelet_export: KubeletExportStatus | None = None
    """What ``kubelet {}`` serves to kubelet; None when it is not configured."""
    metrics_urls: tuple[str, ...] = ()
    """Where ``telemetry {}`` serves Prometheus metrics; empty when it is not configured."""


class _StatusAnswer(BaseModel):
    """A successful answer to ``status``."""

    model_config = ConfigDict(extra="forbid")

    result: HostStatus


# --- server -----------------------------------------------------------------------------------------------------


class EncodedJSON(bytes):
    """A method's result already encoded as one JSON value (UTF-8, no newline): the server sends it as it is.

    A large answer (``status`` of 10,000 devices) is encoded in one call of pydantic's serializer instead of being
    dumped to Python objects and encoded again by ``json``.
    """


Method = Callable[[], Awaitable[Any]]


async def _claim(path: Path) -> None:
    await claim_socket_path(
        path,
        what="admin socket",
        in_use=f"plugin-host is already running: a live host answers on admin socket {str(path)!r}; stop it first",
        hint="; set admin_socket to a shorter path",
    )


async def check_not_running(path: str | os.PathLike[str]) -> None:
    """Raise :class:`SocketInUseError` ("already running") when a live host serves the admin socket ``path``."""
    await _claim(Path(path))


class AdminServer(TaskGroupService):
    """Serve ``methods`` (name → coroutine function returning JSON-able data) on a Unix socket.

    Entering claims the path (a stale socket is replaced; a live host raises :class:`SocketInUseError` saying it is
    already running) and starts accepting; leaving stops every connection and removes the socket file.
    """

    def __init__(self, socket_path: str | os.PathLike[str], methods: Mapping[str, Method]) -> None:
        self._path = Path(socket_path)
        self._methods = dict(methods)
        super().__init__()
        self._listener: SocketListener | None = None
        self._inode: int | None = None

    @property
    def socket_path(self) -> Path:
        """Where the server listens."""
        return self._path

    def _service_refused(self, lifecycle: str) -> Exception:
        return RuntimeError(f"this AdminServer on {str(self._path)!r} was already {lifecycle}; create a new one")

    async def _service_prepare(self) -> None:
        await _claim(self._path)
        await anyio.Path(self._path.parent).mkdir(parents=True, exist_ok=True)
        listener = await anyio.create_unix_listener(self._path, mode=0o600)
        self._listener = listener
        self._inode = self._path.stat().st_ino

    async def _service_start(self, tg: TaskGroup) -> None:
        assert self._listener is not None
        tg.start_soon(self._listener.serve, self._handle)
        logger.debug("admin socket listening on %s", self._path)

    async def _service_release(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with anyio.CancelScope(shield=True):
                await listener.aclose()
        self._remove_socket()

    def _remove_socket(self) -> None:
        remove_socket_if_ours(self._path, self._inode)

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            reader = BufferedByteReceiveStream(stream)
            try:
                while True:
                    with anyio.fail_after(_IDLE_TIMEOUT):
                        line = await reader.receive_until(b"\n", MAX_REQUEST_LINE)
                    await stream.send(await self._answer(line))
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError, TimeoutError):
                pass
            except anyio.DelimiterNotFound:
                # The rest of that line is still unread: the connection cannot be resynchronised, so it ends here.
                error = {"error": f"request line longer than {MAX_REQUEST_LINE} bytes; expected one short JSON line"}
                with contextlib.suppress(anyio.BrokenResourceError, OSError):
                    await stream.send(json.dumps(error).encode() + b"\n")
            except OSError as exc:
                logger.debug("admin connection failed: %s", exc)

    async def _answer(self, line: bytes) -> bytes:
        """The answer line (newline included) to one request line."""
        try:
            request = loads_bounded(line, max_depth=MAX_DEPTH)
        except TooDeepError:
            deep = f"request nests deeper than {MAX_DEPTH} levels; expected one line such as {_EXAMPLE}"
            return _line({"error": deep})
        except ValueError:
            return _line({"error": f"request is not JSON; expected one line such as {_EXAMPLE}"})
        method_name = request.get("method") if isinstance(request, dict) else None
        method = self._methods.get(method_name) if isinstance(method_name, str) else None
        if method is None:
            known = ", ".join(sorted(self._methods))
            return _line({"error": f"unknown method {clipped(repr(method_name))}; known methods: {known}"})
        try:
            result = await method()
            if isinstance(result, EncodedJSON):
                return b'{"result":' + result + b"}\n"
            return _line({"result": result})
        except Exception as exc:
            logger.warning("admin method %r failed", method_name, exc_info=True)
            return _line({"error": f"{method_name} failed: {exc}"})


def _line(answer: dict[str, Any]) -> bytes:
    return json.dumps(answer).encode() + b"\n"


# --- client -----------------------------------------------------------------------------------------------------


async def admin_request(socket_path: str | os.PathLike[str], method: str, *, max_answer: int = MAX_ANSWER_LINE) -> Any:
    """Send one request to a host's admin socket and return its ``result``.

    An answer line longer than ``max_answer`` bytes is refused (it is read no further). Raises
    :class:`PluginUnavailableError` when no host answers there, :class:`PluginTimeoutError` after 10 seconds
    (wrap the call in ``anyio.fail_after`` for a shorter bound), :class:`PluginProtocolError` for an answer outside
    the protocol, and :class:`PluginHostError` carrying the host's error message.
    """
    path = Path(socket_path)
    return _decode_answer(path, await _request_line(path, method, max_answer))


async def _request_line(path: Path, method: str, max_answer: int) -> bytes:
    """The answer line to one request (errors as :func:`admin_request`)."""
    try:
        with anyio.fail_after(_REQUEST_TIMEOUT):
            stream: UNIXSocketStream = await anyio.connect_unix(path)
            async with stream:
                await stream.send(json.dumps({"method": method}).encode() + b"\n")
                line = await BufferedByteReceiveStream(stream).receive_until(b"\n", max_answer)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise PluginUnavailableError(
            f"no plugin-host is running: nothing answers on admin socket {str(path)!r}"
            " (start one with `plugin-host run` and the same config)"
        ) from exc
    except TimeoutError as exc:
        raise PluginTimeoutError(
            f"plugin-host on admin socket {str(path)!r} did not answer within {_REQUEST_TIMEOUT}s"
        ) from exc
    except anyio.DelimiterNotFound as exc:
        raise PluginProtocolError(
            f"admin socket {str(path)!r} answered a line longer than {max_answer} bytes; expected one JSON line"
        ) from exc
    except (anyio.EndOfStream, anyio.IncompleteRead) as exc:
        raise PluginProtocolError(f"admin socket {str(path)!r} closed without a complete answer line") from exc
    return line


def _decode_answer(path: Path, line: bytes) -> Any:
    """The ``result`` of an answer line (errors as :func:`admin_request`)."""
    try:
        answer = loads_bounded(line, max_depth=MAX_DEPTH)
    except TooDeepError as exc:
        raise PluginProtocolError(
            f"admin socket {str(path)!r} answered JSON nested deeper than {MAX_DEPTH} levels"
        ) from exc
    except ValueError as exc:
        raise PluginProtocolError(f"admin socket {str(path)!r} answered with a line that is not JSON") from exc
    if not isinstance(answer, dict) or not ("result" in answer or "error" in answer):
        raise PluginProtocolError(
            f"admin socket {str(path)!r} answered {clipped(repr(answer))}; expected an object with result or error"
        )
    if "error" in answer:
        raise PluginHostError(f"plugin-host on {str(path)!r}: {clipped(str(answer['error']), 500)}")
    return answer["result"]


async def query_status(socket_path: str | os.PathLike[str], *, max_answer: int = MAX_ANSWER_LINE) -> HostStatus:
    """Ask the host serving ``socket_path`` for its :class:`HostStatus` (errors and ``max_answer`` as
    :func:`admin_request`)."""
    path = Path(socket_path)
    line = await _request_line(path, "status", max_answer)
    try:
        # A well-formed answer is parsed and validated in one pass of pydantic's JSON parser (itself bounded in depth).
        return _StatusAnswer.model_validate_json(line).result
    except ValidationError:
        pass  # an error, or outside the protocol: the careful path below says which
    result = _decode_answer(path, line)
    try:
        return HostStatus.model_validate(result)
    except ValidationError as exc:
        raise PluginProtocolError(f"admin socket {str(socket_path)!r} answered a malformed status: {exc}") from exc
