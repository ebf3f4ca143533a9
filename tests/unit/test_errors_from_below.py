"""Errors from below the package (sudo, apt, another program on distccd's
port) come out in the package's words: host, cause, fix. Outputs are the
ones captured on lab hosts (tests/unit/below/, tests/unit/surveys/); the lab
side is tests/lab/test_m_errors_from_below.py."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
from pathlib import Path

import pytest
from paramiko import AuthenticationException, BadHostKeyException, RSAKey, SSHException
from paramiko.ssh_exception import NoValidConnectionsError
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors import util as connector_util
from pyinfra.connectors.util import CommandOutput, OutputLine

from facts.distcc import foreign_listeners, holder_text, parse_listening
from operations import _connection, apt
from operations._connection import (
    NO_TERMINAL,
    SudoPasswordUnanswered,
    _host_failure_on_eof,
    lost_host_is_a_host_failure,
    sudo_lines,
    sudo_refusal,
)

HERE = Path(__file__).resolve().parent
WORKER2 = "worker2.distcc.internal"
# pyinfra's host prefix: "    [worker2.distcc.internal] ".
PREFIX = 4 + len(f"[{WORKER2}] ")


def captured_sudo() -> dict[str, str]:
    lines = (HERE / "below" / "sudo-refusals.txt").read_text().splitlines()
    return dict(line.split("\t", 1) for line in lines if line and not line.startswith("#"))


class FakeHost:
    name = WORKER2
    print_prefix = f"[{WORKER2}] "

    def __init__(self):
        self.connector_data: dict = {}


class FakeConnector:
    data = {"ssh_user": "pi"}
    client = None

    def __init__(self):
        self.host = FakeHost()


@pytest.mark.parametrize("case", sorted(captured_sudo()))
def test_each_sudo_refusal_captured_on_the_lab_names_sudo_the_host_and_the_fix(case):
    cause = sudo_refusal([], [captured_sudo()[case]])
    assert cause is not None, case
    lines = sudo_lines(WORKER2, "pi", cause)
    text = " ".join(lines)
    assert lines[0].startswith(f"sudo on {WORKER2} ")
    assert "/etc/sudoers.d/" in text and "visudo" in text
    assert ("!requiretty" if case == "requiretty" else "NOPASSWD") in text
    if case == "not-installed":
        assert "apt-get install sudo" in text
    if case in ("password-required", "terminal-required"):
        assert "--same-sudo-password" in text
    for line in lines:
        assert line.isascii() and PREFIX + len(line) <= 100, line


def test_a_failing_command_with_output_of_its_own_is_not_a_sudo_refusal():
    # The command ran (it printed), so sudo let it: its own errors are its own.
    assert sudo_refusal(["some output"], ["sudo: a password is required"]) is None
    assert sudo_refusal([], ["E: Unable to locate package distcc"]) is None


def test_sudo_password_prompt_without_a_terminal_is_named_not_a_lost_host(monkeypatch):
    """pyinfra's own sudo retry (connectors/util.py) calls getpass when sudo
    says a password is required; with no terminal that was an EOFError the
    connector called a lost host. Run through pyinfra's real retry: fails
    loudly if pyinfra stops calling the getpass this package replaces."""
    lost_host_is_a_host_failure()
    monkeypatch.setattr(_connection, "_terminal_available", lambda: False)
    refused = CommandOutput([OutputLine("stderr", captured_sudo()["password-required"])])

    def run_shell_command(self, command, **arguments):
        return connector_util.execute_command_with_sudo_retry(self.host, arguments, lambda: (1, refused))

    with pytest.raises(SudoPasswordUnanswered):
        run_shell_command(FakeConnector(), "true", _sudo=True)
    connector = FakeConnector()
    with pytest.raises(SSHException) as raised:
        _host_failure_on_eof(run_shell_command)(connector, "true", _sudo=True)
    assert "sudo" in str(raised.value) and "went away" not in str(raised.value)
    assert _connection.refused_below(connector.host) == f"sudo on {WORKER2} {NO_TERMINAL.format(user='pi')}"


def test_a_sudo_refusal_in_a_commands_output_fails_the_host_in_the_packages_words():
    refused = CommandOutput([OutputLine("stderr", captured_sudo()["not-installed"])])

    def run_shell_command(self, command, **arguments):
        return False, refused

    connector = FakeConnector()
    with pytest.raises(SSHException, match="sudo refused"):
        _host_failure_on_eof(run_shell_command)(connector, "true", _sudo=True)
    assert _connection.refused_below(connector.host) == f"sudo on {WORKER2} is not installed"
    # Without sudo, a command's "not found" is its own business.
    assert _host_failure_on_eof(run_shell_command)(FakeConnector(), "true", _sudo=False) == (False, refused)


def test_another_program_on_distccds_port_is_named_and_distccd_is_not():
    """ss lines captured on the lab: a perl on 0.0.0.0:3632 (the
    port-held-by-perl survey) and a serving distccd (build mode)."""
    survey = json.loads((HERE / "surveys" / "port-held-by-perl.json").read_text())
    perl = [line for line in survey["outputs"]["worker1.distcc.internal"] if "LISTEN" in line and ":3632 " in line]
    distccd = [
        'LISTEN 0      1024   172.31.243.3:3632 0.0.0.0:* users:(("distccd",pid=1186,fd=4),'
        '("distccd",pid=1185,fd=4),("distccd",pid=1179,fd=4))'
    ]
    held = foreign_listeners(parse_listening(perl), "172.31.243.3")
    assert [holder_text(s) for s in held] == ["perl (pid 1466, not distccd) on 0.0.0.0"]
    assert foreign_listeners(parse_listening(distccd), "172.31.243.3") == []
    # On another single address, it does not keep distccd from its own.
    loopback = [perl[0].replace("0.0.0.0:3632", "127.0.0.1:3632", 1)]
    assert foreign_listeners(parse_listening(loopback), "172.31.243.3") == []


# apt-get update's own lines with a sources.list entry that has no component,
# as a lab worker printed them (tests/lab/test_e_safety.py,
# test_broken_sources_list_gives_apts_own_error), and its exit status.
APT_MALFORMED = [
    "E: Malformed entry 1 in list file /etc/apt/sources.list (Component)",
    "E: The list of sources could not be read.",
]


def run_explained(lines: list[str], status: int) -> subprocess.CompletedProcess:
    printed = "printf '%s\\n' " + " ".join(shlex.quote(line) for line in lines) + f" >&2; exit {status}"
    command = apt.explained(StringCommand("sh", "-c", QuoteString(printed)))
    return subprocess.run(["sh", "-c", command.get_raw_value()], capture_output=True, text=True, timeout=30)


def test_a_broken_sources_list_gives_apts_own_lines_and_the_fix():
    run = run_explained(APT_MALFORMED, 100)
    assert run.returncode == 100
    assert run.stdout.splitlines() == APT_MALFORMED
    told = run.stderr.splitlines()
    assert told[0].startswith("apt's list of package sources here is broken")
    assert any(line.startswith("Fix: correct or remove that entry") for line in told)
    for line in told:
        assert line.isascii() and PREFIX + len(line) <= 100, line


def test_apt_that_succeeds_is_shown_as_it_is_and_adds_nothing():
    run = run_explained(["Reading package lists..."], 0)
    assert (run.returncode, run.stdout, run.stderr) == (0, "Reading package lists...\n", "")


# What paramiko and the socket raise when a host cannot be connected to, as
# pyinfra 3.10's SSHConnector.connect reports them (seen on the lab:
# tests/lab/test_m_errors_from_below.py, test_a_host_pyinfra_cannot_connect_to_is_named_with_the_cause_and_the_fix).
CONNECT_CAUSES = {
    "key refused": (AuthenticationException("Authentication failed."), ["refused pi", "ssh-copy-id -i /k.pub pi@10.0.0.4"]),
    "no sshd": (
        NoValidConnectionsError({("10.0.0.4", 22): ConnectionRefusedError(111, "Connection refused")}),
        ["no sshd listens", "systemctl enable --now ssh"],
    ),
    "off": (TimeoutError("timed out"), ["did not answer SSH", "(timed out)", "power it on"]),
    "name unknown": (socket.gaierror(-2, "Name or service not known"), ["does not resolve", "ssh_hostname"]),
    "host key changed": (
        BadHostKeyException("10.0.0.4", RSAKey.generate(1024), RSAKey.generate(1024)), ["ssh-keygen -R 10.0.0.4"],
    ),
}


@pytest.mark.parametrize("case", list(CONNECT_CAUSES))
def test_a_host_that_cannot_be_connected_to_is_named_with_its_cause_and_fix(case):
    cause, words = CONNECT_CAUSES[case]

    class Connector:
        host = type("Host", (), {"name": "worker2.lan", "connector_data": {}})()
        data = {"ssh_user": "pi", "ssh_hostname": "10.0.0.4", "ssh_key": "/k"}

        def connect(self):
            try:
                raise cause
            except type(cause) as error:
                # As pyinfra's raise_connect_error: inside the except clause.
                raise ConnectError(f"pyinfra's words ({error})")  # noqa: B904

    wrapped = _connection._named_connect_errors(Connector.connect)
    connector = Connector()
    with pytest.raises(ConnectError) as raised:
        wrapped(connector)
    message = str(raised.value)
    lines = message.split("\n")
    assert "worker2.lan" in lines[0] and "pyinfra's words" not in message
    assert all(word in message for word in words), message
    assert _connection.STAYS.strip() in message and "Fix:" in message
    # pyinfra prints the first line after the host's name, the others as they are.
    assert len(f"    [worker2.lan] {lines[0]}") <= 100 and all(len(line) <= 100 for line in lines[1:]), lines
    # Validation's H-REACHABLE line gets the same cause and fix, in one paragraph.
    told = _connection.connect_failure(connector.host)
    assert told and "\n" not in told and "Fix:" in told and words[0] in told
