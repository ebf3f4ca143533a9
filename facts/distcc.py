"""Facts about distcc on a host: the daemon's sockets, compiler processes, and
the masquerade directory that is distccd's compiler whitelist.

Every command exits 0 on healthy and broken hosts alike and needs only
coreutils, procps and iproute2 on the target.
"""

from __future__ import annotations

import re
from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._shell import assign
from facts._templates import render_script

MASQUERADE_DIR = "/usr/lib/distcc"

# `ss -Hltnp` line: State Recv-Q Send-Q Local:Port Peer:Port [users:((...))]
_SS_LINE = re.compile(
    r"^\S+\s+\d+\s+\d+\s+(?P<address>\S+):(?P<port>\d+)\s+\S+(?:\s+users:\((?P<users>.*)\))?\s*$"
)
_SS_USER = re.compile(r'\("(?P<process>[^"]*)",pid=(?P<pid>\d+),fd=\d+\)')

# `ps -eo pid=,ppid=,user:32=,etimes=,comm=,args=` line.
_PS_LINE = re.compile(
    r"^\s*(?P<pid>\d+)\s+(?P<ppid>\d+)\s+(?P<user>\S+)\s+(?P<elapsed>\d+)\s+(?P<comm>\S+)\s?(?P<args>.*)$"
)
PS_COMMAND = "ps -eo pid=,ppid=,user:32=,etimes=,comm=,args= 2>/dev/null || true"
# Under qemu-user (the emulated ARM lab) binfmt_misc puts the interpreter and
# the program's path (with flag P also its argv[0]) before the arguments; a
# Pi shows the program's own command line, so that is what is compared. The
# interpreter is Debian's binfmt wrapper, its qemu-*-static, or the lab's
# own qemu-user (lab/docker_lab.py, registered with P).
_BINFMT_PREFIX = re.compile(
    r"^(?:/usr/libexec/qemu-binfmt/\S+-binfmt-P \S+|/usr/bin/qemu-\S+-static|\S*/qemu-(?:aarch64|arm|x86_64) \S+) (?=\S)"
)

# The compiler names update-distcc-symlinks would link: plain, versioned and
# target-triplet GCC drivers (clang and nvcc are deliberately not served).
COMPILER_NAME = re.compile(r"^(?:[a-z0-9_]+-linux-gnu[a-z]*-)?(?:gcc|g\+\+)(?:-\d+)?$|^(?:cc|c\+\+|c89-gcc|c99-gcc)$")


class ListeningSocket(TypedDict):
    address: str
    port: int
    pid: int | None
    process: str | None


class DistccdListening(ParsedFact[list[ListeningSocket]]):
    """
    The TCP sockets listening on distccd's port, with the owning process.

    .. code:: python

        [{"address": "172.31.250.3", "port": 3632, "pid": 333, "process": "distccd"}]

    An empty list when nothing listens. Process details need root (use _sudo).
    """

    def command(self, port: int = 3632) -> StringCommand:
        return StringCommand("ss", "-Hltnp", QuoteString(f"sport = :{int(port)}"), "2>/dev/null", "||", "true")

    @staticmethod
    def parse(lines: list[str]) -> list[ListeningSocket]:
        return parse_listening(lines)


def parse_listening(lines: list[str]) -> list[ListeningSocket]:
    sockets: list[ListeningSocket] = []
    for line in lines:
        match = _SS_LINE.match(line.strip())
        if not match:
            continue
        address = match.group("address").strip("[]")
        users = _SS_USER.findall(match.group("users") or "")
        pids = sorted((int(pid), process) for process, pid in users)
        sockets.append(
            ListeningSocket(
                address=address,
                port=int(match.group("port")),
                pid=pids[0][0] if pids else None,
                process=pids[0][1] if pids else None,
            )
        )
    return sockets


# Addresses a socket listens on that take the port on every address: a
# program there keeps distccd from binding any address (IPv6 "::" as well,
# since Linux's default bindv6only=0 makes it take IPv4 too).
EVERY_ADDRESS = ("0.0.0.0", "*", "::")


