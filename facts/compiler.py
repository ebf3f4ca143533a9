"""Facts about the host's C compiler: what distcc sends must be compiled by
an identical gcc on every worker, or objects are silently wrong."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote


class Identity(TypedDict):
    gcc_version: str | None
    gcc_machine: str | None
    dpkg_architecture: str | None
    # The running kernel's machine (uname -m): what kbuild builds for unless
    # told ARCH=; not what the node compiles for (see ARCH_COMMAND).
    kernel_machine: str | None


def parse_identity(lines: list[str]) -> Identity:
    values: dict[str, str | None] = {"version": None, "machine": None, "arch": None, "kernel": None}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key in values:
            values[key] = value.strip() or None
    return Identity(
        gcc_version=values["version"], gcc_machine=values["machine"], dpkg_architecture=values["arch"],
        kernel_machine=values["kernel"],
    )


# The userland's architecture, which is what matters for what a node
# compiles: a 32-bit Raspberry Pi OS on a CM4 runs a 64-bit kernel, so
# `uname -m` would mislead. The kernel's machine is read too, for the kernel
# build: kbuild takes ARCH from it (B-KERNEL-ARCH). gcc's version and target
# come from CompilerTargets (one -v run per driver).
ARCH_COMMAND = (
    'printf "arch %s\\n" "$(dpkg --print-architecture 2>/dev/null)"; printf "kernel %s\\n" "$(uname -m 2>/dev/null)"'
)


# A GCC driver's -v names its target and version on lines of their own:
# "Target: aarch64-linux-gnu" (what -dumpmachine prints) and "gcc version
# 12.2.0 (Debian 12.2.0-14)" (its first word what -dumpfullversion prints,
# for g++ too). Case arms of a `while read l` loop setting m and v: one start
# of the driver instead of two, each slow on a CM3+.
VERSION_LINES = (
    "'Target: '*) m=${l#Target: };; "
    "'gcc version '*) v=${l#gcc version }; v=${v%% *};;"
)


# What a kernel build invokes: the kernel's CC/HOSTCC and its scripts use
# these, and a cross build adds $(CROSS_COMPILE)gcc (distcc_cross_compilers).
INVOKED_NAMES = ("cc", "c++", "gcc", "g++")


class CompilerId(TypedDict):
    version: str | None
    machine: str | None


def _compiler_id(fields: list[str]) -> CompilerId:
    return CompilerId(version=None if fields[0] == "-" else fields[0], machine=None if fields[1] == "-" else fields[1])


class Sent(TypedDict):
    sent: dict[str, str | None]
    identities: dict[str, CompilerId]


def parse_sent(lines: list[str]) -> Sent:
    result = Sent(sent={}, identities={})
    for line in lines:
        fields = line.split()
        if fields[:1] == ["sent"] and len(fields) == 3:
            result["sent"][fields[1]] = None if fields[2] == "-" else fields[2]
        elif fields[:1] == ["identity"] and len(fields) == 4:
            result["identities"][fields[1]] = _compiler_id(fields[2:])
    return result


class CompilersSent(ParsedFact[Sent]):
    """
    The compiler name the distcc client here sends to a worker for each name
    a build invokes, as the client itself says it (its verbose log of a
    local run: distcc 3.4 rewrites gcc to <triple>-gcc on amd64, and
    rewrites nothing on ARM, where its triple names no compiler), and the
    version and target of each name sent, as this host's compiler reports
    (the version as printed when distcc runs it).

    .. code:: python

        {"sent": {"cc": "x86_64-linux-gnu-gcc", "gcc": "x86_64-linux-gnu-gcc", ...},
         "identities": {"x86_64-linux-gnu-gcc": {"version": "12.2.0", "machine": "x86_64-linux-gnu"}}}

    None where distcc cannot run that name. Nothing is left behind: distcc's
    state goes to a temporary directory that is removed.
    """

    def command(self, names: list[str] | tuple[str, ...] = INVOKED_NAMES) -> StringCommand:
        # `distcc NAME -v` runs locally (it is no compile), logs the same
        # rewritten name a compile would send, and that compiler's -v (its
        # version and target) goes to the same log: two process starts per
        # name (distcc and the driver), where -dumpfullversion and then
        # -dumpmachine for each name sent took a third.
        return StringCommand(
            "d=$(mktemp -d) || exit 0; u=' '; for n in", *(QuoteString(n) for n in names), "; do",
            'DISTCC_DIR="$d" DISTCC_HOSTS=localhost DISTCC_VERBOSE=1 distcc "$n" -v >/dev/null 2>"$d/log";',
            "s=; v=; m=; while IFS= read -r l; do case \"$l\" in *' exec on localhost: '*)",
            '[ -n "$s" ] || { s=${l#*exec on localhost: }; s=${s%% *}; };;',
            VERSION_LINES, "esac; done <\"$d/log\";",
            'printf "sent %s %s\\n" "$n" "${s:--}";',
            '[ -n "$s" ] || continue; case "$u" in *" $s "*) continue;; esac; u="$u$s ";',
            'printf "identity %s %s %s\\n" "$s" "${v:--}" "${m:--}";',
            'done; rm -rf "$d"',
        )

    parse = staticmethod(parse_sent)


class Targets(TypedDict):
    resolves: dict[str, str]
    identities: dict[str, CompilerId]


def parse_targets(lines: list[str]) -> Targets:
    result = Targets(resolves={}, identities={})
    names: list[str] = []
    paths: list[str] = []
    for line in lines:
        fields = line.split()
        if fields[:1] == ["names"]:
            names = fields[1:]
        elif fields[:1] == ["path"] and len(fields) == 2:
            paths.append(fields[1])
        elif fields[:1] == ["identity"] and len(fields) == 4:
            result["identities"][fields[1]] = _compiler_id(fields[2:])
    if len(names) == len(paths):
        result["resolves"] = dict(zip(names, paths, strict=True))
    return result


# The GCC drivers distccd may run: plain, versioned and triplet names.
_DRIVER_NAMES = r"^((cc|c\+\+)|([a-z0-9_]+-linux-gnu[a-z]*-)?(gcc|g\+\+)(-[0-9]+)?)$"


class CompilerTargets(ParsedFact[Targets]):
    """
    Every GCC driver name in /usr/local/bin and /usr/bin, the binary distccd
    runs for a job that names it, and each binary's version and target.

    .. code:: python

        {"resolves": {"gcc": "/usr/bin/x86_64-linux-gnu-gcc-12", ...},
         "identities": {"/usr/bin/x86_64-linux-gnu-gcc-12": {"version": "12.2.0", "machine": "x86_64-linux-gnu"}}}
    """

    # distccd runs a job's compiler by name through its PATH, systemd's
    # default one, where /usr/local/bin comes before /usr/bin.
    # One find for the names (each once, though both directories may have
    # it), one readlink for every name's binary, then one -v run of each
    # distinct binary; the rest is the shell's own work (this used to start
    # ten processes more, and a second run per binary, each costly on a CM3+).
    command = (
        "n=$(find /usr/local/bin /usr/bin -maxdepth 1 -regextype posix-extended"
        f" -regex '.*/{_DRIVER_NAMES[1:-1]}' -printf '%f ' 2>/dev/null); "
        "u=' '; for c in $n; do case \"$u\" in *\" $c \"*) ;; *) u=\"$u$c \";; esac; done; n=$u; [ -n \"${n# }\" ] || exit 0; "
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; echo names $n; "
        "p=$(readlink -f $(for c in $n; do command -v \"$c\"; done)); printf 'path %s\\n' $p; u=' '; "
        'for t in $p; do case "$u" in *" $t "*) continue;; esac; u="$u$t "; '
        '"$t" -v 2>&1 </dev/null | { v=; m=; while IFS= read -r l; do case "$l" in '
        + VERSION_LINES
        + ' esac; done; printf "identity %s %s %s\\n" "$t" "${v:--}" "${m:--}"; }; done'
    )
    # What shellcheck says of the command that stands (the readable survey,
    # docs/survey-*.sh, puts each before its line): the names and paths are
    # split into words on purpose, and none holds a space.
    shellcheck = (
        ShellNote("SC2086", r"echo names \$n", "driver names ([a-z0-9_+-]), one word each; echo joins them"),
        ShellNote("SC2046", r"readlink -f \$\(", "command -v's paths, one word each: none has a space"),
        ShellNote("SC2086", r"printf 'path %s\\n' \$p", "readlink's paths, one a line: none has a space"),
    )

    parse = staticmethod(parse_targets)


# "release CODENAME" and "release_name PRETTY NAME" from /etc/os-release,
# read by the shell itself: no process for it.
OS_RELEASE_LINES = (
    "while IFS='=' read -r k v; do case \"$k\" in VERSION_CODENAME) printf 'release %s\\n' \"$v\";;"
    " PRETTY_NAME) printf 'release_name %s\\n' \"$v\";; esac; done 2>/dev/null < /etc/os-release"
)


def parse_os_release(lines: list[str]) -> dict[str, str | None]:
    """{"release": CODENAME, "release_name": PRETTY NAME} from OS_RELEASE_LINES' lines."""
    found: dict[str, str | None] = {"release": None, "release_name": None}
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key in found:
            found[key] = value.strip().strip("\"'") or None
    return found


