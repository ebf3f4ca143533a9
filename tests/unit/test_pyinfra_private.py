"""pyinfra's private parts that operations/_pyinfra.py relies on, checked
against the installed pyinfra: each test names the use it guards, so an
upgrade that changes one fails here, by name, rather than in a run.
Nothing outside operations/_pyinfra.py reaches these names."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path

import pyinfra.connectors.util as connector_util
import pytest
from pyinfra.api import Config, Inventory, State, StringCommand
from pyinfra.api.arguments import CONNECTOR_ARGUMENT_KEYS, pop_global_arguments
from pyinfra.api.host import Host
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import StateOperationHostData
from pyinfra.connectors.ssh import SSHConnector
from pyinfra.connectors.util import CommandOutput

from operations import _pyinfra

REPO = Path(__file__).resolve().parents[2]


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def a_state() -> tuple[State, Host]:
    inventory = Inventory((["somehost"], {}))
    state = State(inventory, Config())
    return state, inventory.get_host("somehost")


def test_state_ops_holds_each_hosts_operation_meta():
    """operations_of: State.ops[host][op_hash].operation_meta, an OperationMeta
    that says is_complete(), did_change() and did_error()."""
    use = "State.ops[host][op_hash].operation_meta (operations._pyinfra.operations_of)"
    state, host = a_state()
    assert isinstance(getattr(state, "ops", None), dict) and state.ops.get(host) == {}, use
    assert "operation_meta" in {f.name for f in dataclasses.fields(StateOperationHostData)}, use
    meta = OperationMeta("op1", is_change=True)
    meta.set_complete(True, ["true"], CommandOutput([]))
    state.ops[host]["op1"] = StateOperationHostData(lambda: iter(()), {}, meta)  # type: ignore[arg-type]
    found = list(_pyinfra.operations_of(state, host))
    assert found == [meta] and found[0].is_complete() and found[0].did_change() and not found[0].did_error(), use


def test_generate_color_diff_takes_two_line_lists_and_yields_hunks():
    """color_diff: pyinfra.operations.util.files.generate_color_diff(current_lines, desired_lines)."""
    from pyinfra.operations.util import files

    use = "pyinfra.operations.util.files.generate_color_diff (operations._pyinfra.color_diff)"
    assert parameters(getattr(files, "generate_color_diff", None) or (lambda: None)) == [
        "current_lines", "desired_lines"], use
    lines = list(_pyinfra.color_diff(["a\n", "b\n"], ["a\n", "c\n"]))
    assert lines[0] == "@@ -1,2 +1,2 @@" and lines[1] == "  a", use
    assert any("- b" in line for line in lines) and any("+ c" in line for line in lines), use


def test_pop_global_arguments_gives_a_facts_connector_arguments():
    """run_as_facts_run: pop_global_arguments(state, host, kwargs) returns
    (arguments, keys), and CONNECTOR_ARGUMENT_KEYS names the ones a connector
    takes, the inventory's _sudo among them."""
    use = "pyinfra.api.arguments.pop_global_arguments / CONNECTOR_ARGUMENT_KEYS (operations._pyinfra.run_as_facts_run)"
    assert parameters(pop_global_arguments) == ["state", "host", "kwargs"], use
    assert {"_sudo", "_sudo_user", "_shell_executable", "_timeout"} <= set(CONNECTOR_ARGUMENT_KEYS), use
    inventory = Inventory((["somehost"], {"_sudo": True}))
    state = State(inventory, Config())
    arguments, _ = pop_global_arguments(state, inventory.get_host("somehost"), {})
    assert arguments.get("_sudo") is True, use


def test_run_as_facts_run_sends_the_connector_arguments_to_the_host():
    use = "Host.run_shell_command(command, **connector arguments) (operations._pyinfra.run_as_facts_run)"
    inventory = Inventory((["somehost"], {"_sudo": True}))
    state = State(inventory, Config())
    node = inventory.get_host("somehost")
    sent = {}

    def run_shell_command(command, **arguments):
        sent.update(arguments, command=command)
        return True, CommandOutput([])

    node.run_shell_command = run_shell_command  # type: ignore[method-assign]
    command = StringCommand("true")
    assert _pyinfra.run_as_facts_run(state, node, command)[0] is True
    assert sent["command"] is command and sent["_sudo"] is True, use
    assert set(sent) - {"command"} <= set(CONNECTOR_ARGUMENT_KEYS), use


@pytest.mark.parametrize("name", _pyinfra.SSH_CHANNEL_CALLS)
def test_the_wrapped_ssh_connector_calls_are_as_assumed(name):
    """wrap_ssh_channel_calls: SSHConnector's channel calls, each a method
    taking its connector arguments (_sudo among them) as keywords."""
    use = f"SSHConnector.{name} (operations._pyinfra.wrap_ssh_channel_calls)"
    method = getattr(SSHConnector, name, None)
    assert callable(method), use
    signature = inspect.signature(getattr(method, "__wrapped__", method))
    assert list(signature.parameters)[0] == "self", use
    assert any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()), use


def test_ssh_run_shell_command_returns_a_status_and_the_output_lines():
    """operations/_connection.py reads (status, output) and output's
    stdout_lines and stderr_lines from run_shell_command."""
    use = "SSHConnector.run_shell_command -> tuple[bool, CommandOutput] (operations._connection)"
    method = SSHConnector.run_shell_command
    returns = str(inspect.signature(getattr(method, "__wrapped__", method)).return_annotation)
    assert "bool" in returns and "CommandOutput" in returns, use
    assert {"stdout_lines", "stderr_lines"} <= set(dir(CommandOutput([]))), use


