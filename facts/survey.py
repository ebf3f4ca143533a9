"""Everything validation reads from one host, in one remote command.

pyinfra 3 runs one round trip per fact and caches nothing, and a CM3+ is slow
to start processes: so validation sends one script made of the other facts'
own commands, each in a marked section, and parses each section with that
fact's own parser. Nothing here changes the host.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple, TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote, as_script
from facts._shell import assign
from facts.ccache import CcacheConfig, CcacheSetup, parse_setup
from facts.compiler import (
    ARCH_COMMAND,
    CompilersSent,
    CompilerTargets,
    GccPackageInfo,
    Identity,
    Sent,
    Targets,
    parse_identity,
    parse_sent,
    parse_targets,
)
from facts.distcc import (
    MASQUERADE_COMMAND,
    PS_COMMAND,
    CompilerProcesses,
    DistccdListening,
    ListeningSocket,
    Masquerade,
    parse_compiler_processes,
    parse_listening,
    parse_masquerade,
    parse_ps,
)
from facts.host import (
    ADDRESSES_OF,
    NAMES_LINES_SHELLCHECK,
    RESOLVE_V4_SHELLCHECK,
    HostResources,
    Names,
    Resources,
    meminfo_line,
    names_lines,
    parse_names,
    parse_resources,
    resolve_v4,
)
from facts.mounts import MountPointStatus, TmpfsMount, parse_mount_point
from facts.network import Route, parse_route, route_lines, route_parts
from facts.pump import PumpCompiles, PumpProbe, parse_probe
from facts.systemd import (
    KILLALL_LOOP,
    UNIT_EXTRAS,
    UNIT_LIST_SHELLCHECK,
    UNIT_PROPERTIES,
    UnitsPresent,
    UnitStatus,
    k3s_process_counts,
    parse_k3s_units,
    parse_unit_state,
    show_blocks,
    units_with_files,
)
from facts.users import (
    CCACHE_OVERRIDDEN,
    PUMP_OVERRIDDEN,
    Denied,
    LoginEnv,
    LoginEnvironment,
    parse_denied,
    parse_login_environment,
)

MARK = "##survey "


class Reach(TypedDict):
    peer: str
    address: str | None
    source: str | None
    mtu: int | None
    open: bool
    # open, refused (RST: nothing listens, or a REJECT rule), timeout (SYN
    # dropped: a firewall filters the port), unreachable (ICMP host
    # unreachable: host down or rejected), noroute (this host has no route),
    # unresolved (the name does not resolve here), closed (anything else).
    status: str


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


class Survey(TypedDict, total=False):
    identity: Identity
    names: Names
    resources: Resources
    builder_route: Route
    k3s: UnitsPresent
    unit: UnitStatus
    listening: list[ListeningSocket]
    processes: CompilerProcesses
    masquerade: Masquerade
    mount: MountPointStatus
    login: LoginEnv
    slots: int | None
    reach: list[Reach]
    # Not a section: validation reads GccPackage after the surveys, from
    # the hosts whose gcc differs from the builder's and the builder.
    gcc_package: GccPackageInfo
    profile: BuildProfile
    memory_available: int | None
    tmpfs_space: Space
    distccd_tmp: DistccdTmp
    compilers: Targets
    sent: Sent
    distccd_access: list[Denied]
    ccache: CcacheSetup
    pump: PumpProbe


def _reach_command(peers: list[str], port: int) -> StringCommand:
    """From this host: each peer's address, the route's source and MTU, and
    what a TCP connection to peer:port gives (bash's /dev/tcp, 3 s for all):
    a timeout means a firewall drops it, a refusal that nothing listens.

    The builder asks this about every worker, so nothing here starts a
    process per peer: the addresses come from the prelude's one getent a
    name (resolve_v4, which the names section reads too), every route from
    one ip (-batch), every interface's MTU from /sys, every connection from
    one bash (all at once, under one timeout, one subshell each). The shell
    prints what they gave and parse_reach matches them up: matching them in
    the shell took a CM3+ several process starts a peer."""
    bits: list[object] = ["T=; for n in"] + [QuoteString(p) for p in peers]
    bits += [
        # "peer NAME ADDRESS" (- when it does not resolve), the first address
        # of each from the prelude's resolve_v4; T: the addresses.
        "; do", ADDRESSES_OF, "a=${x%% *}; printf 'peer %s %s\\n' \"$n\" \"${a:--}\"; [ -z \"$a\" ] || T=\"$T $a\"; done;",
        "[ -n \"$T\" ] || exit 0;",
        # ip -o's one line per route (none for an address without one).
        "echo routes; printf 'route get %s\\n' $T | ip -o -force -batch - 2>/dev/null;",
        "echo mtus; for f in /sys/class/net/*/mtu; do read -r m <\"$f\" && d=${f%/mtu} && printf '%s %s\\n' \"${d##*/}\" \"$m\"; done;",
        # "C ADDRESS 0|1" for each connection that ended within 3 s, after
        # bash's own error line, which names the address ("...:
        # /dev/tcp/ADDRESS/PORT: Connection refused").
        "echo connects; timeout 3 bash -c 'for a; do ( exec 2>&1; exec 3<>/dev/tcp/$a/" + str(int(port)) + " && echo \"C $a 0\"",
        "|| echo \"C $a 1\" ) & done; wait' - $T 2>/dev/null",
    ]
    return StringCommand(*bits)


# What shellcheck says of _reach_command that stands (the readable survey,
# docs/survey-*.sh, puts each before its line).
REACH_SHELLCHECK = (
    ShellNote("SC2086", r"printf 'route get %s\\n' \$T", "$T: the addresses, one word each (dotted IPv4)"),
    ShellNote("SC2086", r"' - \$T ", "$T: the addresses, one word each (dotted IPv4)"),
    ShellNote("SC2016", r"bash -c '", "for bash (its /dev/tcp): $a is each address it is given"),
)


_TCP_ERROR = re.compile(r"/dev/tcp/(?P<address>[^/ ]+)/\d+: (?P<message>.*)$")


def parse_reach(lines: list[str]) -> list[Reach]:
    """The reach section's blocks matched up: each peer's route (the first
    ip line whose first or second word is its address), that route's
    source and its device's MTU, and its connection's outcome."""
    peers: list[tuple[str, str | None]] = []
    routes: list[str] = []
    mtus: dict[str, int] = {}
    ended: dict[str, bool] = {}
    errors: dict[str, str] = {}
    block = "peers"
    for line in lines:
        fields = line.split()
        if line.strip() in ("routes", "mtus", "connects"):
            block = line.strip()
        elif block == "peers" and len(fields) == 3 and fields[0] == "peer":
            peers.append((fields[1], None if fields[2] == "-" else fields[2]))
        elif block == "routes" and fields:
            routes.append(line)
        elif block == "mtus" and len(fields) == 2 and fields[1].isdigit():
            mtus[fields[0]] = int(fields[1])
        elif block == "connects" and len(fields) == 3 and fields[0] == "C":
            ended[fields[1]] = fields[2] == "0"
        elif block == "connects" and (error := _TCP_ERROR.search(line)):
            errors[error.group("address")] = error.group("message")
    found: list[Reach] = []
    for peer, address in peers:
        route = next((r for r in routes if address in r.split()[:2]), None) if address else None
        # The link's MTU, as the shell's DEVICE_MTU read it for the reach.
        device, source, _ = route_parts(route or "")
        mtu = mtus.get(device or "")
        if address is None:
            status = "unresolved"
        elif route is None:
            status = "noroute"
        elif address not in ended:
            status = "timeout"
        elif ended[address]:
            status = "open"
        else:
            message = errors.get(address, "")
            if "refused" in message:
                status = "refused"
            elif "No route" in message or "nreachable" in message:
                status = "unreachable"
            else:
                status = "closed"
        found.append(Reach(peer=peer, address=address, source=source, mtu=mtu, open=status == "open", status=status))
    return found


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


# The builder's slow sections, each mostly waiting on process starts of its
# own (a login shell and its profile, distcc and the compilers, a TCP
# connect to every worker, a mount namespace): on a CM4's four cores they
# run at once, beside the rest of the survey, instead of one after another.
# Workers' surveys are short and run in order.
AT_ONCE = ("pump", "login", "sent", "mount", "reach", "compilers", "ccache")  # slowest first
# What must be read before any of them starts (see HostSurvey.command).
SNAPSHOTS = ("processes", "listening", "memory_available")
DONE = "##survey-done"


class Section(NamedTuple):
    """One section of the survey: its mark's name, its command, what it
    reads (the comment above it in the readable survey, docs/survey-*.sh)
    and the shellcheck findings in its command that stand, and why."""

    name: str
    command: object
    reads: str
    notes: tuple[ShellNote, ...] = ()


class Part(StringCommand):
    """A piece of the survey command that the readable survey
    (survey_script) shows as a block of its own, under a one-line comment
    (none when empty), with its shellcheck notes."""

    def __init__(self, comment: str, *bits: object, notes: Iterable[ShellNote] = ()) -> None:
        super().__init__(*bits)
        self.comment = comment
        self.notes = tuple(notes)


def _at_once(sections: list[Section]) -> list[Part]:
    """Start each of these sections in the background, its output to a
    file of its own in a temporary directory (a shell function per section,
    so that _collect can run it again in the foreground). A section's file
    ends with DONE only if the section ran to its end and every line was
    written; without a directory (mktemp failed) nothing starts here. The
    directory goes when the survey ends, however it ends (a signal, or its
    ssh channel closed under it)."""
    names = [section.name for section in sections]
    # The traps first: a signal between mktemp and them would leave the directory.
    parts = [
        Part(
            "At once: the slow sections run in the background, output in $D, removed however the survey ends",
            "D=; trap '[ -z \"$D\" ] || rm -rf \"$D\"' EXIT; trap 'exit 1' HUP INT TERM PIPE;",
            "D=$(mktemp -d 2>/dev/null) || D=;",
        ),
    ]
    for section in sections:
        parts.append(Part(
            f"{section.name} (at once): {section.reads}",
            f"_survey_{section.name}() {{ (", _raw(section.command), ") 2>/dev/null; };", notes=section.notes,
        ))
    launches: list[object] = ['if [ -n "$D" ]; then']
    for name in names:
        launches.append(f"{{ _survey_{name}; echo '{DONE}'; }} >\"$D/{name}\" 2>/dev/null &")
    launches.append("fi;")
    comment = f"Start them: each file ends with a {DONE} line only if its section ran to its end"
    return [*parts, Part(comment, *launches)]


def _collect(names: list[str]) -> list[Part]:
    """After the foreground sections: wait, then print each background
    section under its mark, in order. One whose file is missing or has no
    DONE line (a full /tmp, say) is run again here, in the foreground, so
    its output is whole or as it would be without the background. The
    directory is removed on exit (see _at_once)."""
    return [Part(
        "Wait for them, print each under its mark, in order; one whose file is not whole runs again here",
        "wait; for s in", *names, "; do echo \"" + MARK + "$s\"; e=;",
        '[ -n "$D" ] && [ -f "$D/$s" ] && while IFS= read -r l; do [ "$l" = \'' + DONE + '\' ] && e=1; done <"$D/$s";',
        'if [ -n "$e" ]; then while IFS= read -r l; do [ "$l" = \'' + DONE + '\' ] || printf \'%s\\n\' "$l"; done <"$D/$s";',
        'else "_survey_$s"; fi; done;',
    )]


def _raw(command) -> object:
    return command if isinstance(command, StringCommand) else StringCommand(command)


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
    read."""
    # gcc's version and target come from the compilers section (the same
    # binary: sudo's and systemd's PATH are Debian's same list); which
    # package it comes from is asked of dpkg only where H-GCC FAILs
    # (facts.compiler.GccPackage, read by validation afterwards).
    # The snapshots come first: ps, the listeners and the free memory
    # must not see the survey's own later work (its compilers and
    # distcc runs, its login shell) as the host's.
    sections: list[Section] = [
        Section("processes", PS_COMMAND, "every process: pid, parent, user, age, name and arguments (ps)"),
        Section(
            "listening", DistccdListening().command(port),
            "the TCP sockets listening on distccd's port, with the owning process (ss)",
        ),
        Section("memory_available", MEMORY_AVAILABLE_COMMAND, "MemAvailable in /proc/meminfo, in bytes"),
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
    if tmpfs_path is not None:
        sections.append(Section(
            "mount", TmpfsMount().command(tmpfs_path),
            "the build tree's tmpfs: its mount, what it hides, fstab lines, memory, page size",
            TmpfsMount.shellcheck,
        ))
        sections.append(Section("tmpfs_space", _space_command(tmpfs_path), "free room on the tmpfs (statfs)"))
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
    if pump and build_user is not None and workers:
        sections.append(Section(
            "pump", PumpCompiles().command(build_user, [f"{w}:{port}" for w in workers]),
            "distcc_pump: a pump compile to each worker as the build user; was it pumped",
            PumpCompiles.shellcheck,
        ))
    if workers:
        sections.append(Section(
            "reach", _reach_command(list(workers), port),
            "each worker's address, route source and MTU, and a TCP connect to its distccd",
            REACH_SHELLCHECK,
        ))
    return sections


def survey_parts(
    names: list[str],
    builder_peer: str | None = None,
    port: int = 3632,
    k3s_units: list[str] = ("k3s", "k3s-server", "k3s-agent"),  # type: ignore[assignment]
    tmpfs_path: str | None = None,
    build_user: str | None = None,
    workers: list[str] = (),  # type: ignore[assignment]
    profile_script: str | None = None,
    sent_names: list[str] = (),  # type: ignore[assignment]
    cross_compilers: list[str] = (),  # type: ignore[assignment]
    log_dir: str | None = None,
    ccache: bool = False,
    pump: bool = False,
) -> list[Part]:
    """HostSurvey's command in its parts, in order: the prelude, then each
    section under its mark (the builder's slow ones started at once after
    the snapshots, and printed at the end)."""
    sections = survey_sections(
        names, builder_peer, port, tmpfs_path, build_user, workers, profile_script, sent_names, cross_compilers,
        log_dir, ccache, pump,
    )
    # distcc's unit and the k3s units that have a unit file in one
    # systemctl show (each start of systemctl costs more than most
    # sections), kept in $units for the units section and for
    # distccd_tmp's MainPID; $k unquoted: unit names are
    # [A-Za-z0-9@._-] (settings checks). Then every name that the names,
    # route and reach sections look up, each looked up once.
    parts = [
        Part(
            "Prelude: distcc's unit and the k3s units with a unit file, one systemctl show, into $units",
            units_with_files(k3s_units), "units=$(systemctl show", QuoteString(DISTCC_UNIT), "$k", UNIT_PROPERTIES,
            "2>/dev/null);", notes=UNIT_LIST_SHELLCHECK,
        ),
        Part(
            "Prelude: the IPv4 addresses of every name the sections look up, each looked up once, into $A",
            resolve_v4(list(dict.fromkeys([*names, *([builder_peer] if builder_peer else []), *workers]))),
            notes=RESOLVE_V4_SHELLCHECK,
        ),
        # The sections are the facts' own commands, written for a shell
        # where their variables start unset: only $units, $A and $nl stay.
        Part("The sections are the facts' own commands: only $units, $A and $nl stay set", "unset k u d n r w;"),
    ]
    present = {section.name for section in sections}
    # Only the builder's survey (its login and reach sections) is long.
    background = [name for name in AT_ONCE if name in present] if present & {"login", "reach"} else []
    for section in sections:
        if section.name in background:
            continue
        parts.append(Part(
            f"{section.name}: {section.reads}",
            f"echo '{MARK}{section.name}'; (", _raw(section.command), ") 2>/dev/null;", notes=section.notes,
        ))
        if section.name == SNAPSHOTS[-1] and background:
            by_name = {section.name: section for section in sections}
            parts += _at_once([by_name[name] for name in background])
    if background:
        parts += _collect(background)
    parts.append(Part("", "true"))
    return parts


def survey_script(arguments: dict, header: list[str]) -> str:
    """The survey command for these arguments as a script to read: the
    header's comment lines, then each part under its comment, laid out by
    facts._script.as_script (only spaces become line breaks), each
    shellcheck note before the command it is about."""
    lines = ["#!/bin/sh", *(f"# {line}".rstrip() for line in header)]
    for part in survey_parts(**arguments):
        lines += ["", f"# {part.comment}"] if part.comment else []
        lines += as_script(part.get_raw_value(), part.notes)
    return "\n".join(lines) + "\n"


class HostSurvey(ParsedFact[Survey]):
    """
    One host's whole state for validation, in one command. Every host gets its
    compiler identity, names, resources, k3s units, distcc unit, listeners,
    processes and whitelist; a worker its route to the builder (given
    builder_peer); the builder also its tmpfs, the build user's
    environment, distcc's slot count, and a TCP probe of every worker. The builder's slow sections (AT_ONCE) run at once, after
    the snapshots (SNAPSHOTS); the output is the same as in turn.
    docs/survey-builder.sh and docs/survey-worker.sh are the command laid
    out to be read (survey_script).

    .. code:: python

        {"identity": {"gcc_version": "12.2.0", ...},
         "names": {"fqdn": "worker1.distcc.internal", ...},
         "unit": {"active": "active", "sub": "running", ...},
         "listening": [{"address": "172.31.250.3", "port": 3632, ...}],
         "reach": [{"peer": "worker1.distcc.internal", "open": True, ...}]}
    """

    # Every argument by name, not **arguments: pyinfra binds a fact's
    # arguments to the parameters of its command (inspect.getcallargs), and
    # would pass **arguments as one argument named "arguments".
    def command(
        self,
        names: list[str],
        builder_peer: str | None = None,
        port: int = 3632,
        k3s_units: list[str] = ("k3s", "k3s-server", "k3s-agent"),  # type: ignore[assignment]
        tmpfs_path: str | None = None,
        build_user: str | None = None,
        workers: list[str] = (),  # type: ignore[assignment]
        profile_script: str | None = None,
        sent_names: list[str] = (),  # type: ignore[assignment]
        cross_compilers: list[str] = (),  # type: ignore[assignment]
        log_dir: str | None = None,
        ccache: bool = False,
        pump: bool = False,
    ) -> StringCommand:
        return StringCommand(*survey_parts(
            names, builder_peer, port, k3s_units, tmpfs_path, build_user, workers, profile_script, sent_names,
            cross_compilers, log_dir, ccache, pump,
        ))

    @staticmethod
    def section_names(k3s_units: list[str] = (), **arguments) -> list[str]:  # type: ignore[assignment]
        """The sections' marks the command prints for these arguments (the
        k3s units only change its prelude), as make bench checks them."""
        return [section.name for section in survey_sections(**arguments)]

    @staticmethod
    def parse(lines: list[str]) -> Survey:
        return parse_survey(lines)


_PARSERS = {
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


def parse_surveys(outputs: dict[str, list[str] | None]) -> dict[str, Survey | None]:
    """Each host's survey from its output lines; None for a host with none
    (not surveyed), as the captured fixtures hold them."""
    return {name: None if lines is None else parse_survey(lines) for name, lines in outputs.items()}


def parse_survey(lines: list[str]) -> Survey:
    chunks: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith(MARK):
            current = chunks.setdefault(line[len(MARK):].strip(), [])
        elif current is not None:
            current.append(line)
    survey: Survey = {}
    for name, chunk in chunks.items():
        if name in _PARSERS:
            survey[name] = _PARSERS[name](chunk)  # type: ignore[literal-required]
        elif name == "units":
            unit, k3s = _split_units(chunk)
            survey["unit"], survey["k3s"] = parse_unit_state(unit), parse_k3s_units(k3s)
    if "units" in chunks and "processes" in chunks:
        comms = [p["comm"] for p in parse_ps(chunks["processes"]).values()]
        survey["k3s"]["containerd_shims"], survey["k3s"]["k3s_processes"] = k3s_process_counts(comms)
    if "identity" in survey and "compilers" in survey and survey["identity"]["gcc_version"] is None:
        gcc = survey["compilers"]["identities"].get(survey["compilers"]["resolves"].get("gcc", ""))
        if gcc:
            survey["identity"].update(gcc_version=gcc["version"], gcc_machine=gcc["machine"])
    if "login" in survey:
        # `distcc -j` runs in the build user's login shell, with the rest of
        # what that shell gives (B-DRYRUN reads it here).
        survey["slots"] = survey["login"]["slots"]
    return survey
