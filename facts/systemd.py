"""Facts about systemd units: the state of one unit with its drop-ins, and the
state of a list of units that may or may not exist (the k3s family)."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
from facts._shell import assign
from facts._templates import render_script

_ARGV = re.compile(r"argv\[\]=(?P<argv>.*?) ;")


class UnitStatus(TypedDict):
    unit: str
    load: str
    active: str
    sub: str
    enabled: bool
    enabled_state: str
    main_pid: int
    user: str
    exec_start: list[str]
    dropins: dict[str, str]


def _show_properties(lines: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key and key[0].isupper():
            props[key] = value
    return props


def show_blocks(lines: list[str]) -> list[dict[str, str]]:
    """`systemctl show` of several units: each unit's properties. A blank
    line ends a unit's block; so does a property seen twice (in case the
    blank lines were lost on the way)."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if not (sep and key and key[0].isupper()) or key in current:
            if current:
                blocks.append(current)
            current = {}
        if sep and key and key[0].isupper():
            current[key] = value
    if current:
        blocks.append(current)
    return blocks


def _is_enabled(props: dict[str, str]) -> str:
    """What `systemctl is-enabled` prints, from systemctl show's properties
    and the command's SysVEnabled line: for a unit systemd generates from an
    init script (Debian's distcc.service) is-enabled runs
    systemd-sysv-install, which answers from the S links in /etc/rc[S5].d;
    for any other unit it prints the UnitFileState.

    Two states read differently from is-enabled, both with enabled False
    either way: the init script deleted and no daemon-reload since (the
    unit is still loaded from it; is-enabled says "generated", this
    "disabled"), and an S link left dangling (ls, which the install script
    uses, lists it; the shell's -e test does not)."""
    if props.get("SourcePath", "").startswith("/etc/init.d/"):
        return "enabled" if props.get("SysVEnabled") == "yes" else "disabled"
    return props.get("UnitFileState", "")


# The properties UnitState reads, and the lines that follow systemctl show's
# for a unit $u: SysVEnabled=yes when an init script behind it is enabled
# (the test systemd-sysv-install makes, done by the shell: `systemctl
# is-enabled` started two processes and a shell script more), and the
# sha256 of each drop-in in /etc/systemd/system/$u.d.
UNIT_PROPERTIES = "-p Id -p LoadState -p ActiveState -p SubState -p MainPID -p User -p ExecStart -p UnitFileState -p SourcePath"
UNIT_EXTRAS = (
    "for f in /etc/rc[S5].d/S??\"${u%.service}\"; do [ -e \"$f\" ] && echo SysVEnabled=yes && break; done;"
    " for f in /etc/systemd/system/\"$u\".d/*.conf; do"
    " [ -f \"$f\" ] && printf 'DropIn %s\\n' \"$(sha256sum \"$f\")\"; done"
)


def parse_unit_state(lines: list[str]) -> UnitStatus:
    props = _show_properties(line for line in lines if not line.startswith("DropIn "))
    dropins: dict[str, str] = {}
    for line in lines:
        if line.startswith("DropIn "):
            digest, _, path = line[len("DropIn "):].strip().partition("  ")
            dropins[path] = digest
    argv = _ARGV.search(props.get("ExecStart", ""))
    enabled_state = props["IsEnabled"] if "IsEnabled" in props else _is_enabled(props)
    main_pid = props.get("MainPID", "0")
    return UnitStatus(
        unit=props.get("Id", ""),
        load=props.get("LoadState", "not-found"),
        active=props.get("ActiveState", "inactive"),
        sub=props.get("SubState", "dead"),
        enabled=enabled_state in ("enabled", "enabled-runtime", "static", "alias"),
        enabled_state=enabled_state,
        main_pid=int(main_pid) if main_pid.isdigit() else 0,
        user=props.get("User", ""),
        exec_start=argv.group("argv").split() if argv else [],
        dropins=dropins,
    )


class UnitState(ParsedFact[UnitStatus]):
    """
    One unit's load/active/enabled state, main PID, ExecStart argv, and the
    sha256 of each drop-in in /etc/systemd/system/UNIT.d.

    `enabled` follows `systemctl is-enabled`, which also answers for units
    systemd generates from an init script (Debian's distcc.service).

    .. code:: python

        {"unit": "distcc.service", "load": "loaded", "active": "active",
         "sub": "running", "enabled": True, "enabled_state": "enabled",
         "main_pid": 333, "user": "distccd",
         "exec_start": ["/usr/bin/distccd", "--daemon", "--no-detach", "..."],
         "dropins": {"/etc/systemd/system/distcc.service.d/override.conf": "9f2c..."}}
    """

    def command(self, unit: str) -> StringCommand:
        return StringCommand(
            assign("u", unit), "; systemctl show \"$u\"", UNIT_PROPERTIES, "2>/dev/null;", UNIT_EXTRAS, "; true",
        )

    parse = staticmethod(parse_unit_state)


