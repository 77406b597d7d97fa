"""The raw-exec executor: a tiny process between the driver and the task, as Nomad's executor is.

Run as ``python -S _executor.py STATUS_FILE WORKDIR READY_FD -- COMMAND [ARGS...]``. It starts the command (in the
executor's session, leading its own process group, with default signal dispositions), reports
``started <pid> <start_time>`` or ``error <text>`` on READY_FD, records the task in STATUS_FILE (JSON), waits for it
and records its exit there. Because the executor
outlives the host that started it, a restarted host learns the task's exit code from the status file.

Standard library only, and nothing from plugin_host: it starts with ``-S`` to stay fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_SIGNAL_BASE = 128  # a task killed by signal N exits with 128 + N, as shells and Nomad's executor report it


def _write(path: str, data: dict[str, int]) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _start_time(pid: int) -> int:
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def main(argv: list[str]) -> int:
    status_path, workdir, ready_fd, command = argv[1], argv[2], int(argv[3]), argv[5:]
    # Signals aimed at the task's session must not take the executor down before it records the exit.
    for signum in _FORWARDED:
        signal.signal(signum, signal.SIG_IGN)
    with os.fdopen(ready_fd, "w", encoding="utf-8") as ready:
        try:
            os.chdir(workdir)
            # Its own process group, so that what it leaves behind can be killed with it (and not the executor).
            pid = os.posix_spawnp(command[0], command, dict(os.environ), setsigdef=_FORWARDED, setpgroup=0)
        except OSError as exc:
            ready.write(f"error {exc.strerror or exc}\n")
            return 127
        record = {"pid": pid, "start_time": _start_time(pid), "started_at": time.time_ns()}
        _write(status_path, record)
        ready.write(f"started {pid} {record['start_time']}\n")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    record["completed_at"] = time.time_ns()
    record["exit_code"] = code if code >= 0 else _SIGNAL_BASE - code
    record["signal"] = -code if code < 0 else 0
    _write(status_path, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
