"""Validation and the smoke test diagnose: break one thing at a time, check
that validation names the right host and check ID, then that the next mode
switch heals it. Validation itself must change nothing."""

import json
import re

import pytest

from tests.lab.harness import (
    DEFAULT_GCC,
    GCC_DRIVER_PACKAGE,
    OLDER_GCC,
    REPO,
    cluster_digest,
    deploy,
    gcc_version,
    paragraphs_of,
    pyinfra,
    sh,
)

REPORT = REPO / "reports" / "validate.json"


def validate(*options: str) -> tuple[int, set[str], str]:
    code, report, output = validate_report(*options)
    return code, set(report["failed"]), output


def validate_report(*options: str, timeout: int = 600, data: dict | None = None) -> tuple[int, dict, str]:
    """Validation's exit code, JSON report and output, each problem it
    prints wrapped within 100 columns put back on one line."""
    REPORT.unlink(missing_ok=True)
    run = pyinfra(*options, "deploys/cluster_distcc_validate.py", json_output=False, timeout=timeout, data=data)
    # pyinfra's own lines start with four spaces and a host's name.
    assert all(len(line) <= 100 for line in run.stderr.splitlines() if re.match(r"(FAIL |WARN |  \S)", line)), \
        run.stderr[-3000:]
    return run.returncode, json.loads(REPORT.read_text()), "\n".join(paragraphs_of(run.stderr))


def outcomes(report: dict) -> dict[str, list[tuple[str, str]]]:
    return {name: [(c["id"], c["result"]) for c in checks] for name, checks in report["hosts"].items()}


def test_validation_passes_and_is_read_only(nodes):
    before = cluster_digest()
    # The builder's survey keeps its sections' output in a temporary directory.
    tmp_before = {node.container: sh(node.container, "ls -A /tmp") for node in nodes}
    code, failed, output = validate()
    assert code == 0 and not failed, output[-3000:]
    assert cluster_digest() == before
    assert {node.container: sh(node.container, "ls -A /tmp") for node in nodes} == tmp_before
    assert output.isascii()
    assert "validation: " in output and " 0 FAIL" in output


@pytest.mark.parametrize("parallel", ["1", "2"])
def test_validation_finishes_at_any_parallel_with_the_same_results(parallel, nodes, worker):
    """Fewer pool slots than hosts: a barrier among the hosts' loaders would
    hang here (the timeout turns a hang into a failure)."""
    code, default, output = validate_report(timeout=180)
    assert code == 0, output[-3000:]
    code, limited, output = validate_report("--parallel", parallel, timeout=180)
    assert code == 0, output[-3000:]
    assert outcomes(limited) == outcomes(default)
    assert len(outcomes(limited)) == len(nodes)

    sh(worker.container, "systemctl start k3s-agent")
    try:
        code, report, output = validate_report("--parallel", parallel, timeout=180)
        assert code != 0
        assert report["failed"] == [f"H-K3S@{worker.fqdn}"], output[-3000:]
    finally:
        # k3s's KillMode=process: a stop alone would leave its pods running.
        sh(worker.container, "/usr/local/bin/k3s-killall.sh >/dev/null 2>&1")


