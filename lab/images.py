"""The lab's images: their tags (digests of their recipes under lab/image/),
the debootstrapped base image and the node image built on it, and the
qemu-user that runs an emulated architecture's images (fetched once,
registered with binfmt_misc)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from lab.docker_cli import say
from lab.settings import (
    ARCH_LABEL,
    BINFMT_DIR,
    DEBIAN_MIRROR,
    EMULATED_DIR,
    IMAGE_DIR,
    IMAGE_NAME,
    QEMU_HANDLERS,
    STATE_DIR,
    STOCK_DIR,
    SUITE_LABEL,
    LabError,
    is_emulated,
    lab_suite,
    native_arch,
)


def _digest(paths: list[Path]) -> str:
    sha = hashlib.sha256()
    for path in sorted(paths):
        sha.update(path.name.encode())
        sha.update(path.read_bytes())
    return sha.hexdigest()[:12]


def base_packages() -> list[str]:
    lines = (IMAGE_DIR / "base-packages.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]



def base_image_tag(arch: str | None = None, suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    digest = _digest([IMAGE_DIR / "base-packages.txt"])
    return f"{IMAGE_NAME}-base:{digest}-{suite}" + (f"-{arch}" if is_emulated(arch) else "")


def _recipe_files(arch: str, flavor: str = "fqdn") -> list[Path]:
    files = [p for p in IMAGE_DIR.iterdir() if p.is_file()]
    if is_emulated(arch):
        files += [p for p in EMULATED_DIR.iterdir() if p.is_file()]
    if flavor == "stock":
        files += [p for p in STOCK_DIR.iterdir() if p.is_file()]
    return files


def image_tag(arch: str | None = None, flavor: str = "fqdn", suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    digest = _digest(_recipe_files(arch, flavor))
    return (
        f"{IMAGE_NAME}:{digest}-{suite}" + (f"-{arch}" if is_emulated(arch) else "")
        + ("" if flavor == "fqdn" else f"-{flavor}")
    )


def image_exists(tag: str) -> bool:
    return subprocess.run(
        ["docker", "image", "inspect", tag], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    ).returncode == 0


# The qemu-user that runs the emulated nodes. Debian 13's systemd (257) starts
# every unit through systemd-executor with clone3() and sets up a unit's
# mount namespace (PrivateTmp=, ProtectSystem=, the distccd override's
# TemporaryFileSystem=) with a check statx() answers: under Debian 12's
# qemu-user 7.2 no unit starts ("Failed to spawn executor: Invalid
# argument"), under Debian 13's 10.0 every sandboxed unit fails with
# 226/NAMESPACE; trixie-backports' qemu-user (11.1 when this was written)
# runs both releases' nodes. The lab fetches it with apt inside its own
# native trixie image and registers it under handler names of its own
# (LAB_QEMU_HANDLERS), which take precedence over Debian's qemu-* handlers
# without touching them, until the machine reboots.
QEMU_DIR = STATE_DIR / "qemu"
QEMU_SUITE = "trixie-backports"
LAB_QEMU_HANDLERS = {arch: f"distcc-lab-{binary}" for arch, binary in QEMU_HANDLERS.items()}
# The ELF headers each handler matches (as Debian's qemu-user-binfmt registers them).
QEMU_MAGIC = {
    "arm64": ("7f454c460201010000000000000000000200b700", "ffffffffffffff00fffffffffffffffffeffffff"),
    "armhf": ("7f454c4601010100000000000000000002002800", "ffffffffffffff00fffffffffffffffffeffffff"),
    "amd64": ("7f454c4602010100000000000000000002003e00", "fffffffffffefe00fffffffffffffffffeffffff"),
}
# P: argv[0] as the program gave it; O: the binary handed over open; C:
# setuid programs (sudo) get their owner's uid; F: the interpreter is opened
# now, so it is found inside containers.
QEMU_FLAGS = "POCF"


def lab_qemu(arch: str) -> Path:
    """The lab's qemu-user binary for an emulated architecture, fetched once
    (QEMU_SUITE's qemu-user, unpacked from its .deb in the lab's native
    trixie image; no package is installed on this machine)."""
    binary = QEMU_DIR / QEMU_HANDLERS[arch]
    if binary.exists():
        return binary
    build_base_image(native_arch(), "trixie")
    QEMU_DIR.mkdir(parents=True, exist_ok=True)
    say(f"fetching qemu-user from Debian {QEMU_SUITE} for the emulated nodes (once)")
    script = (
        f"set -e; echo 'deb {DEBIAN_MIRROR} {QEMU_SUITE} main' > /etc/apt/sources.list.d/lab-qemu.list;"
        " apt-get update -qq >/dev/null; cd /tmp; apt-get download -qq -t " + QEMU_SUITE + " qemu-user 2>/dev/null;"
        " dpkg-deb -x qemu-user_*.deb x; dpkg-deb -f qemu-user_*.deb Version > /out/VERSION;"
        " for b in " + " ".join(sorted(set(QEMU_HANDLERS.values()))) + "; do cp x/usr/bin/$b /out/$b.new; done"
    )
    proc = subprocess.run(
        ["docker", "run", "--rm", "-v", f"{QEMU_DIR}:/out", base_image_tag(native_arch(), "trixie"), "sh", "-c", script],
        text=True, capture_output=True,
    )
    if proc.returncode != 0:
        raise LabError(f"fetching qemu-user from Debian {QEMU_SUITE} failed: {proc.stderr.strip()[-1500:]}")
    for name in set(QEMU_HANDLERS.values()):
        (QEMU_DIR / f"{name}.new").rename(QEMU_DIR / name)
    say(f"qemu-user {(QEMU_DIR / 'VERSION').read_text().strip()} in {QEMU_DIR}")
    return binary


def _binfmt_entry(name: str) -> dict[str, str]:
    try:
        lines = (BINFMT_DIR / name).read_text().splitlines()
    except OSError:
        return {}
    entry = {"state": lines[0] if lines else ""}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        entry[key.rstrip(":")] = value
    return entry


def register_lab_qemu(arch: str, interpreter: Path) -> None:
    """(Re)register the lab's handler for arch, ahead of any other."""
    name = LAB_QEMU_HANDLERS[arch]
    if os.geteuid() != 0:
        raise LabError(
            f"{arch} nodes run under the lab's qemu-user ({interpreter}), which must be registered with the "
            f"kernel's binfmt_misc as {name}; that takes root. Run LAB_ARCH={arch} make lab-up as root once "
            "(the registration lasts until the machine reboots), and run again."
        )
    if not (BINFMT_DIR / "register").exists():
        raise LabError(
            f"binfmt_misc is not mounted at {BINFMT_DIR}, so {arch} nodes cannot run. Run LAB_ARCH={arch} "
            "lab/ensure_engine.sh as root (it mounts it), and run again."
        )
    if (BINFMT_DIR / name).exists():
        (BINFMT_DIR / name).write_text("-1\n")
    magic, mask = (("\\x" + "\\x".join(h[i:i + 2] for i in range(0, len(h), 2))) for h in QEMU_MAGIC[arch])
    (BINFMT_DIR / "register").write_text(f":{name}:M:0:{magic}:{mask}:{interpreter}:{QEMU_FLAGS}\n")


