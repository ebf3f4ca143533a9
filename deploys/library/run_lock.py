"""One changing run at a time on a cluster: the run lock on the builder.

Two mode switches started together (two terminals, two machines) would each
plan from the same state and then both write: two live tmpfs lines in
/etc/fstab, a unit restarted under the other's feet. So every playbook that
changes hosts takes a lock on the builder (the one host every run touches)
while its deploy file loads, before any host changes, and gives it back
when the run disconnects, however it ended. A second run finds it held and
is refused, naming the run that holds it; nothing is changed on any host.

The lock is a directory in /run/lock (a tmpfs: a reboot clears it) made by
rename(2) of a directory that already holds its owner record, so it exists
whole or not at all. The record names the machine the run came from, its
boot, pid and the pid's start time: a lock left by a run that died on this
same machine (killed, its terminal closed) is taken over; one from another
machine is named with the way to clear it.

A --dry run takes no lock (it changes nothing); it says when one is held,
since what it previews may change under it.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
import uuid
from dataclasses import dataclass

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand
from pyinfra.api.host import Host

from deploys.library.cluster import builder_host, first_loader, run_cache
from operations._observed import current
from operations._printed import Refusal, logged
from operations._pyinfra import before_disconnect, cli_dry_run, run_as_facts_run

RUN_LOCK = "/run/lock/pyinfra-distcc-farm"
_MARK = "_distcc_farm_releases_the_run_lock"


class RunLockRefusal(Refusal):
    """Another run holds the cluster's run lock."""


@dataclass(frozen=True)
class Owner:
    """Who holds the lock: one line of key=value words."""

    run: str
    controller: str
    boot: str
    pid: int
    pid_start: str
    user: str
    deploy: str
    since: str

    def line(self) -> str:
        return " ".join(f"{key}={value}" for key, value in self.__dict__.items())

    @classmethod
    def parse(cls, line: str) -> Owner | None:
        fields = dict(word.partition("=")[::2] for word in line.split())
        try:
            return cls(**{**fields, "pid": int(fields["pid"])})  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError):
            return None

    def described(self) -> str:
        return (
            f"{self.deploy} run by {self.user}@{self.controller} (pid {self.pid}), holding it since {self.since}"
        )


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def _pid_start(pid: int) -> str:
    """A process's start time in clock ticks since boot (field 22 of
    /proc/PID/stat): with the boot id, it tells a live pid from a reused one."""
    stat = _read(f"/proc/{pid}/stat")
    return stat.rpartition(")")[2].split()[19] if ")" in stat else ""


def this_run(state, deploy: str) -> Owner:
    """This run's owner record, made once per run."""
    cache = run_cache(state, "run lock")
    if "owner" not in cache:
        pid = os.getpid()
        cache["owner"] = Owner(
            run=uuid.uuid4().hex[:12],
            controller=socket.gethostname() or "unknown",
            boot=_read("/proc/sys/kernel/random/boot_id") or "unknown",
            pid=pid,
            pid_start=_pid_start(pid) or "unknown",
            user=getpass.getuser(),
            deploy=deploy.replace(" ", "_"),
            since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
    return cache["owner"]


def gone(owner: Owner) -> bool:
    """Whether the run that holds the lock is known to be over: it came from
    this machine, in this boot, and its pid is no longer that process."""
    if owner.controller != socket.gethostname() or owner.boot != _read("/proc/sys/kernel/random/boot_id"):
        return False
    return _pid_start(owner.pid) != owner.pid_start


def _run(state, node: Host, command: StringCommand) -> tuple[bool, list[str]]:
    """A command on node as its facts run (the inventory's sudo), outside any operation."""
    status, output = run_as_facts_run(state, node, command)
    return status, list(output.stdout_lines)


def take_command(owner: Owner, lock: str = RUN_LOCK) -> StringCommand:
    """Make the lock whole in one rename, or print who holds it."""
    return StringCommand(
        "L=" + lock + "; T=$L.new.$$; rm -rf \"$T\"; mkdir -p \"$T\" &&", "printf '%s\\n'",
        QuoteString(owner.line()), '>"$T/owner" &&',
        'if mv -T "$T" "$L" 2>/dev/null; then echo taken; else rm -rf "$T"; echo held;',
        'cat "$L/owner" 2>/dev/null; fi; true',
    )


def release_command(owner: Owner, lock: str = RUN_LOCK) -> StringCommand:
    """Remove the lock only while it is this run's (a takeover may have
    replaced it)."""
    return StringCommand(
        "L=" + lock + '; [ "$(cat "$L/owner" 2>/dev/null)" =', QuoteString(owner.line()),
        '] && rm -rf "$L"; true',
    )


def read_command() -> StringCommand:
    return StringCommand("cat", RUN_LOCK + "/owner", "2>/dev/null; true")


def hold_run_lock(state, inventory, deploy: str) -> None:
    """Take the cluster's run lock for this run on the builder, once, while
    the first deploy file loads (before any host changes); refuse the run,
    naming the holder, when another run holds it. Without the builder in
    this run (down, or left out with --limit) no lock can be taken: said,
    and the run goes on."""
    if not first_loader(state, "run lock"):
        return
    builder = builder_host(inventory)
    owner = this_run(state, deploy)
    if builder not in state.inventory.get_active_hosts():
        logger.warning(logged(
            f"the builder {builder.name} is not connected in this run, so no run lock was taken: another run "
            f"started now would not be refused"
        ))
        return
    if cli_dry_run():
        _, lines = _run(state, builder, read_command())
        holder = Owner.parse(lines[0]) if lines else None
        if holder is not None:
            logger.warning(builder.print_prefix + logged(
                f"another run holds the run lock: {holder.described()}; what this preview shows may change under it"
            ))
        return
    for _attempt in range(2):
        _, lines = _run(state, builder, take_command(owner))
        if lines[:1] == ["taken"]:
            run_cache(state, "run lock")["held on"] = builder
            return
        holder = Owner.parse(lines[1]) if len(lines) > 1 else None
        if holder is None or not gone(holder):
            break
        logger.warning(builder.print_prefix + logged(f"taking over the run lock of a run that is over: {holder.described()}"))
        _run(state, builder, release_command(holder))
    held = holder.described() if holder else "a run that is taking it right now"
    raise RunLockRefusal(
        f"host {builder.name}: another run holds this cluster's run lock ({RUN_LOCK} on the builder): {held}. "
        f"Two runs at once would each change what the other planned from. Fix: wait for that run to finish and "
        f"run again; if it is no longer running (killed, or its machine lost power), remove the lock on the "
        f"builder (sudo rm -r {RUN_LOCK}) and run again. Nothing was changed on any host."
    )


def release_held_lock(node: Host) -> None:
    """Give the run lock back if this run took it on node: called as node
    disconnects, which pyinfra does at the end of every run, failed or not."""
    state = current(node.state)
    cache = run_cache(state, "run lock")
    if cache.get("held on") is not node or not node.connected:
        return
    cache.pop("held on")
    try:
        _run(state, node, release_command(cache["owner"]))
    except Exception as error:  # noqa: BLE001 - a failed release must not hide the run's own outcome
        logger.warning(node.print_prefix + logged(f"could not give the run lock back ({error}); remove {RUN_LOCK} by hand"))


def releases_on_disconnect() -> None:
    """Make every host give back the run lock its run took before it
    disconnects (once): pyinfra has no hook after the last operation that
    still has the connection, and disconnects every host in the CLI's
    finally clause, after a refusal or a failure too."""
    before_disconnect(release_held_lock, _MARK)
