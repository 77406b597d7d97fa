"""A new user's install: ``pip install <repo>`` alone (no extras) in a fresh venv imports every module, starts every
console script, and runs the README's main job (serve, ``status``, SIGTERM, exit 0, no socket left)."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import stat
import subprocess
from pathlib import Path

import anyio
import pytest
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream
from conftest import ROOT, InstalledVenv
from helpers.install import console_scripts

from plugin_host import __version__
from plugin_host.cli import READY_PREFIX
from plugin_host.device.plugin import NOT_LAUNCHED_MESSAGE
from plugin_host.driver.plugin import NOT_LAUNCHED_MESSAGE as NOT_LAUNCHED_DRIVER_MESSAGE
from plugin_host.goplugin.handshake import MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE
from plugin_host.plugins.virt.__main__ import MISSING_EXTRA_MESSAGE

# The first install builds the venv (pip, a wheel build, the dependencies): slow once per session.
pytestmark = pytest.mark.timeout(600)

VIRT_EXTRA_MODULES = {"libvirt", "libvirtaio", "pycdlib"}

_IMPORT_ALL = """
import importlib, json, pkgutil, plugin_host
failed = {}
for info in pkgutil.walk_packages(plugin_host.__path__, "plugin_host."):
    if info.name == "plugin_host.__main__":  # runs the CLI
        continue
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        failed[info.name] = exc.name
print(json.dumps({"file": plugin_host.__file__, "failed": failed}))
"""


def readme_commands() -> list[str]:
    """The set-up commands of the README's first code block, one per non-comment line."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"```sh\n(.*?)```", text, re.DOTALL)
    assert match is not None, "README.md has no ```sh block"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _run(
    venv: InstalledVenv, *argv: str | Path, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env or venv.env, capture_output=True, text=True, timeout=60, check=False
    )


def test_every_module_imports_without_extras(installed_venv: InstalledVenv, short_tmp: Path) -> None:
    """Every plugin_host module imports from the installed package; only the virt extra's modules may be missing."""
    result = _run(installed_venv, installed_venv.bin("python"), "-c", _IMPORT_ALL, cwd=short_tmp)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["file"].startswith(str(installed_venv.path)), report["file"]
    missing = {name: module for name, module in report["failed"].items() if module not in VIRT_EXTRA_MODULES}
    assert missing == {}
    assert all(name.startswith("plugin_host.plugins.virt.") for name in report["failed"]), report["failed"]


@pytest.mark.parametrize("script", sorted(console_scripts()))
def test_each_console_script_is_installed_and_its_entry_point_imports(
    installed_venv: InstalledVenv, short_tmp: Path, script: str
) -> None:
    """Each console script exists in the venv's bin and its module:function imports without extras."""
    module, function = console_scripts()[script].split(":")
    assert installed_venv.bin(script).is_file()
    code = f"from {module} import {function}; assert callable({function})"
    result = _run(installed_venv, installed_venv.bin("python"), "-c", code, cwd=short_tmp)
    assert result.returncode == 0, result.stderr


def test_plugin_host_version_and_help(installed_venv: InstalledVenv, short_tmp: Path) -> None:
    """plugin-host --version prints the package version; --help exits 0."""
    version = _run(installed_venv, installed_venv.bin("plugin-host"), "--version", cwd=short_tmp)
    assert (version.returncode, version.stdout.strip()) == (0, f"plugin-host {__version__}"), version.stderr
    helped = _run(installed_venv, installed_venv.bin("plugin-host"), "--help", cwd=short_tmp)
    assert helped.returncode == 0, helped.stderr
    assert "run" in helped.stdout