def parse_need_reload(lines: list[str]) -> bool:
    return any(line.strip() == "yes" for line in lines)


class UnitNeedsReload(ParsedFact[bool]):
    """
    Whether systemd still runs a unit from older unit files than those on
    disk (a drop-in written, no daemon-reload since).

    .. code:: python

        False
    """

    def command(self, unit: str) -> StringCommand:
        return StringCommand(assign("u", unit), "; systemctl show \"$u\" -p NeedDaemonReload --value 2>/dev/null; true")

    parse = staticmethod(parse_need_reload)


class UnitBrief(TypedDict):
    load: str
    active: str
    enabled_state: str


class UnitsPresent(TypedDict):
    units: dict[str, UnitBrief]
    containerd_shims: int
    k3s_processes: int
    killall: str | None


# Where k3s's install.sh puts its scripts: /usr/local/bin, or /opt/bin when
# /usr/local is read-only.
KILLALL_PATHS = ("/usr/local/bin/k3s-killall.sh", "/opt/bin/k3s-killall.sh")
# How many containerd shims (a pod each) and k3s processes run: what this
# fact reports and what operations/k3s.py checks is gone after k3s-killall.sh.
SHIM_NAMES = "^containerd-shim"
K3S_NAMES = "^k3s(-server|-agent)?$"
COUNT_SHIMS = f"ps -eo comm= | grep -c '{SHIM_NAMES}'"
COUNT_K3S = f"ps -eo comm= | grep -cE '{K3S_NAMES}'"


def k3s_process_counts(comms: list[str]) -> tuple[int, int]:
    """(containerd shims, k3s processes) among these process names (ps's
    comm): what COUNT_BOTH counts, for a reader that has a ps of its own."""
    shims = sum(1 for c in comms if re.match(SHIM_NAMES, c))
    k3s = sum(1 for c in comms if re.match(K3S_NAMES, c))
    return shims, k3s


# Both counts from one ps (the fact's way: a CM3+ pays for every process).
COUNT_BOTH = (
    f"ps -eo comm= | awk '/{SHIM_NAMES}/ {{s++}} /{K3S_NAMES}/ {{k++}} "
    "END {printf \"Shims %d\\nK3s %d\\n\", s, k}'"
)
K3S_PROPERTIES = "-p Id -p LoadState -p ActiveState -p UnitFileState"
KILLALL_LOOP = (
    "for f in " + " ".join(KILLALL_PATHS) + "; do [ -x \"$f\" ] && printf 'Killall %s\\n' \"$f\" && break; done"
)


# Where systemd loads unit files from (systemd-analyze unit-paths on Debian
# 12 and Raspberry Pi OS, with /lib/systemd/system).
UNIT_PATHS = (
    "/etc/systemd/system.control", "/run/systemd/system.control", "/run/systemd/transient",
    "/run/systemd/generator.early", "/etc/systemd/system", "/etc/systemd/system.attached",
    "/run/systemd/system", "/run/systemd/system.attached", "/run/systemd/generator",
    "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system",
    "/run/systemd/generator.late",
)


# $k (units_with_files) is read unquoted, split into its unit names.
UNIT_LIST_SHELLCHECK = (
    ShellNote("SC2086", r"systemctl show (\S+ )?\$k ", "unit names, one word each: settings allow only [A-Za-z0-9@._-]"),
)


def units_with_files(units: list[str] | tuple[str, ...]) -> StringCommand:
    """$k: " NAME.service" for each of these units that has a unit file (or
    a link: masked, aliased) where systemd looks, by the shell's own tests.
    systemctl show of a unit with none makes systemd search every one of
    those directories, about 0.9 ms of CPU a unit here (systemctl's and
    systemd's together) and several times that on a CM3+, to answer
    LoadState=not-found, which parse_k3s_units leaves out
    anyway; most nodes have one k3s unit of three. A unit still running from
    a file deleted since is left out too; its processes are not, ps counts
    them (k3s_processes)."""
    bits: list[object] = ["k=; for u in"] + [QuoteString(f"{u}.service") for u in units]
    bits += ["; do for d in", *UNIT_PATHS, '; do if [ -e "$d/$u" ] || [ -L "$d/$u" ]; then k="$k $u"; break; fi; done; done;']
    return StringCommand(*bits)


