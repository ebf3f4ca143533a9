"""Everything validation reads from one host, in one remote command.

pyinfra 3 runs one round trip per fact and caches nothing, and a CM3+ is slow
to start processes: so validation sends one script made of the other facts'
own commands, each in a marked section, and parses each section with that
fact's own parser. Nothing here changes the host.
"""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import FactBase, QuoteString, StringCommand

from facts.compiler import CompilerIdentity, Identity, parse_identity
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
from facts.mounts import MountPoint, MountPointStatus, parse_mount_point
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


def _reach_command(peers: list[str], port: int) -> StringCommand:
    """From this host: each peer's address, the route's source and MTU, and
    whether a TCP connection to peer:port opens (bash's /dev/tcp, 3 s)."""
    bits: list[object] = ["for n in"] + [QuoteString(p) for p in peers]
    bits += [
        "; do a=$(getent ahostsv4 \"$n\" 2>/dev/null | awk 'NR == 1 {print $1}');",
        "r=$(ip -o route get \"$a\" 2>/dev/null | head -n 1);",
        "d=$(printf '%s\\n' \"$r\" | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p');",
        "s=$(printf '%s\\n' \"$r\" | sed -n 's/.* src \\([^ ]*\\).*/\\1/p');",
        "m=$(cat /sys/class/net/$d/mtu 2>/dev/null);",
        f"if [ -n \"$a\" ] && timeout 3 bash -c \"</dev/tcp/$a/{int(port)}\" 2>/dev/null; then o=open; else o=closed; fi;",
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
                )
            )
    return found


def _slots_command(user: str) -> StringCommand:
    # `distcc -j` parses the host list and sums the slots without contacting
    # anyone: distcc's closest thing to a dry run.
    return StringCommand(
        "runuser -l", QuoteString(user), "-c 'command -v distcc >/dev/null && distcc -j' </dev/null 2>/dev/null; true"
    )


def _raw(command) -> object:
    return command if isinstance(command, StringCommand) else StringCommand(command)


class HostSurvey(FactBase[Survey]):
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
        ]
        if tmpfs_path is not None:
            sections.append(("mount", MountPoint().command(tmpfs_path)))
        if build_user is not None:
            sections.append(("login", LoginEnvironment().command(build_user)))
            sections.append(("slots", _slots_command(build_user)))
        if workers:
            sections.append(("reach", _reach_command(list(workers), port)))
        bits: list[object] = []
        for name, command in sections:
            bits += [f"echo '{MARK}{name}'; (", _raw(command), ") 2>/dev/null;"]
        bits.append("true")
        return StringCommand(*bits)

    def process(self, output: list[str]) -> Survey:
        return parse_survey(output)


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
