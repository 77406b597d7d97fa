"""Hostile configs: NUL bytes in paths, a 1ns list_period, directories that are files, deep or huge HCL files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from plugin_host import PluginHost
from plugin_host.config import load_hcl_file, loads_hcl
from plugin_host.config.hcl import MAX_CONFIG_BYTES, MAX_NESTING
from plugin_host.errors import ConfigError, HclSyntaxError
from plugin_host.host_config import HostConfig
from plugin_host.plugins.fsdevice.config import FsDeviceConfig
from plugin_host.plugins.rawexec.config import RawExecConfig
from plugin_host.plugins.virt._config import VirtConfig, VirtTaskConfig

NUL = "a\x00b"
_NUL_PROBLEM = "contains a NUL byte, which a file path cannot hold; got 'a\\x00b'"

# Every path a host config takes, as the mapping that sets it and the key the error must name.
_HOST_PATHS: list[tuple[dict[str, Any], str]] = [
    ({"state_dir": NUL}, "state_dir"),
    ({"run_dir": NUL}, "run_dir"),
    ({"plugin_dir": NUL}, "plugin_dir"),
    ({"admin_socket": NUL}, "admin_socket"),
    ({"plugins_registry": {"dir": NUL}}, "plugins_registry.dir"),
    ({"kubelet": {"namespace": "example.com", "plugin_dir": NUL}}, "kubelet.plugin_dir"),
    ({"kubelet_server": {"plugin_dir": NUL}}, "kubelet_server.plugin_dir"),
    ({"plugins": {"fs-device": {"config": {"dir": NUL}}}}, 'plugin "fs-device" config: dir'),
]


@pytest.mark.parametrize(("data", "key"), _HOST_PATHS, ids=[key for _, key in _HOST_PATHS])
def test_a_nul_byte_in_any_host_config_path_is_a_config_error_naming_the_key(data: dict[str, Any], key: str) -> None:
    """Each path key refuses a NUL byte with one ConfigError naming that key and the value."""
    with pytest.raises(ConfigError) as caught:
        HostConfig.from_mapping(data, source="host.hcl")
    assert str(caught.value) == f"host.hcl: {key}: {_NUL_PROBLEM}"


def test_a_nul_byte_in_a_plugin_argument_is_refused() -> None:
    """An external plugin's argument with a NUL byte (execve cannot pass it) is a ConfigError naming it."""
    with pytest.raises(ConfigError, match=r"^host.hcl: plugins.ext.args\[1\]: contains a NUL byte, which a command"):
        HostConfig.from_mapping({"plugin_dir": "p", "plugins": {"ext": {"args": ["-v", NUL]}}}, source="host.hcl")


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: FsDeviceConfig.from_msgpack(msgpack.packb({"dir": NUL})), "dir"),
        (lambda: RawExecConfig.coerce({"state_dir": NUL}), "state_dir"),
        (lambda: VirtConfig.coerce({"data_dir": NUL}), "data_dir"),
        (lambda: VirtConfig.coerce({"image_paths": ["/ok", NUL]}), "image_paths[1]"),
        (lambda: VirtTaskConfig.parse({"image": NUL}, task_id="t1"), "image"),
    ],
)
def test_plugin_and_task_config_paths_refuse_a_nul_byte(build: Any, key: str) -> None:
    """Built-in plugins' path keys (fs-device, raw-exec, virt) refuse a NUL byte naming the key."""
    with pytest.raises(ConfigError) as caught:
        build()
    assert f": {key}: {_NUL_PROBLEM}" in str(caught.value)


