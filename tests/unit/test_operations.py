"""The operations against facts captured from real lab hosts.

Each fixture is tests/unit/operations/<module.op>/<case>.json, in pyinfra's
own operation-fixture shape:

- "args" / "kwargs": the operation's arguments;
- "facts": {"<fact name>": {"<fact kwargs string>": value}}, or
  {"<fact name>": value} for a fact called without arguments (as pyinfra's
  own fixtures do); the fact name is "<module>.<Class>" ("distcc.DistccProcesses",
  "files.FindInFile") and the kwargs string is pyinfra's get_kwargs_str;
- "commands": the exact commands the operation yields, in order (an upload
  is "upload <remote path>", a Python callback "call <function name>",
  and the time in a sed backup suffix is
  "_timestamp_");
- "noop_description": the last host.noop() message, when there is one;
- "exception": {"name": ..., "message": ...} when the operation must refuse.

Fact values are never invented: "facts_from" mirrors "facts" and says where
each value comes from, either "<module.Class>/<case>", a captured fact
fixture under tests/unit/facts/ (whose output is re-parsed here and must give
the same value), or {"captured_from": ..., "kwargs": ..., "output": [...]}, a
capture of our own from a lab host.

The operation's generator runs against a FakeHost inside a real pyinfra
State, so no host and no Docker are needed.
"""

from __future__ import annotations

import getpass
import importlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pyinfra.api import Config, FileUploadCommand, FunctionCommand, Inventory, State, StringCommand
from pyinfra.api.util import get_kwargs_str
from pyinfra.context import ctx_host, ctx_state

import operations.distcc as distcc_operations
from lab.capture_fact import command_sha256, fact_command

HERE = Path(__file__).parent
FIXTURES = HERE / "operations"
FACT_FIXTURES = HERE / "facts"
CASES = sorted(FIXTURES.glob("*/*.json"))
TIMESTAMP = "_timestamp_"
FIXTURE_KEYS = {"args", "kwargs", "facts", "facts_from", "commands", "noop_description", "exception"}


def fact_name(fact_cls: type) -> str:
    """pyinfra's fixture name of a fact: "<module>.<Class>" for ours and its own."""
    return f"{fact_cls.__module__.rsplit('.', 1)[-1]}.{fact_cls.__name__}"


def fact_class(name: str) -> type:
    module, _, cls = name.partition(".")
    try:
        return getattr(importlib.import_module(f"facts.{module}"), cls)
    except (ImportError, AttributeError):
        return getattr(importlib.import_module(f"pyinfra.facts.{module}"), cls)


class FakeHost:
    """The part of pyinfra's Host that operations use, with facts from a fixture."""

    name = "fixture-host"
    print_prefix = "[fixture-host] "

    def __init__(self, facts: dict[str, Any]) -> None:
        self.facts = facts
        self.noops: list[str] = []
        self.data: dict[str, Any] = {}

    def get_fact(self, fact_cls: type, *args: Any, **kwargs: Any) -> Any:
        assert not args, "facts are called with keyword arguments in this package"
        name = fact_name(fact_cls)
        if name not in self.facts:
            raise KeyError(f"fixture has no fact {name!r} (called with {get_kwargs_str(kwargs)!r})")
        values = self.facts[name]
        if not kwargs:
            return values
        key = get_kwargs_str(kwargs)
        if key not in values:
            raise KeyError(f"fixture has no {name!r} for {key!r}; it has {sorted(values)}")
        return values[key]

    def noop(self, description: str) -> None:
        self.noops.append(description)

    def log(self, message: str, log_func: Any = None) -> None:
        pass

    def get_temp_filename(self, *args: Any, **kwargs: Any) -> str:
        return "_tempfile_"


def command_string(command: Any) -> str:
    if isinstance(command, str):
        return command.strip()
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FileUploadCommand):
        return f"upload {command.dest}"
    if isinstance(command, FunctionCommand):
        return f"call {command.function.__name__}"
    raise AssertionError(f"unexpected command type {type(command).__name__}: {command!r}")


def operation_of(directory: str) -> Any:
    module, _, name = directory.partition(".")
    return getattr(importlib.import_module(f"operations.{module}"), name)


