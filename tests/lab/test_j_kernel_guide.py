"""docs/kernel-build.md, run in the amd64 lab: every block it marks
`<!-- lab: ... -->`, in the order of the page, with the changes its "How
this page is tested" section lists (the lab's inventory, Debian's
linux-source-6.12 for the Raspberry Pi tree, tinyconfig plus ARCH_BCM2835
for bcm2711_defconfig, ARCH= and CROSS_COMPILE= because the lab's builder
is amd64, a stand-in /boot/firmware made here on every node because a
container has no boot partition). Section 6's distccmon-text runs while
section 5's build does, as the page says; no other block is moved and no
command the page does not give (no extra `make mrproper`) is added.

The build report must show at least 95% of the C compile jobs on the
workers, none failed, none fallen back, and per worker exactly the jobs its
own log gained; section 8's tarball, unpacked on every node, must leave the
kernel, device trees, overlays, the kernel= line and the modules there.
"""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from tests.lab.harness import INVENTORY, REPO, cluster_digest, deploy, pyinfra, sh
from tests.lab.kernel_guide import ELSEWHERE, TREE, block, guide_blocks

LINUX_SOURCE = {"bookworm": "linux-source-6.1", "trixie": "linux-source-6.12"}
CROSS = {"distcc_cross_compilers": json.dumps(["aarch64-linux-gnu-gcc", "arm-linux-gnueabihf-gcc"]),
         "distcc_tmpfs_size": "3G"}
ARM64 = "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-"
ARM32 = "CROSS_COMPILE=arm-linux-gnueabihf-"
# bcm2711_defconfig is in the Raspberry Pi tree only: the nearest Debian's
# tree allows (ARCH_BCM2835 builds the bcm2711-rpi-*.dtb device trees).
STAND_IN_64 = (
    "make {args} tinyconfig && ./scripts/config --file {config} -e ARCH_BCM -e ARCH_BCM2835 -e MODULES && "
    "make {args} olddefconfig"
)
STAND_IN_32 = "make {args} tinyconfig"
REPORT = REPO / "reports" / "build-report.json"
MARK = REPO / "reports" / "build-mark.json"


def for_the_lab(lines: list[str], args: str, stand_in: str, targets: str | None = None) -> str:
    """A block's commands with the lab's changes, as one script that stops
    at the first failure: every make gets args, bcm2711_defconfig becomes
    the stand-in, and the build targets become `targets` when given."""
    out = []
    for line in lines:
        line = line.replace("pyinfra inventories/cluster.py", f"pyinfra -y {INVENTORY}")
        if re.search(r"\bmake\b.*\bbcm2711_defconfig\b", line):
            extra = [w for w in line.split() if w.startswith(("ARCH=", "O="))]
            objects = next((w.removeprefix("O=") for w in extra if w.startswith("O=")), ".")
            line = stand_in.format(args=" ".join([*extra, args]), config=f"{objects}/.config")
        else:
            line = re.sub(r"\bmake ", f"make {args} ", line)
            if targets:
                line = re.sub(r"(Image\.gz|zImage) modules dtbs", targets, line)
        out.append(line)
    return "\n".join(["set -e", *out])