@pytest.mark.parametrize("value", ["1ns", "1us", "9ms", "9.999ms"])
def test_list_period_under_10ms_is_refused_naming_key_value_and_minimum(value: str) -> None:
    """A list_period below 10ms (upstream has no minimum; "1ns" burns a core) is a ConfigError with the minimum."""
    builds: list[Callable[[], FsDeviceConfig]] = [
        lambda: FsDeviceConfig.from_mapping({"list_period": value}),
        lambda: FsDeviceConfig.from_msgpack(msgpack.packb({"list_period": value})),
    ]
    for build in builds:
        with pytest.raises(ConfigError) as caught:
            build()
        assert str(caught.value).endswith(f'list_period: duration "{value}" is shorter than the minimum "10ms"')


def test_list_period_of_10ms_is_accepted() -> None:
    """The minimum itself is allowed."""
    assert FsDeviceConfig.from_mapping({"list_period": "10ms"}).list_period == 0.01


def _file(tmp_path: Path) -> str:
    path = tmp_path / "afile"
    path.write_text("")
    return str(path)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (lambda f: {"state_dir": f}, "state_dir"),
        (lambda f: {"run_dir": f}, "run_dir"),
        (lambda f: {"plugin_dir": f}, "plugin_dir"),
        (lambda f: {"plugins_registry": {"dir": f}}, "plugins_registry.dir"),
        (lambda f: {"kubelet": {"namespace": "example.com", "plugin_dir": f}}, "kubelet.plugin_dir"),
        (lambda f: {"kubelet_server": {"plugin_dir": f}}, "kubelet_server.plugin_dir"),
    ],
)
def test_a_directory_key_pointing_at_a_file_names_the_key(tmp_path: Path, settings: Any, key: str) -> None:
    """check_paths refuses a directory key that is a file with a ConfigError naming the key and the path."""
    afile = _file(tmp_path)
    config = HostConfig.from_mapping({"state_dir": str(tmp_path / "st"), **settings(afile)})
    with pytest.raises(ConfigError) as caught:
        config.check_paths(source="host.hcl")
    assert str(caught.value) == f"host.hcl: {key}: {afile!r} is a file; expected a directory"


def test_a_directory_under_a_file_names_the_key_and_the_file(tmp_path: Path) -> None:
    """A path leading through a file names the file in the way; an admin_socket's directory is checked too."""
    afile = _file(tmp_path)
    config = HostConfig.from_mapping({"state_dir": f"{afile}/st"})
    with pytest.raises(ConfigError) as caught:
        config.check_paths()
    assert str(caught.value) == (
        f"host config: state_dir: '{afile}/st' is inside {afile!r}, which is a file; expected a directory"
    )
    config = HostConfig.from_mapping({"state_dir": str(tmp_path / "st"), "admin_socket": f"{afile}/admin.sock"})
    with pytest.raises(ConfigError, match=r"^host config: admin_socket \(its directory '.*afile'\): '.*afile' is a"):
        config.check_paths()


def test_missing_directories_pass_the_check(tmp_path: Path) -> None:
    """Directories that do not exist yet are fine: the host creates them."""
    HostConfig.from_mapping({"state_dir": str(tmp_path / "a" / "b"), "plugin_dir": str(tmp_path / "p")}).check_paths()


@pytest.mark.anyio
async def test_plugin_host_refuses_a_state_dir_that_is_a_file(tmp_path: Path) -> None:
    """PluginHost itself (no CLI) checks the paths at start: a ConfigError naming the key, not an errno."""
    afile = _file(tmp_path)
    with pytest.raises(ConfigError, match=r"^host config: state_dir: '.*afile' is a file; expected a directory$"):
        async with PluginHost(HostConfig.from_mapping({"state_dir": afile})):
            pass


