"""docs/kernel-build.md, run in the amd64 lab: every block it marks
`<!-- lab: ... -->`, with the changes its "How this page is tested" section
lists (the lab's inventory, Debian's linux-source-6.12 for the Raspberry Pi
tree, tinyconfig plus ARCH_BCM2835 for bcm2711_defconfig, ARCH= and
CROSS_COMPILE= because the lab's builder is amd64). The build report must
then show at least 95% of the C compile jobs on the workers, none failed,
none fallen back, and per worker exactly the jobs its own log gained.

The sections run in the order 8 (objects on disk, O=), 4b (32-bit), 4
(64-bit, the whole Image.gz modules dtbs), 5 (distccmon-text while 4 runs),
6 (mark before 4, report after), 7 (modules_install): a source tree is
configured for one architecture at a time, and O= needs a clean one, so
`make mrproper` runs between them.
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
    """A block's commands with the lab's changes: every make gets args,
    bcm2711_defconfig becomes the stand-in, and the build targets become
    `targets` when given."""
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
    return " && ".join(out)


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


def test_every_lab_block_of_the_guide_is_run_here():
    """A block the guide adds or marks is one this module runs."""
    run_here = {
        ("1", "as the build user"), ("2", "on the machine you deploy from"), ("4", "as the build user"),
        ("4b", "as the build user"), ("5", "as the build user, while a build runs"),
        ("6", "on the machine you deploy from, before the build"), ("6", "on the machine you deploy from, after the build"),
        ("7", "as the build user"), ("8", "as the build user"),
    }
    not_run = {b.section for b in guide_blocks() if b.how.startswith("not run")}
    # Section 9's pump build needs the lab in pump mode: the ccache and pump
    # module runs it.
    elsewhere = {b.section for b in guide_blocks() if ELSEWHERE in b.how}
    assert {(b.section, b.how) for b in guide_blocks()
            if not b.how.startswith("not run") and ELSEWHERE not in b.how} == run_here
    assert not_run == {"3", "7"}
    assert elsewhere == {"9"}


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
    as_build_user(builder.container, f"[ -f {TREE}/Makefile ] || {{ tar -C /tmp/kernel-build -xJf /usr/src/{source}.tar.xz "
                                     f"&& mv /tmp/kernel-build/{source} {TREE}; }}")
    # As clean as a fresh clone (a tree left by an earlier run is reused).
    as_build_user(builder.container, f"cd {TREE} && make -s mrproper")
    return TREE


def test_the_guide_tells_the_builders_architecture(builder, nodes):
    assert as_build_user(builder.container, " && ".join(block("1").lines)).split() == ["amd64", "x86_64"]


def test_objects_on_disk_with_o(builder, tree):
    """Section 8 (init/ only): the objects land in ~/kbuild, on the disk."""
    as_build_user(builder.container, for_the_lab(block("8").lines, ARM64, STAND_IN_64, "init/"))
    out = as_build_user(builder.container, "ls ~/kbuild/init/main.o && findmnt -n -o FSTYPE --target ~/kbuild")
    assert "tmpfs" not in out.split()[-1]
    as_build_user(builder.container, "rm -rf ~/kbuild")


def test_the_32_bit_commands_build_for_arm(builder, tree):
    """Section 4b (init/ only): ARCH=arm objects, 32-bit ARM."""
    as_build_user(builder.container, for_the_lab(block("4b").lines, ARM32, STAND_IN_32, "init/"))
    header = as_build_user(builder.container, f"readelf -h {TREE}/init/main.o")
    assert "ELF32" in header and "ARM" in header
    as_build_user(builder.container, f"cd {TREE} && make -s mrproper")


def worker_lines_since_mark(worker, mark: dict) -> int:
    """Job lines in the worker's own log since the mark, counted independently."""
    size = mark["hosts"][worker.fqdn]["size"]
    out = sh(worker.container,
             f"tail -c +{size + 1} /var/log/distccd/distccd.log | "
             "grep -cE '\\(dcc_job_summary\\)|denied by access list' || true")
    return int(out.strip() or 0)


@pytest.fixture(scope="module")
def kernel(builder, workers, tree):
    """Sections 6 (mark), 4 with 5 watching it, 6 (report)."""
    marks = on_the_controller(block("6", "on the machine you deploy from, before").lines)
    assert marks[0].returncode == 0, marks[0].stderr[-3000:]
    build = subprocess.Popen(
        ["docker", "exec", "-u", "pi", "-i", builder.container, "sh", "-l", "-c",
         for_the_lab(block("4").lines, ARM64, STAND_IN_64)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    # Section 5: distccmon-text as the build user shows jobs in flight.
    monitor = block("5").lines[0].replace("distccmon-text 2", "timeout 3 distccmon-text 1")
    seen = ""
    deadline = time.monotonic() + 600
    while build.poll() is None and time.monotonic() < deadline and " Compile " not in seen:
        proc = subprocess.run(["docker", "exec", "-u", "pi", builder.container, "sh", "-l", "-c", monitor],
                              capture_output=True, text=True)
        seen = proc.stdout
    out, err = build.communicate(timeout=1800)
    assert build.returncode == 0, f"{out[-2000:]}\n{err[-3000:]}"
    before = cluster_digest()
    report_run = on_the_controller(block("6", "on the machine you deploy from, after").lines)[0]
    assert report_run.returncode == 0, report_run.stderr[-3000:]
    assert cluster_digest() == before, "the report changed a host"
    return {"monitor": seen, "report": json.loads(REPORT.read_text()), "report_text": report_run.stderr,
            "marks": json.loads(MARK.read_text())}


def test_the_kernel_and_its_device_trees_are_built(builder, kernel):
    assert sh(builder.container, f"test -s {TREE}/arch/arm64/boot/Image.gz && echo ok").strip() == "ok"
    dtbs = sh(builder.container, f"ls {TREE}/arch/arm64/boot/dts/broadcom/").split()
    assert "bcm2711-rpi-4-b.dtb" in dtbs and "bcm2711-rpi-cm4-io.dtb" in dtbs, dtbs


def test_distccmon_text_showed_jobs_on_workers(kernel, workers):
    lines = [line for line in kernel["monitor"].splitlines() if " Compile " in line]
    assert lines, kernel["monitor"]
    assert any(w.fqdn in line for line in lines for w in workers), lines


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


def test_modules_install_fills_lib_modules(builder, kernel):
    as_build_user(builder.container, for_the_lab(block("7", "as the build user").lines, ARM64, STAND_IN_64))
    release = as_build_user(builder.container, f"cd {TREE} && make -s {ARM64} kernelrelease").strip()
    assert "modules.builtin" in sh(builder.container, f"ls /lib/modules/{release}").split(), release
    sh(builder.container, f"rm -rf /lib/modules/{release}")


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
