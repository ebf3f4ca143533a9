"""Operations on distcc: the compiler whitelist, stale compiler processes, and
the daemon's lifecycle under Debian's generated distcc.service."""

from __future__ import annotations

import ipaddress

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from facts._templates import render_script
from facts.distcc import (
    MASQUERADE_DIR,
    Cc1Processes,
    DistccdListening,
    DistccMasquerade,
    DistccProcesses,
    FileAge,
    ListeningSocket,
    ProcessInfo,
)
from facts.logs import BackoffMarkers, ClientLogsWithJobs
from facts.systemd import UnitState, UnitStatus
from operations._observed import observed

UNIT = "distcc.service"
OVERRIDE = f"/etc/systemd/system/{UNIT}.d/override.conf"
# What Debian's update-distcc-symlinks links to; an absolute target is as good.
LINK_TARGETS = ("../../bin/distcc", "/usr/bin/distcc")


@operation()
def masquerade_links(compilers: list[str] | None = None):
    """
    Keep /usr/lib/distcc, distccd's compiler whitelist, to links for exactly
    the GCC compilers installed (or the subset named), removing the others.

    + compilers: names to allow (e.g. ``["gcc", "gcc-12"]``); None allows every
      installed plain, versioned and target-triplet gcc/g++ name

    Entries that are not links to distcc are left alone: this package does not
    own them (validation reports them).

    **Example:**

    .. code:: python

        distcc.masquerade_links(name="Whitelist the installed compilers")
    """
    masquerade = observed(DistccMasquerade)
    installed = set(masquerade["compilers"])
    wanted = installed if compilers is None else installed & set(compilers)
    links = masquerade["links"]

    missing = sorted(n for n in wanted if links.get(n) not in LINK_TARGETS)
    unwanted = sorted(n for n, target in links.items() if n not in wanted and target in LINK_TARGETS)
    if not missing and not unwanted and masquerade["directory_exists"]:
        host.noop(f"{MASQUERADE_DIR} already links exactly {len(wanted)} compilers")
        return

    if not masquerade["directory_exists"]:
        yield StringCommand("mkdir", "-p", MASQUERADE_DIR)
    for name in missing:
        yield StringCommand("ln", "-sfn", LINK_TARGETS[0], QuoteString(f"{MASQUERADE_DIR}/{name}"))
    if unwanted:
        yield StringCommand("rm", "-f", *(QuoteString(f"{MASQUERADE_DIR}/{n}") for n in unwanted))


def live_distccd_pids(unit: UnitStatus, distccd: list[dict]) -> set[int]:
    """The unit's running distccd and its children; empty when it is not running."""
    if unit["active"] != "active" or unit["sub"] != "running" or not unit["main_pid"]:
        return set()
    main = unit["main_pid"]
    return {p["pid"] for p in distccd if p["pid"] == main or p["ppid"] == main}


def kill_command(targets: list[tuple[int, str]], names: tuple[str, ...], grace_seconds: int) -> StringCommand:
    """TERM, wait up to the grace period, then KILL; each pid only while it
    still runs as its user with one of `names`. A pid is checked again right
    before each signal: one that ended and was reused meanwhile (by another
    user's cc1, say) is left alone (templates/processes-killed.sh.j2).

    + targets: (pid, user) pairs as the process table showed them"""
    context = {
        "targets": [f"{int(pid)}:{user}" for pid, user in targets], "names": list(names),
        "ticks": max(1, int(grace_seconds * 5)),
    }
    return StringCommand(render_script("processes-killed.sh.j2", context))


@operation()
def stale_compilers_killed(distccd_user: str = "distccd", grace_seconds: int = 5):
    """
    Kill distccd processes that are not the running unit's, and cc1/cc1plus
    run by the distccd user that no live distccd started (all of them when
    distccd is stopped). TERM first, KILL after the grace period; each
    signal goes only to a pid that still has the name and the user the
    process table showed (pids are reused).

    + distccd_user: the user remote jobs run as; only its cc1 are touched, so
      a builder's or a user's own compiles never are
    + grace_seconds: how long TERM gets before KILL

    **Example:**

    .. code:: python

        distcc.stale_compilers_killed(name="Kill stale compiler processes")
    """
    # The compilers first, then the daemons, then the unit: a cc1 seen here
    # has its distccd in the later reads unless that distccd has ended (and
    # then the cc1 is stale indeed); read the other way round, a job
    # started in between would look stale.
    cc1 = observed(Cc1Processes)
    distccd = observed(DistccProcesses)["distccd"]
    unit = observed(UnitState, unit=UNIT)
    live = live_distccd_pids(unit, distccd)

    stale_distccd = [(p["pid"], p["user"]) for p in distccd if p["pid"] not in live]
    stale_cc1 = [(c["pid"], c["user"]) for c in cc1 if c["user"] == distccd_user and c["distccd_pid"] not in live]
    if not stale_distccd and not stale_cc1:
        kept = sum(1 for c in cc1 if c["user"] == distccd_user)
        host.noop(
            f"no stale distccd or cc1 ({len(live)} live distccd processes, {kept} cc1 of live jobs, "
            f"{len(cc1) - kept} cc1 of other users left alone)"
        )
        return
    yield kill_command(stale_distccd + stale_cc1, ("distccd", "cc1", "cc1plus"), grace_seconds)


