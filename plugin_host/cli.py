"""The ``plugin-host`` command: ``run``, ``status`` and ``state show``.

Only this module configures logging and installs signal handlers; the library never does. Every error ends the
command with one line on stderr: exit 2 for configuration problems (a missing or bad config file, or a path in it
that cannot be used as configured), 1 otherwise: a damaged or unusable state file is exit 1, because the config is
right and the file is what needs attention. ``state show`` prints the readable rows of a file with unreadable
ones, one stderr line per unreadable row, and exits 1.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from plugin_host._version import __version__
from plugin_host.errors import ConfigError, HclSyntaxError, PluginHostError

if TYPE_CHECKING:
    from plugin_host.admin import HostStatus, KubeletExportStatus, PluginStatus, TaskEntry
    from plugin_host.device import DeviceManagerChange, PluginSnapshot
    from plugin_host.host import PluginHost
    from plugin_host.host_config import HostConfig

# Each subcommand imports what it uses when it runs: `plugin-host --version` and `status` stay quick.

__all__ = ["FULL_GC_EVERY", "main", "settle_gc"]

logger = logging.getLogger("plugin_host.cli")

READY_PREFIX = "plugin-host running"
"""The start of the line ``run`` prints on stdout once the host serves everything."""


# --- logging ----------------------------------------------------------------------------------------------------


class _JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message (and the exception, when there is one)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def _configure_logging(level: str, as_json: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonFormatter() if as_json else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # hpack and h2 log header values and frames at DEBUG (a plugin's grpc-message can quote credentials): even at
    # --log-level debug they stay at INFO. The library's filter does the same; this holds without it.
    for name in ("hpack", "h2"):
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))


# --- rendering --------------------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)) for row in [headers, *rows]
    ]
    return "\n".join(line.rstrip() for line in lines)


def render_status(status: HostStatus) -> str:
    """The readable form of a host's status: tables of plugins, devices, kubelet resources, drivers and tasks."""
    out = [f"plugin-host {status.version} (pid {status.pid}), state file {status.state_file}", ""]
    if status.metrics_urls:
        out[0] += f", metrics at {', '.join(status.metrics_urls)}"
    if status.plugins:
        rows = [[p.name, _plugin_type(p), p.state, p.version or "-", p.socket_path or "-"] for p in status.plugins]
        out.append(_table(["PLUGIN", "TYPE", "STATE", "VERSION", "SOCKET"], rows))
    else:
        out.append("no plugins")
    devices = [
        [p.name, g.id, d.id, "healthy" if d.healthy else "unhealthy", d.health_description]
        for p in status.plugins
        for g in p.groups
        for d in g.devices
    ]
    errors = [f"{p.name}: {p.state}: {p.last_error}" for p in status.plugins if p.last_error and p.state != "running"]
    out.append("")
    out.append(_table(["PLUGIN", "GROUP", "DEVICE", "HEALTH", "DESCRIPTION"], devices) if devices else "no devices")
    if errors:
        out.extend(["", *errors])
    if status.kubelet_export is not None:
        out.extend(["", *_kubelet_export_lines(status.kubelet_export)])
    if status.driver_health:
        rows = [[d.name, d.health, d.health_description] for d in status.driver_health]
        out.extend(["", _table(["DRIVER", "HEALTH", "DESCRIPTION"], rows)])
    elif status.drivers:  # a host from before drivers had a health
        out.extend(["", f"drivers: {', '.join(status.drivers)}"])
    if status.drivers or status.driver_health or status.tasks:
        out.append("")
        tasks = [[t.id, t.driver or "-", t.state, _exit(t), t.detail] for t in status.tasks]
        out.append(_table(["TASK", "DRIVER", "STATE", "EXIT", "DETAIL"], tasks) if tasks else "no tasks")
    return "\n".join(out)


def _exit(task: TaskEntry) -> str:
    """The exit code, and the signal that ended the task by name (``143 (SIGTERM)``)."""
    code = "-" if task.exit_code is None else str(task.exit_code)
    if not task.signal:
        return code
    try:
        name = signal.Signals(task.signal).name
    except ValueError:
        name = f"signal {task.signal}"
    return f"{code} ({name})"


def _plugin_type(plugin: PluginStatus) -> str:
    return f"{plugin.type} (kubelet-hosted)" if plugin.kubelet_hosted else plugin.type


