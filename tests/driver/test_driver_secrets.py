"""Task secrets (the task's environment, passwords, user data, commands and arguments in its driver config) stay out
of the reprs and strings of the driver models that carry them, and out of the errors that refuse them."""

from __future__ import annotations

import traceback
from pathlib import Path

import pytest
from pydantic import ValidationError

from plugin_host.driver.api import TaskConfig, TaskHandle, TaskState
from plugin_host.errors import ConfigError, TaskConfigError
from plugin_host.plugins.rawexec import RawExecConfig, RawExecDriver
from plugin_host.plugins.virt._config import VirtTaskConfig

SECRET = "hunter2-do-not-print"


def secret_task() -> TaskConfig:
    """A task whose env, device env and driver config each carry the secret."""
    return TaskConfig(
        id="alloc-1/web/1",
        name="web",
        env={"VAULT_TOKEN": SECRET},
        device_env={"DEVICE_KEY": SECRET},
        driver_config={"image": "/img", "default_user_password": SECRET},
    )


def test_task_config_repr_and_str_hide_env_and_driver_config() -> None:
    """repr() and str() of a TaskConfig name the task but show none of its env, device env or driver config."""
    config = secret_task()
    for text in (repr(config), str(config)):
        assert "alloc-1/web/1" in text
        assert SECRET not in text


def test_task_handle_repr_hides_the_task_secrets() -> None:
    """A TaskHandle's repr embeds its config's repr, so it hides the same secrets."""
    handle = TaskHandle(version=1, config=secret_task(), state=TaskState.RUNNING, driver_state=b"{}")
    assert SECRET not in repr(handle)
    assert SECRET not in str(handle)
    assert handle.config.driver_config["default_user_password"] == SECRET  # still there for the driver


def _all_text(exc: BaseException) -> str:
    """The exception as a traceback prints it, with every exception chained to it."""
    return "".join(traceback.format_exception(exc))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user_data", [f"password: {SECRET}"]),
        ("cmds", [{"run": f"echo {SECRET} | chpasswd"}]),
        ("default_user_password", [SECRET]),
    ],
)
def test_virt_task_config_errors_never_echo_a_secret_field(field: str, value: object) -> None:
    """A badly typed user_data, cmds or default_user_password is refused naming the field and what it got (type
    and size), never its value: not in the message, not in the pydantic error chained to it."""
    with pytest.raises(ConfigError) as caught:
        VirtTaskConfig.parse({"image": "/img", field: value}, task_id="a/web/1")
    assert field in str(caught.value)
    assert "not shown" in str(caught.value)
    assert SECRET not in _all_text(caught.value)


@pytest.mark.anyio
async def test_raw_exec_args_errors_name_the_bad_index_but_never_echo_the_args(short_tmp: Path) -> None:
    """raw-exec refuses args with a non-string by its index and type; the arguments (which carry tokens) are not
    echoed."""
    driver = RawExecDriver({"state_dir": str(short_tmp / "state")})
    task = TaskConfig(
        id="a/web/1", name="web", driver_config={"command": "/bin/true", "args": ["--token", SECRET, {"x": SECRET}]}
    )
    with pytest.raises(TaskConfigError) as caught:
        await driver.start_task(task)
    assert "config.args: expected a list of strings; [2] is a dict of 1 item" in str(caught.value)
    assert SECRET not in _all_text(caught.value)


def test_task_config_validation_error_hides_env_values() -> None:
    """pydantic's error for a badly typed env value names env.TOKEN but not the value (no input_value=...)."""
    with pytest.raises(ValidationError) as caught:
        TaskConfig(id="a", name="web", env={"TOKEN": [SECRET]})
    assert "env.TOKEN" in str(caught.value)
    assert SECRET not in _all_text(caught.value)


def test_config_errors_truncate_a_huge_value() -> None:
    """A 300,000-character value in a config is echoed cut short with its total length, naming the key."""
    with pytest.raises(ConfigError) as caught:
        RawExecConfig.from_mapping({"state_dir": ["x" * 300_000]})
    message = str(caught.value)
    assert message.startswith("raw-exec config: state_dir: Input should be a valid string; got ['xxx")
    assert message.endswith("… (300004 chars)")
    assert len(message) < 400
    assert len(_all_text(caught.value)) < 5000
