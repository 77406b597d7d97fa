"""The machinery under :class:`~plugin_host.csi.CsiClient`: the channel, one call's checks, logging and errors.

Kept apart from the client's long list of RPC methods so each file stays readable.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from grpclib.client import Channel
from grpclib.const import Cardinality
from pydantic import BaseModel, ValidationError

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host._grpc_client import grpc_errors, map_exceptions, unary_call
from plugin_host._metrics import NO_METRICS, Metrics, error_code
from plugin_host._text import truncated
from plugin_host.csi._convert import describe_validation_error, from_wire, to_wire
from plugin_host.csi._rpcs import RPCS, Rpc
from plugin_host.csi._secrets import scrub_exception, secret_values
from plugin_host.errors import (
    ConfigError,
    InvalidRequestError,
    PluginHostError,
    PluginProtocolError,
    PluginUnavailableError,
)

__all__ = ["DEFAULT_TIMEOUT", "CsiCalls"]

# The client's logger, so users configure one name for every CSI call.
logger = logging.getLogger("plugin_host.csi.client")

# Seconds a call may take when neither the client nor the call says otherwise.
DEFAULT_TIMEOUT = 30.0


def _check_timeout(value: object, what: str, error: type[PluginHostError]) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise error(f"{what} is {truncated(value)}, expected a positive number of seconds")
    return float(value)


class CsiCalls:
    """Owns the channel to one CSI plugin and makes checked, logged, error-translated calls on it.

    ``metrics`` (a :class:`~plugin_host.telemetry.Telemetry`'s sink) is told of every call's code and latency.
    """

    def __init__(
        self, socket_path: str | os.PathLike[str], *, timeout: float = DEFAULT_TIMEOUT, metrics: Metrics = NO_METRICS
    ) -> None:
        self._metrics = metrics
        if not os.fspath(socket_path):
            raise ConfigError("CSI plugin socket path is empty, expected the path of a Unix socket")
        self._path = Path(socket_path)
        self._timeout = _check_timeout(timeout, "CsiClient timeout", ConfigError)
        self._channel: Channel | None = None
        self._closed = False

    @property
    def socket_path(self) -> Path:
        """The plugin's socket."""
        return self._path

    @property
    def timeout(self) -> float:
        """The default deadline of a call, in seconds."""
        return self._timeout

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r})"

    async def __aenter__(self) -> Self:
        if self._channel is not None:
            raise RuntimeError(f"CsiClient for {str(self._path)!r} is already open")
        # grpclib connects lazily, on the first call.
        self._channel = Channel(path=os.fspath(self._path))
        self._closed = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the channel; calls in flight and later ones fail with :class:`PluginUnavailableError`. Idempotent."""
        channel, self._channel = self._channel, None
        if channel is not None:
            self._closed = True
            channel.close()

    # --- plumbing -------------------------------------------------------------------------------------------------

    @property
    def _where(self) -> str:
        return f"CSI plugin at {str(self._path)!r}"

    def _require_channel(self) -> Channel:
        if self._channel is None:
            if self._closed:
                # A dispensed client outlived its channel: the caller must fetch the plugin's client again.
                raise PluginUnavailableError(
                    f"{self._where}: the client was closed (the plugin was deregistered or the host stopped);"
                    " dispense a new client"
                )
            raise RuntimeError(f"CsiClient for {str(self._path)!r} is not open; use it with 'async with'")
        return self._channel

    def _request(self, rpc: Rpc, fields: Mapping[str, Any]) -> BaseModel:
        given = {name: value for name, value in fields.items() if value is not None}
        try:
            return rpc.request.model_validate(given)
        except ValidationError as exc:
            problems = "; ".join(describe_validation_error(exc))
            raise InvalidRequestError(f"{rpc.name} request to {self._where}: {problems}") from None

    def _deadline(self, rpc: Rpc, timeout: float | None) -> float:
        if timeout is None:
            return self._timeout
        return _check_timeout(timeout, f"{rpc.name} timeout", InvalidRequestError)

    def _reply(self, rpc: Rpc, message: Any) -> Any:
        try:
            return from_wire(message, rpc.reply)
        except ValidationError as exc:
            problems = "; ".join(describe_validation_error(exc))
            raise PluginProtocolError(f"{rpc.name} reply from {self._where} is out of spec: {problems}") from None

    async def _call(self, rpc_name: str, requested_timeout: float | None, /, **fields: Any) -> Any:
        rpc = RPCS[rpc_name]
        request = self._request(rpc, fields)
        deadline = self._deadline(rpc, requested_timeout)
        channel = self._require_channel()
        logger.debug("CSI %s to %s (deadline %ss): %r", rpc.name, self._path, deadline, request)
        started = time.perf_counter()
        try:
            reply = await unary_call(
                channel,
                rpc.name,
                rpc.path,
                to_wire(request, rpc.wire_request),
                rpc.wire_reply,
                where=self._where,
                timeout=deadline,
            )
        except PluginHostError as exc:
            self._metrics.rpc("csi", rpc.name, error_code(exc), time.perf_counter() - started)
            scrub_exception(exc, secret_values(request))
            raise
        self._metrics.rpc("csi", rpc.name, "OK", time.perf_counter() - started)
        return self._reply(rpc, reply)

    async def _stream(self, rpc_name: str, requested_timeout: float | None, /, **fields: Any) -> AsyncIterator[Any]:
        rpc = RPCS[rpc_name]
        request = self._request(rpc, fields)
        deadline = self._deadline(rpc, requested_timeout)
        channel = self._require_channel()
        logger.debug("CSI %s to %s (deadline %ss): %r", rpc.name, self._path, deadline, request)
        wire_request = to_wire(request, rpc.wire_request)
        try:
            with map_exceptions(grpc_errors(rpc.name, self._where, deadline)), native_cancels_undone():
                async with channel.request(
                    rpc.path, Cardinality.UNARY_STREAM, rpc.wire_request, rpc.wire_reply, timeout=deadline
                ) as stream:
                    await stream.send_message(wire_request, end=True)
                    async for message in stream:
                        yield self._reply(rpc, message)
        except PluginHostError as exc:
            self._metrics.rpc("csi", rpc.name, error_code(exc), None)
            scrub_exception(exc, secret_values(request))
            raise
        self._metrics.rpc("csi", rpc.name, "OK", None)