def _kubelet_export_lines(export: KubeletExportStatus) -> list[str]:
    title = f"served to kubelet (namespace {export.namespace}, plugin_dir {export.plugin_dir})"
    if not export.resources:
        return [f"{title}: no resources"]
    rows = [
        [
            r.name,
            ", ".join(r.plugins) or "-",
            f"{r.healthy}/{r.devices}",
            "yes" if r.registered else "no",
        ]
        for r in export.resources
    ]
    return [f"{title}:", _table(["RESOURCE", "PLUGINS", "HEALTHY", "REGISTERED"], rows)]


class _ChangeLines:
    """Turns DeviceManager changes into one line per plugin state or device change (for a pipe or a log file)."""

    def __init__(self) -> None:
        self._states: dict[str, str] = {}
        self._devices: dict[str, dict[tuple[str, str], str]] = {}

    def lines(self, change: DeviceManagerChange) -> list[str]:
        from plugin_host.device import SnapshotChange

        if isinstance(change, SnapshotChange):
            current = {p.name: p for p in change.snapshot.plugins}
            names = sorted(set(current) | set(self._states))
            return [line for name in names for line in self._plugin(name, current.get(name))]
        return self._plugin(change.name, change.plugin)

    def _plugin(self, name: str, plugin: PluginSnapshot | None) -> list[str]:
        out: list[str] = []
        if plugin is None:
            if self._states.pop(name, None) is not None:
                out.append(f"{name} plugin removed")
            self._devices.pop(name, None)
            return out
        state = plugin.state.value
        if plugin.state.value != "running" and plugin.last_error:
            state += f" ({plugin.last_error})"
        if self._states.get(name) != state:
            self._states[name] = state
            out.append(f"{name} plugin {state}")
        before = self._devices.get(name, {})
        after = {
            (group.id, device.id): "healthy"
            if device.healthy
            else f"unhealthy ({device.health_description})".replace(" ()", "")
            for group in plugin.groups
            for device in group.devices
        }
        changed = [key for key in sorted(before.keys() | after.keys()) if before.get(key) != after.get(key)]
        out.extend(f"{name} {group} {device} {after.get((group, device), 'removed')}" for group, device in changed)
        self._devices[name] = after
        return out


# --- the collector ----------------------------------------------------------------------------------------------

FULL_GC_EVERY = 100
"""``plugin-host run``: generation-1 collections between two full ones (CPython's default is 10)."""


def settle_gc() -> None:
    """Keep CPython's full garbage collections from blocking the event loop of the long-running host.

    Only the CLI does this: it owns the process, while the library never changes process-wide settings. A full
    collection walks every tracked object with the GIL held; creating 100,000 devices (a few objects each) set off
    several, each blocking the loop for 100-300 ms. Once the host runs, everything made while starting (modules,
    config, the first device lists) is moved out of the collector's sight (``gc.freeze()``: it is freed by reference
    counting as before, only no longer walked), and full collections come ten times less often, so a burst of
    allocations is walked by the young generations only. Measured by ``benchmarks/kubelet_hosted_scale.py --gc cli``
    and ``benchmarks/status_scale.py --gc cli``.
    """
    import gc

    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, FULL_GC_EVERY)


# --- commands ---------------------------------------------------------------------------------------------------


def _load_config(path: str | None) -> HostConfig:
    from plugin_host.host_config import HostConfig

    config = HostConfig.default() if path is None else HostConfig.from_hcl_file(path)
    # Every command, so `state show` and `status` name a key that points at a file just as `run` does.
    config.check_paths(source=path)
    return config


async def _live_view(host: PluginHost, out: TextIO) -> None:
    tty = out.isatty()
    lines = _ChangeLines()
    async with host.devices.subscribe() as changes:
        async for change in changes:
            if tty:
                # Clear and redraw: the whole picture, as of this change.
                screen = render_status(await host.status())
                stamp = time.strftime("%H:%M:%S")
                out.write(f"\x1b[H\x1b[2J{screen}\n\nupdated {stamp}; Ctrl-C to stop\n")
            else:
                for line in lines.lines(change):
                    out.write(line + "\n")
            out.flush()


