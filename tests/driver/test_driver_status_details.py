"""Recoverable driver errors travel as Nomad sends them: FAILED_PRECONDITION plus a ``RecoverableError`` detail in
the ``grpc-status-details-bin`` trailer (a ``google.rpc.Status``). Checked both ways against grpcio and Google's
protobuf runtime, which is what a Go peer's bytes look like, not only against ourselves."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import grpc_tools
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpclib.const import Status
from helpers.driver import task

from plugin_host._grpc_status import StatusDetailsCodec, UnknownDetail
from plugin_host._proto.hashicorp.nomad.plugins.drivers import proto as wire
from plugin_host.driver import DriverPluginClient, DriverPluginServer
from plugin_host.driver import _convert as driver_convert
from plugin_host.driver.api import DriverNetwork, TaskConfig, TaskHandle, TaskResourceUsage
from plugin_host.errors import DriverError, TaskConfigError, TaskExistsError
from plugin_host.plugins.rawexec import RawExecDriver

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
START_TASK = "/hashicorp.nomad.plugins.drivers.proto.Driver/StartTask"
DETAILS_KEY = "grpc-status-details-bin"


@pytest.fixture(scope="module")
def google_messages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """google.rpc.Status and RecoverableError as Google's protobuf runtime builds them from our .proto files."""
    out = tmp_path_factory.mktemp("fds") / "set.pb"
    wkt = Path(grpc_tools.__file__).parent / "_proto"
    files = ["google/rpc/status.proto", "plugins/shared/structs/proto/recoverable_error.proto"]
    argv = [sys.executable, "-m", "grpc_tools.protoc", f"-I{REPO / 'proto'}", f"-I{wkt}", "--include_imports"]
    subprocess.run([*argv, f"--descriptor_set_out={out}", *files], check=True, capture_output=True)
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return {
        name: message_factory.GetMessageClass(pool.FindMessageTypeByName(full))
        for name, full in (
            ("Status", "google.rpc.Status"),
            ("RecoverableError", "hashicorp.nomad.plugins.shared.structs.RecoverableError"),
        )
    }


class FailingDriver(RawExecDriver):
    """raw-exec whose start_task and task_stats fail with a DriverError (or subclass) of the given recoverability."""

    def __init__(self, state_dir: Path, *, recoverable: bool, error: type[DriverError] = DriverError) -> None:
        super().__init__({"state_dir": str(state_dir)})
        self._error = error("image is still downloading", recoverable=recoverable)

    async def start_task(self, config: TaskConfig) -> tuple[TaskHandle, DriverNetwork | None]:
        raise self._error

    async def task_stats(self, task_id: str, interval: float) -> AsyncIterator[TaskResourceUsage]:
        raise self._error
        yield  # an async generator, as a driver's stats stream is


@asynccontextmanager
async def failing_server(
    directory: Path, *, recoverable: bool, error: type[DriverError] = DriverError
) -> AsyncIterator[Path]:
    socket = directory / "d.sock"
    driver = FailingDriver(directory / "state", recoverable=recoverable, error=error)
    async with DriverPluginServer(driver, socket):
        yield socket


@pytest.mark.parametrize("recoverable", [True, False])
async def test_our_client_reads_the_recoverability_our_server_sends(short_tmp: Path, recoverable: bool) -> None:
    """A recoverable StartTask failure arrives recoverable, a plain one not, with the driver's message."""
    async with failing_server(short_tmp, recoverable=recoverable) as socket, DriverPluginClient(socket) as client:
        with pytest.raises(DriverError, match="image is still downloading") as caught:
            await client.start_task(task("t1", "exit 0"))
    assert caught.value.recoverable is recoverable


@pytest.mark.parametrize("recoverable", [True, False])
async def test_the_stats_stream_carries_the_recoverability_too(short_tmp: Path, recoverable: bool) -> None:
    """TaskStats, the other call Nomad reads the detail on: a recoverable failure arrives recoverable."""
    async with failing_server(short_tmp, recoverable=recoverable) as socket, DriverPluginClient(socket) as client:
        stream = client.task_stats("t1", 1.0)
        with pytest.raises(DriverError, match="image is still downloading") as caught:
            await anext(stream)
    assert caught.value.recoverable is recoverable


@pytest.mark.parametrize("error", [TaskConfigError, TaskExistsError])
async def test_a_recoverable_subclass_is_sent_as_nomad_sends_every_recoverable_error(
    short_tmp: Path, error: type[DriverError]
) -> None:
    """A recoverable TaskConfigError/TaskExistsError goes out as FAILED_PRECONDITION with the detail (not its usual
    code), and comes back as a recoverable DriverError; not recoverable, it keeps its own type."""
    async with failing_server(short_tmp, recoverable=True, error=error) as socket, DriverPluginClient(socket) as c:
        with pytest.raises(DriverError, match=r"StartTask .* failed \(FAILED_PRECONDITION\)") as caught:
            await c.start_task(task("t1", "exit 0"))
    assert caught.value.recoverable is True
    async with failing_server(short_tmp, recoverable=False, error=error) as socket, DriverPluginClient(socket) as c:
        with pytest.raises(error) as plain:
            await c.start_task(task("t1", "exit 0"))
    assert plain.value.recoverable is False


