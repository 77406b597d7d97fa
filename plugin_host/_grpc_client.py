"""What every gRPC client of the host shares: translating grpclib and socket errors at the edge, and unary calls.

Device, CSI, kubelet and driver clients all speak to a plugin over a Unix socket with grpclib and must turn its
failures into :mod:`plugin_host.errors` the same way:

- the socket cannot be reached, or the connection drops → :class:`PluginUnavailableError` naming the plugin;
- a call runs past its deadline → :class:`PluginTimeoutError` (a ``TimeoutError``);
- an error status → :class:`PluginRPCError` (``code`` is the status name), unless the caller maps it itself;
- a reply whose bytes do not decode as the RPC's message → :class:`PluginProtocolError`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from grpclib.client import Channel
from grpclib.const import Cardinality, Status
from grpclib.exceptions import GRPCError, ProtocolError, StreamTerminatedError

from plugin_host._grpc_cancel import native_cancels_undone
from plugin_host.errors import (
    PluginHostError,
    PluginProtocolError,
    PluginRPCError,
    PluginTimeoutError,
    PluginUnavailableError,
)

__all__ = ["ExceptionMapping", "grpc_errors", "map_exceptions", "status_text", "unary_call"]

ExceptionMapping = Mapping[type[Exception], Callable[[Any], PluginHostError]]


@contextmanager
def map_exceptions(mapping: ExceptionMapping) -> Iterator[None]:
    """Re-raise the first matching exception type as the error its factory builds (``raise new from exc``).

    Our own errors pass through untouched; cancellation is not an ``Exception`` and is never caught.
    """
    try:
        yield
    except PluginHostError:
        raise
    except Exception as exc:
        for source, factory in mapping.items():
            if isinstance(exc, source):
                raise factory(exc) from exc
        raise


def status_text(exc: GRPCError) -> str:
    """The status message of a gRPC error, or the status name when the plugin sent none."""
    return exc.message or exc.status.name


def grpc_errors(
    rpc: str,
    where: str,
    timeout: float | None,
    status_error: Callable[[GRPCError], PluginHostError] | None = None,
) -> ExceptionMapping:
    """The translation of one call's failures; ``where`` names the plugin (``"CSI plugin at '/run/x.sock'"``)."""

    def from_status(exc: GRPCError) -> PluginHostError:
        text = status_text(exc)
        if exc.status is Status.DEADLINE_EXCEEDED:
            return PluginTimeoutError(f"{rpc} on {where} missed its deadline: {text}")
        if exc.status is Status.UNAVAILABLE:
            return PluginUnavailableError(f"{where} is unavailable during {rpc}: {text}")
        if status_error is not None:
            return status_error(exc)
        return PluginRPCError(
            f"{rpc} on {where} failed with {exc.status.name}: {text}", code=exc.status.name, rpc_message=exc.message
        )

    def undecodable(exc: Exception) -> PluginHostError:
        # What betterproto raises on bytes that are not the RPC's message (truncated, bad UTF-8, wrong wire types).
        return PluginProtocolError(f"{where} sent a reply to {rpc} that does not decode: {exc!r}")

    # TimeoutError is an OSError: it must come first.
    return {
        GRPCError: from_status,
        TimeoutError: lambda exc: PluginTimeoutError(f"{rpc} on {where} did not finish within {timeout}s"),
        OSError: lambda exc: PluginUnavailableError(f"{where} is unreachable during {rpc}: {exc}"),
        StreamTerminatedError: lambda exc: PluginUnavailableError(f"{where} dropped the call {rpc}: {exc}"),
        ProtocolError: lambda exc: PluginUnavailableError(f"{where} broke the gRPC protocol in {rpc}: {exc}"),
        **dict.fromkeys((EOFError, ValueError, KeyError, AttributeError, OverflowError), undecodable),
    }


async def unary_call(
    channel: Channel,
    rpc: str,
    path: str,
    request: Any,
    reply_type: type[Any],
    *,
    where: str,
    timeout: float | None,  # noqa: ASYNC109 - sent to the plugin as the call's grpc-timeout, not a local wait
    status_error: Callable[[GRPCError], PluginHostError] | None = None,
) -> Any:
    """One unary call with the host's error translation; a reply-less answer is a :class:`PluginProtocolError`."""
    with map_exceptions(grpc_errors(rpc, where, timeout, status_error)), native_cancels_undone():
        async with channel.request(path, Cardinality.UNARY_UNARY, type(request), reply_type, timeout=timeout) as stream:
            await stream.send_message(request, end=True)
            reply = await stream.recv_message()
    if reply is None:
        raise PluginProtocolError(f"{rpc} on {where}: no reply message, expected one")
    return reply
