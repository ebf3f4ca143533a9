"""A host that dies mid-run fails alone, never the whole run.

When a host goes away (a Pi losing power) while pyinfra opens a channel to
it, paramiko can raise EOFError: its transport thread saw the socket end
and Transport.open_channel() re-raises that saved exception. pyinfra 3.10
treats a lost host as that host's failure only for TimeoutError, OSError
and SSHException: it catches those around every fact command
(api/facts.py, _get_fact) and every operation command (api/operations.py,
_run_host_op), and EOFError is none of them. So it escapes the host's
greenlet, greenlet.get() in _run_single_op re-raises it, and the CLI ends
the whole run with "An internal exception occurred"; the other hosts'
remaining operations never run.

An upload to a host that is already gone fails the same way by another
route: opening the SFTP channel raises SSHException("SSH session not
active"), which the connector re-raises as ConnectError ("Unable to
establish SFTP connection ... is the SFTP subsystem enabled?", wrong
besides), a PyinfraError that _run_host_op does not catch either: the run
ends with "pyinfra error".

The only place this package can catch them is where they are raised, the
SSH connector's command and file transfer calls: EOFError there, and
ConnectError while the host's SSH transport is down, are turned into an
SSHException naming the host, which pyinfra already handles as that host's
command failing (the host is failed, the others go on).

Not every EOFError there is a lost host. When sudo asks for a password
(the SSH user's NOPASSWD rule is gone), pyinfra's connector calls getpass()
(connectors/util.py, execute_command_with_sudo_retry); with no terminal to
ask on (CI, scripts), getpass reads its stdin and raises EOFError too. So
that getpass is replaced by one that, with no terminal, raises
SudoPasswordUnanswered (an EOFError, as before) at once, and the connector
names sudo, the user and the fix instead of a lost host. On a terminal,
pyinfra asks as it always did. sudo's other refusals (the user not in
sudoers, sudo missing, a terminal required) come back as a failed command
with sudo's line on stderr and nothing run; they are named the same way.
"""

from __future__ import annotations

import functools
import getpass
import os
import socket
from collections.abc import Callable
from typing import Any

from paramiko import AuthenticationException, BadHostKeyException, SSHException
from paramiko.ssh_exception import NoValidConnectionsError
from pyinfra import logger
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.ssh import SSHConnector

from operations._pyinfra import (
    replace_sudo_password_prompt,
    ssh_transport_active,
    wrap_ssh_channel_calls,
    wrap_ssh_connect,
)

_MARK = "_distcc_farm_lost_host_is_a_host_failure"


class SudoPasswordUnanswered(EOFError):
    """sudo asked for a password and there is no terminal to ask on."""


def _terminal_available() -> bool:
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def _getpass_or_refuse(prompt: str = "Password: ", stream: Any = None) -> str:
    if not _terminal_available():
        raise SudoPasswordUnanswered(prompt)
    return getpass.getpass(prompt, stream)


# sudo's own line when it refuses before running anything, and the cause
# in this package's words ("{user}" is the SSH user). sudo 1.9 on Debian,
# seen in the lab (tests/lab/test_m_errors_from_below.py).
SUDO_REFUSALS = (
    ("a password is required", "asks {user} for a password"),
    ("incorrect password attempt", "refused the password given for {user}"),
    ("is not in the sudoers file", "refuses {user}, who is not in sudoers"),
    ("a terminal is required", "asks {user} for a password on a terminal"),
    ("you must have a tty", "requires a tty (requiretty)"),
    ("sudo: not found", "is not installed"),
    ("sudo: command not found", "is not installed"),
)
NO_TERMINAL = "asks {user} for a password (no terminal)"


def sudo_refusal(stdout_lines: list[str], stderr_lines: list[str]) -> str | None:
    """What sudo refused, in the package's words, when a command failed with
    nothing run: no output but sudo's own line on stderr."""
    if stdout_lines or not stderr_lines:
        return None
    for line in stderr_lines[:3]:
        for words, cause in SUDO_REFUSALS:
            if words in line:
                return cause
    return None


