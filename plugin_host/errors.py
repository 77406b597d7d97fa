"""The whole exception hierarchy of plugin_host.

Every error raised by a public entry point derives from :class:`PluginHostError`. Where a builtin fits, the class
inherits it as well, so ``except ValueError`` and ``except PluginHostError`` both work. Messages name the object,
the value and what was expected.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeviceError",
    "DispenseError",
    "DriverError",
    "EventsExpiredError",
    "HclSyntaxError",
    "InvalidPluginError",
    "InvalidRequestError",
    "NoDispenserError",
    "PluginHostError",
    "PluginLaunchError",
    "PluginNotFoundError",
    "PluginProtocolError",
    "PluginRPCError",
    "PluginTimeoutError",
    "PluginUnavailableError",
    "RegistryClosedError",
    "SocketInUseError",
    "StateError",
    "StateVersionError",
    "SubscriberLaggedError",
    "TaskConfigError",
    "TaskExistsError",
    "TaskNotFoundError",
]


class PluginHostError(Exception):
    """Root of every exception plugin_host raises on purpose."""


# --- configuration and input -------------------------------------------------------------------------------------


class ConfigError(PluginHostError, ValueError):
    """A configuration file or value is invalid; the message names the file, key and what was expected."""


class HclSyntaxError(ConfigError):
    """An HCL file does not parse; carries the file, the 1-based line and column of the offending input."""

    def __init__(self, message: str, *, file: str, line: int, column: int) -> None:
        super().__init__(message)
        self.file = file
        self.line = line
        self.column = column


class InvalidPluginError(PluginHostError, ValueError):
    """A plugin description or a lookup argument is invalid; the message names the field and the value."""


# --- registry -----------------------------------------------------------------------------------------------------


class PluginNotFoundError(PluginHostError, LookupError):
    """No plugin is registered under the given type, name (and alloc)."""


class NoDispenserError(PluginHostError, LookupError):
    """No dispenser (nor stub) is configured for a plugin type."""


class DispenseError(PluginHostError):
    """A dispenser raised; the original exception is ``__cause__``."""


class RegistryClosedError(PluginHostError, RuntimeError):
    """The registry was shut down (or never entered) and takes no more calls."""


class SubscriberLaggedError(PluginHostError):
    """A subscriber fell behind its buffer; ``last_seq`` is the last it received (resubscribe with ``since=last_seq``
    where the subscription takes one)."""

    def __init__(self, message: str, *, last_seq: int) -> None:
        super().__init__(message)
        self.last_seq = last_seq


class EventsExpiredError(PluginHostError, LookupError):
    """The requested ``since`` is older than the retained event history."""

    def __init__(self, message: str, *, oldest_seq: int | None) -> None:
        super().__init__(message)
        self.oldest_seq = oldest_seq


# --- state file ---------------------------------------------------------------------------------------------------


class StateError(PluginHostError, OSError):
    """The state file cannot be opened, read or written; the message names the path."""


class StateVersionError(StateError):
    """The state file was written by a newer schema than this version of plugin_host understands."""

    def __init__(self, message: str, *, found: int, supported: int) -> None:
        super().__init__(message)
        self.found = found
        self.supported = supported


# --- talking to plugins -------------------------------------------------------------------------------------------


class PluginUnavailableError(PluginHostError, ConnectionError):
    """A plugin cannot be reached (missing socket, refused connection, not speaking HTTP/2)."""


class PluginTimeoutError(PluginHostError, TimeoutError):
    """A call to a plugin did not finish before its deadline."""


class PluginProtocolError(PluginHostError):
    """A plugin answered outside its protocol's contract; the message names the RPC and the field."""


class InvalidRequestError(PluginHostError, ValueError):
    """A call to a plugin was refused before sending: an argument is missing or malformed (names RPC and field)."""


class PluginRPCError(PluginHostError):
    """A plugin answered a call with a gRPC error status."""

    def __init__(self, message: str, *, code: str, rpc_message: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.rpc_message = rpc_message


class SocketInUseError(PluginHostError, OSError):
    """A socket path cannot be served: a live process answers on it, or something other than a socket is there."""


class DeviceError(PluginHostError):
    """A device plugin refused or failed an operation (reserve, fingerprint, stats)."""


class TaskNotFoundError(PluginHostError, LookupError):
    """A task driver has no task with the given id."""


class DriverError(PluginHostError):
    """A task driver refused or failed an operation; ``recoverable`` says whether retrying may succeed."""

    def __init__(self, message: str, *, recoverable: bool = False) -> None:
        super().__init__(message)
        self.recoverable = recoverable


class TaskConfigError(DriverError, ValueError):
    """A task's configuration is invalid; the message lists every problem found (field, value, expectation)."""


class TaskExistsError(DriverError, ValueError):
    """A task driver already has a task with the given id."""


class PluginLaunchError(PluginHostError):
    """An external plugin process could not be started, handshaken with or configured; names the plugin."""

    def __init__(self, message: str, *, plugin: str) -> None:
        super().__init__(message)
        self.plugin = plugin