def run_fixture(directory: str, fixture: dict) -> tuple[list[str], FakeHost]:
    """Run the operation's generator to the end; the commands it yielded and the host."""
    fake = FakeHost(fixture.get("facts", {}))
    # An inventory of one (an empty one is falsy: State would skip its init).
    state = State(Inventory(([FakeHost.name], {})), Config())
    commands: list[str] = []
    operation = operation_of(directory)
    # files.line's sed names its (deleted) backup after the current time.
    with (
        ctx_state.use(state),
        ctx_host.use(fake),
        mock.patch("pyinfra.operations.util.files.get_timestamp", return_value=TIMESTAMP),
        mock.patch("pyinfra.operations.files.get_timestamp", return_value=TIMESTAMP),
    ):
        for command in operation._inner(*fixture.get("args", []), **fixture.get("kwargs", {})):
            commands.append(command_string(command))
    return commands, fake


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_operation(path: Path) -> None:
    fixture = json.loads(path.read_text())
    if "exception" in fixture:
        expected = fixture["exception"]
        with pytest.raises(Exception) as raised:
            run_fixture(path.parent.name, fixture)
        assert expected["name"] in {cls.__name__ for cls in type(raised.value).__mro__}
        # The package's own errors are printed wrapped (operations/_printed.py); their paragraph is the message.
        assert getattr(raised.value, "paragraph", str(raised.value)) == expected["message"]
        return

    commands, fake = run_fixture(path.parent.name, fixture)
    assert commands == fixture["commands"]
    if "noop_description" in fixture:
        assert fake.noops and fake.noops[-1] == fixture["noop_description"]
    else:
        assert fake.noops == []
    if not commands:
        # Every no-change path says why (-v and --dry explain themselves).
        assert fake.noops


def takes_arguments(name: str) -> bool:
    """Whether a fact is called with arguments (its command is a method)."""
    return callable(fact_class(name).command)


def parse_output(name: str, output: list[str], args: list | None = None, kwargs: dict | None = None) -> Any:
    """What a fact makes of captured output (pyinfra gives default() for none)."""
    fact = fact_class(name)()
    if callable(fact.command):
        fact.command(*(args or []), **(kwargs or {}))  # files.FindInFile remembers its path
    return fact.process(output) if output else fact.default()


def value_sources(fixture: dict) -> list[tuple[str, Any, Any]]:
    """(where, value, source) for every fact value of a fixture."""
    found = []
    sources = fixture.get("facts_from", {})
    for name, values in fixture.get("facts", {}).items():
        if takes_arguments(name):
            for key, value in values.items():
                found.append((f"{name} [{key}]", value, sources.get(name, {}).get(key)))
        else:
            found.append((name, values, sources.get(name)))
    return found


