"""Facts about a mount point: what is mounted there, what the directory under
the mount holds (files a mount would hide), and its /etc/fstab entry."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
from facts._shell import assign
from facts.host import meminfo_line


class MountedFs(TypedDict):
    fstype: str
    size: int
    mode: str
    options: list[str]
    noexec: bool
    entries: int
    underneath_has_files: bool | None


class MountPointStatus(TypedDict):
    path: str
    exists: bool
    is_directory: bool
    entries: int
    mount: MountedFs | None
    fstab: list[str] | None
    fstab_duplicates: list[list[str]]
    memory_bytes: int
    page_size: int


def _count_entries(variable: str) -> str:
    """$c: how many entries the directory in $VARIABLE holds, as ls -A counts
    them (hidden names included), by the shell's own globs."""
    d = f'"${variable}"'
    return f'c=0; for f in {d}/* {d}/.[!.]* {d}/..?*; do [ -e "$f" ] || [ -L "$f" ] && c=$((c + 1)); done'


class TmpfsMount(ParsedFact[MountPointStatus]):
    """
    The build tree's tmpfs mount point (or any path as one): whether it exists, how many entries it shows,
    what is mounted exactly there, whether the directory *underneath* the mount
    holds files (looked at in a private mount namespace, so nothing changes),
    its /etc/fstab fields, the host's memory (a tmpfs cannot exceed it) and
    its page size (the kernel rounds a tmpfs size up to whole pages: 4 KiB on
    most kernels, 16 KiB on Raspberry Pi 5 kernels).

    `fstab` is the first live fstab line for the path (the one
    systemd-fstab-generator mounts); `fstab_duplicates` are any later live
    lines for the same path (`mount -a` would stack one tmpfs on another).

    .. code:: python

        {"path": "/tmp/kernel-build", "exists": True, "is_directory": True,
         "entries": 2,
         "mount": {"fstype": "tmpfs", "size": 268435456, "mode": "1777",
                   "options": ["rw", "relatime", "size=262144k", "mode=1777"],
                   "noexec": False, "entries": 2, "underneath_has_files": False},
         "fstab": ["tmpfs", "/tmp/kernel-build", "tmpfs", "size=256M,mode=1777", "0", "0"],
         "fstab_duplicates": [],
         "memory_bytes": 25204080640, "page_size": 4096}

    Looking underneath needs root (use _sudo); without it the value is None.
    """

    # What shellcheck says of the command that stands (the readable survey,
    # docs/survey-*.sh, puts it before the unshare line).
    shellcheck = (
        ShellNote("SC2016", r"unshare -m sh -c '", "for the sh in the new mount namespace: $1 is the mount point"),
    )

    def command(self, path: str) -> StringCommand:
        return StringCommand(
            assign("p", path), ";",
            'printf "path %s\\n" "$p";',
            '[ -e "$p" ] && echo exists;',
            '[ -d "$p" ] && echo directory;',
            _count_entries("p") + ";",
            'printf "entries %s\\n" "$c";',
            'm=$(findmnt -rn -M "$p" -o FSTYPE,OPTIONS 2>/dev/null | { m=; while IFS= read -r l; do m=$l; done; printf %s "$m"; });',
            'if [ -n "$m" ]; then',
            'printf "mount %s\\n" "$m";',
            'printf "blocks %s\\n" "$(stat -f -c "%S %b" "$p")";',
            'printf "mode %s\\n" "$(stat -c %a "$p")";',
            "u=$(unshare -m sh -c 'umount -l \"$1\" && { " + _count_entries("1") + "; echo $c; }' - \"$p\" 2>/dev/null);",
            'printf "underneath %s\\n" "${u:-unknown}";',
            "fi;",
            # `|| [ -n "$d" ]`: a last line without its newline is a line too.
            'while read -r d t r || [ -n "$d" ]; do case "$d" in "#"*) continue;; esac;',
            '[ "$t" = "$p" ] && printf "fstab %s %s %s\\n" "$d" "$t" "$r"; done 2>/dev/null </etc/fstab;',
            meminfo_line("MemTotal", "memory "), ";",
            'printf "pagesize %s\\n" "$(getconf PAGESIZE 2>/dev/null)"',
        )

    @staticmethod
    def parse(lines: list[str]) -> MountPointStatus:
        return parse_mount_point(lines)


def parse_mount_point(lines: list[str], path: str = "") -> MountPointStatus:
    status = MountPointStatus(
        path=path, exists=False, is_directory=False, entries=0, mount=None, fstab=None, fstab_duplicates=[],
        memory_bytes=0, page_size=0,
    )
    mount: dict = {}
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "path":
            status["path"] = rest
        elif kind == "exists":
            status["exists"] = True
        elif kind == "directory":
            status["is_directory"] = True
        elif kind == "entries" and rest.isdigit():
            status["entries"] = int(rest)
        elif kind == "mount":
            fstype, _, options = rest.partition(" ")
            mount["fstype"] = fstype
            mount["options"] = options.split(",") if options else []
        elif kind == "blocks":
            # Empty when the path does not reach the mount (see mount_hidden).
            block_size, _, blocks = rest.partition(" ")
            if block_size.isdigit() and blocks.isdigit():
                mount["size"] = int(block_size) * int(blocks)
        elif kind == "mode" and rest.isdigit():
            mount["mode"] = rest.zfill(4)
        elif kind == "underneath":
            mount["underneath_has_files"] = None if not rest.isdigit() else int(rest) > 0
        elif kind == "fstab" and status["fstab"] is None:
            status["fstab"] = rest.split()
        elif kind == "fstab":
            status["fstab_duplicates"].append(rest.split())
        elif kind == "memory" and rest.isdigit():
            status["memory_bytes"] = int(rest)
        elif kind == "pagesize" and rest.isdigit():
            status["page_size"] = int(rest)
    if mount:
        status["mount"] = MountedFs(
            fstype=mount.get("fstype", ""),
            size=mount.get("size", 0),
            mode=mount.get("mode", ""),
            options=mount.get("options", []),
            noexec="noexec" in mount.get("options", []),
            entries=status["entries"],
            underneath_has_files=mount.get("underneath_has_files"),
        )
    return status


def mount_hidden(status: MountPointStatus) -> bool:
    """The mount table lists a mount at the path, but the path does not
    reach it: something was mounted over a parent directory after it (on
    Raspberry Pi OS, tmp.mount's tmpfs on /tmp). The mount still holds its
    files and memory, and nothing can reach it by its path (umount and
    mount -o remount fail with No such file or directory) until what lies
    over it is unmounted."""
    return status["mount"] is not None and not status["exists"]


def hidden_mount_fix(status: MountPointStatus, then: str) -> str:
    """What a hidden mount (mount_hidden) is and how to reach it again."""
    path = status["path"]
    parent = path.rsplit("/", 1)[0] or "/"
    fstype = status["mount"]["fstype"] if status["mount"] else "filesystem"
    return (
        f"findmnt lists a {fstype} mounted at {path}, but {path} does not exist: a filesystem was mounted over "
        f"{parent} (or a directory above it) after it and hides it, with its files (on Raspberry Pi OS, "
        f"tmp.mount's tmpfs on /tmp). Find it with `findmnt -T {parent}`, unmount it (`sudo umount {parent}` "
        f"when that is the one) so that {path} is reached again, then {then}"
    )
