"""The libvirt domain XML of a task's VM, and the choice of hypervisor type from the host's capabilities."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from plugin_host.errors import DriverError

__all__ = [
    "METADATA_NS",
    "DomainSpec",
    "FsShare",
    "domain_xml",
    "kvm_usable",
    "pick_domain_type",
    "task_id_from_xml",
]

METADATA_NS = "https://github.com/plugin-host/plugin-host/virt/1"
_X86 = {None, "x86_64", "i686"}


@dataclass(frozen=True, slots=True)
class FsShare:
    """A host directory exported read-only to the guest over 9p under ``tag``."""

    source: str
    tag: str


@dataclass(frozen=True, slots=True)
class DomainSpec:
    """Everything the domain XML is made from."""

    name: str
    task_id: str
    domain_type: str
    memory_mb: int
    vcpus: int
    cpuset: str
    disk_path: str
    disk_format: str
    seed_path: str
    console_path: str
    arch: str | None = None
    machine: str | None = None
    shares: Sequence[FsShare] = ()
    bridge: str | None = None


def kvm_usable(uri: str) -> bool:
    """Whether KVM can run an unmodified guest for the libvirt at ``uri``.

    libvirt offers ``kvm`` whenever ``/dev/kvm`` opens, but a software KVM (PVM on nested clouds) opens too and
    then fails on the guest's firmware. For a libvirt on this machine KVM counts only with a hardware module
    (``kvm_intel``/``kvm_amd``) loaded; a remote libvirt's word is taken.
    """
    if urlsplit(uri).hostname not in (None, "", "localhost"):
        return True
    return os.path.exists("/dev/kvm") and any(os.path.isdir(f"/sys/module/{m}") for m in ("kvm_intel", "kvm_amd"))


def pick_domain_type(capabilities_xml: str, arch: str | None, *, kvm: bool = True) -> str:
    """``kvm`` when the host offers it for ``arch`` (any arch when None) and ``kvm`` allows it, else ``qemu`` (TCG),
    else the first type the connection offers (``test`` on libvirt's test driver)."""
    root = ET.fromstring(capabilities_xml)
    offered: list[str] = []
    for guest in root.iter("guest"):
        if guest.findtext("os_type") != "hvm":
            continue
        guest_arch = guest.find("arch")
        if guest_arch is None or (arch is not None and guest_arch.get("name") != arch):
            continue
        offered += [d.get("type", "") for d in guest_arch.iter("domain")]
    for preferred in ("kvm", "qemu") if kvm else ("qemu",):
        if preferred in offered:
            return preferred
    if offered:
        return offered[0]
    raise DriverError(f"virt: libvirt offers no hvm guest for arch {arch or 'any'!r}; check the host's virtualization")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def _devices(spec: DomainSpec, devices: ET.Element) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type=spec.disk_format)
    _sub(disk, "source", file=spec.disk_path)
    _sub(disk, "target", dev="vda", bus="virtio")

    seed = _sub(devices, "disk", type="file", device="cdrom")
    _sub(seed, "driver", name="qemu", type="raw")
    _sub(seed, "source", file=spec.seed_path)
    _sub(seed, "target", dev="sda", bus="sata")
    _sub(seed, "readonly")

    for share in spec.shares:
        fs = _sub(devices, "filesystem", type="mount", accessmode="mapped")
        _sub(fs, "source", dir=share.source)
        _sub(fs, "target", dir=share.tag)
        _sub(fs, "readonly")

    if spec.bridge:
        interface = _sub(devices, "interface", type="bridge")
        _sub(interface, "source", bridge=spec.bridge)
        _sub(interface, "model", type="virtio")

    serial = _sub(devices, "serial", type="file")
    _sub(serial, "source", path=spec.console_path, append="on")
    _sub(serial, "target", port="0")

    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")

    if spec.arch in _X86:
        # pvpanic: a guest kernel panic reaches libvirt as a crash (and on_crash) instead of a hung VM.
        _sub(devices, "panic", model="isa")


def domain_xml(spec: DomainSpec) -> str:
    """The domain XML for ``spec``."""
    domain = ET.Element("domain", type=spec.domain_type)
    _sub(domain, "name", spec.name)
    metadata = _sub(domain, "metadata")
    ET.SubElement(metadata, f"{{{METADATA_NS}}}task", id=spec.task_id)
    _sub(domain, "memory", str(spec.memory_mb), unit="MiB")
    vcpu = _sub(domain, "vcpu", str(spec.vcpus), placement="static")
    if spec.cpuset:
        vcpu.set("cpuset", spec.cpuset)

    sysinfo = _sub(domain, "sysinfo", type="smbios")
    system = _sub(sysinfo, "system")
    # Tells cloud-init to look for the NoCloud seed without probing every data source.
    _sub(system, "entry", "ds=nocloud", name="serial")

    os_element = _sub(domain, "os")
    os_type = _sub(os_element, "type", "hvm")
    if spec.arch:
        os_type.set("arch", spec.arch)
    if spec.machine:
        os_type.set("machine", spec.machine)
    _sub(os_element, "boot", dev="hd")
    _sub(os_element, "smbios", mode="sysinfo")

    features = _sub(domain, "features")
    # ACPI is what makes a graceful shutdown (the power button) possible.
    _sub(features, "acpi")
    _sub(features, "apic")

    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    _devices(spec, _sub(domain, "devices"))
    ET.register_namespace("pluginhost", METADATA_NS)
    return ET.tostring(domain, encoding="unicode")


def task_id_from_xml(xml: str) -> str | None:
    """The task id recorded in a domain's metadata, or None for a domain this driver did not define."""
    element = ET.fromstring(xml).find(f"metadata/{{{METADATA_NS}}}task")
    return element.get("id") if element is not None else None
