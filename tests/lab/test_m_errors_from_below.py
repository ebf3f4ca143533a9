"""Errors from below the package come out in its own words: host, cause, fix.

Each case breaks one thing on one node beneath the package (sudo, another
program on distccd's port), runs the mode switch from k3s mode, where a
switch that went ahead would change every host, and checks that the run is
refused naming the host, the cause and the fix, and that no host changed
(cluster_digest). Each breakage is put back in its fixture's teardown, and
the module leaves the lab in build mode.
"""

from __future__ import annotations

import time

import pytest

from tests.lab.harness import deploy, host_lines, paragraphs_of, pyinfra_error, settled_digest, sh

SUDOERS_FILE = "/etc/sudoers.d/010_pi-nopasswd"
PORT = 3632
# Holds distccd's port on every address, as another program would.
PORT_HOLDER = (
    "perl -MIO::Socket::INET -e 'my $s = IO::Socket::INET->new(LocalAddr => \"0.0.0.0\", LocalPort => 3632,"
    " Listen => 5, ReuseAddr => 1) or die \"bind: $!\"; sleep 900'"
)


@pytest.fixture(scope="module")
def k3s_lab(nodes):
    """The lab in k3s mode; build mode again once the module is done."""
    run = deploy("k3s_mode", json_output=False, data={"distcc_discard_tmpfs": True})
    assert run.returncode == 0, run.output[-3000:]
    yield nodes
    run = deploy("mode_switch", json_output=False)
    assert run.returncode == 0, run.output[-3000:]


# name: (break as root, put back as root, words of the cause, words of the fix)
SUDO_BREAKAGES = {
    "NOPASSWD line removed": (
        f"mv {SUDOERS_FILE} /root/sudoers.saved", f"mv /root/sudoers.saved {SUDOERS_FILE}",
        "asks pi for a password", ["'pi ALL=(ALL) NOPASSWD: ALL'", "/etc/sudoers.d/", "--same-sudo-password"],
    ),
    "requiretty": (
        "echo 'Defaults requiretty' > /etc/sudoers.d/zz-requiretty && chmod 440 /etc/sudoers.d/zz-requiretty",
        "rm -f /etc/sudoers.d/zz-requiretty",
        "requires a tty", ["'Defaults:pi !requiretty'", "/etc/sudoers.d/"],
    ),
    "sudo not installed": (
        "mv /usr/bin/sudo /root/sudo.saved", "mv /root/sudo.saved /usr/bin/sudo",
        "is not installed", ["apt-get install sudo", "NOPASSWD"],
    ),
}


@pytest.mark.parametrize("name", list(SUDO_BREAKAGES))
def test_sudo_refusing_on_one_worker_is_named_with_the_fix_and_nothing_changes(name, k3s_lab):
    breaking, putting_back, cause, fix_words = SUDO_BREAKAGES[name]
    target = [n for n in k3s_lab if n.role == "worker"][-1]
    before = settled_digest()
    sh(target.container, breaking)
    try:
        run = deploy("mode_switch", json_output=False)
    finally:
        sh(target.container, putting_back)
    after = settled_digest()

    assert run.returncode != 0
    lines = host_lines(run, target.fqdn)
    told = " ".join(lines)
    assert any(line.startswith(f"sudo on {target.fqdn} {cause}") for line in lines), lines
    assert "Fix:" in told and all(word in told for word in fix_words), lines
    assert "went away" not in run.output
    # The run stops while loading, in the same words, before any host changes.
    error = pyinfra_error(run)
    assert f"host {target.fqdn}: sudo on {target.fqdn} {cause}" in error and "Nothing was changed" in error
    assert "--> Beginning operation run" not in run.output
    assert after == before
    assert run.output.isascii()
    # pyinfra's "could not load fact: ..." that follows names the fact
    # bundle by a short stand-in for its arguments (facts/bundle.py).
    for line in lines:
        assert len(f"    [{target.fqdn}] {line}") <= 100, line


@pytest.fixture
def port_held(k3s_lab):
    """worker1's distccd port held on every address by a perl, not distccd."""
    target = [n for n in k3s_lab if n.role == "worker"][0]
    sh(target.container, f"setsid -f {PORT_HOLDER} >/dev/null 2>&1")
    pid = ""
    for _ in range(50):
        pid = sh(target.container, f"ss -Hltnp 'sport = :{PORT}' | grep -o 'perl\",pid=[0-9]*' | cut -d= -f2", check=False)
        if pid.strip():
            break
        time.sleep(0.1)
    assert pid.strip(), "the perl did not start listening"
    yield target, int(pid)
    sh(target.container, f"kill {int(pid)}", check=False)