def unhealthy_reason(
    unit: UnitStatus, sockets: list[ListeningSocket], distccd: list[ProcessInfo], argv: list[str], address: str, port: int
) -> str | None:
    """Why distccd is not serving as configured, or None when it is.

    `systemctl is-active` alone is not enough: Debian's generated unit is
    "active (exited)" with no daemon at all. So the daemon must be the unit's
    main process, run with exactly the configured command line (a changed
    override needs a restart), and listen on address:port."""
    if unit["load"] != "loaded":
        return f"{UNIT} is not installed (load state {unit['load']})"
    if unit["active"] != "active" or unit["sub"] != "running" or not unit["main_pid"]:
        return f"{UNIT} is {unit['active']} ({unit['sub']}), not running a daemon"
    main = next((p for p in distccd if p["pid"] == unit["main_pid"]), None)
    if main is None:
        return f"the unit's main pid {unit['main_pid']} is not a distccd"
    if main["args"] != " ".join(argv):
        return "distccd runs with another command line than the override's (restart needed)"
    owned = [s for s in sockets if s["address"] == address and s["port"] == port]
    if not owned:
        found = ", ".join(f"{s['address']}:{s['port']}" for s in sockets) or "nothing"
        return f"distccd does not listen on {address}:{port} (listening: {found})"
    if owned[0]["pid"] not in (None, unit["main_pid"]):
        return f"{address}:{port} is held by pid {owned[0]['pid']}, not the unit's pid {unit['main_pid']}"
    return None


def distccd_active(unit: UnitStatus) -> bool:
    """Whether stopping the unit would stop something (a stop is due)."""
    return unit["load"] == "loaded" and unit["active"] not in ("inactive", "failed")


def reset_stops_distccd(unit: UnitStatus, reason: str | None, force: bool) -> bool:
    """Whether the reset stops (and then starts again) a running distccd:
    distccd_stopped_for_reset's decision, shared with the build guard."""
    return (reason is not None or force) and distccd_active(unit)


def health(argv: list[str], address: str, port: int) -> tuple[UnitStatus, str | None]:
    """The unit and why distccd is not serving as configured (None when it
    is): the reset's decision, shared with the build guard."""
    distccd = observed(DistccProcesses)["distccd"]
    unit = observed(UnitState, unit=UNIT)
    reason = unhealthy_reason(unit, observed(DistccdListening, port=port), distccd, argv, address, port)
    if reason is None:
        reason = started_before_override(unit, distccd, observed(FileAge, path=OVERRIDE))
    return unit, reason


def started_before_override(unit: UnitStatus, distccd: list[ProcessInfo], override_age: int | None) -> str | None:
    """Why a serving distccd needs a restart although its command line is
    current: it started before the override was last written, so it still
    runs under the old one's other directives (a private /tmp, hardening),
    which only a restart applies. Read from the host, so a run cut off between
    writing the override and restarting is healed by the next one."""
    main = next((p for p in distccd if p["pid"] == unit["main_pid"]), None)
    if main is None or override_age is None or main["elapsed"] <= override_age:
        return None
    return (
        f"distccd (pid {main['pid']}, up {main['elapsed']}s) started before its override was written "
        f"{override_age}s ago (restart needed)"
    )


# distccd's error lines, without the pid: systemd restarts a failing distccd
# every few seconds, and each start logs the same error again (shown once).
LOG_REASON_FILTER = (
    "grep -E 'ERROR|CRITICAL|FATAL' | sed 's/^distccd\\[[0-9]*\\] //' | awk '!seen[$0]++' | tail -n 5 "
    "| LC_ALL=C tr -cd '\\11\\12\\40-\\176'"
)


def log_file_of(argv: list[str]) -> str | None:
    """The --log-file distccd writes to, from its command line."""
    if "--log-file" in argv[:-1]:
        return argv[argv.index("--log-file") + 1]
    return None


def start_and_wait(address: str, port: int, log_file: str | None = None) -> StringCommand:
    """Restart the unit, then wait until it listens. On failure print why:
    distccd's own reason from what it logged since this restart (systemd
    sees only its exit status 102), with the fix for a bind failure; the
    unit's journal when distccd logged no error. Printed ASCII only.

    + address, port: where distccd must listen (address: an IPv4 address)
    + log_file: distccd's --log-file"""
    ipaddress.IPv4Address(address)
    context = {
        "log_file": log_file or "/dev/null", "unit": UNIT, "port": int(port), "address": address,
        "reason_filter": LOG_REASON_FILTER,
    }
    return StringCommand(render_script("distccd-started.sh.j2", context))


