"""Everything validation reads from one host, in one remote command.

pyinfra 3 runs one round trip per fact and caches nothing, and a CM3+ is slow
to start processes: so validation sends one script made of the other facts'
own commands, each in a marked section, and parses each section with that
fact's own parser. Nothing here changes the host.
"""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._shell import assign
from facts.compiler import (
    CompilerIdentity,
    CompilersSent,
    CompilerTargets,
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
)
from facts.host import HostNames, HostResources, Names, Resources, parse_names, parse_resources
from facts.mounts import MountPointStatus, TmpfsMount, parse_mount_point
from facts.network import PeerRoute, Route, parse_route
from facts.systemd import K3sUnits, UnitsPresent, UnitState, UnitStatus, parse_k3s_units, parse_unit_state
from facts.users import LoginEnv, LoginEnvironment, parse_login_environment

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


class GccPackage(TypedDict):
    path: str | None
    binary: str | None
    package: str | None
    version: str | None


class Space(TypedDict):
    """Free room on one filesystem, from df -P: None where df gives no number."""

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
    gcc_package: GccPackage
    profile: BuildProfile
    memory_available: int | None
    tmpfs_space: Space
    distccd_tmp: DistccdTmp
    compilers: Targets
    sent: Sent


def _reach_command(peers: list[str], port: int) -> StringCommand:
    """From this host: each peer's address, the route's source and MTU, and
    what a TCP connection to peer:port gives (bash's /dev/tcp, 3 s): a
    timeout means a firewall drops it, a refusal that nothing listens."""
    bits: list[object] = ["for n in"] + [QuoteString(p) for p in peers]
    bits += [
        "; do a=$(getent ahostsv4 \"$n\" 2>/dev/null | awk 'NR == 1 {print $1}');",
        "r=''; [ -n \"$a\" ] && r=$(ip -o route get \"$a\" 2>/dev/null | head -n 1);",
        "d=$(printf '%s\\n' \"$r\" | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p');",
        "s=$(printf '%s\\n' \"$r\" | sed -n 's/.* src \\([^ ]*\\).*/\\1/p');",
        "m=''; [ -n \"$d\" ] && m=$(cat /sys/class/net/$d/mtu 2>/dev/null);",
        "if [ -z \"$a\" ]; then o=unresolved; elif [ -z \"$r\" ]; then o=noroute; else",
        f"e=$(timeout 3 bash -c \"</dev/tcp/$a/{int(port)}\" 2>&1); c=$?;",
        "if [ $c = 0 ]; then o=open; elif [ $c = 124 ]; then o=timeout; else case \"$e\" in",
        "*refused*) o=refused;; *'No route'*|*nreachable*) o=unreachable;; *) o=closed;; esac; fi; fi;",
        "printf 'reach %s %s %s %s %s\\n' \"$n\" \"${a:--}\" \"${s:--}\" \"${m:--}\" \"$o\"; done",
    ]
    return StringCommand(*bits)


def parse_reach(lines: list[str]) -> list[Reach]:
    found: list[Reach] = []
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[0] == "reach":
            found.append(
                Reach(
                    peer=fields[1],
                    address=None if fields[2] == "-" else fields[2],
                    source=None if fields[3] == "-" else fields[3],
                    mtu=int(fields[4]) if fields[4].isdigit() else None,
                    open=fields[5] == "open",
                    status=fields[5],
                )
            )
    return found


def _slots_command(user: str) -> StringCommand:
    # `distcc -j` parses the host list and sums the slots without contacting
    # anyone: distcc's closest thing to a dry run.
    return StringCommand(
        "runuser -l", QuoteString(user), "-c 'command -v distcc >/dev/null && distcc -j' </dev/null 2>/dev/null; true"
    )


