"""Facts about the build user: the environment a login shell gives them,
which is what `make` on the builder will see."""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
from facts._shell import assign


class Override(TypedDict):
    file: str
    line: int
    text: str


class Denied(TypedDict):
    """A path the build user cannot use as distcc or the login shell needs."""

    access: str  # read, write, search
    path: str
    owner: str
    mode: str


class LoginEnv(TypedDict):
    user: str
    exists: bool
    home: str | None
    path: list[str]
    build_env: dict[str, str]
    distcc_hosts: list[str] | None
    compilers: dict[str, str | None]
    overrides: list[Override]
    # `distcc -j` there: the slots distcc counts from that host list without
    # contacting anyone (None when distcc is missing or says nothing).
    slots: int | None
    denied: list[Denied]


# What a kernel build invokes by these names (the kernel's CC, HOSTCC, and
# scripts' cc/c++): each must run the masquerade, or it compiles locally. A
# cross build adds $(CROSS_COMPILE)gcc (the setting distcc_cross_compilers).
COMPILER_NAMES = ("cc", "c++", "gcc", "g++")
# Variables that, set in a shell file, take the build away from the farm's
# host list (DISTCC_HOSTS, DISTCC_DIR) or the masquerade (CC, CXX).
OVERRIDDEN = ("DISTCC_HOSTS", "DISTCC_DIR", "CC", "CXX")
# Watched as well when the farm sets them (distcc_ccache, distcc_pump): a
# user's line that sets one overrides the profile script's.
CCACHE_OVERRIDDEN = ("CCACHE_[A-Z_]+",)
PUMP_OVERRIDDEN = ("DISTCC_PUMP_HOSTS",)
_COMMAND_NAME = re.compile(r"^[A-Za-z0-9_+][A-Za-z0-9_.+-]*$")


def parse_denied(lines: list[str]) -> list[Denied]:
    """"denied ACCESS PATH OWNER MODE" lines, as a user's own test of a path printed them."""
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) == 5 and fields[0] == "denied":
            found.append(Denied(access=fields[1], path=fields[2], owner=fields[3], mode=fields[4]))
    return found


def parse_login_environment(lines: list[str], user: str = "") -> LoginEnv:
    env = LoginEnv(
        user=user, exists=False, home=None, path=[], build_env={}, distcc_hosts=None, compilers={}, overrides=[],
        slots=None, denied=[],
    )
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "user":
            env["user"] = rest
        elif kind == "exists":
            env["exists"] = True
        elif kind == "HOME":
            env["home"] = rest.strip() or None
        elif kind == "PATH":
            env["path"] = [p for p in rest.strip().split(":") if p]
        elif kind == "env":
            key, _, value = rest.partition("=")
            env["build_env"][key] = value
        elif kind == "hosts":
            env["distcc_hosts"] = []
        elif kind == "slots":
            env["slots"] = int(rest) if rest.strip().isdigit() else None
        elif kind == "host" and env["distcc_hosts"] is not None:
            env["distcc_hosts"].append(rest.strip())
        elif kind == "resolve":
            name, _, found = rest.partition(" ")
            env["compilers"][name] = found.strip() or None
        elif kind == "denied":
            env["denied"] += parse_denied([line])
        elif kind == "setby":
            path, _, numbered = rest.partition(":")
            number, _, text = numbered.partition(":")
            if number.isdigit():
                env["overrides"].append(Override(file=path, line=int(number), text=text.strip()))
    return env


