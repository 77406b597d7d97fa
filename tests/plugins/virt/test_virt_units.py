"""The virt driver's pure parts: config decoding, the cloud-init seed ISO, the domain XML and the hypervisor choice."""

from __future__ import annotations

import asyncio
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import msgpack
import pycdlib
import pytest

from plugin_host.errors import ConfigError
from plugin_host.plugins.virt import VirtConfig, VirtTaskConfig
from plugin_host.plugins.virt._cloudinit import SeedContent, Share, build_seed, write_seed
from plugin_host.plugins.virt._config import EmulatorConfig
from plugin_host.plugins.virt._domain import DomainSpec, FsShare, domain_xml, pick_domain_type, task_id_from_xml
from plugin_host.plugins.virt._libvirt import LibvirtConnection
from plugin_host.plugins.virt._validate import TaskPlan, domain_name_for

CAPS = """<capabilities><guest><os_type>hvm</os_type><arch name='x86_64'>
<domain type='qemu'/>{kvm}</arch></guest><guest><os_type>hvm</os_type><arch name='aarch64'><domain type='qemu'/>
</arch></guest></capabilities>"""


def test_plugin_config_accepts_hcl_blocks_and_msgpack() -> None:
    """emulator arrives as an HCL block list or a msgpack map; both decode to the same config."""
    from_hcl = VirtConfig.coerce({"emulator": [{"uri": "qemu:///session", "user": "u"}], "image_paths": ["/img"]})
    packed = msgpack.packb({"emulator": {"uri": "qemu:///session", "user": "u"}, "image_paths": ["/img"]})
    assert VirtConfig.coerce(packed) == from_hcl
    assert from_hcl.emulator.uri == "qemu:///session"
    assert VirtConfig.coerce(None).emulator.uri == "qemu:///system"


def test_plugin_config_with_nomads_null_attributes_takes_the_defaults() -> None:
    """Nomad's SetConfig payload (cty msgpack) carries nil for every unset attribute and an absent block; those
    mean "unset" and take the defaults."""
    payload = msgpack.packb({"emulator": None, "data_dir": "/data", "image_paths": None}, use_bin_type=True)
    config = VirtConfig.coerce(payload)
    assert config == VirtConfig(data_dir="/data")
    nested = msgpack.packb({"emulator": {"uri": "qemu:///session", "user": None, "password": None}}, use_bin_type=True)
    assert VirtConfig.coerce(nested).emulator == EmulatorConfig(uri="qemu:///session")


def test_a_password_of_the_wrong_type_is_refused_without_showing_it() -> None:
    """A non-string emulator password is refused; the error does not contain the value."""
    with pytest.raises(ConfigError, match=r"emulator\.password: expected a string") as caught:
        VirtConfig.coerce({"emulator": {"password": 987654321}})
    assert "987654321" not in str(caught.value)
    config = VirtConfig.coerce({"emulator": {"password": "hunter2"}})
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config.model_dump())


def test_task_config_decodes_nomad_shapes() -> None:
    """The task block from msgpack: os as a map, network_interface as a list of blocks, bridge as a block."""
    raw = {
        "image": "disk.qcow2",
        "os": {"arch": "x86_64", "machine": "pc"},
        "network_interface": [{"bridge": [{"name": "br0", "ports": ["http"]}]}],
        "cmds": ["echo hi"],
        "use_thin_copy": True,
    }
    task = VirtTaskConfig.parse(msgpack.packb(raw), task_id="a/b/c")
    assert task.os is not None
    assert task.os.machine == "pc"
    assert task.network_interface[0].bridge is not None
    assert task.network_interface[0].bridge.ports == ("http",)
    assert VirtTaskConfig.parse(raw, task_id="a/b/c") == task


@pytest.mark.parametrize(
    ("task_id", "name"), [("alloc/web/abc123", "web-abc123"), ("plain", "plain"), ("a/we b/c", "we-b-c")]
)
def test_domain_names_follow_upstream(task_id: str, name: str) -> None:
    """The VM name is the task id without the alloc id, joined by '-', with unsafe characters replaced."""
    assert domain_name_for(task_id) == name