# Which package the gcc on PATH comes from: a compiler mismatch is fixed by
# installing the builder's package version, so the message must name it.
GCC_PACKAGE_COMMAND = (
    "g=$(command -v gcc); printf 'path %s\\n' \"$g\"; [ -n \"$g\" ] || exit 0;"
    " b=$(readlink -f \"$g\"); printf 'binary %s\\n' \"$b\";"
    " k=$(dpkg -S \"$b\" 2>/dev/null | head -n 1 | cut -d: -f1); printf 'package %s\\n' \"$k\";"
    " [ -n \"$k\" ] && printf 'version %s\\n' \"$(dpkg-query -W -f '${Version}' \"$k\" 2>/dev/null)\"; true"
)


def parse_gcc_package(lines: list[str]) -> GccPackage:
    found: dict[str, str | None] = {"path": None, "binary": None, "package": None, "version": None}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key in found:
            found[key] = value.strip() or None
    return GccPackage(path=found["path"], binary=found["binary"], package=found["package"], version=found["version"])


MEMORY_AVAILABLE_COMMAND = "awk '/^MemAvailable:/ {printf \"%.0f\\n\", $2 * 1024}' /proc/meminfo"


def _df_command(path: str) -> StringCommand:
    return StringCommand(
        "df -Pk", QuoteString(path), "| tail -n 1 | sed 's/^/space /';",
        "df -Pi", QuoteString(path), "| tail -n 1 | sed 's/^/inodes /'",
    )


# Where distccd writes its temporary files: /tmp as distccd sees it, in its
# unit's own mount namespace (TemporaryFileSystem=/tmp or PrivateTmp= give it
# a /tmp of its own), read through /proc/PID/root, the kernel's view of that
# process's root in its namespace; the host's /tmp while distccd does not run.
# statfs(2) on that path measures the filesystem the path reaches. Neither df
# (it looks the path up in this namespace's mount table and then measures the
# host's /tmp instead) nor nsenter (qemu-user, the emulated ARM lab, is
# multi-threaded, so setns into a mount namespace fails) can be used.
DISTCCD_TMP_COMMAND = StringCommand(
    "p=$(systemctl show distcc.service -p MainPID --value 2>/dev/null);",
    'if [ "${p:-0}" -gt 0 ] 2>/dev/null && [ -d "/proc/$p/root/tmp" ]; then echo "where distccd"; t="/proc/$p/root/tmp";',
    "else echo 'where host'; t=/tmp; fi;",
    "stat -f -c 'statfs %S %b %a %c %d' \"$t\"",
)


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_space(lines: list[str]) -> Space:
    space = Space(total_bytes=None, free_bytes=None, total_inodes=None, free_inodes=None)
    for line in lines:
        fields = line.split()
        # stat -f: block size, blocks, blocks available to users, inodes, free inodes
        if len(fields) == 6 and fields[0] == "statfs" and all(f.isdigit() for f in fields[1:]):
            size, blocks, available, inodes, free_inodes = (int(f) for f in fields[1:])
            space.update(total_bytes=size * blocks, free_bytes=size * available, total_inodes=inodes,
                         free_inodes=free_inodes)
        # df -P: filesystem, size, used, available, capacity, mounted on
        elif len(fields) >= 7 and fields[0] == "space":
            total, free = _number(fields[2]), _number(fields[4])
            space["total_bytes"] = None if total is None else total * 1024
            space["free_bytes"] = None if free is None else free * 1024
        elif len(fields) >= 7 and fields[0] == "inodes":
            space["total_inodes"], space["free_inodes"] = _number(fields[2]), _number(fields[4])
    return space


def parse_distccd_tmp(lines: list[str]) -> DistccdTmp:
    where = next((line.split()[1] for line in lines if line.startswith("where ") and len(line.split()) == 2), "host")
    return DistccdTmp(where=where, space=parse_space(lines))


def parse_memory_available(lines: list[str]) -> int | None:
    text = " ".join(lines).strip()
    return int(text) if text.isdigit() else None


def _profile_command(path: str) -> StringCommand:
    return StringCommand(
        assign("p", path), "; [ -f \"$p\" ] && echo present && grep -q /usr/lib/distcc \"$p\" && echo sets-path; true"
    )


