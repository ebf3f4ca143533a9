"""The lab itself (runs first, on a freshly created lab): real systemd, SSH as
pi with sudo, stand-in k3s units, FQDNs, and no distcc before bootstrap."""

import os

import pytest

from lab import docker_lab, engine_api
from tests.lab.harness import by_role, docker_host, recreate_lab, ssh_host


@pytest.fixture(scope="module")
def fresh():
    return recreate_lab()


def test_builder_and_workers_run(fresh):
    assert len(by_role(fresh, "builder")) == 1
    assert len(by_role(fresh, "worker")) >= 1
    assert all(n.state == "running" and n.address for n in fresh)


def test_systemd_is_pid1_and_running_everywhere(fresh):
    for node in fresh:
        host = docker_host(node)
        assert host.check_output("cat /proc/1/comm") == "systemd"
        assert host.run("systemctl is-system-running").stdout.strip() == "running"


def test_ssh_as_pi_with_passwordless_sudo(fresh):
    """Logged in over SSH as pi, who is not root, and from there root
    through `sudo -n`, which fails rather than ask when a password would
    be needed: what every deploy relies on."""
    for node in fresh:
        host = ssh_host(node, sudo=False)
        assert host.check_output("id -un") == "pi"
        assert host.check_output("id -u") != "0"
        # A real SSH session into this node (sshd sets SSH_CONNECTION: client, port, server, port).
        assert host.check_output("echo $SSH_CONNECTION").split()[2] == node.address
        sudo = host.run("sudo -n id -un")
        assert sudo.rc == 0 and sudo.stdout.strip() == "root", sudo.stderr
        # testinfra's own sudo, as the other tests use it.
        assert ssh_host(node).check_output("id -un") == "root"


def test_ssh_refuses_passwords_and_root(fresh):
    host = docker_host(fresh[0])
    config = host.check_output("sshd -T")
    assert "passwordauthentication no" in config
    assert "permitrootlogin no" in config


def test_stand_in_k3s_units_are_active(fresh):
    for node in fresh:
        unit = "k3s" if node.role == "builder" else "k3s-agent"
        service = docker_host(node).service(unit)
        assert service.is_running and service.is_enabled


def test_fqdn_and_every_node_resolves_every_other(fresh):
    fqdns = []
    for node in fresh:
        host = docker_host(node)
        fqdn = host.check_output("hostname -f")
        assert fqdn == f"{node.hostname}.{docker_lab.DOMAIN}"
        fqdns.append(fqdn)
        for other in fresh:
            assert host.run(f"getent ahostsv4 {other.fqdn}").stdout.split()[0] == other.address
    assert len(set(fqdns)) == len(fqdns)


def test_no_distcc_before_bootstrap(fresh):
    for node in fresh:
        host = docker_host(node)
        assert not host.package("distcc").is_installed
        assert not host.file("/usr/lib/distcc").exists
        assert not host.socket("tcp://0.0.0.0:3632").is_listening


def test_lab_up_is_safe_to_repeat_and_keeps_running_nodes(fresh):
    before = {n.container: n.address for n in docker_lab.nodes()}
    again = docker_lab.up(len(by_role(fresh, "worker")))
    assert {n.container: n.address for n in again} == before


def test_nodes_from_the_engine_api_are_those_from_the_docker_cli(fresh):
    """inventories/lab.py reads nodes() from the engine's socket; the docker
    CLI path it falls back to must give the very same nodes, in order."""
    socket_path = engine_api.engine_socket()
    if socket_path is None:
        pytest.skip("DOCKER_HOST or a docker context sends the docker CLI elsewhere: nodes() uses the CLI")
    from_api = engine_api.nodes_from_inspections(engine_api.inspections_from_engine_api(socket_path))
    from_cli = engine_api.nodes_from_inspections(engine_api.inspections_from_cli())
    assert from_api == from_cli
    assert {n.container for n in from_api} == {n.container for n in fresh}


def test_nodes_run_this_machines_architecture_by_default(fresh):
    if os.environ.get("LAB_ARCH") or os.environ.get("LAB_WORKER_ARCHS"):
        pytest.skip("LAB_ARCH or LAB_WORKER_ARCHS asks for other architectures")
    native = docker_lab.native_arch()
    for node in fresh:
        assert node.arch == native
        assert docker_host(node).check_output("dpkg --print-architecture") == native


def test_nodes_run_the_release_asked_for_and_lab_status_shows_it(fresh):
    """LAB_SUITE (default trixie, the base of today's Raspberry Pi OS)."""
    status = docker_lab.status().splitlines()
    assert status[0].split()[:4] == ["CONTAINER", "NAME", "ROLE", "RELEASE"]
    for node in fresh:
        assert node.suite == docker_lab.lab_suite()
        assert docker_host(node).check_output(". /etc/os-release; echo $VERSION_CODENAME") == node.suite
        assert next(line for line in status if line.startswith(node.container + " ")).split()[3] == node.suite


def test_images_are_tagged_by_release_and_arm_images_by_architecture():
    native = docker_lab.image_tag()
    assert docker_lab.image_tag(docker_lab.native_arch()) == native
    assert native.endswith(f"-{docker_lab.lab_suite()}")
    for arch in ("arm64", "armhf"):
        if arch == docker_lab.native_arch():
            continue
        tag = docker_lab.image_tag(arch)
        # The emulated recipe is the native one plus lab/image/emulated.
        assert tag.endswith(f"-{arch}") and tag.split(":")[1].split("-")[0] != native.split(":")[1]
        assert docker_lab.base_image_tag(arch) == f"{docker_lab.base_image_tag()}-{arch}"


def test_architecture_settings_are_checked_before_anything_starts(monkeypatch):
    monkeypatch.setenv("LAB_ARCH", "i386")
    with pytest.raises(docker_lab.LabError, match="LAB_ARCH names the architecture 'i386'"):
        docker_lab.up(2)
    monkeypatch.setenv("LAB_ARCH", "arm64")
    monkeypatch.setenv("LAB_WORKER_ARCHS", "arm64,armhf,armhf")
    with pytest.raises(docker_lab.LabError, match="LAB_WORKER_ARCHS names 3 workers .* has 2"):
        docker_lab.up(2)
    monkeypatch.setenv("LAB_WORKER_ARCHS", "armhf")
    archs = [n.arch for n in docker_lab.wanted_nodes(3)]
    assert archs == ["arm64", "armhf", "arm64", "arm64"]
    monkeypatch.delenv("LAB_WORKERS", raising=False)
    monkeypatch.setenv("LAB_WORKER_ARCHS", "arm64,armhf,armhf")
    assert docker_lab.default_workers() == 3