def as_build_user(container: str, script: str, timeout: int = 1200) -> str:
    """A login shell of the build user, as a person logged in on the builder."""
    proc = subprocess.run(
        ["docker", "exec", "-u", "pi", "-i", container, "sh", "-l", "-c", script],
        capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, f"{script!r} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def on_the_controller(lines: list[str]) -> list:
    """The guide's pyinfra lines, run here against the lab."""
    runs = []
    for line in lines:
        command = line.replace("pyinfra inventories/cluster.py deploys/", "").removesuffix(".py").split()[0]
        runs.append(deploy(command, json_output=False, data=CROSS, timeout=1800))
    return runs


# The blocks this module runs, in the order it runs them: the page's order.
RUN_HERE = [
    ("1", "as the build user"), ("2", "on the machine you deploy from"),
    ("4", "on the machine you deploy from, before the build"), ("5", "as the build user"),
    ("6", "as the build user, while a build runs"), ("7", "on the machine you deploy from, after the build"),
    ("8", "as the build user"), ("8", "on each Pi that boots the kernel"),
    ("9", "as the build user"), ("10", "as the build user"),
]


def test_every_lab_block_of_the_guide_is_run_here_in_its_order():
    """A block the guide adds, marks or moves is one this module runs, in
    the guide's order."""
    blocks = guide_blocks()
    not_run = [b.section for b in blocks if b.how.startswith("not run")]
    # Section 11's pump builds need the lab in pump mode: the ccache and pump
    # module runs them.
    elsewhere = {b.section for b in blocks if ELSEWHERE in b.how}
    assert [(b.section, b.how) for b in blocks
            if not b.how.startswith("not run") and ELSEWHERE not in b.how] == RUN_HERE
    assert not_run == ["3", "8"]
    assert elsewhere == {"11"}


@pytest.fixture(scope="module")
def nodes(lab):
    runs = on_the_controller(block("2").lines)
    for run in runs:
        assert run.returncode == 0, run.stderr[-3000:]
    assert " 0 FAIL" in runs[-1].stderr
    yield lab
    # The kernel tree fills the 3G tmpfs: the lab goes back to what the other
    # modules expect (the lab's own tmpfs size, empty).
    assert deploy("k3s_mode", data={"distcc_discard_tmpfs": True}).returncode == 0
    assert deploy("mode_switch").returncode == 0


@pytest.fixture(scope="module")
def tree(builder, nodes):
    """The stand-in for section 3's clone: Debian's kernel source where the
    clone would put it (and kmod, which Raspberry Pi OS has, for depmod)."""
    source = LINUX_SOURCE[builder.suite]
    sh(builder.container,
       f"dpkg -s {source} kmod xz-utils >/dev/null 2>&1 || "
       f"DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends {source} kmod xz-utils >/dev/null")
    # A tree left by an earlier run is reused, wherever section 9 left it.
    as_build_user(builder.container, f"[ -f {TREE}/Makefile ] || [ ! -f ~/linux/Makefile ] || mv ~/linux {TREE}")
    as_build_user(builder.container, f"[ -f {TREE}/Makefile ] || {{ tar -C /tmp/kernel-build -xJf /usr/src/{source}.tar.xz "
                                     f"&& mv /tmp/kernel-build/{source} {TREE}; }}")
    # As clean as a fresh clone (a tree left by an earlier run is reused;
    # what sections 8 to 10 left is removed).
    as_build_user(builder.container, f"cd {TREE} && make -s mrproper && "
                                     "rm -rf ~/linux ~/kbuild ~/kbuild-arm /tmp/kernel-build/stage")
    yield TREE
    as_build_user(builder.container, "rm -rf ~/linux ~/kbuild ~/kbuild-arm /tmp/kernel-build/stage "
                                     "/tmp/kernel-build/kernel-distcc.tar.gz")


def test_the_guide_tells_the_builders_architecture(builder, nodes):
    assert as_build_user(builder.container, " && ".join(block("1").lines)).split() == ["amd64", "x86_64"]


def worker_lines_since_mark(worker, mark: dict) -> int:
    """Job lines in the worker's own log since the mark, counted independently."""
    size = mark["hosts"][worker.fqdn]["size"]
    out = sh(worker.container,
             f"tail -c +{size + 1} /var/log/distccd/distccd.log | "
             "grep -cE '\\(dcc_job_summary\\)|denied by access list' || true")
    return int(out.strip() or 0)


def on_a_worker(monitor: str, workers) -> bool:
    """distccmon-text's screen shows a compile on one of the workers."""
    return any(" Compile " in line and w.fqdn in line for line in monitor.splitlines() for w in workers)


@pytest.fixture(scope="module")
def kernel(builder, workers, tree):
    """Sections 4 (mark), 5 with 6 watching it, 7 (report)."""
    marks = on_the_controller(block("4", "on the machine you deploy from, before").lines)
    assert marks[0].returncode == 0, marks[0].stderr[-3000:]
    build = subprocess.Popen(
        ["docker", "exec", "-u", "pi", "-i", builder.container, "sh", "-l", "-c",
         for_the_lab(block("5", "as the build user").lines, ARM64, STAND_IN_64)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Section 6, while section 5 runs: distccmon-text as the build user
    # shows jobs in flight.
    monitor = block("6").lines[0].replace("distccmon-text 2", "timeout 3 distccmon-text 1")
    # Until a compile on a worker shows: the first screens may hold only the
    # builder's own (localhost) jobs, host tools and preprocessing.
    seen = ""
    deadline = time.monotonic() + 600
    while build.poll() is None and time.monotonic() < deadline and not on_a_worker(seen, workers):
        proc = subprocess.run(["docker", "exec", "-u", "pi", builder.container, "sh", "-l", "-c", monitor],
                              capture_output=True, text=True)
        if " Compile " in proc.stdout:
            seen = proc.stdout
    out, err = build.communicate(timeout=1800)
    assert build.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    before = cluster_digest()
    report_run = on_the_controller(block("7", "on the machine you deploy from, after").lines)[0]
    assert report_run.returncode == 0, report_run.stderr[-3000:]
    assert cluster_digest() == before, "the report changed a host"
    return {"monitor": seen, "report": json.loads(REPORT.read_text()), "report_text": report_run.stderr,
            "marks": json.loads(MARK.read_text())}


def test_the_kernel_and_its_device_trees_are_built(builder, kernel):
    assert sh(builder.container, f"test -s {TREE}/arch/arm64/boot/Image.gz && echo ok").strip() == "ok"
    dtbs = sh(builder.container, f"ls {TREE}/arch/arm64/boot/dts/broadcom/").split()
    assert "bcm2711-rpi-4-b.dtb" in dtbs and "bcm2711-rpi-cm4-io.dtb" in dtbs, dtbs


def test_distccmon_text_showed_jobs_on_workers(kernel, workers):
    assert on_a_worker(kernel["monitor"], workers), kernel["monitor"]


def test_the_report_shows_the_compiles_on_the_workers(kernel, workers):
    builder_jobs = kernel["report"]["builder"]
    assert builder_jobs["compile_jobs"] >= 300, kernel["report_text"][-3000:]
    assert builder_jobs["remote_share"] >= 0.95, kernel["report_text"][-3000:]
    for reason in ("fallback after a failure", "backoff", "no host free", "no host list"):
        assert builder_jobs["local"].get(reason, 0) == 0, kernel["report_text"][-3000:]
    assert builder_jobs["failed_no_fallback"] == 0
    assert f"C/C++ compile jobs {builder_jobs['compile_jobs']}, on workers" in kernel["report_text"]
    for worker in workers:
        jobs = kernel["report"]["workers"][worker.fqdn]
        assert jobs["failed"] == {}, (worker.fqdn, jobs)
        assert jobs["ok"] > 0, (worker.fqdn, jobs)
        assert jobs["total"] == worker_lines_since_mark(worker, kernel["marks"]) == jobs["log_lines"]
        # Both ends agree: what the builder saw compiled there is what the worker logged.
        assert builder_jobs["remote_ok"][worker.fqdn] == jobs["ok"]
    assert kernel["report"]["backoff"] == []


@pytest.fixture(scope="module")
def installed(builder, workers, kernel):
    """Section 8 on every node: staged on the builder, copied (docker cp
    for scp), unpacked into a stand-in /boot/firmware made here."""
    # Debian's tree has no Raspberry Pi overlays: stand-ins where the build puts them.
    overlays = f"{TREE}/arch/arm64/boot/dts/overlays"
    as_build_user(builder.container, f"mkdir -p {overlays} && echo stand-in > {overlays}/README && "
                                     f"echo stand-in > {overlays}/stand-in.dtbo")
    as_build_user(builder.container, for_the_lab(block("8", "as the build user").lines, ARM64, STAND_IN_64))
    release = as_build_user(builder.container, "ls /tmp/kernel-build/stage/lib/modules").strip()
    nodes = [builder, *workers]
    tarball = subprocess.run(["docker", "exec", builder.container, "cat", "/tmp/kernel-build/kernel-distcc.tar.gz"],
                             capture_output=True, check=True).stdout
    unpack = block("8", "on each Pi that boots the kernel").lines
    for node in nodes:
        sh(node.container, "mkdir -p /boot/firmware")
        subprocess.run(["docker", "exec", "-i", "-u", "pi", node.container, "sh", "-c",
                        "cat > ~/kernel-distcc.tar.gz"], input=tarball, check=True)
        as_build_user(node.container, "\n".join(["set -e", "cd", *unpack]))
    yield {"release": release, "nodes": nodes}
    for node in nodes:
        sh(node.container, f"rm -rf /boot/firmware /lib/modules/{release} /home/pi/kernel-distcc.tar.gz")


def test_the_install_reaches_every_node(installed):
    release = installed["release"]
    assert release.endswith("-v8-distcc"), release
    for node in installed["nodes"]:
        firmware = sh(node.container, "ls /boot/firmware /boot/firmware/overlays").split()
        assert {"kernel8-distcc.img", "bcm2711-rpi-4-b.dtb", "stand-in.dtbo", "README"} <= set(firmware), \
            (node.fqdn, firmware)
        assert "kernel8.img" not in firmware
        assert sh(node.container, "grep -cx kernel=kernel8-distcc.img /boot/firmware/config.txt").strip() == "1"
        assert "modules.builtin" in sh(node.container, f"ls /lib/modules/{release}").split(), node.fqdn
        # Unpacking kept the distribution's /lib -> usr/lib.
        assert sh(node.container, "readlink /lib").strip() == "usr/lib", node.fqdn


@pytest.fixture(scope="module")
def on_disk(builder, installed):
    """Section 9 (init/ only): mrproper, the tree moved to ~/linux, the
    objects in ~/kbuild."""
    as_build_user(builder.container, for_the_lab(block("9").lines, ARM64, STAND_IN_64, "init/"), timeout=1800)


def test_tree_and_objects_on_disk_with_o(builder, on_disk):
    out = as_build_user(builder.container, "ls ~/kbuild/init/main.o ~/linux/Makefile && "
                                           "findmnt -n -o FSTYPE --target ~/kbuild && "
                                           "findmnt -n -o FSTYPE --target ~/linux")
    assert "tmpfs" not in out.split()[-2:], out
    assert "-v8-distcc" in as_build_user(builder.container, "grep ^CONFIG_LOCALVERSION= ~/kbuild/.config")


def test_the_32_bit_commands_build_for_arm(builder, on_disk):
    """Section 10 (init/ only): ARCH=arm objects, 32-bit ARM, on disk."""
    as_build_user(builder.container, for_the_lab(block("10").lines, ARM32, STAND_IN_32, "init/"))
    header = as_build_user(builder.container, "readelf -h ~/kbuild-arm/init/main.o")
    assert "ELF32" in header and "ARM" in header


def test_backoff_is_named_by_the_report_and_cleared_by_the_mode_switch(builder, workers, kernel):
    """A failed job's backoff marker idles its worker for later builds too:
    the report names it, the mode switch removes it, and a second switch
    changes nothing."""
    marker = f"/home/pi/.distcc/lock/backoff_tcp_{workers[0].fqdn}_3632_0"
    as_build_user(builder.container, f"mkdir -p ~/.distcc/lock && touch {marker}")
    run = deploy("cluster_distcc_report", json_output=False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"{workers[0].fqdn}:3632: ACTIVE" in run.stderr
    assert [b["file"] for b in json.loads(REPORT.read_text())["backoff"]] == [marker]

    switch = pyinfra("deploys/mode_switch.py", data=CROSS)
    assert switch.returncode == 0, switch.stderr[-3000:]
    assert "mode switch | builder client only | Client state of the last build cleared (backoff markers, client log)" \
        in switch.changed_on(builder.fqdn)
    assert sh(builder.container, f"ls {marker} 2>/dev/null || true").strip() == ""
    again = pyinfra("deploys/mode_switch.py", data=CROSS)
    assert again.totals["success"] == 0, again.changed_operations()
