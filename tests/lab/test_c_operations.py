"""Each operation applied twice to a real lab node: the first run changes the
host, the second changes nothing, and testinfra (over `docker exec`, an
independent look) sees the state the operation promised.

Operations run through pyinfra's Python API, over SSH as pi with sudo, as on
the Pis. Every test puts back what it changed (a test path, a link, a unit,
fstab); the module needs distcc installed, so it first brings the lab to DISTCC
BUILD MODE with deploys/mode_switch.py when it is not there (which changes
nothing on a lab already in build mode).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pyinfra.api import Config, Inventory, OperationError, State
from pyinfra.api.connect import connect_all, disconnect_all
from pyinfra.api.operation import add_op
from pyinfra.api.operations import run_ops

from lab import docker_lab
from operations import distcc, k3s, mounts, paths, systemd
from operations.templates import render_template
from tests.lab.harness import DEFAULT_GCC, big_c_source, by_role, deploy, docker_host, pyinfra, sh, state_digest

K3S_UNITS = ["k3s", "k3s-server", "k3s-agent"]


def apply(node: docker_lab.Node, operation, **kwargs) -> bool:
    """Run one operation on one node over SSH (as pi, sudo); whether it changed the host."""
    data = {
        "ssh_hostname": node.address,
        "ssh_user": "pi",
        "ssh_key": str(docker_lab.SSH_KEY),
        "ssh_known_hosts_file": "/dev/null",
        "ssh_strict_host_key_checking": "no",
    }
    inventory = Inventory(([(node.fqdn, data)], {}))
    state = State(inventory, Config())
    connect_all(state)
    try:
        host = inventory.get_host(node.fqdn)
        assert host in state.active_hosts, f"could not connect to {node.fqdn} ({node.address})"
        meta = add_op(state, operation, _sudo=True, **kwargs)[host]
        run_ops(state)
        assert meta.did_succeed(), f"{operation.__name__} failed on {node.fqdn}: {meta.stderr}"
        return meta.did_change()
    finally:
        disconnect_all(state)
        # pyinfra's SSH disconnect leaves the paramiko client open (the CLI
        # process just exits); a test session must not pile up sessions.
        client = getattr(inventory.get_host(node.fqdn).connector, "client", None)
        if client is not None:
            client.close()


def apply_twice(node: docker_lab.Node, operation, **kwargs) -> tuple[bool, bool]:
    return apply(node, operation, **kwargs), apply(node, operation, **kwargs)


@pytest.fixture(scope="module")
def nodes(lab):
    missing = [n for n in lab if sh(n.container, "dpkg-query -W -f '${Status}' distcc 2>/dev/null", check=False)
               != "install ok installed"]
    if missing:
        run = deploy("mode_switch")
        assert run.returncode == 0, run.stderr[-3000:]
    return lab


@pytest.fixture(autouse=True)
def hosts_left_as_found(nodes):
    """Units, mounts, fstab, the override, links, package and processes of
    every node are the same after each test as before it."""
    before = {n.container: state_digest(n.container) for n in nodes}
    yield
    deadline = time.monotonic() + 15
    while True:  # SSH sessions and killed processes take a moment to go
        after = {n.container: state_digest(n.container) for n in nodes}
        if after == before or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert after == before


@pytest.fixture(scope="module")
def builder(nodes):
    return by_role(nodes, "builder")[0]


@pytest.fixture(scope="module")
def worker(nodes):
    return by_role(nodes, "worker")[0]


# --- mounts ----------------------------------------------------------------------


@contextmanager
def fstab_kept(node: docker_lab.Node) -> Iterator[None]:
    """/etc/fstab exactly as it was afterwards, whatever the test did."""
    saved = sh(node.container, "cat /etc/fstab")
    try:
        yield
    finally:
        subprocess.run(["docker", "exec", "-i", node.container, "sh", "-c", "cat > /etc/fstab"],
                       input=saved, text=True, check=True)


def test_tmpfs_mounted_then_unmounted(builder):
    path, size = "/tmp/optest-tmpfs", "32M"
    host = docker_host(builder)
    assert not host.file(path).exists
    with fstab_kept(builder):
        try:
            assert apply_twice(builder, mounts.tmpfs_mounted, path=path, size=size) == (True, False)
            mount = host.mount_point(path)
            assert mount.exists and mount.filesystem == "tmpfs"
            assert "size=32768k" in mount.options and "noexec" not in mount.options
            assert host.file(path).mode == 0o1777
            assert f"tmpfs {path} tmpfs size=32M,mode=1777,nosuid,nodev 0 0" in host.file("/etc/fstab").content_string

            assert apply_twice(builder, mounts.tmpfs_unmounted, path=path) == (True, False)
            assert not host.mount_point(path).exists
            assert path not in host.file("/etc/fstab").content_string
        finally:
            sh(builder.container, f"mountpoint -q {path} && umount {path}; rmdir {path} 2>/dev/null; true")
    assert not host.file(path).exists


def test_tmpfs_mounted_leaves_one_live_fstab_line_of_two(builder):
    """Two live fstab lines for the mount point (an admin's and an older
    one): exactly one live line is left, the wanted one, and the other is
    kept as a marked comment. Before, both were rewritten to the same line,
    and `mount -a` stacked two tmpfs."""
    path = "/tmp/optest-dup"
    host = docker_host(builder)
    first, second = f"tmpfs {path} tmpfs size=16M,mode=1777 0 0", f"tmpfs {path} tmpfs size=64M,mode=0755 0 0"
    with fstab_kept(builder):
        try:
            sh(builder.container, f"printf '%s\\n' '{first}' '{second}' >> /etc/fstab")
            assert apply_twice(builder, mounts.tmpfs_mounted, path=path, size="32M") == (True, False)
            fstab = host.file("/etc/fstab").content_string.splitlines()
            live = [line for line in fstab if not line.startswith("#") and line.split()[1:2] == [path]]
            assert live == [f"tmpfs {path} tmpfs size=32M,mode=1777,nosuid,nodev 0 0"]
            assert f"{mounts.DUPLICATE_MARK} {second}" in fstab
            assert host.file("/etc/fstab").mode == 0o644 and host.file("/etc/fstab").user == "root"
            assert "size=32768k" in host.mount_point(path).options
            assert sh(builder.container, f"findmnt -rn -M {path} | wc -l").strip() == "1"
        finally:
            sh(builder.container, f"while mountpoint -q {path}; do umount {path}; done; rmdir {path} 2>/dev/null; true")
    assert not host.file(path).exists


def test_tmpfs_refuses_to_hide_files(builder):
    path = "/tmp/optest-full"
    host = docker_host(builder)
    fstab = host.file("/etc/fstab").content_string
    sh(builder.container, f"mkdir -p {path} && echo keep > {path}/a.o && echo keep > {path}/.config")
    try:
        with pytest.raises(OperationError, match=f"Refusing to mount a tmpfs over {path}: the directory holds 2 entries"):
            apply(builder, mounts.tmpfs_mounted, path=path, size="32M")
        assert not host.mount_point(path).exists
        assert host.file(f"{path}/a.o").content_string == "keep\n"
        assert host.file(f"{path}/.config").content_string == "keep\n"
        assert host.file("/etc/fstab").content_string == fstab
    finally:
        sh(builder.container, f"mountpoint -q {path} && umount {path}; rm -rf {path}")


# --- distcc ----------------------------------------------------------------------


def test_masquerade_links_restores_a_removed_link(worker):
    link = f"/usr/lib/distcc/gcc-{DEFAULT_GCC[worker.suite]}"
    host = docker_host(worker)
    assert host.file(link).linked_to == "/usr/bin/distcc"
    sh(worker.container, f"rm {link}")
    try:
        assert apply_twice(worker, distcc.masquerade_links) == (True, False)
        assert host.file(link).is_symlink
        assert sh(worker.container, f"readlink {link}").strip() == "../../bin/distcc"
    finally:
        sh(worker.container, f"[ -L {link} ] || ln -s ../../bin/distcc {link}")


WORK = "/tmp/optest-cc1"


def put_source(node: docker_lab.Node) -> None:
    subprocess.run(
        ["docker", "exec", "-i", node.container, "sh", "-c",
         f"mkdir -p {WORK}/out && cat > {WORK}/big.c && chmod 755 {WORK} && chmod 644 {WORK}/big.c && chmod 777 {WORK}/out"],
        input=big_c_source(), text=True, check=True,
    )


def start_compile(node: docker_lab.Node, user: str, name: str, command: str) -> int:
    """Start `command` in WORK as `user`, detached (its parent is runuser, not a
    distccd), in a session of its own; the id of its process group."""
    marker = f"{WORK}/out/{name}.pgid"
    sh(node.container, f"cd {WORK} && setsid runuser -u {user} -- sh -c "
                       f"'ps -o pgid= -p $$ > {marker}; {command}' </dev/null >/dev/null 2>&1 &")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        group = sh(node.container, f"cat {marker} 2>/dev/null || true").strip()
        if group.isdigit():
            return int(group)
        time.sleep(0.1)
    raise AssertionError(f"{node.container}: {command!r} did not start")


def end_group(node: docker_lab.Node, group: int) -> None:
    """Kill one process group this test started (runuser, its shell, gcc, cc1, as)."""
    # /bin/kill: dash's builtin takes no process group.
    sh(node.container, f"/bin/kill -s KILL -- -{int(group)} 2>/dev/null; true")


def wait_for_group_end(node: docker_lab.Node, group: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if str(group) not in sh(node.container, "ps -eo pgid=").split():
            return
        time.sleep(0.2)


def cc1_pids(node: docker_lab.Node, user: str, wait: bool = True) -> set[int]:
    deadline = time.monotonic() + (60 if wait else 0)
    while True:
        out = sh(node.container, f"pgrep -u {user} -x cc1 || true")
        pids = {int(p) for p in out.split()}
        if pids or time.monotonic() >= deadline:
            return pids
        time.sleep(0.3)


def parent_is_distccd(node: docker_lab.Node, pid: int) -> bool:
    """Whether the gcc driver above cc1 was started by a distccd."""
    driver = sh(node.container, f"ps -o ppid= -p {pid}").strip()
    return sh(node.container, f"ps -o comm= -p $(ps -o ppid= -p {driver})", check=False).strip() == "distccd"


def test_stale_cc1_killed_builders_own_compile_kept(builder):
    host = docker_host(builder)
    assert not cc1_pids(builder, "distccd", wait=False) and not cc1_pids(builder, "pi", wait=False)
    put_source(builder)
    groups = []
    try:
        groups.append(start_compile(builder, "distccd", "stale", "exec gcc -O2 -c big.c -o out/stale.o"))
        groups.append(start_compile(builder, "pi", "mine", "exec gcc -O2 -c big.c -o out/mine.o"))
        stale, mine = cc1_pids(builder, "distccd"), cc1_pids(builder, "pi")
        assert len(stale) == 1 and len(mine) == 1 and not parent_is_distccd(builder, next(iter(stale)))

        assert apply_twice(builder, distcc.stale_compilers_killed) == (True, False)
        assert not cc1_pids(builder, "distccd", wait=False)
        assert cc1_pids(builder, "pi", wait=False) == mine
        assert host.process.get(pid=next(iter(mine))).user == "pi"
    finally:
        for group in groups:
            end_group(builder, group)
        sh(builder.container, f"sleep 0.5; rm -rf {WORK}")
    assert not cc1_pids(builder, "distccd", wait=False) and not cc1_pids(builder, "pi", wait=False)


def test_stale_cc1_killed_live_remote_job_kept(builder, worker):
    """On a worker serving the builder: a cc1 run by distccd outside distccd is
    killed, the cc1 of a real remote job from the builder is not, and distccd
    keeps serving."""
    host = docker_host(worker)
    main_pid = host.service("distcc").systemd_properties["MainPID"]
    assert not cc1_pids(worker, "distccd", wait=False)
    put_source(builder)
    put_source(worker)
    client = stray = None
    job: set[int] = set()
    try:
        client = start_compile(
            builder, "pi", "client",
            f"export DISTCC_HOSTS={worker.address}/2 DISTCC_FALLBACK=0; exec distcc gcc -O2 -c big.c -o out/remote.o",
        )
        job = cc1_pids(worker, "distccd")
        assert len(job) == 1 and parent_is_distccd(worker, next(iter(job)))
        stray = start_compile(worker, "distccd", "stale", "exec gcc -O2 -c big.c -o out/stale.o")
        deadline = time.monotonic() + 60
        while len(cc1_pids(worker, "distccd")) < 2 and time.monotonic() < deadline:
            time.sleep(0.3)
        stale = cc1_pids(worker, "distccd") - job
        assert len(stale) == 1 and not parent_is_distccd(worker, next(iter(stale)))

        assert apply_twice(worker, distcc.stale_compilers_killed) == (True, False)
        assert cc1_pids(worker, "distccd", wait=False) == job
        assert host.service("distcc").is_running
        assert host.service("distcc").systemd_properties["MainPID"] == main_pid
    finally:
        # The job ends first, by its cc1's pid, while its client still listens:
        # distccd then reaps the driver and reports the failure. (Cut off from
        # its client instead, distccd kills the job but leaves the driver a
        # zombie until the next job.)
        for pid in job:
            sh(worker.container, f"kill -KILL {pid} 2>/dev/null; true")
        if client is not None:
            wait_for_group_end(builder, client)
            end_group(builder, client)
        if stray is not None:
            end_group(worker, stray)
        sh(builder.container, f"sleep 0.5; rm -rf {WORK}")
        sh(worker.container, f"rm -rf {WORK}")
    assert not cc1_pids(worker, "distccd", wait=False)
    assert host.service("distcc").systemd_properties["MainPID"] == main_pid
    assert host.socket(f"tcp://{worker.address}:3632").is_listening


# --- files and directories ---------------------------------------------------------


def test_file_installed_and_directory_present(worker):
    host = docker_host(worker)
    directory, path = "/tmp/optest-paths/sub", "/tmp/optest-paths/sub/conf"
    assert not host.file("/tmp/optest-paths").exists
    try:
        mine = dict(path=directory, user="distccd", group="adm", mode="2750")
        assert apply_twice(worker, paths.directory_present, **mine) == (True, False)
        assert host.file(directory).is_directory and host.file(directory).mode == 0o2750
        assert (host.file(directory).user, host.file(directory).group) == ("distccd", "adm")
        written = dict(path=path, content="a = 1\n", mode="640")
        assert apply_twice(worker, paths.file_installed, **written) == (True, False)
        assert host.file(path).content_string == "a = 1\n" and host.file(path).mode == 0o640
        assert (host.file(path).user, host.file(path).group) == ("root", "root")
        assert not host.file(f"{path}.tmp").exists
        # Owner and mode changed by hand: put back without rewriting the file.
        sh(worker.container, f"chown pi {path} && chmod 666 {path} && chmod 755 {directory}")
        inode = sh(worker.container, f"stat -c %i {path}").strip()
        assert apply_twice(worker, paths.file_installed, **written) == (True, False)
        assert apply_twice(worker, paths.directory_present, **mine) == (True, False)
        assert sh(worker.container, f"stat -c '%i %U %a' {path}").strip() == f"{inode} root 640"
        assert host.file(directory).mode == 0o2750
        # New content: a new file renamed into place.
        assert apply_twice(worker, paths.file_installed, **dict(written, content="a = 2\n")) == (True, False)
        assert host.file(path).content_string == "a = 2\n"
        assert sh(worker.container, f"stat -c %i {path}").strip() != inode
        # Something else at the path is refused, not replaced.
        sh(worker.container, f"rm {path} && mkdir {path}")
        with pytest.raises(OperationError, match=f"{path} is a directory, not a file; move it away"):
            apply(worker, paths.file_installed, **written)
        assert host.file(path).is_directory
    finally:
        sh(worker.container, "rm -rf /tmp/optest-paths")


# --- systemd ---------------------------------------------------------------------

TEST_UNIT = "optest.service"


def test_dropin_installed_on_a_test_unit(worker):
    host = docker_host(worker)
    dropin = f"/etc/systemd/system/{TEST_UNIT}.d/override.conf"
    context = {"argv": ["/bin/sleep", "3600"], "log_dir": "/tmp", "tmp_size": "16M"}
    assert not host.file(f"/etc/systemd/system/{TEST_UNIT}").exists
    # Active (exited), so systemd keeps it loaded and can tell when its files
    # changed since (NeedDaemonReload); it is never started with the drop-in.
    sh(worker.container, "printf '[Service]\\nType=oneshot\\nRemainAfterExit=yes\\nExecStart=/bin/true\\n' "
                         f"> /etc/systemd/system/{TEST_UNIT} && systemctl daemon-reload && systemctl start {TEST_UNIT}")
    try:
        once = dict(unit=TEST_UNIT, content=render_template("distcc-override.conf.j2", context))
        assert apply_twice(worker, systemd.dropin_installed, **once) == (True, False)
        assert host.file(dropin).mode == 0o644 and host.file(dropin).user == "root"
        assert "ExecStart=/bin/sleep 3600" in host.file(dropin).content_string
        assert not host.file(f"{dropin}.tmp").exists
        # Loaded: systemd runs the drop-in's command line, not the unit's.
        assert "argv[]=/bin/sleep 3600 " in host.service(TEST_UNIT).systemd_properties["ExecStart"]
        assert host.service(TEST_UNIT).systemd_properties["NeedDaemonReload"] == "no"

        # Written but never loaded (a run cut off after the rename): reloaded once.
        sh(worker.container, f"touch {dropin}")
        assert host.service(TEST_UNIT).systemd_properties["NeedDaemonReload"] == "yes"
        assert apply_twice(worker, systemd.dropin_installed, **once) == (True, False)
        assert host.service(TEST_UNIT).systemd_properties["NeedDaemonReload"] == "no"
    finally:
        # The drop-in goes first: stopping the unit with it loaded would remove
        # its RuntimeDirectory (distccd's).
        sh(worker.container, f"rm -rf /etc/systemd/system/{TEST_UNIT}.d && systemctl daemon-reload "
                             f"&& systemctl stop {TEST_UNIT} && rm -f /etc/systemd/system/{TEST_UNIT} "
                             "&& systemctl daemon-reload")
    assert not host.file(f"/etc/systemd/system/{TEST_UNIT}.d").exists
    assert host.service(TEST_UNIT).systemd_properties["LoadState"] == "not-found"


K3S_LEFT = "ps -eo comm= | grep -cE '^(k3s|k3s-server|k3s-agent|containerd-shim|pod-workload|pause)$' || true"


# k3s_ready for this node alone: no inventory nodes to find Ready.
READY = {"units": K3S_UNITS, "timeout_seconds": 60, "cluster": {"node_names": {}, "started_at": {}}}
# Whether k3s_ready had to wait, then again: an agent's unit (Type=exec) is
# active at once, so on its own node there is nothing to wait for; the
# server's (Type=notify) is activating until it is ready, which it may be by
# the time k3s_ready looks (the lab's server settles in 1 s).
WAITED = {"builder": ((True, False), (False, False)), "worker": ((False, False),)}


@pytest.mark.parametrize("role", ["builder", "worker"])
def test_k3s_stopped_with_its_pods_and_started_again(nodes, role):
    """The lab's k3s behaves like k3s (KillMode=process: pods outlive `systemctl
    stop`); k3s_stopped leaves no k3s process and no pod, and disables the
    unit; k3s_started (which does not wait) and k3s_ready (which does) bring
    both back. Each applied twice."""
    node = by_role(nodes, role)[0]
    unit = docker_lab.K3S_UNIT_FOR_ROLE[role]
    host = docker_host(node)
    was_running = host.service(unit).is_running
    try:
        if not was_running:
            assert apply_twice(node, k3s.k3s_started, units=K3S_UNITS) == (True, False)
            assert apply_twice(node, k3s.k3s_ready, **READY) in WAITED[role]
        assert host.service(unit).is_running and host.service(unit).is_enabled
        assert int(sh(node.container, K3S_LEFT)) >= 3
        assert apply_twice(node, k3s.k3s_stopped, units=K3S_UNITS) == (True, False)
        assert not host.service(unit).is_running and not host.service(unit).is_enabled
        assert int(sh(node.container, K3S_LEFT)) == 0
        assert apply_twice(node, k3s.k3s_started, units=K3S_UNITS) == (True, False)
        assert apply_twice(node, k3s.k3s_ready, **READY) in WAITED[role]
        assert host.service(unit).is_running and host.service(unit).is_enabled
        assert int(sh(node.container, K3S_LEFT)) >= 3
    finally:
        if not was_running:
            sh(node.container, f"systemctl disable --quiet {unit}; /usr/local/bin/k3s-killall.sh >/dev/null 2>&1")
    assert host.service(unit).is_running is was_running


# --- the CLI ---------------------------------------------------------------------


def test_cli_fact_distccd_listening_answers_for_every_host(nodes):
    proc = pyinfra("fact", "facts.distcc.DistccdListening", json_output=False, yes=False, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    output = proc.output
    found = re.search(r"--> Fact data for: facts\.distcc\.DistccdListening\n(\{.*?\n\})\n", output, re.S)
    assert found, output[-3000:]
    values = json.loads(found.group(1))
    assert set(values) == {n.fqdn for n in nodes}
    for node in nodes:
        sockets = values[node.fqdn]
        assert isinstance(sockets, list)
        if node.role == "worker":
            # _sudo from group_data: root sees which process holds the socket.
            assert [(s["address"], s["port"], s["process"]) for s in sockets] == [(node.address, 3632, "distccd")]
        else:
            assert sockets == []
