"""Facts about distcc's logs, for the build report: where a log stands now
(a mark), the lines written since a mark or since a start line, and the
backoff markers the client keeps between runs.

distcc's logs carry no timestamps, so a window is a byte position: the size
of the log at the mark and a hash of its first bytes, which tells whether the
file was rotated since (Debian's logrotate rule for distccd copies and
truncates; the build user's profile moves the client log aside). One
rotation is followed into LOG.1 (or LOG.1.gz); more are reported as a lost
window start.
"""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import QuoteString, StringCommand

from facts._parsed import ParsedFact
from facts._shell import assign

# Bytes hashed to recognise a log after rotation.
HEAD_BYTES = 256
# The report needs only these lines of a log (the client writes about twelve
# per job at its INFO level, most of them timing).
_REPORT_LINES = (
    r"dcc_job_summary|dcc_check_compiler_whitelist|denied by access list|No space left|dcc_log_daemon_started"
    r"|compile from |completed ok|failed|ERROR|Warning|dcc_scan_args|exec on localhost|dcc_exit"
    r"|contained no hosts|no hostlist"
)

_CAT_ANY = 'cat_any() { case "$1" in *.gz) zcat "$1" ;; *) cat "$1" ;; esac; }'
_ROTATED = 'r=""; for c in "$f.1" "$f.1.gz"; do if [ -e "$c" ]; then r=$c; break; fi; done'


class LogMark(TypedDict):
    path: str
    exists: bool
    size: int
    head_len: int
    head: str