async def test_the_trailer_is_a_google_rpc_status_a_go_client_can_read(
    short_tmp: Path, google_messages: dict[str, Any]
) -> None:
    """Read with grpcio and Google's runtime (as Go's status.Convert would): code FAILED_PRECONDITION, the message,
    and one Any holding RecoverableError{recoverable: true} under its type.googleapis.com URL."""
    async with (
        failing_server(short_tmp, recoverable=True) as socket,
        grpc.aio.insecure_channel(f"unix://{socket}") as channel,
    ):
        call = channel.unary_unary(START_TASK, request_serializer=None, response_deserializer=None)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(bytes(task_request()))
    error = caught.value
    assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
    trailer = dict(error.trailing_metadata() or ())[DETAILS_KEY]
    status = google_messages["Status"].FromString(trailer)
    assert (status.code, status.message) == (grpc.StatusCode.FAILED_PRECONDITION.value[0], error.details())
    assert "image is still downloading" in status.message
    [detail] = status.details
    assert detail.type_url == "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError"
    assert google_messages["RecoverableError"].FromString(detail.value).recoverable is True


@pytest.mark.parametrize(
    ("code", "detail", "recoverable"),
    [
        (grpc.StatusCode.FAILED_PRECONDITION, "recoverable", True),
        (grpc.StatusCode.FAILED_PRECONDITION, "not-recoverable", False),
        (grpc.StatusCode.FAILED_PRECONDITION, None, False),
        (grpc.StatusCode.INVALID_ARGUMENT, "recoverable", True),
        (grpc.StatusCode.UNKNOWN, "recoverable", True),
    ],
)
async def test_our_client_reads_a_go_style_detail(
    short_tmp: Path,
    google_messages: dict[str, Any],
    code: grpc.StatusCode,
    detail: str | None,
    recoverable: bool,
) -> None:
    """Against a grpcio server writing the trailer with Google's runtime: the detail decides, not the status code
    (FAILED_PRECONDITION without a detail is not recoverable, as in Nomad's client)."""
    trailer: tuple[tuple[str, bytes], ...] = ()
    if detail is not None:
        status = google_messages["Status"](code=code.value[0], message="busy")
        any_detail = status.details.add()
        any_detail.type_url = "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError"
        any_detail.value = google_messages["RecoverableError"](recoverable=detail == "recoverable").SerializeToString()
        trailer = ((DETAILS_KEY, status.SerializeToString()),)

    async def start_task(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(code, "busy", trailing_metadata=trailer)
        raise AssertionError("abort returns only by raising")

    handler = grpc.method_handlers_generic_handler(
        "hashicorp.nomad.plugins.drivers.proto.Driver", {"StartTask": grpc.unary_unary_rpc_method_handler(start_task)}
    )
    socket = short_tmp / "go.sock"
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port(f"unix://{socket}")
    await server.start()
    try:
        async with DriverPluginClient(socket) as client:
            with pytest.raises(DriverError, match="busy") as caught:
                await client.start_task(task("t1", "exit 0"))
    finally:
        await server.stop(None)
    assert caught.value.recoverable is recoverable


def test_a_broken_trailer_is_kept_as_an_unknown_detail_not_an_exception() -> None:
    """Undecodable status details never hide the status: they come back as one UnknownDetail."""
    codec = StatusDetailsCodec()
    [detail] = codec.decode(Status.FAILED_PRECONDITION, "x", b"\x1a\x05\x0a")  # a truncated Any
    assert isinstance(detail, UnknownDetail)
    foreign = codec.decode(
        Status.FAILED_PRECONDITION,
        "x",
        b"\x1a\x0f\x0a\x0atype.x/Foo\x12\x01\x00",  # details: [Any{type_url: "type.x/Foo", value: b"\x00"}]
    )
    assert [type(d) for d in foreign] == [UnknownDetail]
    assert foreign[0].type_url == "type.x/Foo"


def task_request() -> Any:
    """The wire StartTaskRequest for a trivial task."""
    return wire.StartTaskRequest(task=driver_convert.task_config_to_wire(task("t1", "exit 0")))


def test_unknown_details_pass_through_and_foreign_types_are_dropped() -> None:
    """An UnknownDetail goes back out as the Any it came as; a detail type without a protobuf name is left out
    rather than failing the status it belongs to."""
    codec = StatusDetailsCodec()
    kept = UnknownDetail("type.x/Foo", b"\x00")
    data = codec.encode(Status.FAILED_PRECONDITION, "x", [kept, object()])
    [back] = codec.decode(Status.FAILED_PRECONDITION, "x", data)
    assert isinstance(back, UnknownDetail)
    assert (back.type_url, back.value) == ("type.x/Foo", b"\x00")
