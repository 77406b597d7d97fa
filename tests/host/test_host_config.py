"""HostConfig: the HCL host configuration, its defaults and every bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from plugin_host.errors import ConfigError
from plugin_host.host_config import HostConfig


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.hcl"
    path.write_text(text)
    return path


def test_full_file_parses_into_the_model(tmp_path: Path) -> None:
    """Every documented block and key lands in the model, plugin config kept as a plain mapping."""
    path = _write(
        tmp_path,
        """
        state_dir    = "st"
        run_dir      = "st/sockets"
        plugin_dir   = "plugins"
        admin_socket = "admin.sock"
        plugin "fs-device" {
          args = ["-v"]
          config {
            dir         = "devices"
            list_period = "1s"
          }
        }
        plugins_registry { dir = "/var/lib/plugins" }
        kubelet {
          plugin_dir = "/var/lib/kubelet/device-plugins"
          namespace  = "example.com"
        }
        kubelet_server { plugin_dir = "/tmp/kubelet" }
        """,
    )
    config = HostConfig.from_hcl_file(path)
    assert config.state_dir == "st"
    assert config.run_dir == "st/sockets"
    assert config.plugin_dir == "plugins"
    assert config.admin_socket_path == Path("admin.sock").absolute()
    assert config.plugins["fs-device"].args == ("-v",)
    assert config.plugins["fs-device"].config == {"dir": "devices", "list_period": "1s"}
    assert config.plugins_registry is not None
    assert config.plugins_registry.dir == "/var/lib/plugins"
    assert config.kubelet is not None
    assert config.kubelet.namespace == "example.com"
    assert config.kubelet_server is not None
    assert config.kubelet_server.plugin_dir == "/tmp/kubelet"


def test_paths_default_under_the_state_dir(tmp_path: Path) -> None:
    """run_dir and the admin socket default to <state_dir>/run and <state_dir>/plugin-host.sock."""
    config = HostConfig.from_hcl_file(_write(tmp_path, 'state_dir = "s"\n'))
    assert config.run_dir == "s/run"
    assert config.admin_socket == "s/plugin-host.sock"
    assert config.state_file == Path("s/plugin-host.db")
    assert config.plugins == {}


def test_default_runs_fs_device_with_state_under_state() -> None:
    """The embedded default keeps state under state/ and runs the built-in fs-device with its defaults."""
    config = HostConfig.default()
    assert config.state_dir == "state"
    assert config.run_dir == "state/run"
    assert list(config.plugins) == ["fs-device"]
    assert config.plugins["fs-device"].config == {}


def test_example_host_config_loads() -> None:
    """examples/host.hcl is a valid host config with fs-device on examples/devices."""
    config = HostConfig.from_hcl_file(Path(__file__).resolve().parents[2] / "examples" / "host.hcl")
    assert config.plugins["fs-device"].config["dir"] == "examples/devices"


def test_from_mapping_validates_like_the_file() -> None:
    """from_mapping takes the model's shape and refuses what the file form refuses."""
    config = HostConfig.from_mapping({"plugins": {"fs-device": {"config": {"dir": "."}}}})
    assert config.plugins["fs-device"].config == {"dir": "."}
    with pytest.raises(ConfigError, match="unknown key 'bogus'"):
        HostConfig.from_mapping({"bogus": 1})


def test_external_plugin_is_accepted_with_a_plugin_dir(tmp_path: Path) -> None:
    """A plugin that is not built in is accepted once plugin_dir says where external plugins live."""
    config = HostConfig.from_hcl_file(_write(tmp_path, 'plugin_dir = "p"\nplugin "nvidia" {\n  args = ["a"]\n}\n'))
    assert config.plugins["nvidia"].args == ("a",)


@pytest.mark.parametrize(
    ("text", "fragments"),
    [
        pytest.param("foo { x = 1 }\n", ["unknown top-level block or key 'foo'", "allowed:", "plugin"], id="block"),
        pytest.param('stat_dir = "x"\n', ["'stat_dir'", "state_dir"], id="key"),
        pytest.param(
            'plugin "nvidia" {}\n',
            ['plugin "nvidia" is not a built-in plugin', "built-ins: fs-device"],
            id="not-builtin",
        ),
        pytest.param(
            'plugin "fs-device" {\n  config {\n    list_period = "0s"\n  }\n}\n',
            ['plugin "fs-device" config', "list_period", '"0s"'],
            id="nested-duration",
        ),
        pytest.param(
            'plugin "fs-device" {\n  config {\n    colour = "red"\n  }\n}\n',
            ['plugin "fs-device" config', "unknown key 'colour'", "dir, list_period, unhealthy_perm"],
            id="nested-unknown-key",
        ),
        pytest.param(
            'plugin "fs-device" {\n  confg {}\n}\n',
            ['plugin "fs-device"', "unknown key 'confg'", "args, config"],
            id="plugin-key",
        ),
        pytest.param("plugin {\n  config {}\n}\n", ["needs exactly one label"], id="unlabelled-plugin"),
        pytest.param(
            'kubelet {\n  plugin_dir = "/k"\n}\n',
            ["kubelet.namespace", "required key is missing"],
            id="kubelet-missing",
        ),
        pytest.param(
            'kubelet {\n  namespace = "a"\n  port = 1\n}\n',
            ["kubelet: unknown key 'port'", "namespace, plugin_dir"],
            id="kubelet-unknown",
        ),
        pytest.param('plugins_registry = "x"\n', ["'plugins_registry' must be a block"], id="attribute-for-block"),
        pytest.param("kubelet_server {}\nkubelet_server {}\n", ["may appear once"], id="repeated-block"),
        pytest.param("state_dir = 5\n", ["state_dir", "valid string"], id="wrong-type"),
    ],
)
def test_bad_input_is_a_config_error_naming_it(tmp_path: Path, text: str, fragments: list[str]) -> None:
    """Every bad input is a ConfigError naming the file, the offending block or key, and what is allowed."""
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        HostConfig.from_hcl_file(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    """A config file that does not exist is a ConfigError naming its path."""
    missing = tmp_path / "missing.hcl"
    with pytest.raises(ConfigError, match=r"missing\.hcl: cannot read config file"):
        HostConfig.from_hcl_file(missing)
