"""The survey's sections: what each reads on a host, the command that reads
it and the parser of its lines.

Most sections are another fact's own command and parser (facts.compiler,
facts.distcc, facts.host, ...; the builder's reach of its workers is
facts.network's); the ones only the survey reads (free room, distccd's
access as its user, the build user's profile, the units' extra lines) are
here. facts/survey.py puts the sections into one command and parses its
output.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._script import ShellNote
from facts._shell import assign
from facts.ccache import CcacheConfig, parse_setup
from facts.compiler import ARCH_COMMAND, CompilersSent, CompilerTargets, parse_identity, parse_sent, parse_targets
from facts.distcc import (
    MASQUERADE_COMMAND,
    PS_COMMAND,
    DistccdListening,
    parse_compiler_processes,
    parse_listening,
    parse_masquerade,
)
from facts.host import (
    NAMES_LINES_SHELLCHECK,
    HostResources,
    meminfo_line,
    names_lines,
    parse_names,
    parse_resources,
)
from facts.mounts import TmpfsMount, parse_mount_point
from facts.network import REACH_SHELLCHECK, parse_reach, parse_route, reach_command, route_lines
from facts.pump import PumpCompiles, parse_probe
from facts.systemd import (
    KILLALL_LOOP,
    UNIT_EXTRAS,
    UnitsPresent,
    UnitStatus,
    parse_k3s_units,
    parse_unit_state,
    show_blocks,
)
from facts.users import (
    CCACHE_OVERRIDDEN,
    PUMP_OVERRIDDEN,
    LoginEnvironment,
    parse_denied,
    parse_login_environment,
)


class Space(TypedDict):
    """Free room on one filesystem, from statfs (stat -f): None where it
    gives no number."""

    total_bytes: int | None
    free_bytes: int | None
    total_inodes: int | None
    free_inodes: int | None


class DistccdTmp(TypedDict):
    where: str  # "distccd": inside its unit's mount namespace; "host": distccd not running
    space: Space


class BuildProfile(TypedDict):
    present: bool
    sets_path: bool


MEMORY_AVAILABLE_COMMAND = meminfo_line("MemAvailable")


# statfs(2) of a path, what df -P would print (f_frsize, f_blocks,
# f_bavail, f_files, f_ffree) without df's mount table, tail and sed: the
# line parse_space reads.
STATFS = "stat -f -c 'statfs %S %b %a %c %d'"


def _space_command(path: str) -> StringCommand:
    return StringCommand(STATFS, QuoteString(path))


# Where distccd writes its temporary files: /tmp as distccd sees it, in its
# unit's own mount namespace (TemporaryFileSystem=/tmp or PrivateTmp= give it
# a /tmp of its own), read through /proc/PID/root, the kernel's view of that
# process's root in its namespace; the host's /tmp while distccd does not run.
# statfs(2) on that path measures the filesystem the path reaches. Neither df
# (it looks the path up in this namespace's mount table and then measures the
# host's /tmp instead) nor nsenter (qemu-user, the emulated ARM lab, is
# multi-threaded, so setns into a mount namespace fails) can be used.
DISTCCD_TMP_COMMAND = StringCommand(
    # The survey's $units begins with distcc.service's block.
    'case "$units" in *MainPID=*) p=${units#*MainPID=}; p=${p%%[!0-9]*};;',
    "*) p=$(systemctl show distcc.service -p MainPID --value 2>/dev/null);; esac;",
    'if [ "${p:-0}" -gt 0 ] 2>/dev/null && [ -d "/proc/$p/root/tmp" ]; then echo "where distccd"; t="/proc/$p/root/tmp";',
    "else echo 'where host'; t=/tmp; fi;",
    STATFS, '"$t"',
)


def parse_space(lines: list[str]) -> Space:
    space = Space(total_bytes=None, free_bytes=None, total_inodes=None, free_inodes=None)
    for line in lines:
        fields = line.split()
        # stat -f: block size, blocks, blocks available to users, inodes, free inodes
        if len(fields) == 6 and fields[0] == "statfs" and all(f.isdigit() for f in fields[1:]):
            size, blocks, available, inodes, free_inodes = (int(f) for f in fields[1:])
            space.update(total_bytes=size * blocks, free_bytes=size * available, total_inodes=inodes,
                         free_inodes=free_inodes)
    return space


def parse_distccd_tmp(lines: list[str]) -> DistccdTmp:
    where = next((line.split()[1] for line in lines if line.startswith("where ") and len(line.split()) == 2), "host")
    return DistccdTmp(where=where, space=parse_space(lines))


def parse_memory_available(lines: list[str]) -> int | None:
    text = " ".join(lines).strip()
    return int(text) if text.isdigit() else None


def _distccd_access_command(log_dir: str) -> StringCommand:
    """What distccd needs, tried as its user: its whitelist (a directory it
    cannot read is an empty whitelist: every job refused) and its log (it
    exits when it cannot open it); the lines LoginEnvironment's denied
    lines are, for the same parser."""
    return StringCommand(
        "runuser -u distccd -- sh -c '",
        '[ -d /usr/lib/distcc ] && ! { [ -r /usr/lib/distcc ] && [ -x /usr/lib/distcc ]; } &&',
        'printf "denied read %s %s\\n" /usr/lib/distcc "$(stat -c "%U %a" /usr/lib/distcc)";',
        'for f in "$1" "$1/distccd.log"; do [ -e "$f" ] && ! [ -w "$f" ] && printf "denied write %s %s\\n" "$f"',
        '"$(stat -c "%U %a" "$f")"; done; true\' -', QuoteString(log_dir), "</dev/null",
    )


# What shellcheck says of _distccd_access_command that stands.
DISTCCD_ACCESS_SHELLCHECK = (
    ShellNote("SC2016", r"runuser -u distccd -- sh -c '", "for sh as user distccd: $1 is the log directory"),
)


def _profile_command(path: str) -> StringCommand:
    return StringCommand(
        assign("p", path), "; [ -f \"$p\" ] && echo present && while IFS= read -r l || [ -n \"$l\" ]; do",
        "case \"$l\" in */usr/lib/distcc*) echo sets-path; break;; esac; done <\"$p\"; true"
    )


def parse_profile(lines: list[str]) -> BuildProfile:
    words = {line.strip() for line in lines}
    return BuildProfile(present="present" in words, sets_path="sets-path" in words)


DISTCC_UNIT = "distcc.service"


def _units_section() -> StringCommand:
    """$units (the prelude's systemctl show) with what UnitState and
    K3sUnits add to theirs: the same lines, from one systemctl, but for
    K3sUnits' process counts, which come from the processes section's ps."""
    return StringCommand(
        "printf '%s\\n' \"$units\";", assign("u", DISTCC_UNIT), ";", UNIT_EXTRAS, ";", KILLALL_LOOP,
    )


def _split_units(lines: list[str]) -> tuple[list[str], list[str]]:
    """The units section's lines: UnitState's for distcc's unit, and
    K3sUnits' for the rest."""
    extras = [line for line in lines if "=" not in line.partition(" ")[0] or line.startswith("SysVEnabled=")]
    unit: list[str] = [line for line in extras if line.startswith(("SysVEnabled=", "DropIn "))]
    k3s: list[str] = [line for line in extras if not line.startswith(("SysVEnabled=", "DropIn "))]
    for block in show_blocks([line for line in lines if line not in extras]):
        rendered = [f"{key}={value}" for key, value in block.items()]
        if block.get("Id") == DISTCC_UNIT:
            unit = rendered + unit
        else:
            k3s = [*rendered, "", *k3s]
    return unit, k3s


def parse_units(lines: list[str]) -> tuple[UnitStatus, UnitsPresent]:
    """The units section: UnitState's value for distcc's unit and K3sUnits'
    (without its process counts, which parse_survey adds from the processes
    section)."""
    unit, k3s = _split_units(lines)
    return parse_unit_state(unit), parse_k3s_units(k3s)


class Section(NamedTuple):
    """One section of the survey: its mark's name, its command, what it
    reads (the comment above it in the readable survey, docs/survey-*.sh)
    and the shellcheck findings in its command that stand, and why."""

    name: str
    command: object
    reads: str
    notes: tuple[ShellNote, ...] = ()


def survey_sections(
    names: list[str],
    builder_peer: str | None = None,
    port: int = 3632,
    tmpfs_path: str | None = None,
    build_user: str | None = None,
    workers: list[str] = (),  # type: ignore[assignment]
    profile_script: str | None = None,
    sent_names: list[str] = (),  # type: ignore[assignment]
    cross_compilers: list[str] = (),  # type: ignore[assignment]
    log_dir: str | None = None,
    ccache: bool = False,
    pump: bool = False,
) -> list[Section]:
    """HostSurvey's sections for these arguments, in the order they are
    read: every host's, then the builder's (given its build tree, build
    user and workers)."""
    # The snapshots come first: ps, the listeners and the free memory
    # must not see the survey's own later work (its compilers and
    # distcc runs, its login shell) as the host's.
    return [
        *_snapshot_sections(port),
        *_host_sections(names, builder_peer),
        *_distcc_sections(log_dir),
        *_build_tree_sections(tmpfs_path),
        *_build_user_sections(build_user, profile_script, sent_names, cross_compilers, ccache, pump),
        *_worker_sections(build_user, workers, port, pump),
    ]


def _snapshot_sections(port: int) -> list[Section]:
    """What the host is doing before the survey does anything: its
    processes, its listeners, its free memory (SNAPSHOTS in facts/survey.py)."""
    return [
        Section("processes", PS_COMMAND, "every process: pid, parent, user, age, name and arguments (ps)"),
        Section(
            "listening", DistccdListening().command(port),
            "the TCP sockets listening on distccd's port, with the owning process (ss)",
        ),
        Section("memory_available", MEMORY_AVAILABLE_COMMAND, "MemAvailable in /proc/meminfo, in bytes"),
    ]


def _host_sections(names: list[str], builder_peer: str | None) -> list[Section]:
    """What the host is: its architecture, names, resources and, on a
    worker, its route to the builder."""
    return [
        Section(
            "identity", ARCH_COMMAND, "the userland's architecture (dpkg) and the kernel's machine (uname -m)",
        ),
        Section(
            "names", names_lines(list(names)),
            "the hostname, the FQDN (hostname -f), and the addresses each peer's name resolves to ($A)",
            NAMES_LINES_SHELLCHECK,
        ),
        Section("resources", HostResources.command, "the CPUs this shell may run on, memory, global IPv4 addresses"),
        # A worker's route to the builder (the builder's own would be to itself).
        *([Section(
            "builder_route", route_lines(builder_peer),
            "the builder's address, the route to it (ip route get) and its device's MTU",
        )] if builder_peer else []),
    ]


def _distcc_sections(log_dir: str | None) -> list[Section]:
    """distcc on the host: distccd's access as its user (a worker's, given
    its log directory), the units, the whitelist, distccd's /tmp and the
    compilers."""
    # gcc's version and target come from the compilers section (the same
    # binary: sudo's and systemd's PATH are Debian's same list); which
    # package it comes from is asked of dpkg only where H-GCC FAILs
    # (facts.compiler.GccPackage, read by validation afterwards).
    return [
        # A worker's distccd, as its own user sees what it needs.
        *([Section(
            "distccd_access", _distccd_access_command(log_dir),
            "what distccd needs, tried as its user: its whitelist and its log", DISTCCD_ACCESS_SHELLCHECK,
        )] if log_dir else []),
        Section(
            "units", _units_section(),
            "$units, distcc's SysV start links and drop-ins (sha256), where k3s-killall.sh is",
        ),
        Section(
            "masquerade", MASQUERADE_COMMAND,
            "the links in /usr/lib/distcc (distccd's whitelist) and the GCC compilers in /usr/bin",
        ),
        Section(
            "distccd_tmp", DISTCCD_TMP_COMMAND,
            "free room in distccd's /tmp, as distccd sees it (/proc/PID/root), or the host's",
        ),
        Section(
            "compilers", CompilerTargets.command,
            "every GCC driver on PATH: the binary distccd runs, its version and target",
            CompilerTargets.shellcheck,
        ),
    ]


def _build_tree_sections(tmpfs_path: str | None) -> list[Section]:
    """The builder's build tree: its tmpfs and the room on it."""
    if tmpfs_path is None:
        return []
    return [
        Section(
            "mount", TmpfsMount().command(tmpfs_path),
            "the build tree's tmpfs: its mount, what it hides, fstab lines, memory, page size",
            TmpfsMount.shellcheck,
        ),
        Section("tmpfs_space", _space_command(tmpfs_path), "free room on the tmpfs (statfs)"),
    ]


def _build_user_sections(
    build_user: str | None,
    profile_script: str | None,
    sent_names: list[str],
    cross_compilers: list[str],
    ccache: bool,
    pump: bool,
) -> list[Section]:
    """The builder's build user: its login shell, its profile script, the
    compiler names distcc sends, and its ccache."""
    sections: list[Section] = []
    if build_user is not None:
        sections.append(Section(
            "login", LoginEnvironment().command(
                build_user, list(cross_compilers),
                (*(CCACHE_OVERRIDDEN if ccache else ()), *(PUMP_OVERRIDDEN if pump else ())),
            ),
            "the build user's login shell: PATH, compilers, distcc hosts, slots, denied paths",
            LoginEnvironment.shellcheck,
        ))
    if profile_script is not None:
        sections.append(Section(
            "profile", _profile_command(profile_script),
            "whether the build user's profile script is there and puts /usr/lib/distcc on PATH",
        ))
    if sent_names:
        sections.append(Section(
            "sent", CompilersSent().command(list(sent_names)),
            "the compiler name distcc sends for each name a build runs, its version and target",
        ))
    if ccache and build_user is not None:
        sections.append(Section(
            "ccache", CcacheConfig().command(build_user),
            "distcc_ccache: the build user's ccache settings, cache size and room",
            CcacheConfig.shellcheck,
        ))
    return sections


def _worker_sections(build_user: str | None, workers: list[str], port: int, pump: bool) -> list[Section]:
    """The builder's workers as the builder reaches them: a pump compile
    to each (distcc_pump) and a TCP connect to each one's distccd."""
    sections: list[Section] = []
    if pump and build_user is not None and workers:
        sections.append(Section(
            "pump", PumpCompiles().command(build_user, [f"{w}:{port}" for w in workers]),
            "distcc_pump: a pump compile to each worker as the build user; was it pumped",
            PumpCompiles.shellcheck,
        ))
    if workers:
        sections.append(Section(
            "reach", reach_command(list(workers), port),
            "each worker's address, route source and MTU, and a TCP connect to its distccd",
            REACH_SHELLCHECK,
        ))
    return sections


# Each section's parser, by its mark's name; the units section is parsed by
# parse_units (it gives two values).
PARSERS: dict[str, Callable[[list[str]], Any]] = {
    "identity": parse_identity,
    "names": parse_names,
    "resources": parse_resources,
    "builder_route": parse_route,
    "listening": parse_listening,
    "masquerade": parse_masquerade,
    "mount": parse_mount_point,
    "login": parse_login_environment,
    "reach": parse_reach,
    "processes": parse_compiler_processes,
    "profile": parse_profile,
    "memory_available": parse_memory_available,
    "tmpfs_space": parse_space,
    "distccd_tmp": parse_distccd_tmp,
    "compilers": parse_targets,
    "sent": parse_sent,
    "distccd_access": parse_denied,
    "ccache": parse_setup,
    "pump": parse_probe,
}
