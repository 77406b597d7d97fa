"""The kubelet framework's pure parts: DeviceTree, the diffing notifier, name rules, CDI documents, wire conversion."""

from __future__ import annotations

import json
import logging
import stat
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from plugin_host._proto import v1beta1 as wire
from plugin_host.errors import InvalidPluginError
from plugin_host.kubelet import (
    AllocateRequest,
    AllocateResponse,
    CdiContainerEdits,
    CdiDevice,
    CdiDeviceNode,
    CdiHook,
    CdiMount,
    CdiSpec,
    ContainerAllocateRequest,
    ContainerAllocateResponse,
    ContainerPreferredAllocationRequest,
    ContainerPreferredAllocationResponse,
    DeviceInfo,
    DevicePluginOptions,
    DeviceTree,
    KubeletDevice,
    KubeletDeviceSpec,
    KubeletMount,
    PreferredAllocationRequest,
    PreferredAllocationResponse,
    PreStartContainerRequest,
    RegisterRequest,
    _names,
)
from plugin_host.kubelet import _convert as convert
from plugin_host.kubelet.export import _cdi
from plugin_host.kubelet.export._list_encode import list_response_to_wire
from plugin_host.kubelet.export._notifier import DiffNotifier, TreeUpdate

HEALTHY_INFO = DeviceInfo()
SICK_INFO = DeviceInfo(state="Unhealthy")


_EDITS = CdiContainerEdits(env=("GPU=1",))


def _spec(kind: str = "example.com/gpu", *names: str) -> CdiSpec:
    return CdiSpec(kind=kind, devices=tuple(CdiDevice(name=name, container_edits=_EDITS) for name in names))


def _tree(devices: dict[str, dict[str, DeviceInfo]]) -> DeviceTree:
    tree = DeviceTree()
    for dev_type, infos in devices.items():
        for dev_id, info in infos.items():
            tree.add_device(dev_type, dev_id, info)
    return tree


# --- DeviceTree ---------------------------------------------------------------------------------------------------


def test_tree_counts_devices_per_type_and_reads_like_a_mapping() -> None:
    """add_device groups devices by type; device_type_count and mapping access see them, unknown types count 0."""
    tree = _tree({"gpu": {"a": HEALTHY_INFO, "b": SICK_INFO}, "fpga": {"f": HEALTHY_INFO}})
    assert tree.device_type_count("gpu") == 2
    assert tree.device_type_count("fpga") == 1
    assert tree.device_type_count("nic") == 0
    assert sorted(tree) == ["fpga", "gpu"]
    assert dict(tree["gpu"]) == {"a": HEALTHY_INFO, "b": SICK_INFO}
    with pytest.raises(TypeError):
        tree["gpu"]["c"] = HEALTHY_INFO  # type: ignore[index]