def parse_profile(lines: list[str]) -> BuildProfile:
    words = {line.strip() for line in lines}
    return BuildProfile(present="present" in words, sets_path="sets-path" in words)


def _raw(command) -> object:
    return command if isinstance(command, StringCommand) else StringCommand(command)


class HostSurvey(ParsedFact[Survey]):
    """
    One host's whole state for validation, in one command. Every host gets its
    compiler identity, names, resources, route to the builder, k3s units,
    distcc unit, listeners, processes and whitelist; the builder also its
    tmpfs, the build user's environment, distcc's slot count, and a TCP probe
    of every worker.

    .. code:: python

        {"identity": {"gcc_version": "12.2.0", ...},
         "names": {"fqdn": "worker1.distcc.internal", ...},
         "unit": {"active": "active", "sub": "running", ...},
         "listening": [{"address": "172.31.250.3", "port": 3632, ...}],
         "reach": [{"peer": "worker1.distcc.internal", "open": True, ...}]}
    """

    def command(
        self,
        builder_peer: str,
        names: list[str],
        port: int = 3632,
        k3s_units: list[str] = ("k3s", "k3s-server", "k3s-agent"),  # type: ignore[assignment]
        tmpfs_path: str | None = None,
        build_user: str | None = None,
        workers: list[str] = (),  # type: ignore[assignment]
        profile_script: str | None = None,
        sent_names: list[str] = (),  # type: ignore[assignment]
        cross_compilers: list[str] = (),  # type: ignore[assignment]
    ) -> StringCommand:
        sections: list[tuple[str, object]] = [
            ("identity", CompilerIdentity.command),
            ("names", HostNames().command(list(names))),
            ("resources", HostResources.command),
            ("builder_route", PeerRoute().command(builder_peer)),
            ("k3s", K3sUnits().command(list(k3s_units))),
            ("unit", UnitState().command("distcc.service")),
            ("listening", DistccdListening().command(port)),
            ("processes", PS_COMMAND),
            ("masquerade", MASQUERADE_COMMAND),
            ("gcc_package", GCC_PACKAGE_COMMAND),
            ("memory_available", MEMORY_AVAILABLE_COMMAND),
            ("distccd_tmp", DISTCCD_TMP_COMMAND),
            ("compilers", CompilerTargets.command),
        ]
        if tmpfs_path is not None:
            sections.append(("mount", TmpfsMount().command(tmpfs_path)))
            sections.append(("tmpfs_space", _df_command(tmpfs_path)))
        if build_user is not None:
            sections.append(("login", LoginEnvironment().command(build_user, list(cross_compilers))))
            sections.append(("slots", _slots_command(build_user)))
        if profile_script is not None:
            sections.append(("profile", _profile_command(profile_script)))
        if sent_names:
            sections.append(("sent", CompilersSent().command(list(sent_names))))
        if workers:
            sections.append(("reach", _reach_command(list(workers), port)))
        bits: list[object] = []
        for name, command in sections:
            bits += [f"echo '{MARK}{name}'; (", _raw(command), ") 2>/dev/null;"]
        bits.append("true")
        return StringCommand(*bits)

    @staticmethod
    def parse(lines: list[str]) -> Survey:
        return parse_survey(lines)


_PARSERS = {
    "identity": parse_identity,
    "names": parse_names,
    "resources": parse_resources,
    "builder_route": parse_route,
    "k3s": parse_k3s_units,
    "unit": parse_unit_state,
    "listening": parse_listening,
    "masquerade": parse_masquerade,
    "mount": parse_mount_point,
    "login": parse_login_environment,
    "reach": parse_reach,
    "processes": parse_compiler_processes,
    "gcc_package": parse_gcc_package,
    "profile": parse_profile,
    "memory_available": parse_memory_available,
    "tmpfs_space": parse_space,
    "distccd_tmp": parse_distccd_tmp,
    "compilers": parse_targets,
    "sent": parse_sent,
}


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
        elif name == "slots":
            text = " ".join(chunk).strip()
            survey["slots"] = int(text) if text.isdigit() else None
    return survey
