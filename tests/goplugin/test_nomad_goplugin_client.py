"""Our go-plugin plugin programs as a real Nomad agent sees them: launched by HashiCorp's go-plugin client.

``nomadloader`` (tests/go/nomadloader/main.go, built by tests/nomadloader.py against Debian's go-plugin 1.0.1,
go-version 1.3.0 and grpc-go 1.33) does what Nomad's helper/pluginutils/loader does: launch the binary with the
magic cookie, read the handshake line, negotiate protocol version 2 over gRPC, call PluginInfo and parse
``plugin_version`` with go-version's ``NewVersion`` (init.go fingerprintPlugin), select the API version, read the
ConfigSchema, launch again for SetConfig (validatePluginConfig), then once more to dispense the device or driver
(loader.go Dispense) and drive it as the client's managers do, killing each instance with go-plugin's Client.Kill.
Its JSON report is what these tests assert on; its "error" is the text the agent would print.

Not skipped without Go: a missing toolchain fails the tests, saying to run tools/setup-test-env.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from helpers.nomadloader import MissingToolchain, build_nomadloader

from plugin_host._version import __version__, go_version
from plugin_host.plugins.fsdevice.config import FsDeviceConfig

# The first test of a session may build the harness (about 15 s, more on a busy machine).
pytestmark = pytest.mark.timeout(240)

ROOT = Path(__file__).resolve().parents[2]
# The module behind the plugin-host-fs-device console script, run by this interpreter (test_plugin_scripts runs the
# installed scripts themselves): the venv's script runs whichever checkout was installed, not necessarily this one.
FS_DEVICE = (sys.executable, "-m", "plugin_host.plugins.fsdevice")
RAW_EXEC = (sys.executable, "-m", "plugin_host.plugins.rawexec")

Report = dict[str, Any]


@pytest.fixture(scope="session")
def nomadloader() -> Path:
    """The harness binary, built once per session (cached across sessions)."""
    try:
        return build_nomadloader()
    except MissingToolchain as exc:
        message = str(exc)
    pytest.fail(message, pytrace=False)


def b64(data: bytes) -> str:
    """Bytes as JSON carries them to Go's []byte."""
    return base64.b64encode(data).decode()