def test_tree_keeps_only_the_first_cdi_device_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A CDI spec with several devices keeps the first one, and says so."""
    tree = DeviceTree()
    with caplog.at_level(logging.WARNING, logger="plugin_host.kubelet"):
        tree.add_device("gpu", "a", DeviceInfo(cdi_spec=_spec("example.com/gpu", "first", "second")))
    spec = tree["gpu"]["a"].cdi_spec
    assert spec is not None
    assert [d.name for d in spec.devices] == ["first"]
    assert "defines 2 devices" in caplog.text
    assert "'first'" in caplog.text


def test_tree_drops_a_cdi_spec_without_devices_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    """A CDI spec that defines no device is dropped, and says so."""
    tree = DeviceTree()
    with caplog.at_level(logging.WARNING, logger="plugin_host.kubelet"):
        tree.add_device("gpu", "a", DeviceInfo(cdi_spec=_spec("example.com/gpu")))
    assert tree["gpu"]["a"].cdi_spec is None
    assert "defines no device" in caplog.text


@pytest.mark.parametrize(
    "kind", ["gpu", "example.com/", "/gpu", "1example.com/gpu", "example.com/gpu/x", "example.com/gpu-", "ex ample/gpu"]
)
def test_add_device_rejects_an_invalid_cdi_kind_naming_it(kind: str) -> None:
    """Bad input: a CDI spec whose kind is not <vendor>/<class> per the CDI rules fails at add_device, naming it."""
    tree = DeviceTree()
    with pytest.raises(InvalidPluginError, match="CDI spec kind") as caught:
        tree.add_device("gpu", "a", DeviceInfo(cdi_spec=_spec(kind, "a")))
    assert repr(kind) in str(caught.value)
    assert "'a' of type 'gpu'" in str(caught.value)
    assert len(tree) == 0


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-a", "a-", "a b"])
def test_add_device_rejects_an_invalid_cdi_device_name(name: str) -> None:
    """A CDI device name that could not be a file name part (or breaks the CDI rules) fails at add_device."""
    with pytest.raises(InvalidPluginError, match="CDI device name"):
        DeviceTree().add_device("gpu", "a", DeviceInfo(cdi_spec=_spec("example.com/gpu", name)))


@pytest.mark.parametrize(("dev_type", "problem"), [("", "empty"), ("a/b", "letters"), ("x" * 64, "at most 63")])
def test_add_device_rejects_an_invalid_type_name(dev_type: str, problem: str) -> None:
    """A device type that cannot be the name part of a resource (or a socket name) fails at add_device."""
    with pytest.raises(InvalidPluginError, match=problem) as caught:
        DeviceTree().add_device(dev_type, "a", HEALTHY_INFO)
    assert repr(dev_type) in str(caught.value)


_NODE = CdiDeviceNode(path="/dev/gpu0")
_BAD_CDI_SPECS = [
    ("unknown version", {"cdi_version": "1.0.0"}, "cdi_version '1.0.0' is not a spec version runtimes load"),
    ("version too old", {"cdi_version": "0.2.0"}, "cdi_version '0.2.0' is not a spec version"),
    ("annotations on 0.5.0", {"annotations": {"a": "b"}}, "too old for annotations, which needs at least '0.6.0'"),
    ("dot in class on 0.5.0", {"kind": "example.com/gpu.x"}, "too old for a '.' in the class of the kind"),
    ("mount type on 0.3.0", {"cdi_version": "0.3.0", "mount_type": "bind"}, "too old for a mount with a type"),
    ("empty device edits", {"edits": CdiContainerEdits()}, "device 'gpu0' has no container_edits"),
    ("env without =", {"edits": CdiContainerEdits(env=("GPU",))}, "device 'gpu0' env entry 'GPU' is not NAME=value"),
    ("env without name", {"edits": CdiContainerEdits(env=("=1",))}, "env entry '=1' is not NAME=value"),
    (
        "node type",
        {"edits": CdiContainerEdits(device_nodes=(_NODE.model_copy(update={"type": "x"}),))},
        "device node '/dev/gpu0' has type 'x'",
    ),
    (
        "node permissions",
        {"edits": CdiContainerEdits(device_nodes=(_NODE.model_copy(update={"permissions": "rx"}),))},
        "has permissions 'rx', expected some of 'rwm'",
    ),
    (
        "negative uid",
        {"edits": CdiContainerEdits(device_nodes=(_NODE.model_copy(update={"uid": -1}),))},
        "has uid -1, expected 0 to 4294967295",
    ),
    (
        "hook name",
        {"edits": CdiContainerEdits(hooks=(CdiHook(hook_name="preStart", path="/bin/true"),))},
        "hook '/bin/true' has hook_name 'preStart'",
    ),
    (
        "spec-level env",
        {"spec_edits": CdiContainerEdits(env=("X",))},
        "the spec's container_edits env entry 'X' is not NAME=value",
    ),
]


@pytest.mark.parametrize(("options", "problem"), [c[1:] for c in _BAD_CDI_SPECS], ids=[c[0] for c in _BAD_CDI_SPECS])
def test_add_device_rejects_a_cdi_spec_runtimes_would_refuse(options: dict[str, Any], problem: str) -> None:
    """Bad input: a CDI spec the runtimes' CDI loader refuses (version, empty or malformed edits) fails at
    add_device, naming the device, the kind and the problem, instead of being written and failing the container."""
    mount = CdiMount(host_path="/h", container_path="/c", type=options.get("mount_type", ""))
    edits = options.get("edits", CdiContainerEdits(env=("GPU=1",), mounts=(mount,)))
    spec = CdiSpec(
        cdi_version=options.get("cdi_version", "0.5.0"),
        kind=options.get("kind", "example.com/gpu"),
        annotations=options.get("annotations", {}),
        devices=(CdiDevice(name="gpu0", container_edits=edits),),
        container_edits=options.get("spec_edits", CdiContainerEdits()),
    )
    tree = DeviceTree()
    with pytest.raises(InvalidPluginError, match="would be refused by runtimes") as caught:
        tree.add_device("gpu", "a", DeviceInfo(cdi_spec=spec))
    assert problem in str(caught.value)
    assert "device 'a' of type 'gpu'" in str(caught.value)
    assert len(tree) == 0


@pytest.mark.parametrize(
    ("version", "options"),
    [("0.6.0", {"annotations": {"a": "b"}}), ("v0.6.0", {"kind": "example.com/gpu.x"}), ("0.8.0", {}), ("0.3.0", {})],
)
def test_add_device_accepts_a_cdi_spec_whose_version_covers_its_features(version: str, options: dict[str, Any]) -> None:
    """A spec whose cdi_version is known and new enough for the features it uses is kept as it is."""
    spec = CdiSpec(
        cdi_version=version,
        kind=options.get("kind", "example.com/gpu"),
        annotations=options.get("annotations", {}),
        devices=(CdiDevice(name="gpu0", container_edits=_EDITS),),
    )
    tree = DeviceTree()
    tree.add_device("gpu", "a", DeviceInfo(cdi_spec=spec))
    assert tree["gpu"]["a"].cdi_spec == spec


def test_add_device_rejects_an_id_that_is_not_utf8_text() -> None:
    """Bad input: an id with a lone surrogate (no UTF-8 form, so no protobuf string) fails at add_device, naming it."""
    tree = DeviceTree()
    with pytest.raises(InvalidPluginError, match="expected a string that encodes to UTF-8") as caught:
        tree.add_device("gpu", "g\ud800", HEALTHY_INFO)
    assert "'g\\ud800' of type 'gpu'" in str(caught.value)
    assert len(tree) == 0
    tree.add_device("gpu", "gé☃𝄞", HEALTHY_INFO)  # any real Unicode text is fine
    assert list(tree["gpu"]) == ["gé☃𝄞"]


def test_add_device_rejects_an_empty_id_and_a_non_info() -> None:
    """The device id must be non-empty, and the info a DeviceInfo."""
    with pytest.raises(InvalidPluginError, match="device id"):
        DeviceTree().add_device("gpu", "", HEALTHY_INFO)
    with pytest.raises(InvalidPluginError, match="must be a DeviceInfo, got dict"):
        DeviceTree().add_device("gpu", "a", {"state": "Healthy"})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("model", "kwargs"),
    [
        (DeviceInfo, {"state": "Broken"}),
        (DeviceInfo, {"topology": (-1,)}),
        (KubeletDeviceSpec, {"container_path": "/dev/x", "host_path": "/dev/x", "permissions": "rx"}),
        (KubeletDeviceSpec, {"container_path": "/dev/x", "host_path": "/dev/x", "permissions": "rr"}),
        (KubeletMount, {"container_path": "", "host_path": "/x"}),
    ],
)
def test_models_reject_invalid_fields(model: type[Any], kwargs: dict[str, Any]) -> None:
    """Health must be Healthy/Unhealthy, NUMA ids non-negative, permissions from rwm, paths non-empty."""
    with pytest.raises(ValidationError):
        model(**kwargs)


# --- the notifier -------------------------------------------------------------------------------------------------

A = DeviceInfo()
A2 = DeviceInfo(envs={"X": "1"})


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        pytest.param({}, {"gpu": {"a": A}}, TreeUpdate(added={"gpu": {"a": A}}), id="none-to-one-type"),
        pytest.param(
            {"gpu": {"a": A}}, {"gpu": {"a": A2}}, TreeUpdate(updated={"gpu": {"a": A2}}), id="device-changed"
        ),
        pytest.param(
            {"gpu": {"a": A}},
            {"gpu": {"a": A, "b": A}},
            TreeUpdate(updated={"gpu": {"a": A, "b": A}}),
            id="device-added",
        ),
        pytest.param(
            {"gpu": {"a": A}, "fpga": {"f": A}},
            {"gpu": {"a": A}},
            TreeUpdate(removed=frozenset({"fpga"})),
            id="removal",
        ),
        pytest.param({"gpu": {"a": A}}, {}, TreeUpdate(removed=frozenset({"gpu"})), id="all-removed"),
        pytest.param(
            {"gpu": {"a": A}},
            {"fpga": {"f": A}},
            TreeUpdate(added={"fpga": {"f": A}}, removed=frozenset({"gpu"})),
            id="swap",
        ),
        pytest.param({"gpu": {"a": A}}, {"gpu": {"a": DeviceInfo()}}, None, id="identical-tree-sends-nothing"),
        pytest.param({}, {}, None, id="empty-to-empty-sends-nothing"),
    ],
)
def test_notifier_diff_table(
    before: dict[str, dict[str, DeviceInfo]],
    after: dict[str, dict[str, DeviceInfo]],
    expected: TreeUpdate | None,
) -> None:
    """The notifier sends added / updated / removed types against the previous tree, and nothing when equal."""
    sent: list[TreeUpdate] = []
    notifier = DiffNotifier(sent.append)
    notifier.notify(_tree(before))
    sent.clear()
    notifier.notify(_tree(after))
    assert sent == ([] if expected is None else [expected])


def test_notifier_keeps_a_copy_of_the_tree() -> None:
    """A scanner that keeps adding to the same tree object after notify still gets each change diffed."""
    sent: list[TreeUpdate] = []
    notifier = DiffNotifier(sent.append)
    tree = _tree({"gpu": {"a": A}})
    notifier.notify(tree)
    tree.add_device("gpu", "b", A)
    notifier.notify(tree)
    assert sent == [TreeUpdate(added={"gpu": {"a": A}}), TreeUpdate(updated={"gpu": {"a": A, "b": A}})]


def test_notifier_rejects_something_else_than_a_tree() -> None:
    """notify() takes a DeviceTree; a plain dict is an InvalidPluginError naming its type."""
    with pytest.raises(InvalidPluginError, match="got dict"):
        DiffNotifier(lambda update: None).notify({"gpu": {}})  # type: ignore[arg-type]


# --- name rules ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("example.com/gpu", True),
        ("intel.com/i915", True),
        ("x.com/" + "a" * 63, True),
        ("foo", False),
        ("kubernetes.io/foo", False),
        ("sub.kubernetes.io/foo", False),
        ("requests.example.com/foo", False),
        ("x.com/" + "a" * 64, False),
        ("Example.com/gpu", False),
        ("example.com/", False),
        ("/gpu", False),
        ("example.com/a/b", False),
        ("example.com/-gpu", False),
    ],
)
def test_resource_name_rules_follow_kubelet(name: str, valid: bool) -> None:
    """Resource names are checked as kubelet's IsExtendedResourceName does."""
    assert (_names.resource_name_problem(name) is None) is valid