async def _run(config: HostConfig) -> int:
    import anyio

    from plugin_host.host import PluginHost

    # Installed before the host starts so a signal during startup is not lost (it stops the host once it runs).
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with PluginHost(config) as host, anyio.create_task_group() as tg:
            print(
                f"{READY_PREFIX} (pid {os.getpid()}); admin socket {config.admin_socket_path}",
                flush=True,
            )
            settle_gc()
            tg.start_soon(_live_view, host, sys.stdout)
            async for signum in signals:
                logger.info("received %s; shutting down", signal.Signals(signum).name)
                break
            tg.cancel_scope.cancel()
    return 0


async def _status(config: HostConfig, as_json: bool) -> int:
    from plugin_host.admin import query_status

    status = await query_status(config.admin_socket_path)
    print(status.model_dump_json(indent=2) if as_json else render_status(status))
    return 0


async def _state_show(config: HostConfig, as_json: bool) -> int:
    from plugin_host.state import SqliteStateStore

    async with SqliteStateStore(config.state_file, read_only=True) as store:
        snapshot = await store.load_registry(skip_unreadable=True)
    stored = sorted(snapshot.plugins, key=lambda p: (p.info.type, p.info.name, -p.position))
    # The readable rows are still shown: a damaged row should not hide the rest of the file from the person
    # trying to understand it. Each unreadable one is one line on stderr, and the exit status says so.
    for row in snapshot.unreadable:
        print(
            f"plugin-host: state file {str(config.state_file)!r}: unreadable row in table {row.table} ({row.key}):"
            f" {row.problem}",
            file=sys.stderr,
        )
    status = 1 if snapshot.unreadable else 0
    if as_json:
        document = {
            "state_file": str(config.state_file.absolute()),
            "last_seq": snapshot.last_seq,
            "plugins": [{"position": p.position, **p.info.model_dump(mode="json")} for p in stored],
            "unreadable": [{"table": r.table, "key": r.key, "problem": r.problem} for r in snapshot.unreadable],
        }
        print(json.dumps(document, indent=2))
        return status
    print(f"state file {config.state_file.absolute()}, last event seq {snapshot.last_seq}")
    print()
    if not stored:
        print("no registrations")
        return status
    rows = [
        [
            p.info.type,
            p.info.name,
            p.info.alloc_id or "-",
            p.info.version or "-",
            p.info.connection_info.socket_path if p.info.connection_info else "-",
        ]
        for p in stored
    ]
    print(_table(["TYPE", "NAME", "ALLOC", "VERSION", "SOCKET"], rows))
    return status


# --- entry point ------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plugin-host", description="Host infrastructure plugins (Nomad-style).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default: info"
    )
    parser.add_argument("--log-json", action="store_true", help="log JSON lines on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    def with_config(sub: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sub.add_argument("--config", metavar="FILE", help="HCL host config (default: the built-in defaults)")
        return sub

    with_config(commands.add_parser("run", help="run the host until SIGINT or SIGTERM, showing devices live"))
    status = with_config(
        commands.add_parser("status", help="ask the running host for its plugins, devices, drivers and tasks")
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    state = commands.add_parser("state", help="inspect the state file")
    state_commands = state.add_subparsers(dest="state_command", required=True)
    show = with_config(state_commands.add_parser("show", help="print the registrations in the state file"))
    show.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _one_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    if isinstance(exc, HclSyntaxError):
        # The rest is the source line and a caret: useful on a terminal, noise in a one-line error.
        lines = lines[:1]
    return lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "")


def _leaf(exc: BaseException) -> BaseException:
    """The only exception inside (nested) exception groups, or ``exc`` itself."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``plugin-host`` command with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    _configure_logging(args.log_level, args.log_json)
    command: Callable[[], int]
    import anyio

    try:
        config = _load_config(args.config)
        if args.command == "run":
            command = lambda: anyio.run(_run, config)  # noqa: E731
        elif args.command == "status":
            command = lambda: anyio.run(_status, config, args.json)  # noqa: E731
        else:
            command = lambda: anyio.run(_state_show, config, args.json)  # noqa: E731
        return command()
    except (PluginHostError, OSError, BaseExceptionGroup) as exc:
        error = _leaf(exc)
        if not isinstance(error, PluginHostError | OSError):
            raise
        print(f"plugin-host: {_one_line(error)}", file=sys.stderr)
        return 2 if isinstance(error, ConfigError) else 1