@pytest.mark.parametrize(
    "text",
    [
        "x = " + "[" * 3000 + "]" * 3000,
        "a {" * 3000 + "}" * 3000,
        "x = " + "{a = " * 3000 + "1" + "}" * 3000,
        "x = " + "(" * 3000 + "1" + ")" * 3000,
    ],
    ids=["lists", "blocks", "objects", "parentheses"],
)
def test_deep_nesting_is_a_syntax_error_with_a_position_not_a_recursion_error(tmp_path: Path, text: str) -> None:
    """3,000 levels of nesting is an HclSyntaxError naming the file, line and column of the level past the limit."""
    path = tmp_path / "deep.hcl"
    path.write_text('state_dir = "st"\n\n' + text + "\n")
    with pytest.raises(HclSyntaxError) as caught:
        load_hcl_file(path)
    assert caught.value.line == 3
    assert str(caught.value).startswith(f"{path}:3:{caught.value.column}: HCL nested more than 100 levels deep")


def test_nesting_up_to_the_limit_and_brackets_in_strings_and_comments_still_parse() -> None:
    """MAX_NESTING levels parse; brackets inside strings and comments are not counted."""
    deep = "[" * MAX_NESTING + "]" * MAX_NESTING
    assert loads_hcl(f"x = {deep}")["x"] is not None
    opened = "{[(" * 200
    text = f'a = "{opened}"\n# {opened}\n// {opened}\n/* {opened}\n{opened} */\nb = "\\"{opened}"\n'
    assert loads_hcl(text) == {"a": opened, "b": '"' + opened}


def test_a_config_file_over_the_size_limit_is_refused_unparsed(tmp_path: Path) -> None:
    """A file over MAX_CONFIG_BYTES is a ConfigError naming the file and the limit (read no further than that)."""
    path = tmp_path / "huge.hcl"
    path.write_text("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1))
    with pytest.raises(ConfigError) as caught:
        load_hcl_file(path)
    assert str(caught.value) == (
        f"{path}: config file is larger than {MAX_CONFIG_BYTES} bytes (256 KiB), the most a config file may hold"
    )
    with pytest.raises(ConfigError, match=r"^<string>: config is \d+ bytes; the most a config file may hold is"):
        loads_hcl(path.read_text())


# --- the CLI: one line, exit 2, for every hostile config and every command -----------------------------------------

_HOSTILE_CONFIGS: dict[str, tuple[str, str]] = {
    "nul-state-dir": ('state_dir = "st\\u0000x"\n', "state_dir: contains a NUL byte"),
    "nul-fs-device-dir": (
        'plugin "fs-device" {\n  config {\n    dir = "d\\u0000"\n  }\n}\n',
        'plugin "fs-device" config: dir: contains a NUL byte',
    ),
    "list-period-1ns": (
        'plugin "fs-device" {\n  config {\n    list_period = "1ns"\n  }\n}\n',
        'list_period: duration "1ns" is shorter than the minimum "10ms"',
    ),
    "state-dir-is-a-file": ('state_dir = "afile"\n', "state_dir: 'afile' is a file; expected a directory"),
    "kubelet-server-dir-is-a-file": (
        'state_dir = "st"\nkubelet_server {\n  plugin_dir = "afile"\n}\n',
        "kubelet_server.plugin_dir: 'afile' is a file; expected a directory",
    ),
    "nested-3000-deep": ("x = " + "[" * 3000 + "]" * 3000 + "\n", "host.hcl:1:105: HCL nested more than 100"),
    "over-256-KiB": ("# padding\n" * (MAX_CONFIG_BYTES // 10 + 1), "config file is larger than 262144 bytes"),
}


@pytest.mark.parametrize("command", [["run"], ["status"], ["state", "show"]], ids=["run", "status", "state-show"])
@pytest.mark.parametrize("case", sorted(_HOSTILE_CONFIGS))
def test_cli_prints_one_line_and_exits_2_for_each_hostile_config(tmp_path: Path, case: str, command: list[str]) -> None:
    """run, status and state show each print one stderr line naming the problem and exit 2."""
    text, expected = _HOSTILE_CONFIGS[case]
    (tmp_path / "host.hcl").write_text(text)
    (tmp_path / "afile").write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "plugin_host", *command, "--config", "host.hcl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("plugin-host: host.hcl")
    assert expected in line
    assert result.stdout == ""