def test_seed_iso_is_cidata_with_meta_user_and_vendor_data(tmp_path: Path) -> None:
    """The seed is an ISO labelled cidata holding meta-data (instance id, hostname), the user-data as given and
    vendor-data with password, key, runcmd, the 9p mounts and the task environment; the file is mode 0600."""
    seed = build_seed(
        SeedContent(
            instance_id="web-1",
            hostname="web",
            user_data=b"#cloud-config\npackages: [nginx]\n",
            password="pw",
            ssh_key="ssh-ed25519 AAAA test",
            timezone="Europe/Berlin",
            cmds=["echo 'quoted: yes'"],
            env={"GREETING": "hello world"},
            shares=[Share("allocDir", "/alloc")],
        )
    )
    path = tmp_path / "seed.iso"
    write_seed(str(path), seed)
    assert path.stat().st_mode & 0o777 == 0o600
    iso = pycdlib.PyCdlib()
    iso.open(str(path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
        files = {}
        for name in ("meta-data", "user-data", "vendor-data"):
            out = io.BytesIO()
            iso.get_file_from_iso_fp(out, rr_path=f"/{name}")
            files[name] = out.getvalue().decode()
    finally:
        iso.close()
    assert files["meta-data"] == 'instance-id: "web-1"\nlocal-hostname: "web"\n'
    assert files["user-data"] == "#cloud-config\npackages: [nginx]\n"
    vendor = files["vendor-data"]
    assert vendor.startswith("#cloud-config\n")
    assert 'password: "pw"' in vendor
    assert 'ssh_authorized_keys: ["ssh-ed25519 AAAA test"]' in vendor
    assert "runcmd: [\"echo 'quoted: yes'\"]" in vendor
    assert 'timezone: "Europe/Berlin"' in vendor
    assert "mount -t 9p -o trans=virtio,version=9p2000.L,ro allocDir /alloc" in vendor
    assert '"path": "/etc/profile.d/virt.sh"' in vendor


def test_default_user_data_is_an_empty_cloud_config() -> None:
    """Without user_data the seed's user-data is '#cloud-config'."""
    assert build_seed(SeedContent(instance_id="i", hostname="h"))["user-data"] == b"#cloud-config\n"


def test_domain_type_prefers_usable_kvm_then_tcg() -> None:
    """kvm when offered and usable, qemu (TCG) when KVM is absent or unusable, per requested arch."""
    with_kvm = CAPS.format(kvm="<domain type='kvm'/>")
    assert pick_domain_type(with_kvm, None) == "kvm"
    assert pick_domain_type(with_kvm, None, kvm=False) == "qemu"
    assert pick_domain_type(CAPS.format(kvm=""), "x86_64") == "qemu"
    assert pick_domain_type(with_kvm, "aarch64") == "qemu"


def _attr(element: ET.Element, path: str, name: str) -> str | None:
    found = element.find(path)
    assert found is not None, path
    return found.get(name)


def test_domain_xml_shares_read_only_and_destroys_on_crash() -> None:
    """The domain destroys itself on a crash, has ACPI and a pvpanic device, exports shares read-only over 9p,
    logs its serial console to a file and records the task id."""
    spec = DomainSpec(
        name="web-1",
        task_id="alloc/web/1",
        domain_type="qemu",
        memory_mb=512,
        vcpus=2,
        cpuset="0-1",
        disk_path="/d/web-1.qcow2",
        disk_format="qcow2",
        seed_path="/d/web-1.seed.iso",
        console_path="/d/web-1.console.log",
        shares=[FsShare("/alloc/dir", "allocDir")],
        bridge="br0",
    )
    xml = domain_xml(spec)
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert root.findtext("on_crash") == "destroy"
    assert root.find("features/acpi") is not None
    assert root.find("devices/panic") is not None
    fs = root.find("devices/filesystem")
    assert fs is not None
    assert fs.find("readonly") is not None
    assert _attr(fs, "target", "dir") == "allocDir"
    assert _attr(root, "devices/serial/source", "path") == "/d/web-1.console.log"
    assert _attr(root, "devices/interface/source", "bridge") == "br0"
    assert _attr(root, "vcpu", "cpuset") == "0-1"
    assert task_id_from_xml(xml) == "alloc/web/1"


def test_lifecycle_events_reach_a_new_loop_while_an_old_loops_connection_is_still_open() -> None:
    """A connection left open when its event loop ended does not stop events on the next loop: the watches and
    timers libvirt registered move to the new loop."""
    name = f"events-{id(object())}"
    xml = f"<domain type='test'><name>{name}</name><memory>1024</memory><os><type>hvm</type></os></domain>"

    async def noop() -> None:
        return None

    async def leak() -> LibvirtConnection:
        conn = LibvirtConnection(EmulatorConfig(uri="test:///default"), on_lifecycle=lambda *_: None, on_reconnect=noop)
        await conn.run(lambda c: c.defineXML(xml))
        return conn  # never closed

    async def watch() -> list[tuple[str, int, int]]:
        seen: list[tuple[str, int, int]] = []
        started = asyncio.Event()

        def on_lifecycle(domain: str, event: int, detail: int) -> None:
            seen.append((domain, event, detail))
            if domain == name and event == libvirt.VIR_DOMAIN_EVENT_STARTED:
                started.set()

        conn = LibvirtConnection(EmulatorConfig(uri="test:///default"), on_lifecycle=on_lifecycle, on_reconnect=noop)
        try:
            await conn.run(lambda c: c.lookupByName(name).create())
            await asyncio.wait_for(started.wait(), 5)
            await conn.run(lambda c: (c.lookupByName(name).destroy(), c.lookupByName(name).undefine()))
        finally:
            await conn.aclose()
        return seen

    leaked = asyncio.run(leak())
    try:
        seen = asyncio.run(watch())
    finally:
        asyncio.run(leaked.aclose())
    assert (name, libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_STARTED_BOOTED) in seen


def test_user_data_stays_out_of_reprs() -> None:
    """Inline user data (which often carries credentials) appears in neither the task config's nor the plan's repr."""
    secret = "#cloud-config\npassword: hunter2-in-user-data\n"
    task = VirtTaskConfig(image="/img/base.img", user_data=secret)
    plan = TaskPlan(
        task_id="a/b/c",
        domain_name="b-c",
        hostname="b",
        image="/img/base.img",
        memory_mb=512,
        vcpus=1,
        cpuset="0",
        user_data=secret.encode(),
        task=task,
    )
    for text in (repr(task), str(task), repr(plan)):
        assert "hunter2" not in text
