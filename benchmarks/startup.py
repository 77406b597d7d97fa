"""Start-up cost of the commands a user and a Nomad agent run, as ratios to ``python -c pass`` in the same run.

Each command runs ``--repeat`` times in a fresh process; the figure is the median wall time. Targets (issue 12):
``plugin-host --version`` <= 8x, ``import plugin_host`` <= 8x, ``plugin-host status`` against a running host <= 15x,
``plugin-host-fs-device`` from exec to its go-plugin handshake line <= 15x.

python benchmarks/startup.py [--repeat 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from plugin_host.goplugin.handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE

TARGETS = {
    "import_plugin_host": 8.0,
    "plugin_host_version": 8.0,
    "plugin_host_status": 15.0,
    "fs_device_handshake": 15.0,
}


def _script(name: str) -> list[str]:
    """The console script ``name`` from this interpreter's environment, as a user runs it."""
    found = Path(sys.executable).with_name(name)
    if found.exists():
        return [str(found)]
    on_path = shutil.which(name)
    if on_path is None:
        raise SystemExit(f"{name} is not installed next to {sys.executable} nor on PATH: pip install -e . first")
    return [on_path]


def _timed_run(argv: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def _timed_handshake(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from exec until the plugin prints its go-plugin handshake line; the plugin is then killed."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        if not line.startswith(b"1|"):
            raise SystemExit(f"{argv[0]} printed no handshake line: {line[:200]!r}")
        return elapsed
    finally:
        proc.kill()
        proc.wait()


def _median(repeat: int, measure: Callable[[], float]) -> float:
    measure()  # warm the page cache and .pyc files
    return statistics.median(measure() for _ in range(repeat))


def _start_host(work: Path) -> subprocess.Popen[bytes]:
    devices = work / "devices"
    devices.mkdir()
    (devices / "dev1").write_text("")
    (work / "host.hcl").write_text(
        f'state_dir = "{work}/state"\nrun_dir = "{work}/state/run"\n'
        f'plugin "fs-device" {{\n  config {{\n    dir = "{devices}"\n    list_period = "1s"\n  }}\n}}\n'
    )
    proc = subprocess.Popen(
        [*_script("plugin-host"), "run", "--config", str(work / "host.hcl")],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith(b"plugin-host running"):
        proc.kill()
        raise SystemExit(f"the host did not start: {line[:200]!r}")
    return proc


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    python = sys.executable
    plugin_env = {**os.environ, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE, "PLUGIN_PROTOCOL_VERSIONS": "2"}
    seconds = {
        "python_pass": _median(args.repeat, lambda: _timed_run([python, "-c", "pass"])),
        "import_plugin_host": _median(args.repeat, lambda: _timed_run([python, "-c", "import plugin_host"])),
        "plugin_host_version": _median(args.repeat, lambda: _timed_run([*_script("plugin-host"), "--version"])),
        "fs_device_handshake": _median(
            args.repeat, lambda: _timed_handshake(_script("plugin-host-fs-device"), plugin_env)
        ),
    }
    with tempfile.TemporaryDirectory(prefix="ph-start-") as tmp:
        host = _start_host(Path(tmp))
        try:
            config = str(Path(tmp) / "host.hcl")
            seconds["plugin_host_status"] = _median(
                args.repeat, lambda: _timed_run([*_script("plugin-host"), "status", "--config", config])
            )
        finally:
            host.terminate()
            host.wait(timeout=30)
    base = seconds["python_pass"]
    ratios = {k: round(v / base, 1) for k, v in seconds.items() if k != "python_pass"}
    result = {
        "seconds_median": {k: round(v, 4) for k, v in seconds.items()},
        "ratio_to_python_pass": ratios,
        "targets": TARGETS,
        "met": {k: seconds[k] / base <= t for k, t in TARGETS.items()},
    }
    if args.json:
        print(json.dumps(result))
    else:
        for name, ratio in ratios.items():
            print(f"{name:22} {seconds[name] * 1000:8.1f} ms  {ratio:5.1f}x  (target <= {TARGETS[name]}x)")
        print(f"{'python -c pass':22} {base * 1000:8.1f} ms")


if __name__ == "__main__":
    main(sys.argv[1:])