def test_invalid_resource_name_message_is_kubelets() -> None:
    """The refusal reads exactly like kubelet's (Go %q quoting)."""
    assert _names.invalid_resource_name_message("foo") == 'the ResourceName "foo" is invalid'


@pytest.mark.parametrize(
    ("endpoint", "valid"), [("a.sock", True), ("", False), ("../a.sock", False), ("a/b", False), ("..", False)]
)
def test_endpoint_must_be_a_plain_file_name(endpoint: str, valid: bool) -> None:
    """A Register endpoint is a socket file name inside the plugin directory, nothing else."""
    assert (_names.endpoint_problem(endpoint) is None) is valid


# --- CDI documents ------------------------------------------------------------------------------------------------


def test_cdi_document_uses_the_spec_field_names_and_leaves_out_empty_fields() -> None:
    """The written document uses CDI's camelCase names; empty optional fields are left out."""
    spec = CdiSpec(
        kind="example.com/gpu",
        devices=(
            CdiDevice(
                name="g0",
                container_edits=CdiContainerEdits(
                    env=("A=1",),
                    device_nodes=(
                        CdiDeviceNode(path="/dev/g0", host_path="/dev/real0", permissions="rw", file_mode=0o600),
                    ),
                    mounts=(CdiMount(host_path="/opt/lib", container_path="/lib/x", options=("ro", "bind")),),
                    hooks=(CdiHook(hook_name="createContainer", path="/bin/hook", args=("hook", "x")),),
                ),
            ),
        ),
    )
    assert _cdi.spec_document(spec) == {
        "cdiVersion": "0.5.0",
        "kind": "example.com/gpu",
        "devices": [
            {
                "name": "g0",
                "containerEdits": {
                    "env": ["A=1"],
                    "deviceNodes": [
                        {"path": "/dev/g0", "hostPath": "/dev/real0", "fileMode": 384, "permissions": "rw"}
                    ],
                    "hooks": [{"hookName": "createContainer", "path": "/bin/hook", "args": ["hook", "x"]}],
                    "mounts": [{"hostPath": "/opt/lib", "containerPath": "/lib/x", "options": ["ro", "bind"]}],
                },
            }
        ],
    }
    assert _cdi.qualified_name(spec) == "example.com/gpu=g0"
    assert _cdi.spec_file_name(spec) == "example.com-gpu-g0.yaml"


