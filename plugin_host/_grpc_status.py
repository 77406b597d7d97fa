"""gRPC status details without googleapis-common-protos: the ``grpc-status-details-bin`` trailer.

A server puts a serialised ``google.rpc.Status`` there whose ``details`` are ``google.protobuf.Any`` messages; Go's
``status.WithDetails`` / ``st.Details()`` write and read it. Nomad's drivers use it to mark an error as recoverable
(``hashicorp.nomad.plugins.shared.structs.RecoverableError``). :class:`StatusDetailsCodec` does the same with our
betterproto messages, for the types in :data:`DETAIL_TYPES`; every server and driver client of the host uses it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import betterproto
from betterproto.lib.google.protobuf import Any as AnyMessage
from grpclib.const import Status
from grpclib.encoding.base import StatusDetailsCodecBase

from plugin_host._proto.google import rpc as wire_rpc
from plugin_host._proto.hashicorp.nomad.plugins.shared import structs as wire_structs

__all__ = ["DETAIL_TYPES", "TYPE_URL_PREFIX", "StatusDetailsCodec", "UnknownDetail"]

logger = logging.getLogger(__name__)

TYPE_URL_PREFIX = "type.googleapis.com/"

# Full protobuf names of the detail messages we send and understand.
DETAIL_TYPES: dict[type[betterproto.Message], str] = {
    wire_structs.RecoverableError: "hashicorp.nomad.plugins.shared.structs.RecoverableError",
}
_BY_NAME = {name: cls for cls, name in DETAIL_TYPES.items()}


class UnknownDetail:
    """A detail of a type we do not know, kept by its type URL (and bytes) so nothing is lost silently."""

    __slots__ = ("type_url", "value")

    def __init__(self, type_url: str, value: bytes) -> None:
        self.type_url = type_url
        self.value = value

    def __repr__(self) -> str:
        return f"UnknownDetail({self.type_url!r}, {len(self.value)} bytes)"


class StatusDetailsCodec(StatusDetailsCodecBase):
    """Encode betterproto detail messages into ``google.rpc.Status``, and back."""

    def encode(self, status: Status, message: str | None, details: Sequence[object]) -> bytes:
        packed = []
        for detail in details:
            if isinstance(detail, UnknownDetail):  # passed through as it came
                packed.append(AnyMessage(type_url=detail.type_url, value=detail.value))
                continue
            name = DETAIL_TYPES.get(type(detail)) if isinstance(detail, betterproto.Message) else None
            if name is None or not isinstance(detail, betterproto.Message):
                # Raising here would lose the status itself (grpclib encodes it while answering): drop the detail.
                logger.warning("status detail of type %s has no known protobuf name; not sent", type(detail).__name__)
                continue
            packed.append(AnyMessage(type_url=TYPE_URL_PREFIX + name, value=bytes(detail)))
        return bytes(wire_rpc.Status(code=status.value, message=message or "", details=packed))

    def decode(self, status: Status, message: str | None, data: bytes) -> list[Any]:
        decoded: list[Any] = []
        try:
            parsed = wire_rpc.Status().parse(data)
        except Exception:
            # A broken trailer must not hide the status itself.
            return [UnknownDetail("", data)]
        for detail in parsed.details:
            # Go accepts any host before the last '/'; so do we.
            cls = _BY_NAME.get(detail.type_url.rpartition("/")[2])
            if cls is None:
                decoded.append(UnknownDetail(detail.type_url, detail.value))
                continue
            try:
                decoded.append(cls().parse(detail.value))
            except Exception:
                decoded.append(UnknownDetail(detail.type_url, detail.value))
        return decoded