def test_the_ssh_connector_keeps_its_paramiko_client():
    """ssh_transport_active: SSHConnector.client, a paramiko SSHClient (None
    before connect) with get_transport()."""
    from pyinfra.connectors.sshuserclient import SSHClient

    use = "SSHConnector.client (operations._pyinfra.ssh_transport_active)"
    assert "client" in inspect.get_annotations(SSHConnector), use
    assert SSHConnector.client is None and callable(getattr(SSHClient, "get_transport", None)), use

    class Unconnected:
        client = None

    assert _pyinfra.ssh_transport_active(Unconnected()) is False  # type: ignore[arg-type]


def test_pyinfras_sudo_retry_asks_through_the_module_getpass():
    """replace_sudo_password_prompt: pyinfra.connectors.util.getpass, called
    by execute_command_with_sudo_retry (tests/unit/test_errors_from_below.py
    runs that retry for real)."""
    use = "pyinfra.connectors.util.getpass (operations._pyinfra.replace_sudo_password_prompt)"
    assert callable(getattr(connector_util, "getpass", None)), use
    source = inspect.getsource(connector_util.execute_command_with_sudo_retry)
    called = {
        node.func.id for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert "getpass" in called, use


def test_host_disconnect_closes_the_connection_before_its_public_hook():
    """before_disconnect: Host.disconnect(self) is what the CLI calls for each
    host at the end of a run, and BaseStateCallback.host_disconnect comes
    only after the connector has disconnected (so it cannot serve)."""
    use = "Host.disconnect(self), replaced (operations._pyinfra.before_disconnect)"
    method = Host.disconnect
    while hasattr(method, "__wrapped__"):
        method = method.__wrapped__
    assert parameters(method) == ["self"], use
    source = inspect.getsource(method)
    assert source.index("disconnect_func()") < source.index('"host_disconnect"'), use


def test_before_disconnect_wraps_once_and_calls_the_hook_first(monkeypatch):
    calls = []
    monkeypatch.setattr(Host, "disconnect", lambda self: calls.append("disconnect"))
    _pyinfra.before_disconnect(lambda host: calls.append("hook"), "_test_mark")
    _pyinfra.before_disconnect(lambda host: calls.append("again"), "_test_mark")
    Host.disconnect(object())  # type: ignore[arg-type]
    assert calls == ["hook", "disconnect"]


def cli_probe(code: str) -> str:
    """pyinfra_cli patches the standard library with gevent on import: it is
    looked at from a child process."""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_the_cli_has_a_dry_option_and_make_inventory_as_assumed():
    """cli_dry_run: the pyinfra command's click parameter named "dry" (a
    flag); load_inventory: pyinfra_cli.inventory.make_inventory(inventory,
    override_data, cwd, ...)."""
    probe = """
import inspect
from pyinfra_cli.cli import cli
from pyinfra_cli.inventory import make_inventory
dry = [p for p in cli.params if p.name == "dry"]
print(bool(dry) and dry[0].is_flag, list(inspect.signature(make_inventory).parameters)[:3])
"""
    flag, parameters_ = cli_probe(probe).split(" ", 1)
    assert flag == "True", "the pyinfra CLI's --dry flag, param 'dry' (operations._pyinfra.cli_dry_run)"
    assert parameters_ == "['inventory', 'override_data', 'cwd']", (
        "pyinfra_cli.inventory.make_inventory(inventory, override_data, cwd) (operations._pyinfra.load_inventory)"
    )


def test_cli_dry_run_reads_the_option_from_clicks_context():
    import click

    assert _pyinfra.cli_dry_run() is False

    @click.command()
    @click.option("--dry", is_flag=True)
    def command(dry):
        print(_pyinfra.cli_dry_run())

    from click.testing import CliRunner

    assert CliRunner().invoke(command, ["--dry"]).output.strip() == "True"
    assert CliRunner().invoke(command, []).output.strip() == "False"


PRIVATE_NAMES = (
    "pop_global_arguments", "CONNECTOR_ARGUMENT_KEYS", "generate_color_diff", "get_kwargs_str", "_get_module",
    "make_inventory", "operation_meta", "Host.disconnect", "connector_util", "pyinfra.connectors.util",
)


def test_no_other_module_reaches_pyinfras_private_parts():
    """Every use goes through operations/_pyinfra.py."""
    offenders = {}
    for layer in ("deploys", "facts", "operations", "lab", "bench"):
        for path in sorted((REPO / layer).rglob("*.py")):
            if path.name == "_pyinfra.py":
                continue
            text = path.read_text()
            found = [name for name in PRIVATE_NAMES if name in text]
            if found:
                offenders[str(path.relative_to(REPO))] = found
    assert offenders == {}


def test_ssh_connect_raises_a_connect_error_from_inside_the_cause():
    """wrap_ssh_connect: SSHConnector.connect(self) raises ConnectError from
    within the except clause of paramiko's or the socket's exception, so
    that exception is the ConnectError's __context__ (pyinfra's
    raise_connect_error), and Host.connect prints the ConnectError's
    message after the host's name."""
    from pyinfra.api.exceptions import ConnectError
    from pyinfra.connectors import ssh_util

    use = "SSHConnector.connect and ssh_util.raise_connect_error (operations._pyinfra.wrap_ssh_connect)"
    assert parameters(SSHConnector.connect) == ["self"], use
    cause = OSError("timed out")
    try:
        try:
            raise cause
        except OSError as error:
            ssh_util.raise_connect_error(None, "Could not connect", error)
    except ConnectError as raised:
        assert raised.__context__ is cause, use
    else:
        raise AssertionError(use)
    assert "e.args[0]" in inspect.getsource(Host.connect), use