class LogPosition(ParsedFact[LogMark]):
    """
    Where a log stands now: its size and a hash of its first bytes.

    .. code:: python

        {"path": "/var/log/distccd/distccd.log", "exists": True, "size": 2692,
         "head_len": 256, "head": "3f1c0d2e9a7b4c55"}
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand(
            assign("f", path), ";",
            'if [ -f "$f" ]; then s=$(stat -c %s "$f"); n=$s; [ "$n" -gt ' f"{HEAD_BYTES} ] && n={HEAD_BYTES};",
            'echo "position $f $s $n $(head -c "$n" "$f" | sha256sum | cut -c1-16)";',
            'else echo "missing $f"; fi',
        )

    @staticmethod
    def parse(lines: list[str]) -> LogMark:
        for line in lines:
            words = line.split()
            if words[:1] == ["position"] and len(words) == 5:
                return {"path": words[1], "exists": True, "size": int(words[2]), "head_len": int(words[3]),
                        "head": words[4]}
            if words[:1] == ["missing"] and len(words) == 2:
                return {"path": words[1], "exists": False, "size": 0, "head_len": 0, "head": ""}
        return {"path": "", "exists": False, "size": 0, "head_len": 0, "head": ""}


class LogLines(TypedDict):
    path: str
    window: str
    lines: list[str]


class LogSince(ParsedFact[LogLines]):
    """
    The lines a log (and its one rotated predecessor) gained in a window, only
    those the build report reads. With a mark (a LogPosition), since that
    position; otherwise after the last line containing `start` (distccd's
    start), or the whole of both files when `start` is empty.

    `window` says how the start was found: "mark", "mark, then rotated",
    "start", "start, before rotation", "whole log", or "lost" (the mark's
    file was rotated more than once, or the start line is gone: every line
    still there is read).

    .. code:: python

        {"path": "/var/log/distccd/distccd.log", "window": "mark",
         "lines": ["distccd[636] (dcc_job_summary) client: 172.31.249.2:40258 COMPILE_OK ..."]}
    """

    def command(self, path: str, mark: LogMark | None = None, start: str = "") -> StringCommand:
        keep = StringCommand("grep -aE", QuoteString(_REPORT_LINES), "| sed 's/^/L /'")
        parts: list = [assign("f", path), ";", _CAT_ANY, ";", _ROTATED, ";", 'echo "path $f";']
        if mark and mark.get("exists"):
            size, head_len, head = int(mark["size"]), int(mark["head_len"]), str(mark["head"])
            parts += [
                f"hl={head_len}; s={size};", assign("h", head), ";",
                'cur=$(head -c "$hl" "$f" 2>/dev/null | sha256sum | cut -c1-16);',
                'rot=""; [ -n "$r" ] && rot=$(cat_any "$r" | head -c "$hl" | sha256sum | cut -c1-16);',
                'if [ -f "$f" ] && [ "$cur" = "$h" ] && [ "$(stat -c %s "$f")" -ge "$s" ]; then',
                ' echo "window mark"; tail -c +$((s + 1)) "$f" |', keep, ";",
                'elif [ -n "$r" ] && [ "$rot" = "$h" ]; then',
                ' echo "window mark, then rotated"; cat_any "$r" | tail -c +$((s + 1)) |', keep, ";",
                ' cat "$f" 2>/dev/null |', keep, ";",
                "else",
                ' echo "window lost"; [ -n "$r" ] && cat_any "$r" |', keep, ";",
                ' cat "$f" 2>/dev/null |', keep, ";",
                "fi",
            ]
        elif start:
            parts += [
                assign("p", start), ";",
                'n=$(grep -anF -- "$p" "$f" 2>/dev/null | tail -n 1 | cut -d: -f1);',
                'if [ -n "$n" ]; then echo "window start"; tail -n +$((n + 1)) "$f" |', keep, ";",
                'elif [ -n "$r" ] && m=$(cat_any "$r" | grep -anF -- "$p" | tail -n 1 | cut -d: -f1) && [ -n "$m" ]; then',
                ' echo "window start, before rotation"; cat_any "$r" | tail -n +$((m + 1)) |', keep, ";",
                ' cat "$f" 2>/dev/null |', keep, ";",
                "else",
                ' echo "window lost"; [ -n "$r" ] && cat_any "$r" |', keep, ";",
                ' cat "$f" 2>/dev/null |', keep, ";",
                "fi",
            ]
        else:
            parts += [
                'echo "window whole log"; [ -n "$r" ] && cat_any "$r" |', keep, ";",
                'cat "$f" 2>/dev/null |', keep,
            ]
        parts += [";", "true"]
        return StringCommand(*parts)

    @staticmethod
    def parse(lines: list[str]) -> LogLines:
        result: LogLines = {"path": "", "window": "lost", "lines": []}
        for line in lines:
            if line.startswith("L "):
                result["lines"].append(line[2:])
            elif line.startswith("path "):
                result["path"] = line[5:]
            elif line.startswith("window "):
                result["window"] = line[7:]
        return result


class Backoff(TypedDict):
    file: str
    host: str
    age_seconds: int


class BackoffMarkers(ParsedFact[list[Backoff]]):
    """
    The distcc client's backoff markers in a state directory's lock/ folder:
    a worker that failed a job is skipped for DISTCC_BACKOFF_PERIOD (60 s)
    after the marker's time, by every later build of that user.

    .. code:: python

        [{"file": "/home/pi/.distcc/lock/backoff_tcp_worker1.distcc.internal_3632_0",
          "host": "worker1.distcc.internal:3632", "age_seconds": 12}]
    """

    def command(self, directory: str) -> StringCommand:
        return StringCommand(
            assign("d", directory), ";", "now=$(date +%s);",
            'for b in "$d"/lock/backoff_*; do [ -e "$b" ] || continue;',
            'echo "backoff $b $((now - $(stat -c %Y "$b")))"; done; true',
        )

    @staticmethod
    def parse(lines: list[str]) -> list[Backoff]:
        markers = []
        for line in lines:
            words = line.split()
            if words[:1] != ["backoff"] or len(words) != 3:
                continue
            name = words[1].rsplit("/", 1)[-1]
            # backoff_tcp_HOST_PORT_0 (HOST may contain underscores)
            body = name[len("backoff_"):]
            kind, _, rest = body.partition("_")
            host, port = rest, ""
            pieces = rest.rsplit("_", 2)
            if len(pieces) == 3:
                host, port = pieces[0], pieces[1]
            markers.append({"file": words[1], "host": f"{host}:{port}" if port else f"{kind} {rest}",
                            "age_seconds": int(words[2])})
        return markers


class ClientLogsWithJobs(ParsedFact[list[str]]):
    """
    Which of these client logs record at least one job (a compile or any
    other command distcc ran). `distcc -j` and `--show-hosts`, run by
    validation in the build user's login shell, log only their exit: such
    a log holds no build.

    .. code:: python

        ["/home/pi/.distcc/client.log"]
    """

    def command(self, paths: list[str]) -> StringCommand:
        parts: list = []
        for path in paths:
            parts += [assign("f", path), ";",
                      "grep -qE '^distcc\\[[0-9]+\\] (exec on |compile from )' \"$f\" 2>/dev/null && echo \"jobs $f\";"]
        parts.append("true")
        return StringCommand(*parts)

    @staticmethod
    def parse(lines: list[str]) -> list[str]:
        return [line[5:] for line in lines if line.startswith("jobs ")]