class LoginEnvironment(ParsedFact[LoginEnv]):
    """
    The build user's login-shell PATH, DISTCC_*, CC and CXX variables, what
    each compiler name (cc, c++, gcc, g++, and the cross compilers asked
    for) resolves to there, the host list
    `distcc --show-hosts` resolves for them (None when distcc is missing), the
    slots `distcc -j` counts from it, and the lines of the shell files that set DISTCC_HOSTS, DISTCC_DIR, CC or CXX
    (and the `watched` names: CCACHE_* with distcc_ccache, DISTCC_PUMP_HOSTS
    with distcc_pump).

    .. code:: python

        {"user": "pi", "exists": True, "home": "/home/pi",
         "path": ["/home/pi/.local/bin", "/usr/lib/distcc", "/usr/bin", "/bin"],
         "build_env": {"DISTCC_FALLBACK": "1"},
         "distcc_hosts": ["worker1.distcc.internal:3632/4"],
         "compilers": {"cc": "/usr/lib/distcc/cc", "gcc": "/usr/lib/distcc/gcc", ...},
         "overrides": [{"file": "/home/pi/.bashrc", "line": 3, "text": "export CC=clang"}],
         "slots": 8}

    Needs root (use _sudo) to enter the user's login shell.
    """

    # What shellcheck says of the command that stands (the readable survey,
    # docs/survey-*.sh, puts it before the runuser line).
    shellcheck = (
        ShellNote("SC2016", r"runuser -l \"\$u\" -c '", "for the build user's login shell: $HOME and $PATH are theirs"),
    )

    def command(
        self, user: str, cross_compilers: list[str] | tuple[str, ...] = (), watched: tuple[str, ...] = (),
    ) -> StringCommand:
        names = [*COMPILER_NAMES, *(n for n in cross_compilers if n not in COMPILER_NAMES)]
        # The names go inside the single-quoted script runuser runs: only
        # plain command names (what settings accept) may be put there.
        unsafe = [n for n in names if not _COMMAND_NAME.match(n)]
        if unsafe:
            raise ValueError(f"not a compiler command name: {', '.join(unsafe)}")
        # One login shell for all of it (it runs every profile script), and
        # shell loops in place of grep, sed and cut wherever they do: a CM3+
        # pays for every process start.
        return StringCommand(
            assign("u", user), ";",
            'printf "user %s\\n" "$u";',
            'h=$(getent passwd "$u"); if [ -n "$h" ]; then echo exists;',
            'runuser -l "$u" -c \'printf "HOME %s\\nPATH %s\\n" "$HOME" "$PATH";',
            'env | while IFS= read -r l; do case "$l" in DISTCC_*|CC=*|CXX=*) printf "env %s\\n" "$l";; esac; done;',
            f'for c in {" ".join(names)}; do printf "resolve %s %s\\n" "$c" "$(command -v "$c")"; done;',
            'if command -v distcc >/dev/null 2>&1; then echo hosts;',
            'distcc --show-hosts 2>/dev/null | while IFS= read -r l; do printf "host %s\\n" "$l"; done;',
            'printf "slots %s\\n" "$(distcc -j 2>/dev/null)"; fi;',
            # What distcc and the login shell need, tried as the user: a file
            # they cannot read or a directory they cannot write is skipped
            # in silence (distcc falls back to /etc/distcc/hosts or
            # localhost, a login shell to the PATH it had), so its owner and
            # mode are named.
            'd=${DISTCC_DIR:-$HOME/.distcc};',
            'for f in "$d/hosts" /etc/profile.d/*.sh; do [ -e "$f" ] && ! [ -r "$f" ] &&',
            'printf "denied read %s %s\\n" "$f" "$(stat -c "%U %a" "$f")"; done;',
            'for f in "$d" "$d/lock" "$d/state" ${DISTCC_LOG:+"$DISTCC_LOG"}; do [ -e "$f" ] && ! [ -w "$f" ] &&',
            'printf "denied write %s %s\\n" "$f" "$(stat -c "%U %a" "$f")"; done;',
            'm=/usr/lib/distcc; [ -d $m ] && ! [ -x $m ] && printf "denied search %s %s\\n" $m "$(stat -c "%U %a" $m)";',
            "true'",
            "</dev/null 2>/dev/null;",
            'h=${h#*:*:*:*:*:}; h=${h%%:*}; set --;',
            'for f in /etc/environment /etc/profile /etc/profile.d/*.sh /etc/bash.bashrc',
            '"$h/.profile" "$h/.bash_profile" "$h/.bash_login" "$h/.bashrc"; do [ -f "$f" ] && set -- "$@" "$f"; done;',
            '[ $# -gt 0 ] && grep -HnE',
            f"'^[[:space:]]*(export[[:space:]]+)?({'|'.join((*OVERRIDDEN, *watched))})='",
            '"$@" | while IFS= read -r l; do printf "setby %s\\n" "$l"; done; fi; true',
        )

    parse = staticmethod(parse_login_environment)