@pytest.mark.parametrize(
    ("script", "message"),
    [
        ("plugin-host-fs-device", NOT_LAUNCHED_MESSAGE),
        ("plugin-host-raw-exec", NOT_LAUNCHED_DRIVER_MESSAGE),
    ],
)
def test_plugin_scripts_run_by_hand_explain_and_exit_1(
    installed_venv: InstalledVenv, short_tmp: Path, script: str, message: str
) -> None:
    """A go-plugin script started by hand (no magic cookie) says what it is and exits 1."""
    result = _run(installed_venv, installed_venv.bin(script), cwd=short_tmp)
    assert (result.returncode, result.stdout, result.stderr) == (1, "", message)


def test_virt_script_without_the_extra_names_it_and_exits_1(installed_venv: InstalledVenv, short_tmp: Path) -> None:
    """plugin-host-virt without the virt extra, even when launched, says which extra to install and exits 1."""
    env = {**installed_venv.env, MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE}
    result = _run(installed_venv, installed_venv.bin("plugin-host-virt"), cwd=short_tmp, env=env)
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == MISSING_EXTRA_MESSAGE.format(missing="libvirt")


# --- the README's main job -------------------------------------------------------------------------------------


def test_readme_opens_with_exactly_two_set_up_commands() -> None:
    """The README's first block: an install-and-run command ending in the main job, then the test command."""
    first, second = readme_commands()
    assert first.startswith("tools/make-venv && . .venv/bin/activate && pip install -e . && ")
    assert first.endswith("&& plugin-host run --config examples/host.hcl")
    assert second.startswith("tools/setup-test-env && tools/make-venv && . .venv/bin/activate && ")
    for check in ("pip install -e '.[dev,virt]'", "ruff check .", "ruff format --check .", "mypy", "python -m pytest"):
        assert f"&& {check}" in second, check


def test_ci_runs_the_readme_test_command(short_tmp: Path) -> None:
    """.ci/run reads its command from the README: what it would run is the README's second command, verbatim."""
    result = subprocess.run(
        [str(ROOT / ".ci" / "run"), "--print"], cwd=short_tmp, capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == readme_commands()[1] + "\n"


def _sockets(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if stat.S_ISSOCK(p.lstat().st_mode)]


async def _line_starting(process: Process, reader: BufferedByteReceiveStream, prefix: str) -> str:
    with anyio.fail_after(60):
        while True:
            line = (await reader.receive_until(b"\n", 1 << 16)).decode()
            if line.startswith(prefix):
                return line


@pytest.mark.anyio
async def test_readme_main_job_serves_answers_status_and_stops_cleanly(
    installed_venv: InstalledVenv, short_tmp: Path
) -> None:
    """The README's main job from a plain install: serves fs-device, status answers, SIGTERM exits 0, no socket."""
    main_job = shlex.split(readme_commands()[0].rsplit("&&", 1)[1])
    assert main_job[0] == "plugin-host"
    config = main_job[main_job.index("--config") + 1]
    work = short_tmp / "work"
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("__pycache__"))
    stderr = (short_tmp / "run.err").open("wb")
    try:
        process = await anyio.open_process(
            [str(installed_venv.bin(main_job[0])), *main_job[1:]],
            cwd=work,
            env=installed_venv.env,
            stdin=subprocess.DEVNULL,
            stderr=stderr,
        )
        async with process:
            assert process.stdout is not None
            reader = BufferedByteReceiveStream(process.stdout)
            await _line_starting(process, reader, READY_PREFIX)
            # The live view prints each device once fs-device has reported it.
            await _line_starting(process, reader, "fs-device nomad/file/mock dev0")
            status = await anyio.run_process(
                [str(installed_venv.bin("plugin-host")), "status", "--config", config],
                cwd=work,
                env=installed_venv.env,
                check=False,
            )
            assert status.returncode == 0, status.stderr
            assert b"fs-device" in status.stdout
            process.send_signal(signal.SIGTERM)
            with anyio.fail_after(30):
                assert await process.wait() == 0
    finally:
        stderr.close()
    assert (work / "state" / "plugin-host.db").is_file()
    assert _sockets(work) == []
