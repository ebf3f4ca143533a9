"""Facts about the host itself: its names and how it resolves its peers, and
the resources that size distccd's jobs and the builder's tmpfs."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote


def meminfo_line(key: str, prefix: str = "") -> str:
    """PREFIX and one /proc/meminfo value in bytes, read by the shell itself
    (dash's arithmetic is 64-bit on armhf too): no awk to start."""
    return (
        f"while read -r k v _; do [ \"$k\" = {key}: ] && printf '{prefix}%s\\n' $((v * 1024)) && break; done"
        " </proc/meminfo; true"
    )


class Names(TypedDict):
    hostname: str
    fqdn: str | None
    resolves: dict[str, list[str]]


def parse_names(lines: list[str]) -> Names:
    names = Names(hostname="", fqdn=None, resolves={})
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "hostname":
            names["hostname"] = rest.strip()
        elif kind == "fqdn":
            names["fqdn"] = rest.strip() or None
        elif kind == "resolves":
            name, _, addresses = rest.partition(" ")
            names["resolves"][name] = sorted(set(addresses.split()))
    return names


# The shell's newline in $nl (a command substitution drops trailing ones).
NEWLINE = "nl=$(printf '\\n_'); nl=${nl%_};"

# What shellcheck says of resolve_v4 and names_lines that stands (the
# readable survey, docs/survey-*.sh, puts each before its command): a loop
# over the names given is one name long in a worker's survey.
ONE_NAME = ShellNote("SC2043", r"for n in \S+ ; do", "one name here; the loop takes as many names as it is given")
RESOLVE_V4_SHELLCHECK = (ShellNote("SC2086", r"set -- \$l;", "getent's line, split into its fields"), ONE_NAME)
NAMES_LINES_SHELLCHECK = (ONE_NAME,)


def resolve_v4(names: list[str] | tuple[str, ...]) -> StringCommand:
    """$A: each name's distinct IPv4 addresses in getent's order, a line
    "NAME ADDRESS ... " per name (just "NAME " when it does not resolve),
    each after a newline; read back with ADDRESSES_OF. The names are looked
    up once, however many sections want them: the survey's names, route and
    reach sections all read the builder's or the workers' addresses, and a
    CM3+ pays for every process start. getent's other words are socket
    types and the canonical name.

    Several names (the builder's survey: every worker's) go to one getent:
    it prints each name's addresses in the order given, the first line of
    each with the canonical name, and nothing for a name that does not
    resolve. So when it prints as many canonical names as it was given
    names, the blocks are the names' in turn; when not (a name missing, or
    a canonical name that looks like an address), they are looked up
    again, one getent a name."""
    quoted = [QuoteString(n) for n in names]
    one_each: list[object] = ["A=; for n in", *quoted]
    one_each += [
        "; do r=' '; for w in $(getent ahostsv4 \"$n\" 2>/dev/null); do",
        "case \"$w\" in *[!0-9.]*) ;; *) case \"$r\" in *\" $w \"*) ;; *) r=\"$r$w \";; esac;; esac; done;",
        'A="$A$nl$n$r"; done;',
    ]
    if len(names) < 2:
        return StringCommand(NEWLINE, *one_each)
    bits: list[object] = [NEWLINE, "G=$(getent ahostsv4", *quoted, "2>/dev/null); B=; c=0; o=$IFS; IFS=$nl;"]
    bits += [
        # getent's lines "ADDRESS TYPE [CANONICAL]": a line with a canonical
        # name starts the next name's block in $B ("\n ADDRESS ... ").
        'for l in $G; do IFS=$o; set -- $l; if [ $# -gt 2 ]; then c=$((c + 1)); B="$B$nl "; fi;',
        'case "$1" in ""|*[!0-9.]*) ;; *) [ $c = 0 ] || case "${B##*"$nl"}" in *" $1 "*) ;; *) B="$B$1 ";; esac;; esac;',
        "IFS=$nl; done; IFS=$o;",
        f"if [ $c = {len(names)} ]; then A=; for n in", *quoted,
        '; do B=${B#"$nl"}; r=${B%%"$nl"*}; B=${B#"$r"}; A="$A$nl$n$r"; done; else', *one_each,
        "fi; unset G B c o l;",
    ]
    return StringCommand(*bits)


# $x: the addresses $A holds for the name in $n, space-separated ("" for a
# name that does not resolve or that resolve_v4 was not given).
ADDRESSES_OF = 'case "$A$nl" in *"$nl$n "*) x=${A#*"$nl$n "}; x=${x%%"$nl"*};; *) x=;; esac;'


def names_lines(names: list[str] | tuple[str, ...]) -> StringCommand:
    """HostNames' lines, the names' addresses read from resolve_v4's $A."""
    bits: list[object] = [
        'read -r h </proc/sys/kernel/hostname; printf "hostname %s\\n" "$h";',
        'printf "fqdn %s\\n" "$(hostname -f 2>/dev/null)";',
    ]
    if names:
        bits += ["for n in"] + [QuoteString(n) for n in names]
        bits += ["; do", ADDRESSES_OF, 'printf "resolves %s %s\\n" "$n" "$x"; done']
    return StringCommand(*bits)


class HostNames(ParsedFact[Names]):
    """
    The short hostname, the FQDN (`hostname -f`), and the IPv4 addresses each
    given name resolves to here (an empty list when it does not resolve).

    .. code:: python

        {"hostname": "worker1", "fqdn": "worker1.distcc.internal",
         "resolves": {"builder.distcc.internal": ["172.31.250.2"]}}
    """

    def command(self, names: tuple[str, ...] | list[str] = ()) -> StringCommand:
        # Shell builtins wherever they do: a CM3+ pays for every process
        # start, and the builder asks this about every worker.
        if not names:
            return names_lines(())
        return StringCommand(resolve_v4(names), names_lines(names))

    parse = staticmethod(parse_names)


class Resources(TypedDict):
    cpus: int
    memory_bytes: int
    # The host's own global IPv4 addresses: what a peer's name for it must
    # resolve to (a worker derives distccd's --allow from the builder's name).
    addresses: list[str]


def parse_resources(lines: list[str]) -> Resources:
    resources = Resources(cpus=1, memory_bytes=0, addresses=[])
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "cpus" and rest.isdigit():
            resources["cpus"] = int(rest)
        elif kind == "memory" and rest.isdigit():
            resources["memory_bytes"] = int(rest)
        elif kind == "address" and rest.split()[1:]:
            address = rest.split()[1].partition("/")[0]
            if address not in resources["addresses"]:
                resources["addresses"].append(address)
    return resources


class HostResources(ParsedFact[Resources]):
    """
    CPU count and memory (distccd's default --jobs and the tmpfs size limit),
    and the host's global IPv4 addresses (what its peers' names for it must
    resolve to).

    .. code:: python

        {"cpus": 4, "memory_bytes": 8245223424, "addresses": ["10.0.0.11"]}
    """

    # nproc counts the CPUs this process may run on (its affinity); the
    # shell counts the same list, Cpus_allowed_list in its own
    # /proc/self/status (e.g. "0-3" or "0,2-3"), without a process start.
    # nproc only where the kernel has no such line.
    command = (
        "n=$(c=; while IFS=': \t' read -r k v _; do [ \"$k\" = Cpus_allowed_list ] && c=$v && break; done"
        " </proc/self/status; [ -n \"$c\" ] || exec nproc; n=0; IFS=,; for r in $c; do case \"$r\" in"
        " *-*) n=$((n + ${r#*-} - ${r%-*} + 1));; *) n=$((n + 1));; esac; done; echo $n);"
        " printf 'cpus %s\\n' \"$n\"; " + meminfo_line("MemTotal", "memory ") + ";"
        # ip -o: "2: eth0    inet 10.0.0.11/24 brd ... scope global eth0 ..."
        " ip -4 -o addr show scope global 2>/dev/null | while read -r _ d _ a _; do printf 'address %s %s\\n' \"$d\" \"$a\";"
        " done; true"
    )

    parse = staticmethod(parse_resources)
