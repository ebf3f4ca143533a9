"""Everything validation reads from one host, in one remote command.

pyinfra 3 runs one round trip per fact and caches nothing, and a CM3+ is slow
to start processes: so validation sends one script made of the other facts'
own commands, each in a marked section, and parses each section with that
fact's own parser. Nothing here changes the host. The sections, what each
reads and its parser, are facts/survey_sections.py; here they become one
command (a prelude, the sections under their marks, the builder's slow ones
at once) and its output one Survey.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote, as_script
from facts.ccache import CcacheSetup
from facts.compiler import GccPackageInfo, Identity, Sent, Targets
from facts.distcc import CompilerProcesses, ListeningSocket, Masquerade, parse_ps
from facts.host import RESOLVE_V4_SHELLCHECK, Names, Resources, resolve_v4
from facts.mounts import MountPointStatus
from facts.network import Reach, Route
from facts.pump import PumpProbe
from facts.survey_sections import (
    DISTCC_UNIT,
    PARSERS,
    BuildProfile,
    DistccdTmp,
    Section,
    Space,
    parse_units,
    survey_sections,
)
from facts.systemd import (
    UNIT_LIST_SHELLCHECK,
    UNIT_PROPERTIES,
    UnitsPresent,
    UnitStatus,
    k3s_process_counts,
    units_with_files,
)
from facts.users import Denied, LoginEnv

MARK = "##survey "


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


# The builder's slow sections, each mostly waiting on process starts of its
# own (a login shell and its profile, distcc and the compilers, a TCP
# connect to every worker, a mount namespace): on a CM4's four cores they
# run at once, beside the rest of the survey, instead of one after another.
# Workers' surveys are short and run in order.
AT_ONCE = ("pump", "login", "sent", "mount", "reach", "compilers", "ccache")  # slowest first
# What must be read before any of them starts (see HostSurvey.command).
SNAPSHOTS = ("processes", "listening", "memory_available")
DONE = "##survey-done"


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
        if name in PARSERS:
            survey[name] = PARSERS[name](chunk)  # type: ignore[literal-required]
        elif name == "units":
            survey["unit"], survey["k3s"] = parse_units(chunk)
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