def sudo_lines(name: str, user: str, cause: str) -> list[str]:
    """The message for a host whose sudo refused: host, cause, fix. pyinfra
    prints each line after the host's name, so each is kept short."""
    if "requiretty" in cause:
        return [
            f"sudo on {name} {cause.format(user=user)}:",
            "this package runs every command with sudo, over SSH without a tty.",
            "Fix: as root, remove 'Defaults requiretty' (visudo), or add the line",
            f"'Defaults:{user} !requiretty' in a file under /etc/sudoers.d/;",
            "then run the deploy again.",
        ]
    install = ["Fix: as root, apt-get install sudo; then", "give"] if "not installed" in cause else ["Fix: give"]
    fix = [
        *install[:-1],
        f"{install[-1]} {user} passwordless sudo: a line '{user} ALL=(ALL) NOPASSWD: ALL'",
        "in a file under /etc/sudoers.d/ (as root: visudo -f",
        f"/etc/sudoers.d/010_{user}-nopasswd), then run the deploy again",
    ]
    if "password" in cause:
        fix[-1] += ";"
        fix.append("or run pyinfra on a terminal with --same-sudo-password (it asks once).")
    else:
        fix[-1] += "."
    return [
        f"sudo on {name} {cause.format(user=user)}:",
        "this package runs every command on a host with sudo.",
        *fix,
    ]


_REFUSED = "distcc_farm_refused_below"


def refused_below(host: Any) -> str | None:
    """Why this host's commands cannot run at all in this run (sudo
    refused), as one sentence; None when nothing was refused."""
    return (getattr(host, "connector_data", None) or {}).get(_REFUSED)


def _refuse_for_sudo(connector: SSHConnector, cause: str, error: BaseException | None = None) -> SSHException:
    user = connector.data.get("ssh_user") or "the SSH user"
    sentence = f"sudo on {connector.host.name} {cause.format(user=user)}"
    if connector.host.connector_data.get(_REFUSED) != sentence:
        # Every fact and command fails the same way: the fix is told once.
        connector.host.connector_data[_REFUSED] = sentence
        for line in sudo_lines(connector.host.name, user, cause):
            logger.error(f"{connector.host.print_prefix}{line}")
    # pyinfra prints this after the host's name and "Command socket/SSH
    # error: SSHException(...)": short, the cause and fix are above.
    exception = SSHException("sudo refused (see above)")
    exception.__cause__ = error
    return exception


def _host_failure_on_eof(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: SSHConnector, *args: Any, **kwargs: Any) -> Any:
        try:
            result = method(self, *args, **kwargs)
        except SudoPasswordUnanswered as error:
            raise _refuse_for_sudo(self, NO_TERMINAL, error) from error
        except EOFError as error:
            raise SSHException(
                f"the connection to {self.host.name} ended (EOF from the SSH transport): the host went away"
            ) from error
        except ConnectError as error:
            if ssh_transport_active(self):
                raise
            raise SSHException(
                f"the connection to {self.host.name} ended (its SSH transport is down): the host went away"
            ) from error
        if method.__name__ == "run_shell_command" and isinstance(result, tuple) and not result[0]:
            output = result[1]
            cause = sudo_refusal(output.stdout_lines, output.stderr_lines)
            if cause and kwargs.get("_sudo"):
                raise _refuse_for_sudo(self, cause)
        return result

    setattr(wrapper, _MARK, True)
    return wrapper


def lost_host_is_a_host_failure() -> None:
    """Make EOFError from the SSH connector a failure of that host (once)."""
    wrap_ssh_channel_calls(_host_failure_on_eof, _MARK)
    replace_sudo_password_prompt(_getpass_or_refuse)


# --- a host that cannot be connected to ----------------------------------------

_CONNECT_MARK = "_distcc_farm_connect_errors_named"
_CONNECT_FAILURE = "distcc_farm_connect_failure"
STAYS = "pyinfra goes on without it: it stays as it is, k3s and its pods included."


