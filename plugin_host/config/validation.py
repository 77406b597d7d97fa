"""Turn pydantic validation failures into :class:`ConfigError` messages a person can act on.

The message names the source (file or "fs-device config"), the key path and the value, and for an unknown key
lists the keys that are allowed at that level. Values are truncated (:func:`plugin_host._text.truncated`), and the
value of a secret field is never shown, only its type and size: a field is secret when it is left out of the repr
(``Field(repr=False)``: environments, user data, commands) or typed as pydantic's ``SecretStr``/``SecretBytes``
(passwords). pydantic's own error text is no safer (it prints ``input_value=...``), so config models hide the input
in it too (``hide_input_in_errors``): the ``ValidationError`` chained to our :class:`ConfigError` shows no value.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar
from typing import Annotated, Any, Self, get_args

import msgpack
from pydantic import AfterValidator, BaseModel, ConfigDict, SecretBytes, SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from plugin_host._text import shape, truncated
from plugin_host.errors import ConfigError

__all__ = [
    "CommandArgument",
    "ConfigModel",
    "ConfigPath",
    "allowed_keys",
    "config_error_from_validation",
    "decode_msgpack_config",
    "is_secret_field",
    "msgpack_text",
    "without_nulls",
]


def _no_nul(what: str) -> AfterValidator:
    def check(value: str) -> str:
        if "\x00" in value:
            # Raised as a pydantic error (not a ConfigError) so the message gets the key's full path
            # (``kubelet_server.plugin_dir``), which only pydantic knows.
            raise PydanticCustomError("nul_byte", f"contains a NUL byte, which {what} cannot hold")
        return value

    return AfterValidator(check)


ConfigPath = Annotated[str, _no_nul("a file path")]
"""A filesystem path in a config: every path key uses it, so a NUL byte is a ConfigError naming the key instead of
a ``ValueError: embedded null byte`` from deep inside ``os`` when the path is first used."""

CommandArgument = Annotated[str, _no_nul("a command-line argument")]
"""An argument passed to an executable (execve cannot pass a NUL byte either)."""

_SOURCE: ContextVar[str | None] = ContextVar("plugin_host_config_source", default=None)


def _model_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that owns the last element of ``loc`` (descending through nested model fields)."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        if not isinstance(part, str):
            continue
        field = current.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            current = annotation
        else:
            return None
    return current


def _mentions(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, kinds):
        return True
    return any(_mentions(arg, kinds) for arg in get_args(annotation))


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def is_secret_field(field: FieldInfo) -> bool:
    """Whether a field's value must never be echoed: left out of the repr, or a pydantic secret type."""
    return field.repr is False or _mentions(field.annotation, (SecretStr, SecretBytes))


def _secret_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> bool:
    """Whether the error location ``loc`` is inside a secret field of ``model`` (descending through nested models)."""
    current: type[BaseModel] | None = model
    for part in loc:
        if not isinstance(part, str):
            continue
        if current is None:
            return False
        fields = current.model_fields
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        if field is None:
            return False
        if is_secret_field(field):
            return True
        current = _nested_model(field.annotation)
    return False


def allowed_keys(model: type[BaseModel]) -> list[str]:
    """The keys a config model accepts (aliases where set), sorted."""
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def _describe(error: ErrorDetails, model: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    path = _path(loc)
    if len(path) > 200:  # dict keys come from the config: a key may be any size
        path = truncated(path)
    if error["type"] == "extra_forbidden":
        owner = _model_at(model, loc)
        keys = ", ".join(allowed_keys(owner)) if owner is not None else "?"
        return f"unknown key {truncated(path)}; allowed keys: {keys}"
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, ConfigError):
        # Our own validators already name the field and the value (or, for a secret, only its type).
        return str(cause)
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    if _secret_at(model, loc):
        return f"{path}: {error['msg']}; got {shape(error.get('input'))} (a secret field: value not shown)"
    return f"{path}: {error['msg']}; got {truncated(error.get('input'))}"


def config_error_from_validation(
    exc: ValidationError, model: type[BaseModel], *, source: str | None = None
) -> ConfigError:
    """Build a :class:`ConfigError` from a pydantic ``ValidationError`` raised while validating ``model``.

    ``source`` (a file path or a description) prefixes the message; each failing key gets one line.
    """
    problems = [_describe(error, model) for error in exc.errors()]
    prefix = f"{source}: " if source else ""
    if len(problems) == 1:
        return ConfigError(prefix + problems[0])
    return ConfigError(prefix + f"{len(problems)} problems:\n  " + "\n  ".join(problems))


def msgpack_text(value: Any) -> Any:
    """``value`` with UTF-8 byte strings turned into str, through maps and lists: older Go msgpack encoders write
    strings as raw bytes. Bytes that are not UTF-8 stay bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, Mapping):
        return {msgpack_text(k): msgpack_text(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [msgpack_text(v) for v in value]
    return value


def without_nulls(value: Any) -> Any:
    """``value`` without the map entries whose value is nil, through maps and lists.

    Nomad encodes an hclspec-decoded config with cty's msgpack: every attribute of the spec is present, nil where
    the job (or the agent's plugin block) set nothing, and an absent block is nil too. Nil therefore means unset.
    """
    if isinstance(value, dict):
        return {key: without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [without_nulls(item) for item in value]
    return value


def decode_msgpack_config(payload: bytes, model: type[BaseModel], *, source: str) -> dict[str, Any]:
    """The map of config keys in the msgpack ``payload`` Nomad sends in ``SetConfig`` (empty or nil: ``{}``), nil
    entries left out so that their keys take their defaults (see :func:`without_nulls`).

    Anything that does not decode, or is not a map, is a :class:`ConfigError` naming ``source`` and the keys
    ``model`` allows.
    """
    if not payload:
        return {}
    try:
        data = msgpack.unpackb(payload, raw=False)
    except (ValueError, msgpack.UnpackException) as exc:
        raise ConfigError(f"{source}: msgpack payload of {len(payload)} bytes does not decode: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{source}: msgpack payload must be a map of {', '.join(allowed_keys(model))}; got {type(data).__name__}"
        )
    decoded: dict[str, Any] = without_nulls(msgpack_text(data))
    return decoded


class ConfigModel(BaseModel):
    """Base of config models: frozen, unknown keys refused, and every failure raised as :class:`ConfigError`."""

    # pydantic's own message prints input_value=...; ours is built from errors() and knows which fields are secret.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            source = _SOURCE.get() or type(self).config_source()
            raise config_error_from_validation(exc, type(self), source=source) from exc

    @classmethod
    def config_source(cls) -> str:
        """The default name of this config in error messages."""
        return cls.__name__

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str | None = None) -> Self:
        """Validate a mapping of config keys; failures are :class:`ConfigError` naming ``source`` and the key."""
        where = source or cls.config_source()
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a mapping of config keys; got {type(data).__name__}")
        bad = [key for key in data if not isinstance(key, str)]
        if bad:
            raise ConfigError(f"{where}: config keys must be strings; got {truncated(bad[0])}")
        # Through __init__ rather than model_validate: pydantic wraps errors raised by a custom __init__ during
        # model_validate into a ValidationError, and the source must reach the message.
        token = _SOURCE.set(where)
        try:
            return cls(**data)
        finally:
            _SOURCE.reset(token)