def run_loader(loader: Path, spec: dict[str, Any], work: Path) -> tuple[int, Report, str]:
    """Run the harness on ``spec``; its exit code, JSON report and stderr (the go-plugin client's log)."""
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [str(loader), str(spec_path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    try:
        report: Report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"nomadloader exited {result.returncode} without a report:\n{result.stdout}{result.stderr}")
    return result.returncode, report, result.stderr


def fs_device_spec(devices: Path) -> dict[str, Any]:
    """Load the fs-device plugin watching ``devices``, reserve ``good``, read one stats message."""
    return {
        "type": "device",
        "cmd": list(FS_DEVICE),
        "plugin_config": b64(FsDeviceConfig(dir=str(devices)).to_msgpack()),
        "start_timeout_ms": 30000,
        "device": {"reserve": ["good"], "stats_interval_ms": 100},
    }


@pytest.fixture(scope="module")
def fs_device_run(nomadloader: Path) -> Iterator[tuple[int, Report, Path]]:
    """One run of the loader against fs-device over a directory with one healthy and one unhealthy file."""
    work = Path(tempfile.mkdtemp(prefix="nomadloader-fs-"))
    try:
        devices = work / "devices"
        devices.mkdir()
        (devices / "good").write_text("good device\n")
        bad = devices / "bad"
        bad.write_text("bad\n")
        # fs-device's default unhealthy_perm is -rwxrwxrwx.
        bad.chmod(0o777)
        code, report, _ = run_loader(nomadloader, fs_device_spec(devices), work)
        yield code, report, devices
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module")
def raw_exec_run(nomadloader: Path) -> Iterator[tuple[int, Report]]:
    """One run of the loader against raw-exec: a task that prints on both streams and exits 3."""
    work = Path(tempfile.mkdtemp(prefix="nomadloader-raw-"))
    try:
        driver_config = {"command": "sh", "args": ["-c", 'echo "hello $GREETING"; echo oops >&2; exit 3']}
        spec = {
            "type": "driver",
            "cmd": list(RAW_EXEC),
            "plugin_config": b64(msgpack.packb({"state_dir": str(work / "state")}, use_bin_type=True)),
            "start_timeout_ms": 30000,
            "driver": {
                "client_min_port": 14000,
                "client_max_port": 14512,
                "task": {
                    "id": "task-1",
                    "name": "web",
                    "alloc_id": "alloc-1",
                    # driver_config_to_wire's encoding; Nomad's is cty msgpack of the same map.
                    "driver_config": b64(msgpack.packb(driver_config, use_bin_type=True)),
                    "env": {"GREETING": "nomad"},
                    "stdout_path": str(work / "stdout"),
                    "stderr_path": str(work / "stderr"),
                },
            },
        }
        code, report, _ = run_loader(nomadloader, spec, work)
        yield code, report
    finally:
        shutil.rmtree(work, ignore_errors=True)


def require_ok(code: int, report: Report) -> None:
    """The agent would have loaded the plugin: exit 0, no error (else the agent's error text is the message)."""
    assert report["ok"] is True, f"Nomad's plugin loader refuses the plugin at {report['stage']}: {report.get('error')}"
    assert code == 0


# --- fs-device ----------------------------------------------------------------------------------------------------


def test_fs_device_version_parses_with_go_version(fs_device_run: tuple[int, Report, Path]) -> None:
    """Nomad parses fs-device's plugin_version with go-version's NewVersion; it must be accepted."""
    _, report, _ = fs_device_run
    assert report["plugin_info"]["plugin_version"] == go_version(__version__)
    assert report["stage"] != "version", report.get("error")
    assert report.get("parsed_version"), report.get("error")


def test_fs_device_fingerprints_as_nomads_loader_requires(fs_device_run: tuple[int, Report, Path]) -> None:
    """PluginInfo, API version and ConfigSchema pass the loader's validation."""
    code, report, _ = fs_device_run
    require_ok(code, report)
    assert report["plugin_info"] == {
        "type": "device",
        "name": "fs-device",
        "plugin_version": go_version(__version__),
        "plugin_api_versions": ["v0.1.0"],
    }
    assert report["api_version"] == "v0.1.0"
    assert set(report["config_schema"]["object"]["attributes"]) == {"dir", "list_period", "unhealthy_perm"}


def test_fs_device_handshake_negotiates_grpc_v2_on_a_unix_socket(fs_device_run: tuple[int, Report, Path]) -> None:
    """Each of the loader's three launches reads our handshake line: unix socket, grpc, app protocol 2."""
    code, report, _ = fs_device_run
    require_ok(code, report)
    assert [launch["purpose"] for launch in report["launches"]] == ["fingerprint", "validate_config", "run"]
    for launch in report["launches"]:
        assert launch["network"] == "unix"
        assert launch["address"].endswith("/plugin.sock")
        assert launch["protocol"] == "grpc"
        assert launch["negotiated_version"] == 2


def test_fs_device_kill_is_graceful_and_leaves_nothing(fs_device_run: tuple[int, Report, Path]) -> None:
    """go-plugin's Kill shuts the plugin down through GRPCController: it exits 0 in time, its socket removed."""
    code, report, _ = fs_device_run
    require_ok(code, report)
    for launch in report["launches"]:
        assert launch["exited"] is True
        assert launch["process_gone"] is True
        assert launch["socket_removed"] is True
        # Kill waits 2 s for a graceful exit before SIGKILL (go-plugin client.go Kill).
        assert launch["kill_ms"] < 2000
    log = report["client_log"]
    assert not [entry for entry in log if entry["@message"] == "plugin failed to exit gracefully"]
    exits = [entry for entry in log if entry["@message"] == "plugin process exited"]
    assert len(exits) == 3
    # go-plugin adds "error" (e.g. "exit status 1") when the process exits non-zero.
    assert all("error" not in entry for entry in exits), exits


def test_fs_device_stderr_is_hclog_json_the_client_relays(fs_device_run: tuple[int, Report, Path]) -> None:
    """go-plugin parses our stderr lines as hclog JSON and relays them at their level, none unparsed or warnings."""
    code, report, _ = fs_device_run
    require_ok(code, report)
    log = report["client_log"]
    serving = [entry for entry in log if str(entry["@message"]).startswith("plugin serving on ")]
    # A line go-plugin could not parse is relayed verbatim at debug level, the whole JSON as its message.
    assert len(serving) == 3
    assert all(entry["@level"] == "info" for entry in serving)
    assert all("timestamp" in entry for entry in serving)
    assert not [entry for entry in log if str(entry["@message"]).startswith("{")]
    assert not [entry for entry in log if entry["@level"] in ("warn", "error", "unparsed")]


def test_fs_device_fingerprint_reports_healthy_and_unhealthy_files(fs_device_run: tuple[int, Report, Path]) -> None:
    """The first Fingerprint message has the group with the healthy file and the one with unhealthy permissions."""
    code, report, _ = fs_device_run
    require_ok(code, report)
    (group,) = report["device"]["fingerprint"]["device_group"]
    assert (group["vendor"], group["device_type"], group["device_name"]) == ("nomad", "file", "mock")
    devices = {device["ID"]: device for device in group["devices"]}
    assert set(devices) == {"good", "bad"}
    assert devices["good"]["healthy"] is True
    assert devices["bad"]["healthy"] is False
    assert "-rwxrwxrwx" in devices["bad"]["health_description"]
    assert group["attributes"]["cool-attribute"]["string_val"] == "attribute-wearing-sunglasses"


def test_fs_device_reserve_and_stats(fs_device_run: tuple[int, Report, Path]) -> None:
    """Reserve mounts the file into the task; one Stats message covers both files."""
    code, report, devices = fs_device_run
    require_ok(code, report)
    (mount,) = report["device"]["reserve"]["container_res"]["mounts"]
    assert mount == {"task_path": "/tmp/task-mounts/good", "host_path": str(devices / "good"), "read_only": False}
    (group,) = report["device"]["stats"]["groups"]
    assert set(group["instance_stats"]) == {"good", "bad"}
    good = group["instance_stats"]["good"]
    # int64 values are strings in proto3 JSON.
    assert good["summary"]["int_numerator_val"] == str(len("good device\n"))
    assert good["stats"]["attributes"]["mode"]["string_val"] == "-rw-r--r--"


def test_loader_refuses_a_pep440_dev_version_with_nomads_message(nomadloader: Path, short_tmp: Path) -> None:
    """A plugin_version go-version cannot parse ("0.1.0.dev0") stops the agent with the loader's error."""
    plugin = short_tmp / "pep440-device"
    plugin.write_text(
        f"#!{sys.executable}\n"
        "from plugin_host.base.api import PluginInfoResponse\n"
        "from plugin_host.plugins.fsdevice.plugin import FsDevice\n"
        "from plugin_host.device.plugin import serve_device_plugin\n"
        "class Pep440(FsDevice):\n"
        "    async def plugin_info(self):\n"
        "        info = await super().plugin_info()\n"
        # model_construct: whatever our side validates, this is what the wire carried before the version fix.
        "        return PluginInfoResponse.model_construct(**{**info.model_dump(), 'plugin_version': '0.1.0.dev0'})\n"
        "raise SystemExit(serve_device_plugin(Pep440()))\n"
    )
    plugin.chmod(0o755)
    spec = {"type": "device", "cmd": [str(plugin)], "start_timeout_ms": 30000}
    code, report, stderr = run_loader(nomadloader, spec, short_tmp)
    expected = f'failed to parse plugin "fs-device" ({plugin}) version "0.1.0.dev0": Malformed version: 0.1.0.dev0'
    assert code == 1
    assert report["ok"] is False
    assert report["stage"] == "version"
    assert report["error"] == (
        f"failed to initialize plugin loader: failed to fingerprint plugins: 1 error occurred:\n\t* {expected}\n\n"
    )
    assert expected in stderr
    # The refused plugin is still shut down cleanly.
    (launch,) = report["launches"]
    assert launch["process_gone"] is True
    assert launch["socket_removed"] is True


# --- raw-exec -----------------------------------------------------------------------------------------------------


def test_raw_exec_loads_and_fingerprints_healthy(raw_exec_run: tuple[int, Report]) -> None:
    """raw-exec passes the loader (driver type, API v0.1.0) and its first fingerprint is healthy."""
    code, report = raw_exec_run
    require_ok(code, report)
    assert report["plugin_info"]["type"] == "driver"
    assert report["plugin_info"]["name"] == "raw-exec"
    assert report["api_version"] == "v0.1.0"
    fingerprint = report["driver"]["fingerprint"]
    assert fingerprint["health"] == "HEALTHY"
    assert fingerprint["attributes"]["driver.raw-exec"]["bool_val"] is True
    assert report["driver"]["capabilities"]["capabilities"]["send_signals"] is True
    assert set(report["driver"]["task_config_schema"]["spec"]["object"]["attributes"]) == {"command", "args"}


def test_raw_exec_runs_a_task_to_its_exit_code(raw_exec_run: tuple[int, Report]) -> None:
    """StartTask → WaitTask through the Go client: the task's exit code, its output in stdout_path/stderr_path."""
    code, report = raw_exec_run
    require_ok(code, report)
    start = report["driver"]["start_task"]
    assert start["result"] == "SUCCESS"
    assert start["handle"]["config"]["id"] == "task-1"
    assert start["handle"]["state"] == "RUNNING"
    assert report["driver"]["wait_task"] == {"result": {"exit_code": 3, "signal": 0, "oom_killed": False}, "err": ""}
    assert report["driver"]["stdout"] == "hello nomad\n"
    assert report["driver"]["stderr"] == "oops\n"


def test_raw_exec_kill_is_graceful(raw_exec_run: tuple[int, Report]) -> None:
    """Each raw-exec instance exits 0 on go-plugin's Kill, with its socket removed and nothing logged as a warning."""
    code, report = raw_exec_run
    require_ok(code, report)
    assert len(report["launches"]) == 3
    for launch in report["launches"]:
        assert (launch["network"], launch["protocol"], launch["negotiated_version"]) == ("unix", "grpc", 2)
        assert launch["process_gone"] is True
        assert launch["socket_removed"] is True
        assert launch["kill_ms"] < 2000
    log = report["client_log"]
    exits = [entry for entry in log if entry["@message"] == "plugin process exited"]
    assert len(exits) == 3
    assert all("error" not in entry for entry in exits), exits
    assert not [entry for entry in log if entry["@level"] in ("warn", "error", "unparsed")]