@operation()
def distccd_stopped_for_reset(argv: list[str], address: str, port: int = 3632, force: bool = False):
    """
    Stop distccd when it is not serving as configured (or when forced), so the
    reset can clear stale processes and start it clean. A healthy daemon is
    left serving.

    + argv: distccd's configured command line
    + address: the address distccd should listen on
    + port: its port
    + force: stop even a healthy daemon

    **Example:**

    .. code:: python

        distcc.distccd_stopped_for_reset(argv=[...], address="10.0.0.11")
    """
    unit, reason = health(argv, address, port)
    if reason is None and not force:
        host.noop(f"distccd is healthy (pid {unit['main_pid']} on {address}:{port}); not stopping it")
        return
    if not reset_stops_distccd(unit, reason, force):
        host.noop(f"{UNIT} is already stopped ({unit['active']})")
        return
    yield f"systemctl stop {UNIT}"


@operation()
def distccd_running(argv: list[str], address: str, port: int = 3632, restart: bool = False):
    """
    distccd running under its unit with the configured command line and
    listening on address:port; (re)started only when that is not so.

    + argv: distccd's configured command line (the override's ExecStart)
    + address: the address distccd must listen on
    + port: its port
    + restart: restart even a healthy daemon

    Fails, with the unit's last journal lines, when it does not come up.

    **Example:**

    .. code:: python

        distcc.distccd_running(argv=[...], address="10.0.0.11")
    """
    unit, reason = health(argv, address, port)
    if reason is None and not restart:
        host.noop(f"distccd is healthy (pid {unit['main_pid']} on {address}:{port})")
        return
    yield start_and_wait(address, port, log_file_of(argv))


@operation()
def distccd_enabled():
    """
    distcc.service enabled, so it starts at boot once configured. Right after
    apt installs it, Debian's generated unit is "active (exited)" with no
    daemon; that phantom state is stopped so the unit tells the truth. A
    running daemon is left alone.

    **Example:**

    .. code:: python

        distcc.distccd_enabled()
    """
    unit = observed(UnitState, unit=UNIT)
    changed = False
    if unit["load"] != "loaded" or not unit["enabled"]:
        yield f"systemctl enable {UNIT} 2>/dev/null"
        changed = True
    if unit["active"] == "active" and unit["sub"] == "exited":
        yield f"systemctl stop {UNIT}"
        changed = True
    if not changed:
        host.noop(f"{UNIT} is enabled ({unit['active']}, {unit['sub']})")


@operation()
def distccd_stopped(disable: bool = False):
    """
    distccd stopped, and no stray distccd process left; optionally disabled.
    The builder must never serve compiles, even with distcc installed.

    + disable: also disable the unit so it does not start at boot

    **Example:**

    .. code:: python

        distcc.distccd_stopped(name="No distccd on the builder", disable=True)
    """
    unit = observed(UnitState, unit=UNIT)
    processes = observed(DistccProcesses)
    changed = False
    if distccd_active(unit):
        yield f"systemctl stop {UNIT}"
        changed = True
    if disable and unit["load"] == "loaded" and unit["enabled"]:
        yield f"systemctl disable {UNIT} 2>/dev/null"
        changed = True
    elif disable and unit["load"] != "loaded":
        # Not installed yet: Debian's postinst enables the unit when apt
        # installs distcc (just before this, in the guard), so a disable
        # will be due; saying so keeps --dry's plan complete.
        yield f"systemctl disable {UNIT} 2>/dev/null || true"
        changed = True
    strays = [(p["pid"], p["user"]) for p in processes["distccd"]]
    if strays:
        yield kill_command(strays, ("distccd",), 5)
        changed = True
    if not changed:
        state = "disabled" if not unit["enabled"] else "enabled"
        host.noop(f"distccd is {unit['active']} ({state if unit['load'] == 'loaded' else 'not installed'}), no distccd runs")


@operation()
def client_state_cleared(directory: str, logs: list[str]):
    """
    The distcc client's state of the last build removed: its backoff markers
    in DIRECTORY (a marker left by a failed job idles that worker for the
    next build too) and those of LOGS that hold a build's jobs (the client
    log is the build report's window, which starts again at each mode
    switch; a log of validation's `distcc -j` alone holds no build and is
    left, so a second run changes nothing).

    + directory: the build user's distcc state directory (~/.distcc)
    + logs: the client log and its rotated copy

    Decided when the operation runs, from the reads the operations share:
    no round trip of its own while the deploy file loads.

    **Example:**

    .. code:: python

        distcc.client_state_cleared(
            name="Client state of the last build cleared",
            directory="/home/pi/.distcc", logs=["/home/pi/.distcc/client.log"],
        )
    """
    stale = [m["file"] for m in observed(BackoffMarkers, directory=directory)]
    stale += observed(ClientLogsWithJobs, paths=list(logs))
    if not stale:
        host.noop(f"no backoff marker in {directory} and no client log with a build's jobs")
        return
    yield StringCommand("rm -f", *(QuoteString(path) for path in stale))