def parse_k3s_units(lines: list[str]) -> UnitsPresent:
    result = UnitsPresent(units={}, containerd_shims=0, k3s_processes=0, killall=None)
    # systemctl show's blocks, then the counts and k3s-killall.sh's path.
    for props in show_blocks(lines):
        name = props.get("Id", "").removesuffix(".service")
        if name and props.get("LoadState") == "loaded":
            result["units"][name] = UnitBrief(
                load="loaded", active=props.get("ActiveState") or "unknown", enabled_state=props.get("UnitFileState", "")
            )
    for line in lines:
        fields = line.split()
        if fields[:1] == ["Shims"] and len(fields) == 2 and fields[1].isdigit():
            result["containerd_shims"] = int(fields[1])
        elif fields[:1] == ["K3s"] and len(fields) == 2 and fields[1].isdigit():
            result["k3s_processes"] = int(fields[1])
        elif fields[:1] == ["Killall"] and len(fields) == 2:
            result["killall"] = fields[1]
    return result


class K3sUnits(ParsedFact[UnitsPresent]):
    """
    Which of the given units exist and their state; how many k3s processes
    and containerd-shim processes run (k3s's units have KillMode=process, so
    the shims and their pods outlive `systemctl stop`); and where k3s's own
    k3s-killall.sh is, which stops them.

    .. code:: python

        {"units": {"k3s-agent": {"load": "loaded", "active": "active",
                                 "enabled_state": "enabled"}},
         "containerd_shims": 2, "k3s_processes": 1,
         "killall": "/usr/local/bin/k3s-killall.sh"}

    Units that are not installed are left out of `units`.
    """

    def command(self, units: tuple[str, ...] | list[str] = ("k3s", "k3s-server", "k3s-agent")) -> StringCommand:
        # One systemctl (none without a unit file) and one ps for all of it:
        # this fact is in every bundle, and used to start 13 processes.
        # $k unquoted: unit names are [A-Za-z0-9@._-] (settings checks).
        return StringCommand(
            units_with_files(units), '[ -z "$k" ] || systemctl show $k', K3S_PROPERTIES, "2>/dev/null;",
            COUNT_BOTH, ";", KILLALL_LOOP, "; true",
        )

    parse = staticmethod(parse_k3s_units)


class UnitSetting(TypedDict):
    file: str
    line: int
    key: str
    value: str


class UnitSourcesInfo(TypedDict):
    unit: str
    fragment: str
    file_state: str
    dropins: list[str]
    settings: list[UnitSetting]


def parse_unit_sources(lines: list[str]) -> UnitSourcesInfo:
    info = UnitSourcesInfo(unit="", fragment="", file_state="", dropins=[], settings=[])
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "unit":
            info["unit"] = rest
        elif kind == "fragment":
            info["fragment"] = rest.strip()
        elif kind == "state":
            info["file_state"] = rest.strip()
        elif kind == "dropin":
            info["dropins"].append(rest.strip())
        elif kind == "set":
            path, _, numbered = rest.partition(":")
            number, _, assignment = numbered.partition(":")
            key, _, value = assignment.partition("=")
            if number.isdigit() and key.strip():
                info["settings"].append(UnitSetting(file=path, line=int(number), key=key.strip(), value=value.strip()))
    return info


class UnitSources(ParsedFact[UnitSourcesInfo]):
    """
    Where a unit's settings come from: its unit file (FragmentPath; empty and
    file_state "masked" when masked), every drop-in systemd applies to it in
    its order, and each `Key=value` line of those files.

    .. code:: python

        {"unit": "distcc.service",
         "fragment": "/run/systemd/generator.late/distcc.service",
         "file_state": "generated",
         "dropins": ["/etc/systemd/system/distcc.service.d/override.conf"],
         "settings": [{"file": "/etc/systemd/system/distcc.service.d/override.conf",
                       "line": 12, "key": "Type", "value": "simple"}, ...]}
    """

    def command(self, unit: str) -> StringCommand:
        return StringCommand(render_script("systemd-unit-sources.sh.j2", {"unit": unit}))

    parse = staticmethod(parse_unit_sources)