BREAKAGES = {
    "distccd stopped": ("worker", "systemctl stop distcc", {"W-DISTCCD", "W-REACH"}),
    "override removed": (
        "worker",
        "rm /etc/systemd/system/distcc.service.d/override.conf && systemctl daemon-reload",
        {"W-OVERRIDE"},
    ),
    # The link for the name the builder's client sends: the amd64 lab's
    # distcc 3.4 rewrites cc and gcc to x86_64-linux-gnu-gcc.
    "masquerade link removed": ("worker", "rm /usr/lib/distcc/x86_64-linux-gnu-gcc", {"W-WHITELIST"}),
    "tmpfs unmounted": ("builder", "umount /tmp/kernel-build", {"B-TMPFS"}),
    "distccd running on the builder": (
        "builder",
        "distccd --daemon --allow 127.0.0.1 --listen 127.0.0.1 --port 3632",
        {"B-DISTCCD-OFF"},
    ),
    "allow list misses the builder": (
        "worker",
        "sed -i 's#--allow [0-9./]*#--allow 10.9.9.9/32#' /etc/systemd/system/distcc.service.d/override.conf"
        " && systemctl daemon-reload && systemctl restart distcc && sleep 1",
        {"W-ALLOW-BUILDER", "W-OVERRIDE"},
    ),
    "k3s started again": ("worker", "systemctl start k3s-agent", {"H-K3S"}),
    # What the next boot brings back is judged as the mode switch writes it.
    "the tmpfs line in fstab edited": (
        "builder", "sed -i 's#size=256M,mode=1777,nosuid,nodev#size=64M,noexec#' /etc/fstab", {"B-TMPFS"},
    ),
    "k3s enabled again (a reboot starts it)": ("worker", "systemctl enable --quiet k3s-agent", {"H-K3S"}),
    # A cause distcc's defaults hide: it skips what it cannot read or write.
    "the host list unreadable for the build user": (
        "builder", "chown root:root /home/pi/.distcc/hosts && chmod 600 /home/pi/.distcc/hosts", {"B-HOSTS"},
    ),
    "the build user's distcc directory owned by root": (
        "builder", "chown root:root /home/pi/.distcc && chmod 755 /home/pi/.distcc", {"B-HOSTS"},
    ),
    "the masquerade profile script unreadable for the build user": (
        "builder", "chmod 600 /etc/profile.d/distcc-build.sh", {"B-PATH"},
    ),
}


@pytest.mark.parametrize("case", list(BREAKAGES))
def test_validation_names_the_breakage_and_mode_switch_heals_it(case, builder, worker):
    role, script, expected = BREAKAGES[case]
    node = builder if role == "builder" else worker
    sh(node.container, script)
    code, failed, output = validate()
    assert code != 0
    assert failed == {f"{check}@{node.fqdn}" for check in expected}, output[-3000:]
    assert all(f"FAIL {check} {node.fqdn}: " in output for check in expected)

    heal = deploy("mode_switch")
    assert heal.returncode == 0, heal.stderr[-3000:]
    code, failed, output = validate()
    assert code == 0 and not failed, output[-3000:]


