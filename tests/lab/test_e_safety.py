"""Safe at any time: bad input is refused before any host is touched, faults
(an unreachable worker, a run cut off, a distccd that cannot start, a locked
or broken apt) are survived, and data is never lost or taken.

Every row of docs/safety.md is a test here or in tests/unit/test_settings.py.
Bad inputs run on a lab in k3s mode, where a real mode switch would change
every host, so "the digest did not change" proves the refusal; a control
test shows the same generated inventory with good data does change it. Each
fault test sets up the state it needs and leaves the lab in build mode.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import runpy
import shlex
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from facts.mounts import TmpfsMount, parse_mount_point
from lab import docker_lab
from operations import distcc, mounts
from tests.lab.harness import (
    INVENTORY,
    PYINFRA,
    REPO,
    Run,
    cluster_digest,
    deploy,
    docker_host,
    running_lab,
    settled_digest,
    sh,
    words_of,
)
from tests.lab.test_c_operations import big_c_source

TMPFS = "/tmp/kernel-build"
DROPIN_DIR = "/etc/systemd/system/distcc.service.d"
OVERRIDE = f"{DROPIN_DIR}/override.conf"
OVERRIDE_LAST_LINE = "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\n"
OVERRIDE_OP = "mode switch | distcc installed | distccd override (foreground, hardened)"
# Holds apt's and dpkg's fcntl locks the way a running apt does (flock(1)
# takes a different kind of lock that apt does not see).
LOCK_HOLDER = (
    "perl -MFcntl -e 'for my $f (\"/var/lib/dpkg/lock-frontend\", \"/var/lib/dpkg/lock\") {"
    " open(my $h, \">>\", $f) or die; my $l = pack(\"ssx4qqix4\", F_WRLCK, 0, 0, 0, 0);"
    " fcntl($h, F_SETLK, $l) or die \"lock $f: $!\"; push @h, $h } $0 = \"apt-lock-holder\"; sleep {seconds}'"
)


# --- running pyinfra -------------------------------------------------------------


def pyinfra_command(
    inventory: str, deploy_file: str, *extra: str, data: dict | None = None, dry: bool = False, yes: bool = True
) -> list[str]:
    command = [PYINFRA, "--dry"] if dry else [PYINFRA, "-y"] if yes else [PYINFRA]
    for key, value in (data or {}).items():
        command += ["--data", f"{key}={json.dumps(value) if isinstance(value, list) else value}"]
    return [*command, *extra, inventory, deploy_file]


def pyinfra_env(yes: bool) -> dict[str, str]:
    # --dry goes without -y: -y skips change detection, so it would plan nothing.
    return {k: v for k, v in os.environ.items() if yes or k != "PYINFRA_YES"}


def run_pyinfra(
    inventory: str | Path, deploy_file: str, *extra: str, data: dict | None = None, dry: bool = False,
    yes: bool = True, timeout: int = 600,
) -> Run:
    """pyinfra -y INVENTORY DEPLOY from the repository root, output as text.
    With yes=False pyinfra plans, then asks for Enter on an empty stdin and
    stops (EOFError): it shows what planning refuses, and changes nothing."""
    command = pyinfra_command(str(inventory), deploy_file, *extra, data=data, dry=dry, yes=yes)
    proc = subprocess.run(
        command, cwd=REPO, env=pyinfra_env(yes and not dry), capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def run_interrupted(data: dict, marker: str, interrupt: Callable[[subprocess.Popen], None], timeout: int = 300) -> Run:
    """A mode switch on the lab that is interrupted the moment its output
    shows `marker`; returns what it printed and its exit status."""
    command = pyinfra_command("inventories/lab.py", "deploys/mode_switch.py", data=data)
    proc = subprocess.Popen(
        command, cwd=REPO, env=pyinfra_env(True), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        stdin=subprocess.DEVNULL,
    )
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if marker in line:
            interrupt(proc)
            break
    rest, _ = proc.communicate(timeout=timeout)
    output = "".join(seen) + (rest or "")
    assert marker in output, output[-3000:]
    return Run(proc.returncode, output, "")


def ok(run: Run) -> Run:
    assert run.returncode == 0, (run.stdout + run.stderr)[-4000:]
    return run


def switch(**data) -> Run:
    return ok(deploy("mode_switch", json_output=False, data=data))


def k3s_mode(**data) -> Run:
    return ok(deploy("k3s_mode", json_output=False, data=data))


def validate(tmp_path: Path, **data) -> Run:
    """Validation with the given settings; its report goes to tmp_path, not
    into the repository (other suites read reports/validate.json)."""
    run = deploy("cluster_distcc_validate", json_output=False, data={**data, "distcc_report_path": str(tmp_path / "v.json")})
    assert run.returncode == 0 and " 0 FAIL" in run.stderr, run.stderr[-4000:]
    return run


def pyinfra_error(run: Run) -> str:
    """The one paragraph pyinfra prints for a refused run, as words."""
    return run.error


def host_lines(run: Run, node: docker_lab.Node) -> list[str]:
    prefix = f"[{node.fqdn}] "
    return [line.strip()[len(prefix):].strip() for line in run.output.splitlines() if line.strip().startswith(prefix)]


# --- generated inventories ----------------------------------------------------------


def lab_ssh_data() -> dict:
    """The ssh data of inventories/lab.py (the lab must be running)."""
    return runpy.run_path(str(REPO / "inventories" / "lab.py"))["_ssh"]


def write_inventory(
    directory: Path,
    builder: list[docker_lab.Node] | None,
    workers: list[docker_lab.Node] | None,
    host_data: dict[str, dict] | None = None,
) -> Path:
    """An inventory like inventories/lab.py but with the given groups (None
    leaves the group out) and extra data per host (by container name). It is
    named lab.py, next to a copy of inventories/group_data, so it gets the
    same group data (_sudo, the lab's small tmpfs)."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "inventories" / "group_data", directory / "group_data", dirs_exist_ok=True)
    ssh = lab_ssh_data()
    # Addresses as Docker reports them now: a restarted node may get another.
    addresses = {n.container: n.address for n in docker_lab.nodes()}

    def entry(node: docker_lab.Node) -> tuple[str, dict]:
        address = addresses.get(node.container) or node.address
        data = {"ssh_hostname": address, "ssh_user": node.user, **ssh}
        return (node.fqdn, {**data, **(host_data or {}).get(node.container, {})})

    text = "# Generated by tests/lab/test_e_safety.py\n"
    if builder is not None:
        text += f"builder = {ascii([entry(n) for n in builder])}\n"
    if workers is not None:
        text += f"workers = {ascii([entry(n) for n in workers])}\n"
    path = directory / "lab.py"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def nodes():
    """The running lab as it is (conftest's default would switch it into
    build mode); builder and workers come from conftest."""
    return running_lab()


def current(node: docker_lab.Node) -> docker_lab.Node:
    """The node as Docker reports it now (a restarted container may get another address)."""
    return next(n for n in docker_lab.nodes() if n.container == node.container)


def unused_lab_address() -> str:
    """An address in the lab's subnet that no node has."""
    taken = {n.address for n in docker_lab.nodes()}
    network = ipaddress.IPv4Network(docker_lab.SUBNET)
    return next(str(a) for a in reversed(list(network.hosts())) if str(a) not in taken)


# --- 1. bad input, refused before any host is touched ----------------------------------

# id: (how the inventory is shaped or the data given, the whole message)
# Roles: "b" the builder, "w1"/"w2" the first/last worker; "data" is host
# data (typed, as in group_data), "cli" is --data. {b}, {w1} and {mem}/{mib}
# are filled in per lab. The refusals are pyinfra errors raised while the
# deploy file loads, before any operation runs.
INVENTORY_FIX = "edit the inventory (see inventories/cluster.py). Nothing was changed on any host."
DATA_FIX = "(in the inventory's host data, inventories/group_data/ or --data). Nothing was changed on any host."
BAD_INPUTS = {
    "no builder": (
        {"builder": None},
        "inventory: the group 'builder' must hold exactly one host, found 0 (none). Fix: list the one Pi that "
        f"runs make as builder (builder = [...]); {INVENTORY_FIX}",
    ),
    "two builders": (
        {"builder": ["b", "w1"], "workers": ["w2"]},
        "inventory: the group 'builder' must hold exactly one host, found 2 ({b}, {w1}). Fix: list the one Pi "
        f"that runs make as builder (builder = [...]); {INVENTORY_FIX}",
    ),
    "builder also a worker": (
        {"builder": ["b"], "workers": ["b", "w1"]},
        "inventory: host {b} is both the builder and a worker; the builder must never run distccd. "
        f"Fix: remove it from workers; {INVENTORY_FIX}",
    ),
    "no workers": (
        {"builder": ["b"], "workers": None},
        "inventory: the group 'workers' is empty or missing; build mode needs at least one worker. "
        f"Fix: list the Pis that run distccd as workers (workers = [...]); {INVENTORY_FIX}",
    ),
    "unknown key (typo)": (
        {"data": {"w1": {"distcc_tmpfs_szie": "1G"}}},
        "host {w1}: setting distcc_tmpfs_szie = '1G' is not a setting of this package. Fix: remove or rename it "
        f"(did you mean distcc_tmpfs_size?) {DATA_FIX}",
    ),
    "unknown key (typo) on the command line": (
        # Every host has it; the one named is whichever loads first.
        {"cli": {"distccd_jobs": 4}},
        "setting distccd_jobs = 4 is not a setting of this package. Fix: remove or rename it (did you mean "
        f"distcc_jobs?) {DATA_FIX}",
    ),
    "invalid CIDR in distcc_allow": (
        {"data": {"w1": {"distcc_allow": ["10.0.0.1/33"]}}},
        "host {w1}: setting distcc_allow = ['10.0.0.1/33'] holds '10.0.0.1/33', which is not a valid IPv4 CIDR "
        "('33' is not a valid netmask). Fix: write each entry as ADDRESS/PREFIX with the host bits zero, e.g. "
        f"10.0.0.10/32 or 10.0.0.0/24 {DATA_FIX}",
    ),
    "CIDR with host bits in distcc_allow": (
        {"data": {"w1": {"distcc_allow": "10.0.0.1/24"}}},
        "host {w1}: setting distcc_allow = '10.0.0.1/24' holds '10.0.0.1/24', which is not a valid IPv4 CIDR "
        "(10.0.0.1/24 has host bits set). Fix: write each entry as ADDRESS/PREFIX with the host bits zero, e.g. "
        f"10.0.0.10/32 or 10.0.0.0/24 {DATA_FIX}",
    ),
    "invalid address in distcc_listen": (
        {"data": {"w1": {"distcc_listen": "10.0.0.300"}}},
        "host {w1}: setting distcc_listen = '10.0.0.300' is not an IPv4 address. Fix: set distcc_listen to an "
        f"address like 10.0.0.11 {DATA_FIX}",
    ),
    "any-address in distcc_listen": (
        {"data": {"w1": {"distcc_listen": "0.0.0.0"}}},
        "host {w1}: setting distcc_listen = '0.0.0.0' is the any-address (every interface), not one host's "
        "address on the cluster network. Fix: set distcc_listen to the LAN address of that Pi, e.g. 10.0.0.11, "
        f"or leave it unset for the default {DATA_FIX}",
    ),
    "allow list open to everyone": (
        {"data": {"w1": {"distcc_allow": ["0.0.0.0/0"]}}},
        "host {w1}: setting distcc_allow = ['0.0.0.0/0'] opens distccd to every address (anyone who can reach "
        "the port can run compilers on the worker). Fix: list only the builder, e.g. its address /32; if you "
        f"really accept the risk, also set distcc_allow_open_ok = True {DATA_FIX}",
    ),
    "allow list open to everyone in two halves": (
        {"data": {"w1": {"distcc_allow": ["0.0.0.0/1", "128.0.0.0/1"]}}},
        "host {w1}: setting distcc_allow = ['0.0.0.0/1', '128.0.0.0/1'] opens distccd to every address (anyone "
        "who can reach the port can run compilers on the worker). Fix: list only the builder, e.g. its address "
        f"/32; if you really accept the risk, also set distcc_allow_open_ok = True {DATA_FIX}",
    ),
    "non-ASCII value": (
        {"data": {"b": {"distcc_build_user": "p\u00efuser"}}},
        "host {b}: setting distcc_build_user = 'p\\xefuser' contains non-ASCII characters. Fix: use plain "
        f"ASCII: everything this package writes and prints is ASCII {DATA_FIX}",
    ),
    "tmpfs size that cannot be parsed": (
        {"data": {"b": {"distcc_tmpfs_size": "1.5G"}}},
        "host {b}: setting distcc_tmpfs_size = '1.5G' is not a size of at least 16M. Fix: write it as a whole "
        f"number with K, M or G (powers of 1024), e.g. '3G' or '1536M' {DATA_FIX}",
    ),
    "tmpfs larger than the builder's memory": (
        {"data": {"b": {"distcc_tmpfs_size": "{mem}G"}}},
        "host {b}: setting distcc_tmpfs_size = '{mem}G' is larger than the builder's memory ({mib} MiB); a tmpfs "
        "that size would push the build into swap or the OOM killer. Fix: set distcc_tmpfs_size below that, e.g. "
        "half of it. Nothing was changed on any host.",
    ),
}


@pytest.fixture(scope="module")
def k3s_baseline(builder, workers):
    """The lab in k3s mode: k3s units running, distccd installed but stopped,
    so a mode switch that went ahead would change every host."""
    switch()
    k3s_mode(distcc_discard_tmpfs=True)
    for node in [builder, *workers]:
        unit = "k3s" if node.role == "builder" else "k3s-agent"
        assert docker_host(node).service(unit).is_running
    return settled_digest()


def bad_input_run(case: dict, builder, workers, tmp_path: Path) -> tuple[Run, dict[str, str]]:
    roles = {"b": builder, "w1": workers[0], "w2": workers[-1]}
    names = {role: node.fqdn for role, node in roles.items()}
    memory_kib = int(sh(builder.container, "awk '/^MemTotal:/ {print $2}' /proc/meminfo").strip())
    names["mem"] = str(2 * max(1, memory_kib // 1024**2))
    names["mib"] = str(memory_kib // 1024)

    def filled(value):
        return value.format(**names) if isinstance(value, str) else value

    host_data = {
        roles[role].container: {key: filled(value) for key, value in data.items()}
        for role, data in case.get("data", {}).items()
    }
    builder_roles, worker_roles = case.get("builder", ["b"]), case.get("workers", "all")
    inventory = write_inventory(
        tmp_path,
        None if builder_roles is None else [roles[r] for r in builder_roles],
        None if worker_roles is None else workers if worker_roles == "all" else [roles[r] for r in worker_roles],
        host_data,
    )
    run = run_pyinfra(inventory, "deploys/mode_switch.py", data=case.get("cli"))
    return run, names


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_refused_before_any_host_changes(name, k3s_baseline, builder, workers, tmp_path):
    case, expected = BAD_INPUTS[name]
    run, names = bad_input_run(case, builder, workers, tmp_path)
    after = settled_digest()

    assert run.returncode != 0
    error = pyinfra_error(run)
    if name.endswith("on the command line"):
        assert re.fullmatch(r"host \S+: " + re.escape(expected), error), error
    else:
        assert error == expected.format(**names)
    assert "--> Beginning operation run" not in run.output
    assert run.output.isascii()
    assert after == k3s_baseline


def test_open_allow_list_is_accepted_with_allow_open_ok(k3s_baseline, builder, workers, tmp_path):
    first = workers[0]
    data = {first.container: {"distcc_allow": ["0.0.0.0/0"], "distcc_allow_open_ok": True}}
    inventory = write_inventory(tmp_path, [builder], workers, data)
    run = run_pyinfra(inventory, "deploys/mode_switch.py", "--diff", dry=True)
    assert run.returncode == 0, run.output[-3000:]
    assert f"Will modify {OVERRIDE}" in "\n".join(host_lines(run, first))
    assert "--allow 0.0.0.0/0" in run.output
    assert "opens distccd" not in run.output
    assert settled_digest() == k3s_baseline


def test_control_the_same_generated_inventory_with_good_data_does_change_hosts(k3s_baseline, builder, workers, tmp_path):
    inventory = write_inventory(tmp_path, [builder], workers)
    run = run_pyinfra(inventory, "deploys/mode_switch.py")
    assert run.returncode == 0, run.output[-3000:]
    assert settled_digest() != k3s_baseline
    assert not docker_host(builder).service("k3s").is_running


# --- 2. data safety ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tmpfs_over_files(builder):
    """A mode switch while the tmpfs mount point holds a file of the user's."""
    switch()
    k3s_mode(distcc_discard_tmpfs=True)
    sh(builder.container, f"mkdir -p {TMPFS} && echo 'notes of the user' > {TMPFS}/notes.txt")
    try:
        before = settled_digest()
        planned = run_pyinfra("inventories/lab.py", "deploys/mode_switch.py", yes=False)
        unchanged = settled_digest() == before
        run = run_pyinfra("inventories/lab.py", "deploys/mode_switch.py")
        found = {
            "content": sh(builder.container, f"cat {TMPFS}/notes.txt", check=False),
            "mounted": sh(builder.container, f"findmnt -rn -M {TMPFS} -o FSTYPE", check=False).strip(),
        }
    finally:
        sh(builder.container, f"rm -f {TMPFS}/notes.txt")
    switch()
    return run, found, planned, unchanged


REFUSAL = (
    f"Refusing to mount a tmpfs over {TMPFS}: the directory holds 1 entries that the mount would hide. "
    "Move them elsewhere (or delete them if they are not needed) and run again."
)


def test_without_yes_the_tmpfs_refusal_comes_while_planning(tmpfs_over_files):
    _, _, planned, unchanged = tmpfs_over_files
    assert planned.returncode != 0
    assert re.search(r"--> pyinfra error in \S+/deploys/library/builder\.py line \d+:", planned.output)
    assert planned.error.startswith("host builder.distcc.internal: " + REFUSAL), planned.error
    assert "Press enter" not in planned.output and "Traceback" not in planned.output
    assert unchanged


def test_tmpfs_is_never_mounted_over_a_non_empty_directory(tmpfs_over_files, builder):
    run, found, _, _ = tmpfs_over_files
    assert run.returncode != 0
    assert REFUSAL in run.words
    assert found == {"content": "notes of the user\n", "mounted": ""}


def test_tmpfs_refusal_is_one_message_before_any_host_changes(tmpfs_over_files):
    run, _, _, _ = tmpfs_over_files
    assert "Traceback" not in run.output
    assert "Beginning operation run" not in run.output
    assert REFUSAL + " Nothing was changed on any host." in run.error


HIDDEN = (
    f"setting distcc_tmpfs_path = '{TMPFS}': findmnt lists a tmpfs mounted at {TMPFS}, but {TMPFS} does not "
    "exist: a filesystem was mounted over /tmp"
)


def test_a_tmpfs_hidden_by_a_later_mount_on_tmp_is_named_and_refused_before_any_change(builder, tmp_path):
    """Raspberry Pi OS's tmp.mount (a tmpfs on /tmp) started while in build
    mode hides the build tmpfs, with its files: no deploy can reach it by its
    path. Both deploys refuse before any host changes, validation names it
    (no traceback), and unmounting what lies over /tmp brings it back whole."""
    switch()
    sh(builder.container, f"echo precious > {TMPFS}/vmlinux.o && mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp")
    try:
        before = settled_digest()
        for deploy_file in ("deploys/mode_switch.py", "deploys/k3s_mode.py"):
            run = run_pyinfra("inventories/lab.py", deploy_file)
            assert run.returncode != 0, deploy_file
            assert "Traceback" not in run.output and "Beginning operation run" not in run.output, run.output[-3000:]
            assert f"host builder.distcc.internal: {HIDDEN}" in run.words, run.output[-3000:]
            assert "`sudo umount /tmp` when that is the one" in run.words
            assert "Nothing was changed on any host." in run.words
        assert settled_digest() == before
        report = tmp_path / "v.json"
        run = deploy("cluster_distcc_validate", json_output=False, data={"distcc_report_path": str(report)})
        assert run.returncode != 0 and "Traceback" not in run.stderr
        assert set(json.loads(report.read_text())["failed"]) == {f"B-TMPFS@{builder.fqdn}"}, run.stderr[-3000:]
    finally:
        sh(builder.container, "umount /tmp", check=False)
    assert sh(builder.container, f"cat {TMPFS}/vmlinux.o") == "precious\n"
    sh(builder.container, f"rm -f {TMPFS}/vmlinux.o")
    validate(tmp_path)


def test_leaving_build_mode_keeps_tmpfs_contents_unless_discard_is_set(builder):
    switch()
    sh(builder.container, f"echo precious > {TMPFS}/vmlinux.o")
    host = docker_host(builder)
    kept = k3s_mode()
    assert f"keeping the tmpfs at {TMPFS}: it holds 1 entries (build output?)" in words_of(kept.stderr)
    assert "set distcc_discard_tmpfs=True to discard it" in words_of(kept.stderr)
    assert host.mount_point(TMPFS).filesystem == "tmpfs"
    assert host.file(f"{TMPFS}/vmlinux.o").content_string == "precious\n"
    assert host.service("k3s").is_running

    assert "keeping the tmpfs" in k3s_mode().stderr  # and again: never discarded by a rerun
    assert host.file(f"{TMPFS}/vmlinux.o").content_string == "precious\n"

    k3s_mode(distcc_discard_tmpfs=True)
    assert not host.mount_point(TMPFS).exists
    assert not host.file(f"{TMPFS}/vmlinux.o").exists
    assert not host.file("/etc/fstab").contains(TMPFS)
    switch()


def start_compile(node: docker_lab.Node, user: str, tag: str) -> dict[str, int]:
    """A compile that runs until killed: gcc reading its source from a pipe
    that `sleep` keeps open. Returns the pids of its sleep and cc1."""
    sh(node.container, f"runuser -u {user} -- sh -c 'sleep 300 | gcc -x c -c - -o /tmp/{tag}.o' >/dev/null 2>&1 &")
    for _ in range(50):
        cc1 = sh(node.container, f"pgrep -u {user} -x cc1 -n", check=False).strip()
        if cc1:
            sleep = sh(node.container, f"pgrep -u {user} -x sleep -n", check=False).strip()
            return {"cc1": int(cc1), "sleep": int(sleep)}
        time.sleep(0.1)
    raise AssertionError(f"{node.container}: the compile as {user} did not start")


def alive(node: docker_lab.Node, pid: int) -> bool:
    return sh(node.container, f"kill -0 {pid} 2>/dev/null && echo yes", check=False).strip() == "yes"


def test_worker_reset_never_kills_the_builders_or_a_users_own_compiles(builder, workers):
    switch()
    first = workers[0]
    own = {"builder": start_compile(builder, "pi", "own-builder"), "worker": start_compile(first, "pi", "own-worker")}
    stale = start_compile(first, "distccd", "stale-remote-job")
    try:
        run = ok(deploy("mode_switch", data={"distcc_force_restart": True}))
        for worker in workers:
            assert "mode switch | worker serving | Stop distccd when unhealthy" in run.changed_on(worker.fqdn)
        assert "mode switch | worker serving | Kill stale distccd and cc1 processes" in run.changed_on(first.fqdn)
        assert alive(builder, own["builder"]["cc1"]) and alive(first, own["worker"]["cc1"])
        assert not alive(first, stale["cc1"])
    finally:
        for node, pids in ((builder, own["builder"]), (first, own["worker"]), (first, stale)):
            sh(node.container, f"kill {pids['sleep']} {pids['cc1']} 2>/dev/null; true", check=False)


def test_stale_compiler_kill_spares_a_pid_reused_by_another_user(builder):
    """The reset's kill command for a pid the process table showed as a stale
    cc1 of distccd's, which by the time of the signal is a cc1 of pi's (pids
    are reused): left alone, through TERM and the wait for KILL. The same pid
    as pi's is killed. Before, only the name was checked."""
    pids = start_compile(builder, "pi", "reused-pid")
    names = ("distccd", "cc1", "cc1plus")
    try:
        sh(builder.container, distcc.kill_command([(pids["cc1"], "distccd")], names, grace_seconds=1).get_raw_value())
        assert alive(builder, pids["cc1"])
        sh(builder.container, distcc.kill_command([(pids["cc1"], "pi")], names, grace_seconds=1).get_raw_value())
        deadline = time.monotonic() + 5
        while alive(builder, pids["cc1"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(builder, pids["cc1"])
    finally:
        sh(builder.container, f"kill {pids['sleep']} {pids['cc1']} 2>/dev/null; true", check=False)


def fstab_live_lines(node: docker_lab.Node, path: str) -> list[str]:
    return [line for line in sh(node.container, "cat /etc/fstab").splitlines()
            if not line.startswith("#") and line.split()[1:2] == [path]]


def test_two_live_fstab_lines_for_the_tmpfs_leave_one(builder, tmp_path):
    switch()
    wanted = fstab_live_lines(builder, TMPFS)
    extra = f"tmpfs {TMPFS} tmpfs size=512M,mode=1777 0 0"
    sh(builder.container, f"echo '{extra}' >> /etc/fstab")
    try:
        run = switch()
        assert (
            f"/etc/fstab has 2 live lines for {TMPFS}; the first is kept as the tmpfs line, the others are "
            f"commented out (marked '{mounts.DUPLICATE_MARK}')"
        ) in run.words
        assert fstab_live_lines(builder, TMPFS) == wanted
        assert f"{mounts.DUPLICATE_MARK} {extra}" in sh(builder.container, "cat /etc/fstab").splitlines()
        assert ok(deploy("mode_switch")).totals["success"] == 0
        validate(tmp_path)
    finally:
        sh(builder.container, f"sed -i '/^{mounts.DUPLICATE_MARK[:20]}/d' /etc/fstab")
    assert fstab_live_lines(builder, TMPFS) == wanted


def test_tmpfs_size_is_compared_in_the_hosts_pages(builder, tmp_path):
    """The builder's page size is read on the host (4096 in the lab; 16 KiB
    on Raspberry Pi 5 kernels, which the lab cannot show) and a size that is
    not a whole number of pages converges: mounted once, then left alone."""
    page = int(sh(builder.container, "getconf PAGESIZE"))
    status = parse_mount_point(sh(builder.container, TmpfsMount().command(TMPFS).get_raw_value()).splitlines())
    assert status["page_size"] == page
    try:
        switch(distcc_tmpfs_size="16385K")
        assert docker_host(builder).mount_point(TMPFS).options[-1] == f"size={mounts.tmpfs_bytes('16385K', page) // 1024}k"
        assert ok(deploy("mode_switch", data={"distcc_tmpfs_size": "16385K"})).totals["success"] == 0
    finally:
        switch()
    validate(tmp_path)


def test_shrinking_the_tmpfs_below_what_it_holds_is_refused_with_the_sizes(builder, tmp_path):
    """The kernel refuses to shrink a tmpfs below what it holds, saying only
    "Invalid argument": the mode switch says what it holds, the setting and
    the fix, and the build output stays."""
    switch()
    sh(builder.container, f"head -c 40M /dev/zero > {TMPFS}/vmlinux.o")
    try:
        run = deploy("mode_switch", data={"distcc_tmpfs_size": "32M"})
        assert run.returncode != 0
        assert f"the tmpfs at {TMPFS} holds 40960 KiB, more than the new size 32M (setting distcc_tmpfs_size)" in run.words
        assert "copy out what you need" in run.words
        assert sh(builder.container, f"stat -c %s {TMPFS}/vmlinux.o").strip() == str(40 * 1024**2)
    finally:
        sh(builder.container, f"rm -f {TMPFS}/vmlinux.o")
        switch()
    validate(tmp_path)


def in_distccd_namespace(node: docker_lab.Node, script: str) -> str:
    """A script run in the mount namespace of the worker's distccd: what
    distccd and its compilers see."""
    main = sh(node.container, "systemctl show distcc -p MainPID --value").strip()
    assert main.isdigit() and main != "0", main
    return sh(node.container, f"nsenter -t {main} -m sh -c {shlex.quote(script)}")


SD_WEAR = "/tmp/sd-wear"


def test_remote_jobs_keep_their_temporary_files_in_a_private_tmpfs(builder, workers):
    """The worker's own /tmp is on its root filesystem on bookworm (the SD
    card on a Pi) and a tmpfs of half the memory on trixie (Debian 13's
    tmp.mount); distccd's is a private tmpfs of distcc_worker_tmp_size either
    way, where a real remote job's files land and go."""
    switch()
    first = workers[0]
    host_tmp = sh(first.container, "findmnt -rn -o FSTYPE --target /tmp").strip()
    assert (host_tmp == "tmpfs") == (first.suite == "trixie"), host_tmp
    fstype, options = in_distccd_namespace(first, "findmnt -rn -o FSTYPE,OPTIONS /tmp").split()
    assert fstype == "tmpfs" and "size=262144k" in options.split(",")
    fstype, options = in_distccd_namespace(first, "findmnt -rn -o FSTYPE,OPTIONS /var/tmp").split()
    assert fstype == "tmpfs" and "ro" in options.split(",")

    subprocess.run(
        ["docker", "exec", "-i", builder.container, "sh", "-c",
         f"mkdir -p {SD_WEAR} && cat > {SD_WEAR}/big.c && chown -R pi {SD_WEAR}"],
        input=big_c_source(1500), text=True, check=True,
    )
    job = (f"cd {SD_WEAR} && DISTCC_HOSTS={first.fqdn}/1 DISTCC_FALLBACK=0 distcc gcc -O2 -c big.c -o big.o; "
           f"echo $? > rc")
    try:
        sh(builder.container, f"runuser -u pi -- sh -c {shlex.quote(job)} </dev/null >/dev/null 2>&1 &")
        deadline = time.monotonic() + 60
        while not sh(first.container, "pgrep -u distccd -x cc1 || true").strip() and time.monotonic() < deadline:
            time.sleep(0.2)
        during = in_distccd_namespace(first, "ls -A /tmp; df -k --output=used /tmp | tail -n 1").split()
        assert any(name.startswith("distccd_") for name in during[:-1]), during
        assert int(during[-1]) > 0
        assert not [n for n in sh(first.container, "ls -A /tmp").split() if n.startswith("distccd_")]

        deadline = time.monotonic() + 240
        while not sh(builder.container, f"cat {SD_WEAR}/rc 2>/dev/null || true").strip() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sh(builder.container, f"cat {SD_WEAR}/rc").strip() == "0"
        assert sh(builder.container, f"test -s {SD_WEAR}/big.o && echo object").strip() == "object"
        assert re.search(r"COMPILE_OK .* big\.c", sh(first.container, "cat /var/log/distccd/distccd.log"))
        assert not [n for n in in_distccd_namespace(first, "ls -A /tmp").split() if n.startswith("distccd_")]
    finally:
        sh(builder.container, f"pkill -u pi -x distcc; rm -rf {SD_WEAR}", check=False)


def test_distccd_log_is_rotated_in_place_and_distccd_keeps_writing(builder, workers):
    switch()
    first = workers[0]
    log = "/var/log/distccd/distccd.log"
    config = sh(first.container, "cat /etc/logrotate.d/distccd-farm")
    assert f"{log} {{" in config and "copytruncate" in config.split()
    before = sh(first.container, f"cat {log}")
    assert before
    try:
        sh(first.container, "logrotate -f /etc/logrotate.d/distccd-farm")
        assert sh(first.container, f"cat {log}.1") == before
        assert sh(first.container, f"stat -c %s {log}").strip() == "0"
        # The same file, still open in distccd: its next job is logged there.
        tiny = (f"cd /tmp && echo 'int main(void) {{ return 0; }}' > rotated.c && DISTCC_HOSTS={first.fqdn}/1 "
                f"DISTCC_FALLBACK=0 distcc gcc -c rotated.c -o rotated.o; echo rc=$?; rm -f rotated.*")
        assert "rc=0" in sh(builder.container, f"runuser -u pi -- sh -c {shlex.quote(tiny)}")
        assert re.search(r"COMPILE_OK .* rotated\.c", sh(first.container, f"cat {log}"))
        assert sh(first.container, f"stat -c %U:%G {log} {log}.1").split() == ["distccd:adm", "distccd:adm"]
    finally:
        sh(first.container, f"rm -f {log}.1 {log}.*.gz", check=False)


def test_files_the_package_does_not_own_are_left_alone(workers, tmp_path):
    first = workers[0]
    host = docker_host(first)
    switch()
    sh(
        first.container,
        "echo 'local notes' > /usr/lib/distcc/README.local && ln -sfn /bin/true /usr/lib/distcc/local-tool"
        f" && echo '# local drop-in of the admin' > {DROPIN_DIR}/local.conf",
    )
    try:
        ok(deploy("mode_switch", data={"distcc_compilers": '["gcc"]'}))  # --data takes JSON
        assert host.file("/usr/lib/distcc/gcc").is_symlink
        assert not host.file("/usr/lib/distcc/g++").exists  # a link of the package's, not wanted now
        k3s_mode()
        switch()
        assert host.file("/usr/lib/distcc/g++").is_symlink
        assert host.file("/usr/lib/distcc/README.local").content_string == "local notes\n"
        assert host.file("/usr/lib/distcc/local-tool").linked_to == "/usr/bin/true"
        assert host.file(f"{DROPIN_DIR}/local.conf").content_string == "# local drop-in of the admin\n"
    finally:
        sh(first.container, f"rm -f /usr/lib/distcc/README.local /usr/lib/distcc/local-tool {DROPIN_DIR}/local.conf"
           " && systemctl daemon-reload")
    switch()
    validate(tmp_path)


# --- 3. faults -----------------------------------------------------------------------


RUN_LOCK = "/run/lock/pyinfra-distcc-farm"


def test_a_distccd_refused_by_systemds_start_limit_is_started_again(workers, tmp_path):
    """Restarted six times in a row, distcc.service hits systemd's start
    limit (five starts in ten seconds) and stays failed: the mode switch
    resets that before it starts distccd. It used to fail the worker with
    "Start request repeated too quickly" (found by re-capturing fixtures
    with back-to-back restarts)."""
    switch()
    first = workers[0]
    sh(first.container, "for i in 1 2 3 4 5 6; do systemctl restart distcc; done 2>/dev/null; true")
    assert sh(first.container, "systemctl show distcc -p Result --value").strip() == "start-limit-hit"
    switch()
    assert sh(first.container, "systemctl is-active distcc").strip() == "active"
    validate(tmp_path)

# Docker bind-mounts /etc/hosts into the container: rewritten in place.
HOSTS_MISNAME = (
    "cp /etc/hosts /root/hosts.test && grep -v {name} /root/hosts.test > /etc/hosts && "
    "echo '172.31.250.99 {name}.distcc.internal {name}' >> /etc/hosts"
)
HOSTS_RESTORE = "cat /root/hosts.test > /etc/hosts && rm /root/hosts.test"


@pytest.mark.parametrize("where", ["on a worker, the builder's name", "on the builder, a worker's name"])
def test_a_name_that_resolves_to_another_host_is_refused_before_any_change(builder, workers, where):
    """A stale /etc/hosts line: the name resolves, but to 172.31.250.99,
    which is no node. The mode switch is refused while loading, naming the
    name, the address and the host's own addresses, before any host changes:
    it no longer writes --allow 172.31.250.99/32 on the worker, nor a host
    list that sends a worker's jobs elsewhere."""
    switch()
    worker = workers[0]
    node, name, owner = (worker, "builder", builder) if where.startswith("on a worker") else (builder, "worker1", worker)
    sh(node.container, HOSTS_MISNAME.format(name=name))
    try:
        before = cluster_digest()
        run = deploy("mode_switch", json_output=False)
        assert run.returncode != 0
        if node is worker:
            expected = (f"host {worker.fqdn}: the builder's name builder.distcc.internal resolves on this worker to "
                        f"172.31.250.99, but the builder's addresses are {builder.address}: distccd would allow "
                        f"172.31.250.99/32 and deny every job from the builder.")
        else:
            expected = (f"host {builder.fqdn}: the builder resolves worker1.distcc.internal to 172.31.250.99 (its "
                        f"addresses are {owner.address}), so distcc would send those workers' jobs to other hosts.")
        assert expected in run.error, run.stderr[-3000:]
        assert "Nothing was changed on any host." in run.error and "--> Beginning operation run" not in run.stderr
        assert cluster_digest() == before
    finally:
        sh(node.container, HOSTS_RESTORE)
    switch()


def test_two_mode_switches_at_once_one_runs_the_other_is_refused(builder, tmp_path):
    """From k3s mode, two mode switches started together (two terminals):
    one takes the cluster's run lock and switches, the other is refused
    while loading, naming the first, before any host changes. fstab ends
    with one live tmpfs line, the lock is given back, and a third run
    changes nothing. Before the lock, both exited 0 and left two live
    tmpfs lines."""
    switch()
    k3s_mode(distcc_discard_tmpfs=True)
    command = [PYINFRA, "-y", INVENTORY, "deploys/mode_switch.py"]
    runs = [subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    codes = [run.returncode for run in runs]
    assert sorted(codes)[0] == 0 and sorted(codes)[1] != 0, outputs
    refused = outputs[codes.index(max(codes))][1]
    assert "another run holds this cluster's run lock (/run/lock/pyinfra-distcc-farm on the builder): " \
           "mode_switch run by" in words_of(refused), refused[-3000:]
    assert "Nothing was changed on any host." in words_of(refused) and "--> Beginning operation run" not in refused
    assert refused.isascii()
    live = [line for line in sh(builder.container, "cat /etc/fstab").splitlines()
            if not line.lstrip().startswith("#") and f" {TMPFS} " in f" {line} "]
    assert len(live) == 1, live
    assert sh(builder.container, f"test -e {RUN_LOCK} || echo given back").strip() == "given back"
    assert ok(deploy("mode_switch")).totals["success"] == 0
    validate(tmp_path)


@pytest.mark.parametrize("machine", ["this machine, the run gone", "another machine"])
def test_a_lock_left_by_a_run_that_died(builder, machine):
    """A lock left behind (the run killed before it could give it back):
    one from this machine whose pid is gone is taken over with a warning;
    one from another machine cannot be judged from here, so the run is
    refused with the way to clear it."""
    here = socket.gethostname() if machine.startswith("this") else "laptop-of-someone-else"
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    record = (f"run=deadbeef0001 controller={here} boot={boot} pid={2**22 + 7} pid_start=1 user=ada "
              f"deploy=mode_switch since=2026-12-06T20:00:00Z")
    sh(builder.container, f"mkdir -p {RUN_LOCK} && echo '{record}' > {RUN_LOCK}/owner")
    try:
        run = deploy("mode_switch", json_output=False)
        if machine.startswith("this"):
            assert run.returncode == 0, run.stderr[-3000:]
            assert "taking over the run lock of a run that is over: mode_switch run by ada@" in run.words
            assert sh(builder.container, f"test -e {RUN_LOCK} || echo given back").strip() == "given back"
        else:
            assert run.returncode != 0
            assert ("mode_switch run by ada@laptop-of-someone-else (pid 4194311), holding it since "
                    "2026-12-06T20:00:00Z") in run.error
            assert f"remove the lock on the builder (sudo rm -r {RUN_LOCK}) and run again" in run.error
            assert "--> Beginning operation run" not in run.stderr
    finally:
        sh(builder.container, f"rm -rf {RUN_LOCK}")


@pytest.fixture(scope="module")
def unreachable_worker_run(builder, workers, tmp_path_factory):
    """A mode switch from k3s mode with the last worker's container stopped,
    then validation: the lab's own inventory still lists it, at its address,
    as a real inventory lists a Pi that is off."""
    switch()
    k3s_mode(distcc_discard_tmpfs=True)
    target = workers[-1]
    subprocess.run(["docker", "stop", target.container], check=True, capture_output=True)
    report = tmp_path_factory.mktemp("unreachable") / "validate.json"
    try:
        started = time.monotonic()
        run = deploy("mode_switch", json_output=False)
        took = time.monotonic() - started
        hosts_file = sh(builder.container, "cat /home/pi/.distcc/hosts", check=False)
        validation = deploy("cluster_distcc_validate", json_output=False, data={"distcc_report_path": str(report)})
        results = json.loads(report.read_text())["hosts"]
    finally:
        docker_lab.up(len(workers))
    return run, target, hosts_file, took, (validation, results)


def test_unreachable_worker_is_named_and_fails_the_run(unreachable_worker_run):
    run, target, _, took, _ = unreachable_worker_run
    assert run.returncode != 0
    told = "\n".join(host_lines(run, target))
    # pyinfra's "Could not connect (timed out)", in the package's words
    # (operations/_connection.py, connect_failure_lines).
    assert f"{target.fqdn} (" in told and "did not answer SSH" in told, told
    assert "it is off, or off the network." in run.output and "power it on" in run.output
    assert took < 120


def test_validation_fails_the_unreachable_worker_with_the_fix(unreachable_worker_run):
    _, target, _, _, (validation, results) = unreachable_worker_run
    assert validation.returncode != 0
    [finding] = results[target.fqdn]
    assert (finding["id"], finding["result"]) == ("H-REACHABLE", "FAIL")
    # The cause pyinfra met while connecting, and the fix, in one paragraph.
    assert finding["detail"].startswith(f"{target.fqdn} ("), finding
    assert "did not answer SSH" in finding["detail"] and "Fix: if it belongs in this run, power it on" in finding["detail"]
    assert f"FAIL H-REACHABLE {target.fqdn}: {target.fqdn} (" in words_of(validation.stderr)


def test_unreachable_worker_does_not_stop_the_others(unreachable_worker_run, builder, workers):
    run, target, hosts_file, _, _ = unreachable_worker_run
    others = [w for w in workers if w != target]
    assert (
        f"worker {target.fqdn} is not reachable in this run and has no distcc_jobs; it is left out of the host "
        "list until the next run reaches it"
    ) in words_of(run.output)
    assert target.fqdn not in hosts_file
    assert all(w.fqdn in hosts_file for w in others)
    assert not docker_host(builder).service("k3s").is_running
    assert docker_host(builder).mount_point(TMPFS).filesystem == "tmpfs"
    assert "--> Results:" in run.output
    for worker in others:
        host = docker_host(worker)
        assert host.service("distcc").is_running and not host.service("k3s-agent").is_running


def test_after_the_unreachable_worker_is_back_a_rerun_converges(unreachable_worker_run, builder, workers, tmp_path):
    _, target, _, _, _ = unreachable_worker_run
    switch()
    validate(tmp_path)
    assert target.fqdn in sh(builder.container, "cat /home/pi/.distcc/hosts")
    assert ok(deploy("mode_switch")).totals["success"] == 0


def assert_override_whole(node: docker_lab.Node, nice: int) -> None:
    """The drop-in is whole and loaded, no temporary file is left, and
    distccd runs with what it says."""
    text = sh(node.container, f"cat {OVERRIDE}")
    assert text.endswith(OVERRIDE_LAST_LINE) and f"--nice {nice} " in text
    assert sh(node.container, f"ls -A {DROPIN_DIR}").split() == ["override.conf"]
    assert sh(node.container, "systemctl show distcc -p NeedDaemonReload --value").strip() == "no"
    main = sh(node.container, "systemctl show distcc -p MainPID --value").strip()
    assert f"--nice {nice} " in sh(node.container, f"ps -o args= -p {main}")


def test_pyinfra_killed_after_the_override_is_written_rerun_converges(workers, tmp_path):
    switch()
    # Killed once the new drop-in is written, before the reset restarts
    # distccd with it: the workers' daemons still run the old command line.
    killed = run_interrupted({"distcc_nice": 7}, "Starting operation: mode switch | distcc installed | distccd enabled",
                             lambda proc: proc.kill())
    assert killed.returncode != 0 and "--> Results:" not in killed.output
    assert "--nice 7 " in sh(workers[0].container, f"cat {OVERRIDE}")
    assert "--nice 10 " in sh(workers[0].container, "ps -o args= -C distccd")
    try:
        switch(distcc_nice=7)
        for worker in workers:
            assert_override_whole(worker, 7)
        validate(tmp_path, distcc_nice=7)
        assert ok(deploy("mode_switch", data={"distcc_nice": 7})).totals["success"] == 0
    finally:
        switch()


def test_half_written_override_tmp_is_never_loaded_and_is_replaced_whole(workers, tmp_path):
    first = workers[0]
    switch()
    # What a run cut off mid-upload leaves: the old drop-in, and the start of
    # the new one in the temporary file.
    sh(first.container, f"sed 's/--nice 10 /--nice 7 /' {OVERRIDE} | head -c 300 > {OVERRIDE}.tmp && systemctl daemon-reload")
    assert f"{OVERRIDE}.tmp" not in sh(first.container, "systemctl show distcc -p DropInPaths --value")
    assert "--nice 10 " in sh(first.container, "ps -o args= -C distccd")
    try:
        switch(distcc_nice=7)
        for worker in workers:
            assert_override_whole(worker, 7)
        validate(tmp_path, distcc_nice=7)
    finally:
        switch()


def test_stale_tmp_next_to_a_current_override_is_removed(workers):
    first = workers[0]
    switch()
    sh(first.container, f"head -c 300 {OVERRIDE} > {OVERRIDE}.tmp")
    run = ok(deploy("mode_switch"))
    assert OVERRIDE_OP in run.changed_on(first.fqdn)
    assert_override_whole(first, 10)
    assert ok(deploy("mode_switch")).totals["success"] == 0


def test_override_renamed_but_not_reloaded_is_reloaded(workers, tmp_path):
    first = workers[0]
    switch()
    # What a run cut off between the rename and the daemon-reload leaves.
    sh(first.container, f"sed -i 's/--nice 10 /--nice 7 /' {OVERRIDE}")
    assert sh(first.container, "systemctl show distcc -p NeedDaemonReload --value").strip() == "yes"
    try:
        run = ok(deploy("mode_switch", data={"distcc_nice": 7}))
        assert OVERRIDE_OP in run.changed_on(first.fqdn)
        for worker in workers:
            assert_override_whole(worker, 7)
        validate(tmp_path, distcc_nice=7)
    finally:
        switch()


def test_distccd_started_before_its_override_was_written_is_restarted(workers, tmp_path):
    """What a run cut off after writing an override that changes no command
    line (only, say, the private /tmp) leaves: distccd running under the old
    directives. The next run sees distccd older than its override and
    restarts it; the run after changes nothing."""
    first = workers[0]
    switch()
    main = sh(first.container, "systemctl show distcc -p MainPID --value").strip()
    time.sleep(1.5)
    sh(first.container, f"touch {OVERRIDE} && systemctl daemon-reload")
    run = ok(deploy("mode_switch"))
    assert "mode switch | worker serving | Stop distccd when unhealthy" in run.changed_on(first.fqdn)
    assert "mode switch | worker serving | distccd active and listening" in run.changed_on(first.fqdn)
    assert sh(first.container, "systemctl show distcc -p MainPID --value").strip() != main
    assert ok(deploy("mode_switch")).totals["success"] == 0
    validate(tmp_path)


@pytest.fixture(scope="module")
def worker_killed_mid_run(workers):
    """A mode switch during which the first worker's container is killed
    (like a Pi losing power) and started again (it boots)."""
    switch()
    target = workers[0]

    def power_cycle(_proc):
        subprocess.run(["docker", "kill", target.container], check=True, capture_output=True)
        subprocess.run(["docker", "start", target.container], check=True, capture_output=True)

    try:
        run = run_interrupted({"distcc_nice": 7}, f"Starting operation: {OVERRIDE_OP}", power_cycle)
    finally:
        docker_lab.up(len(workers))
    return run, target


def test_worker_killed_mid_deploy_fails_the_run(worker_killed_mid_run, workers):
    run, target = worker_killed_mid_run
    assert run.returncode != 0
    # Wherever the kill lands, the dead worker fails alone, with an error
    # line of its own; the run is never cut short by pyinfra's crash report
    # (paramiko's EOFError, now a failure of that host: operations/_connection.py).
    assert any(line.startswith("Error: ") for line in host_lines(run, target)), run.output[-3000:]
    assert "An internal exception occurred" not in run.output and "EOFError" not in run.output, run.output[-3000:]
    assert "--> Results:" in run.output, run.output[-3000:]
    # The other workers completed the switch: their distccd runs the new command line.
    for worker in workers:
        if worker.container != target.container:
            assert "--nice 7 " in sh(worker.container, "ps -o args= -C distccd"), worker.fqdn


def test_worker_killed_mid_deploy_rerun_converges(worker_killed_mid_run, workers, tmp_path):
    try:
        switch(distcc_nice=7)
        for worker in workers:
            assert_override_whole(worker, 7)
        validate(tmp_path, distcc_nice=7)
        assert ok(deploy("mode_switch", data={"distcc_nice": 7})).totals["success"] == 0
    finally:
        switch()


def test_distccd_that_cannot_start_fails_the_reset_with_its_own_reason(builder, workers, tmp_path):
    first, others = workers[0], workers[1:]
    switch()
    address = unused_lab_address()
    inventory = write_inventory(tmp_path / "inv", [builder], workers, {first.container: {"distcc_listen": address}})
    try:
        run = run_pyinfra(inventory, "deploys/mode_switch.py")
        assert run.returncode != 0
        lines = host_lines(run, first)
        start = lines.index(f"distccd did not start listening on {address}:3632 within 15s.")
        # distccd's own words from its log, once though systemd restarted it
        # meanwhile; before, only the journal's "status=102/n/a" was shown.
        assert lines[start + 1:start + 4] == [
            "distccd's own reason, from /var/log/distccd/distccd.log:",
            f"(dcc_listen_by_addr) ERROR: bind of {address}:3632 failed: Cannot assign requested address",
            f"Fix: {address} is not an address of this worker (it has: {current(first).address}). Set distcc_listen "
            f"in this worker's host data to one of its addresses, or leave it unset for its address toward the "
            f"builder; then run deploys/mode_switch.py again.",
        ], lines[start:]
        assert "Error: executed 0 commands" in lines[start + 4:]
        assert run.output.isascii()
        for worker in others:
            assert docker_host(worker).socket(f"tcp://{current(worker).address}:3632").is_listening
    finally:
        switch()
    validate(tmp_path)


# apt and dpkg on the last worker, with distcc removed so that the deploy
# has to install it (the .deb stays in apt's cache, so reinstalling needs no
# network).


@pytest.fixture
def apt_target(workers):
    switch()
    target = workers[-1]
    sh(target.container, "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q distcc >/dev/null 2>&1")
    assert not docker_host(target).package("distcc").is_installed
    cleanups: list[str] = []
    yield target, cleanups
    for script in cleanups:
        sh(target.container, script, check=False)
    switch()
    assert docker_host(target).package("distcc").is_installed


def hold_dpkg_lock(node: docker_lab.Node, seconds: int) -> int:
    sh(node.container, f"{LOCK_HOLDER.replace('{seconds}', str(seconds))} >/dev/null 2>&1 &")
    for _ in range(50):
        pid = sh(node.container, "pgrep -x apt-lock-holder -n", check=False).strip()
        if pid and f" {pid} " in sh(node.container, "cat /proc/locks"):
            return int(pid)
        time.sleep(0.1)
    raise AssertionError(f"{node.container}: could not take the dpkg lock")


def test_apt_lock_held_names_the_holder_and_the_fix(apt_target, builder, workers):
    target, cleanups = apt_target
    pid = hold_dpkg_lock(target, 600)
    cleanups.append(f"kill {pid}")
    run = run_pyinfra("inventories/lab.py", "deploys/mode_switch.py", data={"distcc_apt_lock_wait": 3})
    assert run.returncode != 0
    told = words_of("\n".join(host_lines(run, target)))
    assert (
        "dpkg is locked: another package manager run holds its lock and did not let go within 3s (setting "
        "distcc_apt_lock_wait), so distcc cannot be installed: /var/lib/dpkg/lock"
    ) in told
    assert f"/var/lib/dpkg/lock-frontend held by pid {pid}: apt-lock-holder" in host_lines(run, target)
    assert (
        "Fix: let it finish (unattended-upgrades or apt-daily often runs after boot) or stop it, then run the "
        "deploy again; or raise distcc_apt_lock_wait."
    ) in told
    assert all(len(line) <= 100 for line in host_lines(run, target) if "held by pid" in line)
    assert not docker_host(target).package("distcc").is_installed
    assert "--> Results:" in run.output
    for worker in workers:
        if worker != target:
            assert docker_host(worker).service("distcc").is_running
    assert docker_host(builder).mount_point(TMPFS).filesystem == "tmpfs"


def test_apt_lock_released_within_the_wait_is_waited_for(apt_target, tmp_path):
    target, cleanups = apt_target
    held_until = int(sh(target.container, "date +%s")) + 12
    pid = hold_dpkg_lock(target, 12)
    cleanups.append(f"kill {pid} 2>/dev/null")
    # Without the wait, apt-get fails at once: "Could not get lock".
    run = ok(deploy("mode_switch", data={"distcc_apt_lock_wait": 60}))
    assert "mode switch | distcc installed | Install distcc" in run.changed_on(target.fqdn)
    installed_at = sh(
        target.container, "date -d \"$(grep ' install distcc:' /var/log/dpkg.log | tail -n 1 | cut -d' ' -f1,2)\" +%s"
    )
    assert int(installed_at) >= held_until - 1
    assert docker_host(target).package("distcc").is_installed
    validate(tmp_path)


def test_interrupted_dpkg_names_the_fix(apt_target):
    target, cleanups = apt_target
    sh(target.container, "touch /var/lib/dpkg/updates/0001")
    cleanups.append("rm -f /var/lib/dpkg/updates/0001")
    run = run_pyinfra("inventories/lab.py", "deploys/mode_switch.py")
    assert run.returncode != 0
    assert (
        "dpkg was interrupted in an earlier run (/var/lib/dpkg/updates is not empty), so distcc cannot be "
        "installed. Fix: run 'sudo dpkg --configure -a' on this host, then run the deploy again."
    ) in words_of("\n".join(host_lines(run, target)))


def test_broken_sources_list_gives_apts_own_error(apt_target):
    target, cleanups = apt_target
    stamp = "/var/lib/apt/periodic/update-success-stamp"
    sh(
        target.container,
        "cp /etc/apt/sources.list /etc/apt/sources.list.safety-test"
        " && echo 'deb http://deb.debian.org/debian bookworm' > /etc/apt/sources.list"
        f" && touch -d '3 days ago' {stamp}",
    )
    cleanups.append(f"mv /etc/apt/sources.list.safety-test /etc/apt/sources.list && touch {stamp}")
    run = run_pyinfra("inventories/lab.py", "deploys/mode_switch.py")
    assert run.returncode != 0
    lines = host_lines(run, target)
    assert "E: Malformed entry 1 in list file /etc/apt/sources.list (Component)" in lines
    assert "E: The list of sources could not be read." in lines