@pytest.mark.parametrize("path", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_values_come_from_real_hosts(path: Path) -> None:
    text = path.read_text()
    assert text.isascii()
    fixture = json.loads(text)
    assert set(fixture) <= FIXTURE_KEYS
    for where, value, source in value_sources(fixture):
        assert source is not None, f"{where}: no facts_from entry says where this value was captured"
        if isinstance(source, str):
            captured = json.loads((FACT_FIXTURES / f"{source}.json").read_text())
            args = [captured["arg"]] if "arg" in captured else captured.get("args", [])
            parsed = parse_output(where.split(" ")[0], captured["output"], args, captured.get("kwargs", {}))
            assert parsed == value, f"{where}: differs from what tests/unit/facts/{source}.json parses to"
        else:
            assert source["captured_from"].strip(), where
            parsed = parse_output(where.split(" ")[0], source["output"], kwargs=source.get("kwargs", {}))
            assert parsed == value, f"{where}: differs from what its captured output parses to"


def own_captures() -> list:
    """A test parameter for every capture a fixture holds of its own (a
    facts_from entry with its output)."""
    found = []
    for path in CASES:
        case = f"{path.parent.name}/{path.stem}"
        for where, _, source in value_sources(json.loads(path.read_text())):
            if isinstance(source, dict):
                found.append(pytest.param(path, where, source, id=f"{case}:{where}"))
    return found


@pytest.mark.parametrize(("path", "where", "source"), own_captures())
def test_own_capture_was_made_by_the_command_the_fact_sends(path: Path, where: str, source: dict) -> None:
    """A capture of a fixture's own records the sha256 of the command that
    made it (command_sha256); when the fact sends another command, its
    output, the value parsed from it and the operation's expected commands
    are stale."""
    fact, kwargs = where.split(" ")[0], source.get("kwargs", {})
    assert command_sha256(fact_command(fact, kwargs)) == source.get("command_sha256"), (
        f"tests/unit/operations/{path.parent.name}/{path.name}: facts_from {where} was captured by another "
        f"command than {fact} sends now. Re-capture it with a lab host in the state its captured_from names: "
        f"python -m lab.capture_fact --inline CONTAINER {fact} - 'WHERE AND IN WHAT STATE' '{json.dumps(kwargs)}' "
        f"prints the facts_from entry and the value for facts (or capture a fact fixture in that state and name "
        f"it in facts_from); then re-derive the fixture's commands from this test module (docs/testing.md)"
    )


# operations/apt.py is not covered here yet (it came after these fixtures).
COVERED_MODULES = ("distcc", "k3s", "mounts", "systemd")


def _operations() -> list[str]:
    found = []
    for module_name in COVERED_MODULES:
        module = importlib.import_module(f"operations.{module_name}")
        for name, member in vars(module).items():
            if hasattr(member, "_inner") and getattr(member, "__module__", None) == module.__name__:
                found.append(f"{module_name}.{name}")
    return sorted(found)


@pytest.mark.parametrize("operation", _operations())
def test_operation_has_change_and_no_change_fixtures(operation: str) -> None:
    fixtures = [json.loads(path.read_text()) for path in CASES if path.parent.name == operation]
    assert any(f.get("commands") for f in fixtures), f"{operation}: no fixture where it changes the host"
    assert any(f.get("commands") == [] for f in fixtures), f"{operation}: no fixture where it changes nothing"


# --- the kill command, run for real on this machine -------------------------------


def _orphan_sleep() -> int:
    """A `sleep` of this user whose parent is gone, so init reaps it when
    it is killed (a child of the test would linger as a zombie)."""
    out = subprocess.run(["sh", "-c", "sleep 60 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True, check=True)
    return int(out.stdout)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("user_seen", "names", "killed"),
    [
        # The pid now runs as another user than the process table showed
        # (reused by someone else's process): never signalled.
        ("distccd-was-here", ("sleep",), False),
        # Another name than the one expected: never signalled.
        (None, ("cc1", "cc1plus"), False),
        # Same name and same user: TERM.
        (None, ("sleep",), True),
    ],
    ids=["other-user", "other-name", "same-name-and-user"],
)
def test_kill_command_signals_only_a_pid_with_its_name_and_user(user_seen, names, killed):
    pid = _orphan_sleep()
    me = getpass.getuser()
    try:
        command = distcc_operations.kill_command([(pid, user_seen or me)], names, grace_seconds=1)
        subprocess.run(["sh", "-c", command.get_raw_value()], check=True, timeout=30)
        deadline = time.monotonic() + 5
        while killed and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _alive(pid) is not killed
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_bind_failure_reason_is_distccds_own_line_once():
    """What the reset prints when distccd cannot start, from a real log:
    worker1's distccd.log with distcc_listen set to an address it does not
    have, cut where the failed reset ended (six starts by systemd, each
    logging the same bind error), after an older error of a past job. Read
    from the restart on, as the reset does."""
    log = (FIXTURES / "distcc.distccd_running" / "bind_failure_distccd.log").read_bytes()
    before_restart = sum(len(line) for line in log.splitlines(keepends=True)[:2])
    script = f'tail -c +{before_restart + 1} | {distcc_operations.LOG_REASON_FILTER}'
    shown = subprocess.run(["sh", "-c", script], input=log, capture_output=True, check=True).stdout.decode()
    assert shown.splitlines() == [
        "(dcc_listen_by_addr) ERROR: bind of 172.31.252.254:3632 failed: Cannot assign requested address"
    ]
    assert "status=102" not in shown


def test_a_lost_ssh_host_is_that_hosts_failure():
    """paramiko's EOFError from a host that went away becomes the
    SSHException pyinfra fails that host for (operations/_connection.py);
    any other error passes through as it was. That every runnable deploy
    installs it in the connector: tests/unit/test_layers.py."""
    from paramiko import SSHException
    from pyinfra.api.exceptions import ConnectError

    from operations._connection import _host_failure_on_eof

    class Connector:
        client = None  # no SSH transport: the host is gone

        class host:  # noqa: N801 - the attribute pyinfra's connectors have
            name = "worker1.distcc.internal"

    def lost(self):
        raise EOFError()

    def no_sftp(self):
        raise ConnectError("Unable to establish SFTP connection.")

    def broken(self):
        raise ValueError("not a lost host")

    with pytest.raises(SSHException, match=r"the connection to worker1.distcc.internal ended \(EOF"):
        _host_failure_on_eof(lost)(Connector())
    with pytest.raises(SSHException, match=r"the connection to worker1.distcc.internal ended \(its SSH transport"):
        _host_failure_on_eof(no_sftp)(Connector())
    with pytest.raises(ValueError):
        _host_failure_on_eof(broken)(Connector())