# Faults the mode switch does not heal: each FAIL names the cause and its own
# fix, never the mode switch alone.
UNHEALED = {
    "no route from the builder": (
        "builder", "ip route add unreachable {worker}/32", "ip route del unreachable {worker}/32", None,
        {"H-MTU@{builder}", "W-REACH@{worker}"}, "the builder has no route to {worker_fqdn}",
    ),
    "no route from the worker": (
        "worker", "ip route add unreachable {builder}/32", "ip route del unreachable {builder}/32", None,
        {"H-MTU@{worker}", "W-DISTCCD@{worker}", "W-OVERRIDE@{worker}", "W-REACH@{worker}"},
        "this worker has no route to the builder",
    ),
    "names do not resolve on the worker": (
        "worker", "cp /etc/nsswitch.conf /root/nsswitch.test && sed -i 's/^hosts:.*/hosts: files/' /etc/nsswitch.conf",
        "mv /root/nsswitch.test /etc/nsswitch.conf", None,
        {"H-NAMES@{worker}", "H-MTU@{worker}", "W-DISTCCD@{worker}", "W-OVERRIDE@{worker}"},
        "does not resolve on this worker",
    ),
    # A name that resolves, but to another host: the root cause named, not
    # the override it breaks (docker bind-mounts /etc/hosts: rewritten in place).
    "the builder's name resolves to another host on the worker": (
        "worker", "cp /etc/hosts /root/hosts.test && grep -v builder /root/hosts.test > /etc/hosts && "
        "echo '172.31.250.99 builder.distcc.internal builder' >> /etc/hosts",
        "cat /root/hosts.test > /etc/hosts && rm /root/hosts.test", None,
        {"H-NAMES@{worker}", "W-OVERRIDE@{worker}", "W-DISTCCD@{worker}", "H-MTU@{worker}"},
        "worker1 resolves builder.distcc.internal to 172.31.250.99 but its addresses are 172.31.250.2",
    ),
    # distccd cannot use what it needs as its own user: named, not the
    # empty whitelist or the dead daemon distcc shows for it.
    "the whitelist unreadable for distccd": (
        "worker", "chmod 700 /usr/lib/distcc", "chmod 755 /usr/lib/distcc", None,
        {"W-WHITELIST@{worker}"}, "user distccd cannot read /usr/lib/distcc (owner root, mode 700)",
    ),
    # distccd serves on, logging to the journal: its jobs would go uncounted.
    "distccd's log not writable for distccd": (
        "worker", "chown root:root /var/log/distccd/distccd.log && chmod 600 /var/log/distccd/distccd.log && "
        "systemctl restart distcc && sleep 1",
        "chown distccd:adm /var/log/distccd/distccd.log && chmod 640 /var/log/distccd/distccd.log && "
        "systemctl restart distcc && sleep 1", None,
        {"W-DISTCCD@{worker}"},
        "user distccd cannot write /var/log/distccd/distccd.log (owner root, mode 600): distccd logs to the journal",
    ),
    # Resource exhaustion: caught before it fails a build, named with its fix.
    "the build tmpfs is full": (
        "builder", "fallocate -l 250M /tmp/kernel-build/full", "rm -f /tmp/kernel-build/full", None,
        {"B-TMPFS-SPACE@{builder}"}, "builds stop with No space left on device",
    ),
    "the build tmpfs is out of inodes": (
        "builder", "df -Pi /tmp/kernel-build | awk 'NR == 2 {{print $2}}' > /root/nr_inodes.test && "
        "mount -o remount,nr_inodes=500 /tmp/kernel-build && mkdir /tmp/kernel-build/many && "
        "cd /tmp/kernel-build/many && seq 1 494 | xargs touch",
        "rm -rf /tmp/kernel-build/many && mount -o remount,nr_inodes=$(cat /root/nr_inodes.test) /tmp/kernel-build && "
        "rm /root/nr_inodes.test", None,
        {"B-TMPFS-SPACE@{builder}"}, "of 500 inodes",
    ),
    "distccd's /tmp on the worker is full": (
        "worker", "nsenter --target $(systemctl show distcc.service -p MainPID --value) --mount "
        "mount -t tmpfs -o size=16M tmpfs /tmp",
        "systemctl restart distcc && sleep 1", None, {"W-TMP-SPACE@{worker}"}, "jobs fail with No space left on device",
    ),
    "the build user does not exist": (
        "builder", "true", "true", {"distcc_build_user": "kbuild"},
        {"B-DRYRUN@{builder}", "B-HOSTS@{builder}", "B-PATH@{builder}"},
        "the build user kbuild does not exist on the builder: create it (adduser kbuild) or set distcc_build_user",
    ),
}


@pytest.mark.parametrize("case", list(UNHEALED))
def test_faults_the_mode_switch_does_not_heal_name_their_own_fix(case, builder, worker):
    role, script, restore, data, expected, phrase = UNHEALED[case]
    node = builder if role == "builder" else worker
    names = {"builder": builder.address, "worker": worker.address}
    fqdns = {"builder": builder.fqdn, "worker": worker.fqdn, "worker_fqdn": worker.fqdn}
    sh(node.container, script.format(**names))
    try:
        code, report, output = validate_report(data=data)
        assert code != 0
        assert set(report["failed"]) == {e.format(**fqdns) for e in expected}, output[-3000:]
        assert phrase.format(**fqdns) in output
        for line in output.splitlines():
            if line.startswith("FAIL "):
                assert "run deploys/mode_switch.py" not in line.replace("then run deploys/mode_switch.py", ""), line
    finally:
        sh(node.container, restore.format(**names))
    assert validate()[0] == 0


def test_mtu_mismatch_is_named(worker):
    """Not healed by the mode switch: a node's MTU is its network's setting."""
    sh(worker.container, "ip link set eth0 mtu 1400")
    try:
        code, failed, output = validate()
        assert code != 0
        assert failed == {f"H-MTU@{worker.fqdn}"}, output[-3000:]
        assert "MTU 1400 toward the builder" in output
    finally:
        sh(worker.container, "ip link set eth0 mtu 1500")
    assert validate()[0] == 0