class OsRelease(ParsedFact[dict]):
    """
    The Debian release a host runs, from /etc/os-release: what decides
    whether its packages can do something (distcc-pump's include server
    works from trixie on).

    .. code:: python

        {"release": "trixie", "release_name": "Debian GNU/Linux 13 (trixie)"}
    """

    command = OS_RELEASE_LINES + "; true"

    @staticmethod
    def parse(lines: list[str]) -> dict:
        return parse_os_release(lines)


class GccPackageInfo(TypedDict):
    path: str | None
    binary: str | None
    package: str | None
    version: str | None
    release: str | None
    release_name: str | None


class GccPackage(ParsedFact[GccPackageInfo]):
    """
    Which Debian package the gcc on PATH comes from, and its version, and
    which OS release the host runs (/etc/os-release's VERSION_CODENAME and
    PRETTY_NAME): a compiler mismatch is fixed by installing the builder's
    package version, and a release mismatch (each Debian release has its own
    gcc) by running one release on every node, so H-GCC's FAIL names both.
    Validation reads it only from the hosts whose gcc differs from the
    builder's, and from the builder, after the surveys: it starts three
    processes (readlink, grep, dpkg-query), slow on a CM3+, that a cluster
    whose compilers agree never needs.

    .. code:: python

        {"path": "/usr/bin/gcc", "binary": "/usr/bin/x86_64-linux-gnu-gcc-14",
         "package": "gcc-14", "version": "14.2.0-19",
         "release": "trixie", "release_name": "Debian GNU/Linux 13 (trixie)"}
    """

    command = (
        OS_RELEASE_LINES + ";"
        " g=$(command -v gcc); printf 'path %s\\n' \"$g\"; [ -n \"$g\" ] || exit 0;"
        " b=$(readlink -f \"$g\"); printf 'binary %s\\n' \"$b\";"
        # dpkg's own file lists, the gcc* packages' first (a GCC driver comes
        # from gcc-N or gcc-N-<triplet>): one grep of a few files instead of
        # dpkg -S, which reads every package's list; dpkg -S when none has it.
        " k=$(grep -lxF \"$b\" /var/lib/dpkg/info/gcc*.list 2>/dev/null) && { k=${k%%.list*}; k=${k##*/}; k=${k%%:*}; }"
        " || k=$(dpkg -S \"$b\" 2>/dev/null | head -n 1 | cut -d: -f1); printf 'package %s\\n' \"$k\";"
        " [ -n \"$k\" ] && printf 'version %s\\n' \"$(dpkg-query -W -f '${Version}' \"$k\" 2>/dev/null)\"; true"
    )

    @staticmethod
    def parse(lines: list[str]) -> GccPackageInfo:
        return parse_gcc_package(lines)


def parse_gcc_package(lines: list[str]) -> GccPackageInfo:
    """GccPackage's lines; release and release_name are None in a capture
    made before the fact read them, and when /etc/os-release says nothing."""
    keys = ("path", "binary", "package", "version", "release", "release_name")
    found: dict[str, str | None] = dict.fromkeys(keys)
    for line in lines:
        key, _, value = line.strip().partition(" ")
        if key in found:
            # os-release may quote its values.
            found[key] = value.strip().strip("\"'") or None
    return GccPackageInfo(**{k: found[k] for k in keys})  # type: ignore[typeddict-item]