def ensure_emulation(arch: str) -> None:
    """An emulated architecture runs under the lab's qemu-user (lab_qemu),
    registered with binfmt_misc under the lab's own handler name."""
    if not is_emulated(arch):
        return
    interpreter = lab_qemu(arch)
    entry = _binfmt_entry(LAB_QEMU_HANDLERS[arch])
    if (
        entry.get("state") != "enabled" or entry.get("interpreter") != str(interpreter)
        or not set(QEMU_FLAGS) <= set(entry.get("flags", ""))
    ):
        say(f"registering {interpreter} as the binfmt handler {LAB_QEMU_HANDLERS[arch]} (flags {QEMU_FLAGS})")
        register_lab_qemu(arch, interpreter)


def emulation_in_use(image: str, arch: str) -> str:
    """Which interpreter the kernel really runs for this image's binaries
    (another handler registered later for the same ELF header comes first);
    registers the lab's again when it is not the lab's."""
    probe = ["docker", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", "sleep 2 & readlink /proc/$!/exe"]
    found = subprocess.run(probe, text=True, capture_output=True).stdout.strip()
    interpreter = str(lab_qemu(arch))
    if found != interpreter:
        say(f"{arch} binaries ran under {found or 'an unknown interpreter'}, not the lab's qemu: registering it again")
        register_lab_qemu(arch, Path(interpreter))
        found = subprocess.run(probe, text=True, capture_output=True).stdout.strip()
        if found != interpreter:
            raise LabError(
                f"{arch} binaries still run under {found or 'an unknown interpreter'}, not the lab's qemu-user "
                f"{interpreter}. Look for another binfmt handler for them in {BINFMT_DIR} and disable it "
                f"(echo 0 > {BINFMT_DIR}/NAME), then run again."
            )
    return found


def build_base_image(arch: str | None = None, suite: str | None = None) -> None:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    tag = base_image_tag(arch, suite)
    if image_exists(tag):
        return
    if shutil.which("debootstrap") is None:
        raise LabError(
            f"debootstrap is not installed; it builds the lab's Debian {suite} base image. "
            "Install it (Debian: apt-get install debootstrap) and run again."
        )
    ensure_emulation(arch)
    STATE_DIR.mkdir(exist_ok=True)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=STATE_DIR))
    say(f"debootstrapping Debian {suite} ({arch}) into {rootfs} (a few minutes, once per recipe)")
    command = ["debootstrap", "--variant=minbase", "--include=" + ",".join(base_packages())]
    import_changes = ["-c", 'CMD ["/lib/systemd/systemd"]', "-c", f"LABEL {SUITE_LABEL}={suite}"]
    if is_emulated(arch):
        # Both debootstrap stages run here, the second through qemu-user. This
        # Docker labels an imported image with its own architecture whatever
        # it holds; the label says what it really is.
        command.append(f"--arch={arch}")
        import_changes += ["-c", f"LABEL {ARCH_LABEL}={arch}"]
    try:
        started = time.monotonic()
        subprocess.run(
            [*command, suite, str(rootfs), DEBIAN_MIRROR],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        say(f"debootstrap ({suite}, {arch}) took {time.monotonic() - started:.0f}s; importing the root filesystem as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        subprocess.run(
            ["docker", "import", *import_changes, "-", tag],
            stdin=tar.stdout,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        if tar.wait() != 0:
            raise LabError("tar of the debootstrapped root filesystem failed")
    except subprocess.CalledProcessError as exc:
        raise LabError(f"building the base image failed: {exc}") from exc
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def build_image(arch: str | None = None, flavor: str = "fqdn", suite: str | None = None) -> str:
    arch = arch or native_arch()
    suite = suite or lab_suite()
    tag = image_tag(arch, flavor, suite)
    if image_exists(tag):
        return tag
    build_base_image(arch, suite)
    ensure_emulation(arch)
    say(f"building {tag}")
    started = time.monotonic()
    dockerfile = (IMAGE_DIR / "Dockerfile").read_text()
    if is_emulated(arch):
        # One recipe: the native one, then what emulated nodes need on top.
        dockerfile += "\n" + (EMULATED_DIR / "Dockerfile").read_text()
    if flavor == "stock":
        dockerfile += "\n" + (STOCK_DIR / "Dockerfile").read_text()
    proc = subprocess.run(
        [
            "docker", "build", "-q", "--build-arg", f"BASE={base_image_tag(arch, suite)}",
            *(["--build-arg", f"LAB_ARCH={arch}"] if is_emulated(arch) else []),
            "-t", tag, "-f", "-", str(IMAGE_DIR),
        ],
        text=True,
        input=dockerfile,
        capture_output=True,
    )
    if proc.returncode != 0:
        raise LabError(f"docker build of the lab image failed:\n{proc.stderr[-2000:]}")
    say(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag
