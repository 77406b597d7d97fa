"""The host side's wire -> Nomad converters for hosted Kubernetes device plugins: pure functions, table-tested."""

from __future__ import annotations

import pytest

from plugin_host._proto import v1beta1 as wire
from plugin_host.base.structs import Attribute
from plugin_host.device import ContainerReservation, Device, DeviceGroup, DeviceSpec, Mount
from plugin_host.kubelet.host import _hosted_convert as convert
from plugin_host.kubelet.host._register_checks import endpoint_error, resource_name_error, version_error


@pytest.mark.parametrize(
    ("health", "healthy", "description"),
    [
        ("Healthy", True, ""),
        ("Unhealthy", False, "the device plugin reports health 'Unhealthy'"),
        ("", False, "the device plugin reports health 'unset'"),
        ("healthy", False, "the device plugin reports health 'healthy'"),
    ],
)
def test_health_strings_map_to_healthy_only_for_healthy(health: str, healthy: bool, description: str) -> None:
    """Only kubelet's exact "Healthy" is healthy; anything else is unhealthy with the plugin's word in the reason."""
    (device,) = convert.devices_from_wire([wire.Device(id="d", health=health)])
    assert device == Device(id="d", healthy=healthy, health_description=description)


def test_a_list_and_watch_message_becomes_the_resources_group() -> None:
    """<domain>/<resource> becomes vendor <domain>, type and name <resource>, devices in the plugin's order."""
    message = wire.ListAndWatchResponse(
        devices=[
            wire.Device(id="b", health="Healthy", topology=wire.TopologyInfo(nodes=[wire.NumaNode(id=1)])),
            wire.Device(id="a", health="Healthy"),
        ]
    )
    group = convert.device_group_from_wire("nvidia.com/gpu", message)
    assert group == DeviceGroup(
        vendor="nvidia.com",
        type="gpu",
        name="gpu",
        devices=(Device(id="b", healthy=True), Device(id="a", healthy=True)),
        attributes={"kubelet_resource": Attribute(string_val="nvidia.com/gpu")},
    )


def test_mark_unhealthy_keeps_ids_and_gives_the_reason() -> None:
    """A disconnected plugin's devices stay listed, unhealthy, with the reason."""
    devices = (Device(id="a", healthy=True), Device(id="b", healthy=False, health_description="x"))
    assert convert.mark_unhealthy(devices, "gone") == (
        Device(id="a", healthy=False, health_description="gone"),
        Device(id="b", healthy=False, health_description="gone"),
    )


def test_allocate_request_is_one_container() -> None:
    """reserve(ids) asks for one container holding all the ids, as kubelet does per container."""
    request = convert.allocate_request_to_wire(["a", "b"])
    assert [list(c.devices_ids) for c in request.container_requests] == [["a", "b"]]


def test_container_response_becomes_a_reservation() -> None:
    """Envs, mounts and device specs map field by field; annotations and CDI names have no Nomad field."""
    response = wire.ContainerAllocateResponse(
        envs={"K": "V"},
        mounts=[wire.Mount(container_path="/c", host_path="/h", read_only=True)],
        devices=[wire.DeviceSpec(container_path="/dev/c", host_path="/dev/h", permissions="")],
        annotations={"a": "b"},
        cdi_devices=[wire.CdiDevice(name="vendor.com/class=x")],
    )
    assert convert.reservation_from_wire(response) == ContainerReservation(
        envs={"K": "V"},
        mounts=(Mount(task_path="/c", host_path="/h", read_only=True),),
        devices=(DeviceSpec(task_path="/dev/c", host_path="/dev/h", cgroup_perms=""),),
    )


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1beta1", None),
        ("v1alpha", 'requested API version "v1alpha" is not supported by kubelet. Supported version is ["v1beta1"]'),
        ("", 'requested API version "" is not supported by kubelet. Supported version is ["v1beta1"]'),
    ],
)
def test_version_messages_are_kubelets(version: str, expected: str | None) -> None:
    """Only v1beta1 is accepted; the refusal is kubelet's text with Go's %q quoting of the supported list."""
    assert version_error(version) == expected


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.com/widget", True),
        ("a.b-c.io/Widget_1.x", True),
        ("x.com/" + "a" * 63, True),
        ("foo", False),
        ("kubernetes.io/foo", False),
        ("sub.kubernetes.io/foo", False),
        ("requests.x.com/foo", False),
        ("x.com/" + "a" * 64, False),
        ("x.com/", False),
        ("/foo", False),
        ("X.com/foo", False),
        ("x.com/a/b", False),
        ("x.com/-a", False),
    ],
)
def test_resource_names_follow_is_extended_resource_name(name: str, valid: bool) -> None:
    """Resource names are accepted exactly when kubelet's IsExtendedResourceName would accept them."""
    assert resource_name_error(name) == (None if valid else f'the ResourceName "{name}" is invalid')


def test_an_endpoint_too_long_for_a_socket_is_refused() -> None:
    """An endpoint that makes the socket path exceed the Unix limit is refused, naming the size."""
    error = endpoint_error("e" * 100 + ".sock", "/tmp/plugins")
    assert error is not None
    assert "bytes, the Unix socket limit is 107" in error
    assert endpoint_error("ok.sock", "/tmp/plugins") is None


def test_a_device_listed_twice_is_one_device_with_its_last_health_at_its_first_place() -> None:
    """Duplicate ids in one message collapse as kubelet's map does (the last entry wins) without reordering;
    repeated_ids names each repeated id once, in the order it was first repeated."""
    listed = [
        wire.Device(id="a", health="Healthy"),
        wire.Device(id="b", health="Healthy"),
        wire.Device(id="b", health="Unhealthy"),
        wire.Device(id="a", health="Unhealthy"),
        wire.Device(id="a", health="Healthy"),
        wire.Device(id="c", health="Healthy"),
    ]
    assert convert.devices_from_wire(listed) == (
        Device(id="a", healthy=True),
        Device(id="b", healthy=False, health_description="the device plugin reports health 'Unhealthy'"),
        Device(id="c", healthy=True),
    )
    assert convert.repeated_ids(listed) == ["b", "a"]
    assert convert.repeated_ids(listed[:2]) == []
