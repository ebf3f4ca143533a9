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
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from paramiko import SSHException
from pyinfra.api.exceptions import ConnectError
from pyinfra.connectors.ssh import SSHConnector

_MARK = "_distcc_farm_lost_host_is_a_host_failure"


def _transport_down(connector: SSHConnector) -> bool:
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    return transport is None or not transport.is_active()


def _host_failure_on_eof(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: SSHConnector, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except EOFError as error:
            raise SSHException(
                f"the connection to {self.host.name} ended (EOF from the SSH transport): the host went away"
            ) from error
        except ConnectError as error:
            if not _transport_down(self):
                raise
            raise SSHException(
                f"the connection to {self.host.name} ended (its SSH transport is down): the host went away"
            ) from error

    setattr(wrapper, _MARK, True)
    return wrapper


def lost_host_is_a_host_failure() -> None:
    """Make EOFError from the SSH connector a failure of that host (once)."""
    for name in ("run_shell_command", "put_file", "get_file"):
        method = getattr(SSHConnector, name)
        if not getattr(method, _MARK, False):
            setattr(SSHConnector, name, _host_failure_on_eof(method))
