"""Observing the RPCs a grpclib service serves: each handler timed and counted by its status code."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from grpclib.const import Cardinality, Handler
from grpclib.exceptions import GRPCError

from plugin_host._metrics import Metrics

__all__ = ["observed_handlers"]


def observed_handlers(handlers: Mapping[str, Handler], service: str, metrics: Metrics) -> dict[str, Handler]:
    """``handlers`` (a service's ``__mapping__``) with each call reported to ``metrics`` under ``service``.

    Unary calls report their latency; streams report only how they ended (their length is a lifetime, not a
    latency). With the no-op sink the handlers are returned as they are: nothing is added to a call.
    """
    if not metrics.enabled:
        return dict(handlers)
    return {path: _observed(path, handler, service, metrics) for path, handler in handlers.items()}


def _observed(path: str, handler: Handler, service: str, metrics: Metrics) -> Handler:
    rpc = path.rsplit("/", 1)[-1]
    func = handler.func
    timed = handler.cardinality is Cardinality.UNARY_UNARY

    async def observe(stream: Any) -> None:
        started = time.perf_counter()
        code = "OK"
        try:
            await func(stream)
        except GRPCError as exc:
            code = exc.status.name
            raise
        except Exception:
            code = "UNKNOWN"  # what grpclib answers for an unexpected exception
            raise
        except BaseException:
            code = "CANCELLED"  # the client went away or the server is stopping
            raise
        finally:
            metrics.rpc(service, rpc, code, time.perf_counter() - started if timed else None)

    return Handler(observe, handler.cardinality, handler.request_type, handler.reply_type)