def connect_failure(host: Any) -> str | None:
    """Why pyinfra could not connect to this host in this run, cause and fix
    in one paragraph; None when it connected or was not tried."""
    return (getattr(host, "connector_data", None) or {}).get(_CONNECT_FAILURE)


def _refused(cause: BaseException | None) -> bool:
    """The host answered, refusing the connection: no sshd on the port.
    paramiko reports it as NoValidConnectionsError, one error per address."""
    if isinstance(cause, NoValidConnectionsError):
        return bool(cause.errors) and all(isinstance(e, ConnectionRefusedError) for e in cause.errors.values())
    return isinstance(cause, ConnectionRefusedError)


def connect_failure_lines(name: str, user: str, address: str, key: str | None, cause: BaseException | None) -> list[str]:
    """Why pyinfra could not connect to a host, in this package's words:
    host, cause, what this run does about it, and the fix, in short lines.
    cause is the exception pyinfra's ConnectError was raised from
    (paramiko's, or the socket's)."""
    stays = STAYS
    again = "then run the deploy again."
    if isinstance(cause, AuthenticationException):
        return [
            f"SSH on {name} refused {user} ({cause}),",
            f"with the key {key or '(the keys it tried)'}.",
            stays,
            f"Fix: ssh-copy-id -i {key or 'KEY'}.pub {user}@{address}",
            f"(the key's public half into ~{user}/.ssh/authorized_keys), or set ssh_user and",
            f"ssh_key for it in the inventory to ones it accepts; {again}",
        ]
    if isinstance(cause, BadHostKeyException):
        return [
            f"SSH on {name}: its host key is not the one known for {address}",
            "(the warning above).",
            stays,
            f"Fix: if it was reinstalled, ssh-keygen -R {address}, then ssh {user}@{address}",
            f"once to check and accept its new key; {again}",
        ]
    if isinstance(cause, socket.gaierror):
        return [
            f"The name {address} of {name} does not resolve here",
            f"({cause}).",
            stays,
            "Fix: set ssh_hostname to its address in the inventory (a name served by",
            f"an in-cluster DNS goes with k3s), or add it to /etc/hosts here; {again}",
        ]
    if _refused(cause):
        return [
            f"{name} ({address}) refused SSH:",
            "it is up, but no sshd listens on the port.",
            stays,
            f"Fix: on it, sudo systemctl enable --now ssh (or check ssh_port); {again}",
        ]
    if isinstance(cause, OSError):
        return [
            f"{name} ({address}) did not answer SSH",
            f"({cause}): it is off, or off the network.",
            stays,
            f"Fix: if it belongs in this run, power it on or check its network; {again}",
        ]
    return [f"SSH on {name} failed ({cause}).", stays, f"Fix: ssh {user}@{address} to see why; {again}"]


def _named_connect_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: SSHConnector, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except ConnectError as error:
            # raise_connect_error raises inside the except clause of the
            # exception it reports: that one is the cause.
            cause = error.__cause__ or error.__context__
            lines = connect_failure_lines(
                self.host.name, self.data.get("ssh_user") or "the SSH user",
                self.data.get("ssh_hostname") or self.host.name, self.data.get("ssh_key"), cause,
            )
            # Validation names it again in its H-REACHABLE line.
            self.host.connector_data[_CONNECT_FAILURE] = " ".join(line for line in lines if line != STAYS)
            # pyinfra prints the message after the host's name, as it is.
            raise ConnectError("\n    ".join(lines)) from error

    setattr(wrapper, _CONNECT_MARK, True)
    return wrapper


def connect_errors_named() -> None:
    """Make pyinfra's message for a host it cannot connect to this
    package's: host, cause, fix (once). An inventory calls it, since pyinfra
    connects before it loads a deploy file."""
    wrap_ssh_connect(_named_connect_errors, _CONNECT_MARK)
