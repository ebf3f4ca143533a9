"""Facts about one path: what is there, whose it is, and what a file holds."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._shell import assign


class PathInfo(TypedDict):
    path: str
    kind: str | None  # "file", "directory", "link", "other"; None: nothing there
    user: str | None
    group: str | None
    mode: str | None  # octal permission bits, e.g. "644", "2750"
    sha256: str | None  # a regular file's content digest


_KINDS = {"regular file": "file", "regular empty file": "file", "directory": "directory", "symbolic link": "link"}


def parse_path_status(lines: list[str], path: str = "") -> PathInfo:
    info = PathInfo(path=path, kind=None, user=None, group=None, mode=None, sha256=None)
    for line in lines:
        key, _, value = line.partition(" ")
        if key == "path":
            info["path"] = value
        elif key == "stat":
            kind, user, group, mode = (value.split("|") + ["", "", "", ""])[:4]
            info.update(kind=_KINDS.get(kind, "other"), user=user or None, group=group or None, mode=mode or None)
        elif key == "sha256" and len(value.strip()) == 64:
            info["sha256"] = value.strip()
    return info


class PathStatus(ParsedFact[PathInfo]):
    """
    What is at a path (not following a link there), its owner, group and
    permission bits, and a regular file's sha256: what a file or directory
    operation compares before it changes anything.

    .. code:: python

        {"path": "/etc/logrotate.d/distccd-farm", "kind": "file", "user": "root",
         "group": "root", "mode": "644", "sha256": "5d0c..."}
    """

    def command(self, path: str) -> StringCommand:
        return StringCommand(
            assign("p", path), "; printf 'path %s\\n' \"$p\";",
            "if [ -e \"$p\" ] || [ -L \"$p\" ]; then stat -c 'stat %F|%U|%G|%a' \"$p\";",
            "if [ -f \"$p\" ] && [ ! -L \"$p\" ]; then printf 'sha256 %s\\n' \"$(sha256sum < \"$p\" | cut -d' ' -f1)\"; fi;",
            "fi; true",
        )

    parse = staticmethod(parse_path_status)
