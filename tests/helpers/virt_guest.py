"""Build the tiny guest the real virt tests boot: Debian's kernel and a busybox initramfs on a syslinux FAT disk.

The guest's init loads the few modules it needs, mounts the cloud-init seed (the ``cidata`` CD-ROM), prints its
meta-data to the serial console, runs the seed's user-data when it is a ``#!`` script, and powers off when the
ACPI power button is pressed (unless ``/run/ignore-acpi`` exists). A user-data script can therefore power the guest
off (``poweroff -f``), panic it (``echo c > /proc/sysrq-trigger``; the pvpanic device reports it) or make it ignore
the power button. It prints ``virt-guest: ready`` once the button is watched.

Needs (Debian): busybox-static, cpio, syslinux, syslinux-common, mtools, dosfstools, and apt to fetch the kernel
package (``apt-get download``). The image is cached under ``~/.cache/plugin-host/virt-guest/``, keyed by the kernel
package and this file's guest recipe; building takes a few seconds once the kernel package is there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["READY_MARK", "build_guest", "cache_dir", "kernel_package"]

READY_MARK = "virt-guest: ready"
_RECIPE_VERSION = "1"
_MODULES = ("ahci", "sr_mod", "isofs", "pvpanic-mmio", "button", "evdev")

_INIT = r"""#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /run /mnt/seed
echo "virt-guest: booted $(uname -r)"
for m in $(cat /lib/modules/order); do insmod /lib/modules/$m.ko || echo "virt-guest: insmod $m failed"; done
i=0
while [ ! -b /dev/sr0 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done
if mount -t iso9660 -o ro /dev/sr0 /mnt/seed; then
  echo "virt-guest: seed meta-data: $(tr '\n' ' ' < /mnt/seed/meta-data)"
else
  echo "virt-guest: no seed"
fi
button=""
for ev in /sys/class/input/event*; do
  if grep -q "Power Button" "$ev/device/name" 2>/dev/null; then button=/dev/input/${ev##*/}; fi
done
if [ -f /mnt/seed/user-data ] && [ "$(head -c 2 /mnt/seed/user-data)" = "#!" ]; then
  echo "virt-guest: running user-data"
  sh /mnt/seed/user-data
fi
if [ -n "$button" ]; then
  (
    while dd if="$button" of=/dev/null bs=24 count=1 2>/dev/null; do
      if [ -e /run/ignore-acpi ]; then echo "virt-guest: power button ignored"; else
        echo "virt-guest: power button, powering off"; poweroff -f; fi
    done
  ) &
  echo "virt-guest: watching the power button at $button"
else
  echo "virt-guest: no power button found"
fi
echo "virt-guest: ready"
while true; do sleep 3600; done
"""

_SYSLINUX_CFG = """DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  APPEND initrd=initrd.gz console=ttyS0 panic=0 loglevel=4
"""


def cache_dir() -> Path:
    """Where built guests and the downloaded kernel package live."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plugin-host" / "virt-guest"


def kernel_package() -> str:
    """The Debian kernel package ``linux-image-amd64`` depends on, e.g. ``linux-image-6.1.0-56-amd64``."""
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Depends: (linux-image-\S+)", out)
    if match is None:
        raise RuntimeError(f"apt-cache names no kernel package for linux-image-amd64:\n{out}")
    return match.group(1)


def _kernel_deb(cache: Path, package: str) -> Path:
    found = sorted(cache.glob(f"{package}_*.deb"))
    if found:
        return found[-1]
    subprocess.run(["apt-get", "download", "-q", package], check=True, cwd=cache, capture_output=True)
    found = sorted(cache.glob(f"{package}_*.deb"))
    if not found:
        raise RuntimeError(f"apt-get download {package} left no .deb in {cache}")
    return found[-1]


def _module_files(modules_root: Path) -> dict[str, Path]:
    return {p.name[: -len(".ko")].replace("-", "_"): p for p in modules_root.rglob("*.ko")}


def _depends(path: Path) -> list[str]:
    match = re.search(rb"depends=([^\x00]*)\x00", path.read_bytes())
    if match is None or not match.group(1):
        return []
    return [d.replace("-", "_") for d in match.group(1).decode().split(",") if d]


def _load_order(files: dict[str, Path], wanted: tuple[str, ...]) -> list[str]:
    order: list[str] = []

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in order:
            return
        if key not in files:
            raise RuntimeError(f"kernel module {name!r} not in the kernel package")
        for dep in _depends(files[key]):
            visit(dep)
        order.append(key)

    for name in wanted:
        visit(name)
    return order


def _initramfs(root: Path, kernel_tree: Path, out: Path) -> None:
    modules_root = next((kernel_tree / "lib" / "modules").iterdir())
    files = _module_files(modules_root)
    for sub in ("bin", "dev", "proc", "sys", "run", "mnt/seed", "lib/modules"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    busybox = shutil.which("busybox") or "/bin/busybox"
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout.split():
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    order = _load_order(files, _MODULES)
    for name in order:
        shutil.copy2(files[name], root / "lib" / "modules" / f"{name}.ko")
    (root / "lib" / "modules" / "order").write_text("\n".join(order) + "\n")
    init = root / "init"
    init.write_text(_INIT)
    init.chmod(0o755)
    listing = subprocess.run(["find", "."], cwd=root, check=True, capture_output=True).stdout
    archive = subprocess.run(
        ["cpio", "-o", "-H", "newc", "--quiet"], cwd=root, input=listing, check=True, capture_output=True
    )
    out.write_bytes(subprocess.run(["gzip", "-9n"], input=archive.stdout, check=True, capture_output=True).stdout)


def _disk(kernel: Path, initrd: Path, work: Path, out: Path) -> None:
    cfg = work / "syslinux.cfg"
    cfg.write_text(_SYSLINUX_CFG)
    size_kib = (kernel.stat().st_size + initrd.stat().st_size) // 1024 + 4096
    subprocess.run(["mkfs.vfat", "-n", "VIRTGUEST", "-C", str(out), str(size_kib)], check=True, capture_output=True)
    subprocess.run(["syslinux", "--install", str(out)], check=True, capture_output=True)
    env = {**os.environ, "MTOOLS_SKIP_CHECK": "1"}
    for source, name in ((kernel, "vmlinuz"), (initrd, "initrd.gz"), (cfg, "syslinux.cfg")):
        subprocess.run(["mcopy", "-i", str(out), str(source), f"::{name}"], check=True, capture_output=True, env=env)


def build_guest(cache: Path | None = None) -> Path:
    """The guest's raw disk image, built (and cached) when missing."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    package = kernel_package()
    key = hashlib.sha256(f"{_RECIPE_VERSION}\n{package}\n{_INIT}\n{_SYSLINUX_CFG}\n{_MODULES}".encode()).hexdigest()[
        :16
    ]
    image = cache / f"guest-{key}.img"
    if image.exists():
        return image
    deb = _kernel_deb(cache, package)
    with tempfile.TemporaryDirectory(prefix="virt-guest-", dir=cache) as tmp:
        work = Path(tmp)
        tree = work / "kernel"
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tree)], check=True, capture_output=True)
        kernel = next((tree / "boot").glob("vmlinuz-*"))
        initrd = work / "initrd.gz"
        _initramfs(work / "root", tree, initrd)
        partial = work / "guest.img"
        _disk(kernel, initrd, work, partial)
        os.replace(partial, image)
    return image


if __name__ == "__main__":
    print(build_guest())