def test_smoke_test_names_the_missing_whitelist_link(worker):
    sh(worker.container, "rm /usr/lib/distcc/x86_64-linux-gnu-gcc")
    smoke = deploy("cluster_distcc_smoketest", json_output=False)
    assert smoke.returncode != 0
    cause = f"FAIL gcc {worker.fqdn}: the compiler is not in the worker's /usr/lib/distcc whitelist"
    assert cause in paragraphs_of(smoke.stderr), smoke.stderr[-3000:]
    assert f"smoke test FAILED on {worker.fqdn}" in smoke.stderr
    assert deploy("mode_switch").returncode == 0
    again = deploy("cluster_distcc_smoketest", json_output=False)
    assert again.returncode == 0, again.stderr[-3000:]


def test_smoke_test_leaves_nothing_behind(builder, nodes):
    before = cluster_digest()
    smoke = deploy("cluster_distcc_smoketest", json_output=False)
    assert smoke.returncode == 0, smoke.stderr[-3000:]
    assert sh(builder.container, "ls -A /tmp/kernel-build") == ""
    assert sh(builder.container, "pgrep -u pi -l 'distcc|gcc|cc1' || true") == ""
    assert cluster_digest() == before


def test_compiler_mismatch_is_a_fail(builder, worker):
    """A worker whose gcc is really another compiler (the release's older
    gcc from Debian): the FAIL names both packages, which validation asks
    dpkg for only now, in a second command on that worker and on the builder."""
    older, default, version = OLDER_GCC[worker.suite], DEFAULT_GCC[builder.suite], gcc_version(builder)
    sh(worker.container, f"apt-get install -y -q gcc-{older} >/dev/null 2>&1 && ln -sf /usr/bin/gcc-{older} /usr/local/bin/gcc")
    try:
        code, failed, output = validate()
        assert code != 0
        assert f"H-GCC@{worker.fqdn}" in failed, output[-3000:]
        assert f"gcc {older}." in output and "objects would be silently wrong" in output
        line = next(x for x in output.splitlines() if x.startswith(f"FAIL H-GCC {worker.fqdn}"))
        mine, theirs = (GCC_DRIVER_PACKAGE[n.suite].format(v) for n, v in ((worker, older), (builder, default)))
        assert f"(package {mine} {older}." in line and "run as /usr/local/bin/gcc" in line, line
        assert f"but the builder has gcc {version} x86_64-linux-gnu (package {theirs} {version}-" in line, line
        assert f"install {theirs} version {version}-" in line, line
    finally:
        sh(worker.container, "rm -f /usr/local/bin/gcc")
    assert deploy("mode_switch").returncode == 0
    assert validate()[0] == 0


def test_a_sent_compiler_of_another_version_is_a_fail(builder, worker):
    """What the amd64 builder's client really sends is x86_64-linux-gnu-gcc:
    a worker where that name runs the release's older gcc compiles every job
    with it, whatever its plain gcc is."""
    older, default, version = OLDER_GCC[worker.suite], DEFAULT_GCC[worker.suite], gcc_version(builder)
    sh(worker.container, f"apt-get install -y -q gcc-{older} >/dev/null 2>&1 && "
       f"ln -sf x86_64-linux-gnu-gcc-{older} /usr/bin/x86_64-linux-gnu-gcc")
    try:
        code, failed, output = validate()
        assert code != 0
        assert f"W-COMPILERS@{worker.fqdn}" in failed and f"H-GCC@{worker.fqdn}" not in failed, output[-3000:]
        line = next(line for line in output.splitlines() if line.startswith(f"FAIL W-COMPILERS {worker.fqdn}"))
        assert f"`x86_64-linux-gnu-gcc` (what the builder sends for cc, gcc) is gcc {older}." in line
        assert f"but {version} on the builder" in line and "install the builder's gcc version here" in line
    finally:
        sh(worker.container, f"ln -sf gcc-{default} /usr/bin/x86_64-linux-gnu-gcc")
    assert validate()[0] == 0
