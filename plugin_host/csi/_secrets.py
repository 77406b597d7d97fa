"""CSI secrets: which request fields carry credentials, a mapping type that never shows its values, and scrubbing.

The spec marks credential fields with the ``csi_secret`` field option. betterproto drops field options from the
generated code, so :data:`SECRET_FIELDS` lists them explicitly; ``tests/test_csi_secrets.py`` compiles
``proto/csi.proto`` and checks the table against the options in its descriptor, so the two cannot drift.

Values never reach a log line, a repr or an error message: :class:`Secrets` prints its keys with ``'***'`` for every
value (``secrets={'password': '***'}``), serializes to JSON the same way, and :func:`scrub` replaces the values
wherever a plugin echoes them back in a status message, in every form an echo gives them (:func:`secret_forms`:
raw, repr/ascii/JSON-escaped, percent-encoded as ``grpc-message`` is, the repr of their UTF-8 bytes).
"""

from __future__ import annotations

import contextlib
import json
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

__all__ = ["REDACTED", "SECRET_FIELDS", "Secrets", "scrub", "scrub_exception", "secret_forms", "secret_values"]

REDACTED = "***"

# csi.v1 message name → its fields marked [(csi_secret) = true] in csi.proto v1.12.0.
SECRET_FIELDS: Mapping[str, frozenset[str]] = {
    "CreateVolumeRequest": frozenset({"secrets"}),
    "DeleteVolumeRequest": frozenset({"secrets"}),
    "ControllerPublishVolumeRequest": frozenset({"secrets"}),
    "ControllerUnpublishVolumeRequest": frozenset({"secrets"}),
    "ValidateVolumeCapabilitiesRequest": frozenset({"secrets"}),
    "ControllerModifyVolumeRequest": frozenset({"secrets"}),
    "CreateSnapshotRequest": frozenset({"secrets"}),
    "DeleteSnapshotRequest": frozenset({"secrets"}),
    "ListSnapshotsRequest": frozenset({"secrets"}),
    "GetSnapshotRequest": frozenset({"secrets"}),
    "ControllerExpandVolumeRequest": frozenset({"secrets"}),
    "NodeStageVolumeRequest": frozenset({"secrets"}),
    "NodePublishVolumeRequest": frozenset({"secrets"}),
    "NodeExpandVolumeRequest": frozenset({"secrets"}),
    "CreateVolumeGroupSnapshotRequest": frozenset({"secrets"}),
    "DeleteVolumeGroupSnapshotRequest": frozenset({"secrets"}),
    "GetVolumeGroupSnapshotRequest": frozenset({"secrets"}),
    "GetMetadataAllocatedRequest": frozenset({"secrets"}),
    "GetMetadataDeltaRequest": frozenset({"secrets"}),
}


class Secrets(Mapping[str, str]):
    """A read-only ``str → str`` mapping of credentials whose repr, str and JSON form hide every value.

    Read a value explicitly (``secrets["password"]``, ``dict(secrets)``); nothing else shows one.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> None:
        self._values: dict[str, str] = dict(values)

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return repr(self.redacted())

    __str__ = __repr__

    def redacted(self) -> dict[str, str]:
        """The keys, each with ``'***'`` as its value."""
        return dict.fromkeys(self._values, REDACTED)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        mapping = core_schema.dict_schema(core_schema.str_schema(), core_schema.str_schema())
        return core_schema.no_info_after_validator_function(
            cls,
            mapping,
            serialization=core_schema.plain_serializer_function_ser_schema(
                _serialize, info_arg=True, when_used="always"
            ),
        )


def _serialize(value: Secrets, info: core_schema.SerializationInfo) -> Any:
    # Python mode keeps the redacting object (model_dump() is safe to log); JSON never carries a value.
    return value.redacted() if info.mode_is_json() else value


def secret_values(request: object) -> list[str]:
    """The secret values a request model carries (every value of each of its :class:`Secrets` fields)."""
    fields = getattr(type(request), "model_fields", {})
    return [value for name in fields if isinstance(s := getattr(request, name), Secrets) for value in s.values()]


def _quoted_inner(value: str | bytes, show: Callable[[object], str] = repr) -> set[str]:
    # The value as it reads between the quotes of a repr, in both quote styles: repr picks the style from the whole
    # string the secret is part of (single quotes, an inner ' escaped, unless that string has a ' and no ").
    single = show('"' + value)[2:-1] if isinstance(value, str) else show(b'"' + value)[3:-1]
    return {single, single.replace("\\'", "'")}


def secret_forms(value: str) -> set[str]:
    """Every form ``value`` takes when it is echoed: raw; between the quotes of a ``repr()`` or ``ascii()`` (either
    quote style; escapes such as ``\\n`` and doubled backslashes); of the repr of its UTF-8 bytes (how hpack logs a
    header); of ``json.dumps`` (``\\"``, ``\\u00e9``); percent-encoded as a ``grpc-message`` travels on the wire
    (and fully percent-encoded, upper- and lower-case); and through the ``unicode_escape`` codec."""
    if not value:
        return set()
    encoded = value.encode("utf-8", "surrogatepass")
    forms = {value, value.encode("unicode_escape").decode("ascii")}
    forms |= _quoted_inner(value) | _quoted_inner(value, ascii) | _quoted_inner(encoded)
    forms |= {json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    # gRPC's percent-encoding (grpc-go's encodeGrpcMessage, grpclib's encode_grpc_message): bytes outside
    # 0x20-0x7E and '%' become %XX.
    grpc = "".join(chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in encoded)
    every = "".join(f"%{b:02X}" for b in encoded)
    forms |= {grpc, every, every.lower()}
    forms |= {urllib.parse.quote(value, safe=""), urllib.parse.quote_plus(value, safe="")}
    # A form made only of the marker's characters would be found again in every replacement.
    return {form for form in forms if form.strip(REDACTED[0])}


def scrub(text: str, values: Iterable[str]) -> str:
    """``text`` with every form of every secret value (see :func:`secret_forms`) replaced by ``'***'``, longest
    first, until none is left (a replacement can complete another occurrence)."""
    forms = sorted({form for value in values for form in secret_forms(value)}, key=len, reverse=True)
    changed = True
    while changed:
        changed = False
        for form in forms:
            if form in text:
                text = text.replace(form, REDACTED)
                changed = True
    return text


def scrub_exception(exc: BaseException, values: Iterable[str]) -> None:
    """Scrub secret values from the string arguments (and message attributes) of ``exc`` and its causes, in place.

    A plugin may echo a request's secrets in its error status, and a plugin served by
    :class:`~plugin_host.csi.CsiPluginServer` may raise an exception quoting them; neither the exception nor the
    one it was raised from may carry them into a log line or a status message.
    """
    secret_values = [v for v in values if v]
    if not secret_values:
        return
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.args = tuple(scrub(arg, secret_values) if isinstance(arg, str) else arg for arg in current.args)
        # Besides args: what grpclib's and our errors carry, and what an OSError prints instead of its args.
        for attr in ("rpc_message", "message", "details", "strerror", "filename", "filename2"):
            value = getattr(current, attr, None)
            if isinstance(value, str):
                with contextlib.suppress(AttributeError):  # a read-only property: nothing we can scrub
                    setattr(current, attr, scrub(value, secret_values))
        current = current.__cause__ or current.__context__