def test_write_spec_once_writes_0644_json_yaml_and_never_rewrites(tmp_path: Path) -> None:
    """The spec file is created with mode 0644 (directory created too), holds the document, and an existing file
    is left as it is; no temporary file stays behind."""
    cdi_dir = tmp_path / "cdi"
    spec = _spec("example.com/gpu", "g0")
    path = _cdi.write_spec_once(spec, cdi_dir)
    assert path == cdi_dir / "example.com-gpu-g0.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert json.loads(path.read_text()) == _cdi.spec_document(spec)
    path.write_text("kept")
    _cdi.write_spec_once(spec, cdi_dir)
    assert path.read_text() == "kept"
    assert [p.name for p in cdi_dir.iterdir()] == ["example.com-gpu-g0.yaml"]


# --- wire conversion ----------------------------------------------------------------------------------------------

ROUND_TRIPS: list[tuple[Any, Any, Any]] = [
    (
        AllocateRequest(
            container_requests=(ContainerAllocateRequest(devices_ids=("a", "b")), ContainerAllocateRequest())
        ),
        convert.allocate_request_to_wire,
        convert.allocate_request_from_wire,
    ),
    (
        AllocateResponse(
            container_responses=(
                ContainerAllocateResponse(
                    envs={"A": "1"},
                    mounts=(KubeletMount(container_path="/c", host_path="/h", read_only=True),),
                    devices=(KubeletDeviceSpec(container_path="/dev/c", host_path="/dev/h", permissions="rwm"),),
                    annotations={"k": "v"},
                    cdi_devices=("example.com/gpu=g0",),
                ),
            )
        ),
        convert.allocate_response_to_wire,
        convert.allocate_response_from_wire,
    ),
    (
        PreferredAllocationRequest(
            container_requests=(
                ContainerPreferredAllocationRequest(
                    available_device_ids=("a", "b", "c"), must_include_device_ids=("a",), allocation_size=2
                ),
            )
        ),
        convert.preferred_allocation_request_to_wire,
        convert.preferred_allocation_request_from_wire,
    ),
    (
        PreferredAllocationResponse(container_responses=(ContainerPreferredAllocationResponse(device_ids=("a", "b")),)),
        convert.preferred_allocation_response_to_wire,
        convert.preferred_allocation_response_from_wire,
    ),
    (
        PreStartContainerRequest(devices_ids=("a",)),
        convert.pre_start_request_to_wire,
        convert.pre_start_request_from_wire,
    ),
    (
        DevicePluginOptions(pre_start_required=True, get_preferred_allocation_available=True),
        convert.options_to_wire,
        convert.options_from_wire,
    ),
    (
        RegisterRequest(version="v1beta1", endpoint="x.sock", resource_name="example.com/x"),
        convert.register_request_to_wire,
        convert.register_request_from_wire,
    ),
    (
        KubeletDevice(id="a", health="Healthy", topology=(0, 1)),
        convert.kubelet_device_to_wire,
        convert.kubelet_device_from_wire,
    ),
    (
        KubeletDevice(id="a", health="Unhealthy", topology=()),
        convert.kubelet_device_to_wire,
        convert.kubelet_device_from_wire,
    ),
    (KubeletDevice(id="a", health="Healthy"), convert.kubelet_device_to_wire, convert.kubelet_device_from_wire),
]


@pytest.mark.parametrize(("model", "to_wire", "from_wire"), ROUND_TRIPS)
def test_wire_round_trip(model: Any, to_wire: Any, from_wire: Any) -> None:
    """Every domain model survives domain -> wire bytes -> domain unchanged (topology None stays None, () stays ())."""
    message = to_wire(model)
    parsed = type(message)().parse(bytes(message))
    assert from_wire(parsed) == model


def test_list_response_sends_every_device_with_health_and_numa_nodes_in_id_order() -> None:
    """ListAndWatch's message carries each device's id, health and NUMA nodes, sorted by id."""
    message = list_response_to_wire({"b": DeviceInfo(state="Unhealthy", topology=(1,)), "a": DeviceInfo()})
    parsed = convert.list_response_from_wire(wire.ListAndWatchResponse().parse(bytes(message)))
    assert parsed == (
        KubeletDevice(id="a", health="Healthy", topology=None),
        KubeletDevice(id="b", health="Unhealthy", topology=(1,)),
    )