def test_another_program_on_distccds_port_is_refused_naming_it_before_any_change(port_held):
    target, pid = port_held
    before = settled_digest()
    run = deploy("mode_switch", json_output=False)
    after = settled_digest()

    assert run.returncode != 0
    error = pyinfra_error(run)
    assert f"host {target.fqdn}: port {PORT} on {target.fqdn} is held by perl (pid {pid}, not distccd)" in error
    assert f"kill {pid}" in error and "distcc_port" in error and "Nothing was changed on any host." in error
    assert "Address already in use" not in run.output
    assert "--> Beginning operation run" not in run.output
    assert after == before
    assert run.output.isascii()


def test_validation_names_the_program_on_distccds_port_never_distccd(port_held, tmp_path):
    target, pid = port_held
    run = deploy("cluster_distcc_validate", json_output=False, data={"distcc_report_path": str(tmp_path / "v.json")})
    assert run.returncode != 0
    fails = [line for line in paragraphs_of(run.output) if line.startswith("FAIL ")]
    mine = [line for line in fails if line.startswith(f"FAIL W-DISTCCD {target.fqdn}: ")]
    assert mine, fails
    assert f"port {PORT} is held by perl (pid {pid}, not distccd)" in mine[0]
    assert f"kill {pid}" in mine[0] and "distcc_port" in mine[0]
    # What perl holds is never judged as distccd's listener.
    assert not any(line.startswith(f"FAIL W-LISTEN {target.fqdn}") for line in fails), fails
    assert "active but not listening" not in run.output


@pytest.fixture
def sources_broken(k3s_lab):
    """worker2 without distcc (so the switch must install it) and with a
    sources.list entry that has no component. Put back without the network:
    distcc from apt's own cache (dpkg -i), the sources list as it was."""
    target = [n for n in k3s_lab if n.role == "worker"][-1]
    sh(
        target.container,
        "DEBIAN_FRONTEND=noninteractive apt-get remove -y -q distcc >/dev/null 2>&1"
        " && cp /etc/apt/sources.list /root/sources.list.saved"
        " && echo 'deb http://deb.debian.org/debian trixie' > /etc/apt/sources.list",
    )
    yield target
    sh(
        target.container,
        "mv /root/sources.list.saved /etc/apt/sources.list"
        " && DEBIAN_FRONTEND=noninteractive dpkg -i /var/cache/apt/archives/distcc_*.deb >/dev/null",
    )


def test_a_broken_sources_list_is_named_with_the_fix(sources_broken):
    """apt parses its sources before it fetches anything: no network."""
    target = sources_broken
    run = deploy("mode_switch", json_output=False)
    assert run.returncode != 0
    lines = host_lines(run, target.fqdn)
    # apt's own words, then the package's cause and fix.
    assert "E: Malformed entry 1 in list file /etc/apt/sources.list (Component)" in lines, lines
    assert "apt's list of package sources here is broken (the entry is above)." in lines, lines
    assert any(line.startswith("Fix: correct or remove that entry") for line in lines), lines
    assert run.output.isascii()


@pytest.fixture
def unreachable(k3s_lab):
    """The last worker refusing the lab's SSH key, the first with no sshd."""
    refusing, no_sshd = [n for n in k3s_lab if n.role == "worker"][-1], [n for n in k3s_lab if n.role == "worker"][0]
    sh(refusing.container, "mv /home/pi/.ssh/authorized_keys /root/authorized_keys.saved")
    sh(no_sshd.container, "systemctl stop ssh.service")
    yield refusing, no_sshd
    sh(refusing.container, "mv /root/authorized_keys.saved /home/pi/.ssh/authorized_keys")
    sh(no_sshd.container, "systemctl start ssh.service")


def test_a_host_pyinfra_cannot_connect_to_is_named_with_the_cause_and_the_fix(unreachable):
    """pyinfra connects before it loads a deploy: the inventory makes its
    message the package's (host, cause, fix), and validation's H-REACHABLE
    line names the same cause rather than "could not connect"."""
    refusing, no_sshd = unreachable
    run = deploy("cluster_distcc_validate", json_output=False)
    assert run.returncode != 0
    refused = " ".join(host_lines(run, refusing.fqdn))
    assert f"SSH on {refusing.fqdn} refused pi (Authentication failed.)" in refused, run.output[-3000:]
    assert "ssh-copy-id -i" in run.output and "pi@" in run.output
    assert "it stays as it is, k3s and its pods included" in run.output
    closed = " ".join(host_lines(run, no_sshd.fqdn))
    assert "refused SSH" in closed and "no sshd listens" in run.output, run.output[-3000:]
    assert "systemctl enable --now ssh" in run.output
    reachable = [p for p in paragraphs_of(run.output) if p.startswith("FAIL H-REACHABLE")]
    assert any(refusing.fqdn in line and "ssh-copy-id" in line for line in reachable), reachable
    assert any(no_sshd.fqdn in line and "no sshd listens" in line for line in reachable), reachable
    assert "Authentication error (" not in run.output and "could not connect (its error" not in run.output
    assert run.output.isascii()
