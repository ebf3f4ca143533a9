"""pyinfra's private parts, in one place.

Every use this package makes of something pyinfra 3.10 does not offer as
its API (an attribute or function its docs do not describe, a method of
pyinfra's that this package wraps or replaces, the CLI's internals) is
here, each with why no public way serves. The rest of the package goes
through these names, never to pyinfra's internals directly, and
tests/unit/test_pyinfra_private.py fails, naming the use, on a pyinfra
that changed one of them.

Nothing here changes pyinfra when imported: the wrappers are installed by
start_run() (deploys/library/__init__.py), where a deploy starts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import pyinfra.connectors.util as _connector_util
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.operations.util.files import generate_color_diff

# --- a host's completed operations ------------------------------------------


def operations_of(state, host) -> Iterator:
    """The OperationMeta of each operation added for host so far.

    Private: State.ops. The public way, get_op_order() with
    get_op_data_for_host(), sorts every host's operations into a graph on
    each call, and _observed asks this on every fact it serves."""
    for op_data in state.ops.get(host, {}).values():
        yield op_data.operation_meta


# --- diffs as pyinfra prints them --------------------------------------------


def color_diff(old_lines: list[str], new_lines: list[str]) -> Iterator[str]:
    """The lines of a coloured unified diff, as files.put prints with --diff.

    Private: pyinfra.operations.util.files.generate_color_diff, which the
    docs do not describe. This package's own writes (operations/paths.py)
    print their --diff exactly as pyinfra's files.put does, so a reader sees
    one format."""
    return generate_color_diff(old_lines, new_lines)


# --- a command outside any operation -----------------------------------------


def run_as_facts_run(state, node: Host, command) -> tuple[bool, Any]:
    """command on node with the connector arguments a fact would get (the
    inventory's _sudo and friends), outside any operation: (status, output).

    Private: pop_global_arguments and CONNECTOR_ARGUMENT_KEYS. The public way
    to run a command, a fact (server.Command), fails the host when the
    command fails and prints as a fact read; the run lock and the survey
    capture need the command's own status and lines."""
    arguments, _ = pop_global_arguments(state, node, {})
    connector = {key: value for key, value in arguments.items() if key in CONNECTOR_ARGUMENT_KEYS}
    return node.run_shell_command(command, **connector)


# --- the SSH connector --------------------------------------------------------

# The SSHConnector methods that open a channel to the host.
SSH_CHANNEL_CALLS = ("run_shell_command", "put_file", "get_file")


def wrap_ssh_channel_calls(wrap: Callable[[Callable[..., Any]], Callable[..., Any]], mark: str) -> None:
    """Replace each of SSH_CHANNEL_CALLS on SSHConnector by wrap(method),
    once: a method that carries the attribute mark is left as it is.

    Private: pyinfra has no hook around a connector's calls. Errors raised
    there that pyinfra does not count as the host's (EOFError, ConnectError,
    see operations/_connection.py) can only be caught where they are raised."""
    for name in SSH_CHANNEL_CALLS:
        method = getattr(SSHConnector, name)
        if not getattr(method, mark, False):
            setattr(SSHConnector, name, wrap(method))


def wrap_ssh_connect(wrap: Callable[[Callable[..., Any]], Callable[..., Any]], mark: str) -> None:
    """Replace SSHConnector.connect by wrap(connect), once.

    Private: pyinfra's host_connect_error callback sees the error but cannot
    change what pyinfra prints, which is the ConnectError's message, from
    paramiko's or the socket's exception (operations/_connection.py)."""
    if not getattr(SSHConnector.connect, mark, False):
        SSHConnector.connect = wrap(SSHConnector.connect)


def ssh_transport_active(connector: SSHConnector) -> bool:
    """Whether the connector's paramiko transport is still up.

    Private: SSHConnector.client, the paramiko SSHClient. pyinfra says
    nothing public about a connection that ended under it."""
    client = getattr(connector, "client", None)
    transport = client.get_transport() if client is not None else None
    return transport is not None and transport.is_active()


def replace_sudo_password_prompt(prompt: Callable[..., str]) -> None:
    """Make pyinfra's sudo retry ask for a password with prompt instead of
    getpass.getpass.

    Private: the getpass that pyinfra.connectors.util imports and calls in
    execute_command_with_sudo_retry. With no terminal it reads stdin and
    raises EOFError, which the connector would call a lost host."""
    _connector_util.getpass = prompt


# --- the end of a run ---------------------------------------------------------


def before_disconnect(hook: Callable[[Host], None], mark: str) -> None:
    """Call hook(host) as each host starts to disconnect, while its
    connection is still up (once: a Host.disconnect that carries the
    attribute mark is left as it is).

    Private: Host.disconnect is replaced. pyinfra's public hook,
    BaseStateCallback.host_disconnect, runs after the connection is closed,
    and nothing public runs after the last operation with the connection
    still open; the CLI disconnects every host in its finally clause, after a
    refusal or a failure too."""
    method = Host.disconnect
    if getattr(method, mark, False):
        return

    @functools.wraps(method)
    def disconnect(self: Host) -> None:
        hook(self)
        method(self)

    setattr(disconnect, mark, True)
    Host.disconnect = disconnect  # type: ignore[method-assign]


# --- the CLI ------------------------------------------------------------------


def cli_dry_run() -> bool:
    """Whether the pyinfra CLI runs with --dry.

    Private: the CLI's click option "dry", read from click's context. pyinfra
    passes --dry on to neither State nor Config (it stops before executing),
    and a deploy file must know it while it loads. False when pyinfra is
    driven through its API (there is no click context)."""
    try:
        import click
    except ImportError:  # pragma: no cover - click comes with pyinfra
        return False
    context = click.get_current_context(silent=True)
    while context is not None:
        if context.params.get("dry"):
            return True
        context = context.parent
    return False


def load_inventory(path: str, cwd: str, override_data: dict | None = None):
    """An Inventory from an inventory file, as the CLI loads it.

    Private: pyinfra_cli.inventory.make_inventory. pyinfra.api's Inventory
    takes hosts and groups already made; only the CLI reads an inventory
    file (its group_data included). Imported here only when called, since
    pyinfra_cli patches the standard library with gevent on import."""
    from pyinfra_cli.inventory import make_inventory

    return make_inventory(path, cwd=cwd, override_data=override_data)
