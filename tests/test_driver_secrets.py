"""Task secrets (the task's environment, passwords in its driver config) stay out of the reprs and strings of the
driver models that carry them."""

from __future__ import annotations

from plugin_host.driver.api import TaskConfig, TaskHandle, TaskState

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