def foreign_listeners(sockets: list[ListeningSocket], address: str | None = None) -> list[ListeningSocket]:
    """The sockets on distccd's port that another program than distccd holds
    (ss names the owner only to root: an unnamed one is not judged); with
    an address, only those that keep distccd from listening there."""
    return [
        s for s in sockets
        if s["process"] is not None and s["process"] != "distccd"
        and (address is None or s["address"] in (address, *EVERY_ADDRESS))
    ]


def holder_text(sock: ListeningSocket) -> str:
    """e.g. "perl (pid 4242, not distccd) on 0.0.0.0"."""
    return f"{sock['process']} (pid {sock['pid']}, not distccd) on {sock['address']}"


class FileAge(ParsedFact[int | None]):
    """
    Seconds since a file was last written, by the host's clock; None when
    it does not exist. Compared with a process's elapsed time, it tells
    whether the process started before the file was written.

    .. code:: python

        412
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand(
            assign("f", path), ";",
            '[ -f "$f" ] && echo "$(( $(date +%s) - $(stat -c %Y "$f") ))"; true',
        )

    @staticmethod
    def parse(lines: list[str]) -> int | None:
        text = "".join(lines).strip()
        return int(text) if re.fullmatch(r"-?\d+", text) else None


class ProcessInfo(TypedDict):
    pid: int
    ppid: int
    user: str
    elapsed: int
    comm: str
    args: str


def parse_ps(lines: list[str]) -> dict[int, ProcessInfo]:
    table: dict[int, ProcessInfo] = {}
    for line in lines:
        match = _PS_LINE.match(line)
        if not match:
            continue
        pid = int(match.group("pid"))
        table[pid] = ProcessInfo(
            pid=pid,
            ppid=int(match.group("ppid")),
            user=match.group("user"),
            elapsed=int(match.group("elapsed")),
            comm=match.group("comm"),
            args=_BINFMT_PREFIX.sub("", match.group("args").strip(), count=1),
        )
    return table


class Cc1Process(TypedDict):
    pid: int
    ppid: int
    user: str
    elapsed: int
    compiler: str
    parent_command: str | None
    parent_is_distccd: bool
    distccd_pid: int | None


# distccd runs the gcc driver, which runs cc1: the distccd is the first
# ancestor that is not a compiler driver.
_DRIVER = re.compile(r"^(?:[a-z0-9_]+-linux-gnu[a-z]*-)?(?:gcc|g\+\+|cc|c\+\+)(?:-\d+)?$")


def _is_driver(proc: ProcessInfo) -> bool:
    # The kernel truncates comm to 15 characters ("x86_64-linux-gn" for
    # x86_64-linux-gnu-gcc, the name a distcc client rewrites gcc to), so the
    # driver's argv[0] is checked too.
    argv0 = proc["args"].split(" ", 1)[0].rsplit("/", 1)[-1]
    return bool(_DRIVER.match(proc["comm"]) or _DRIVER.match(argv0))


def _distccd_ancestor(table: dict[int, ProcessInfo], pid: int) -> int | None:
    parent = table.get(table[pid]["ppid"])
    for _ in range(4):
        if parent is None:
            return None
        if parent["comm"] == "distccd":
            return parent["pid"]
        if not _is_driver(parent):
            return None
        parent = table.get(parent["ppid"])
    return None


def cc1_processes(table: dict[int, ProcessInfo]) -> list[Cc1Process]:
    found: list[Cc1Process] = []
    for proc in table.values():
        if proc["comm"] not in ("cc1", "cc1plus"):
            continue
        parent = table.get(proc["ppid"])
        distccd_pid = _distccd_ancestor(table, proc["pid"])
        found.append(
            Cc1Process(
                pid=proc["pid"],
                ppid=proc["ppid"],
                user=proc["user"],
                elapsed=proc["elapsed"],
                compiler=proc["comm"],
                parent_command=parent["args"] if parent else None,
                parent_is_distccd=distccd_pid is not None,
                distccd_pid=distccd_pid,
            )
        )
    return sorted(found, key=lambda p: p["pid"])


class Cc1Processes(ParsedFact[list[Cc1Process]]):
    """
    The running cc1/cc1plus processes and who started them. A remote job's
    cc1 is a child of the gcc driver that a distccd child runs, so
    `parent_is_distccd` looks through the driver to the distccd
    (`distccd_pid`); a builder's own compile has no distccd above it.

    .. code:: python

        [{"pid": 812, "ppid": 811, "user": "distccd", "elapsed": 3,
          "compiler": "cc1", "parent_command": "x86_64-linux-gnu-gcc -c ...",
          "parent_is_distccd": True, "distccd_pid": 335}]
    """

    command = PS_COMMAND

    @staticmethod
    def parse(lines: list[str]) -> list[Cc1Process]:
        return cc1_processes(parse_ps(lines))


class CompilerProcesses(TypedDict):
    distccd: list[ProcessInfo]
    cc1: list[Cc1Process]


class DistccProcesses(ParsedFact[CompilerProcesses]):
    """
    Every distccd process and every cc1/cc1plus, from one `ps`.

    .. code:: python

        {"distccd": [{"pid": 333, "ppid": 1, "user": "distccd", "elapsed": 95,
                      "comm": "distccd", "args": "/usr/bin/distccd --daemon ..."}],
         "cc1": []}
    """

    command = PS_COMMAND

    @staticmethod
    def parse(lines: list[str]) -> CompilerProcesses:
        return parse_compiler_processes(lines)


def parse_compiler_processes(lines: list[str]) -> CompilerProcesses:
    table = parse_ps(lines)
    return CompilerProcesses(
        distccd=sorted((p for p in table.values() if p["comm"] == "distccd"), key=lambda p: p["pid"]),
        cc1=cc1_processes(table),
    )


class Masquerade(TypedDict):
    distcc_installed: bool
    directory_exists: bool
    links: dict[str, str]
    other_entries: list[str]
    compilers: list[str]


MASQUERADE_COMMAND = (
    "d=" + MASQUERADE_DIR + "; "
    "[ -x /usr/bin/distcc ] && echo distcc; "
    # One find for every entry and its link target (a readlink per link
    # was a process start each on a CM3+).
    '[ -d "$d" ] && { echo dir; find "$d" -mindepth 1 -maxdepth 1 '
    "\\( -type l -printf 'link %f %l\\n' \\) -o -printf 'other %f\\n'; }; "
    "for f in /usr/bin/*; do "
    'case "${f##*/}" in *gcc*|*g++*|cc|c++) [ -x "$f" ] && printf "compiler %s\\n" "${f##*/}";; esac; '
    "done; true"
)


class DistccMasquerade(ParsedFact[Masquerade]):
    """
    The links in /usr/lib/distcc (distccd's compiler whitelist since 3.3) and
    the GCC compilers installed in /usr/bin that could be linked there.

    .. code:: python

        {"distcc_installed": True, "directory_exists": True,
         "links": {"gcc": "../../bin/distcc", "gcc-12": "../../bin/distcc"},
         "other_entries": [],
         "compilers": ["c++", "cc", "g++", "g++-12", "gcc", "gcc-12",
                       "x86_64-linux-gnu-g++", "x86_64-linux-gnu-gcc-12"]}
    """

    command = MASQUERADE_COMMAND

    @staticmethod
    def parse(lines: list[str]) -> Masquerade:
        return parse_masquerade(lines)


def parse_masquerade(lines: list[str]) -> Masquerade:
    result = Masquerade(distcc_installed=False, directory_exists=False, links={}, other_entries=[], compilers=[])
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "distcc":
            result["distcc_installed"] = True
        elif kind == "dir":
            result["directory_exists"] = True
        elif kind == "link":
            name, _, target = rest.partition(" ")
            result["links"][name] = target
        elif kind == "other":
            result["other_entries"].append(rest)
        elif kind == "compiler" and COMPILER_NAME.match(rest):
            result["compilers"].append(rest)
    result["compilers"].sort()
    result["other_entries"].sort()
    return result


class BuildProcess(TypedDict):
    pid: int
    user: str
    comm: str
    args: str
    cwd: str | None


class Connection(TypedDict):
    local: str
    peer: str


class BuildActivity(TypedDict):
    processes: list[BuildProcess]
    remote_jobs: list[Cc1Process]
    connections: list[Connection]


# The processes a build is made of: make, the compiler drivers and their
# cc1, the distcc client, and distcc-pump's include server (a python
# process, known by its script). Their working directory tells which
# build tree they work in (make -C and O= change into it).
# templates/distcc-build-processes.sh.j2 reads the cwd of these names.
_BUILD_COMMS = ("make", "gmake", "distcc", "cc1", "cc1plus")
_CWD_LINE = re.compile(r"^cwd (?P<pid>\d+) (?P<cwd>/.*)$")
# `ss -Htn state established` line: Recv-Q Send-Q Local:Port Peer:Port
_ESTABLISHED_LINE = re.compile(r"^\d+\s+\d+\s+(?P<local>\S+:\d+)\s+(?P<peer>\S+:\d+)(?:\s.*)?$")
_SECTION = re.compile(r"^## (?P<name>cwd|tcp)$")


def is_include_server(proc: ProcessInfo) -> bool:
    return proc["comm"].startswith("python") and "include_server" in proc["args"]


def is_build_process(proc: ProcessInfo) -> bool:
    return proc["comm"] in _BUILD_COMMS or _is_driver(proc) or is_include_server(proc)


def parse_build_activity(lines: list[str]) -> BuildActivity:
    section, ps_lines, cwds, connections = "ps", [], {}, []
    for line in lines:
        marker = _SECTION.match(line.strip())
        if marker:
            section = marker.group("name")
        elif section == "ps":
            ps_lines.append(line)
        elif section == "cwd" and (match := _CWD_LINE.match(line.strip())):
            cwds[int(match.group("pid"))] = match.group("cwd")
        elif section == "tcp" and (match := _ESTABLISHED_LINE.match(line.strip())):
            connections.append(Connection(local=match.group("local"), peer=match.group("peer")))
    table = parse_ps(lines=ps_lines)
    processes = [
        BuildProcess(pid=p["pid"], user=p["user"], comm=p["comm"], args=p["args"], cwd=cwds.get(p["pid"]))
        for p in sorted(table.values(), key=lambda p: p["pid"])
        if is_build_process(p)
    ]
    return BuildActivity(
        processes=processes,
        remote_jobs=[c for c in cc1_processes(table) if c["parent_is_distccd"]],
        connections=connections,
    )


class BuildProcesses(ParsedFact[BuildActivity]):
    """
    What a running build is made of on this host: its processes (make, the
    compiler drivers, cc1, the distcc client, distcc-pump's include server)
    with their working directory, the remote jobs distccd runs (a cc1 under
    a distccd child), and the established connections to distccd's port
    (jobs in flight). The working directory needs root (use _sudo).

    .. code:: python

        {"processes": [{"pid": 901, "user": "pi", "comm": "make", "args": "make -j4",
                        "cwd": "/tmp/kernel-build/linux"}],
         "remote_jobs": [],
         "connections": [{"local": "172.31.242.3:3632", "peer": "172.31.242.2:40522"}]}
    """

    def command(self, port: int = 3632) -> StringCommand:
        context = {"ps_command": PS_COMMAND, "port": int(port)}
        return StringCommand(render_script("distcc-build-processes.sh.j2", context))

    @staticmethod
    def parse(lines: list[str]) -> BuildActivity:
        return parse_build_activity(lines)
