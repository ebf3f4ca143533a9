"""Operations on the builder's tmpfs: mounted with its integrity enforced, and
unmounted without ever losing build output silently."""

from __future__ import annotations

import re

from pyinfra import host, logger
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.operations import files

from facts.mounts import MountPointStatus, TmpfsMount, hidden_mount_fix, mount_hidden
from operations._observed import observed
from operations._printed import OperationRefusal, logged, printf_wrapped

_SIZE = re.compile(r"^(?P<number>\d+)(?P<unit>[KMG]?)$")
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(size: str) -> int:
    """Bytes in a tmpfs size such as "256M" or "3G" (K, M, G are powers of 1024)."""
    match = _SIZE.match(str(size).strip().upper())
    if not match:
        raise ValueError(f"{size!r} is not a size like 512M or 3G")
    return int(match.group("number")) * _UNITS[match.group("unit")]


def tmpfs_bytes(size: str, page_size: int = 4096) -> int:
    """The size a tmpfs of that size reports: the kernel rounds it up to
    whole pages, so "1001K" is mounted as 1004 KiB with 4 KiB pages and as
    1008 KiB with the 16 KiB pages of Raspberry Pi 5 kernels.

    + page_size: the host's page size (TmpfsMount's `page_size`); 0, as
      from a host whose page size could not be read, counts as 4096"""
    page = page_size or 4096
    return -(-parse_size(size) // page) * page


def fstab_line_regex(path: str) -> str:
    """A basic regex (grep/sed) for a non-comment fstab line mounting at path."""
    return "^[^#]*[[:space:]]" + path.replace(".", "\\.") + "[[:space:]]"


DUPLICATE_MARK = "# disabled by pyinfra-distcc-farm (a second live line for the same mount point):"


def fstab_duplicates_disabled(path: str) -> StringCommand:
    """Comment out every live fstab line for path but the first. With two,
    `mount -a` stacks a second tmpfs over the first (hiding its files) and
    systemd-fstab-generator refuses the second; the line is kept, commented,
    so nothing the admin wrote is lost. fstab is replaced by a rename, so it
    is never seen half-written."""
    awk = (
        "$1 !~ /^#/ && $2 == p && n++ { print mark \" \" $0; next } { print }"
    )
    return StringCommand(
        "t=/etc/fstab.distcc-farm.tmp;",
        "awk", "-v", QuoteString(f"p={path}"), "-v", QuoteString(f"mark={DUPLICATE_MARK}"),
        QuoteString(awk), "/etc/fstab", '> "$t"',
        '&& chmod --reference=/etc/fstab "$t" && chown --reference=/etc/fstab "$t" && mv "$t" /etc/fstab',
    )


def mount_options(size: str, mode: str) -> str:
    # No noexec: a kernel build runs the host tools it has just compiled
    # (fixdep, conf, modpost) from its output tree.
    return f"size={size},mode={mode},nosuid,nodev"


def fstab_entry(path: str, size: str, mode: str) -> list[str]:
    """The /etc/fstab line tmpfs_mounted writes for the tmpfs, as its six
    fields: what the next boot mounts, so validation judges the line as this."""
    return ["tmpfs", path, "tmpfs", mount_options(size, str(mode).zfill(4)), "0", "0"]


def remount_command(path: str, options: str, size: str) -> StringCommand:
    """Remount with the new options, keeping the contents. The kernel
    refuses to shrink a tmpfs below what it holds, with only "mount point
    busy" or "Invalid argument" to say so: then say what it holds, the
    setting, and the fix."""
    message = (
        f"the tmpfs at {path} holds $u KiB, more than the new size {size} (setting distcc_tmpfs_size), "
        f"and the kernel does not shrink a tmpfs below what it holds. Fix: copy out what you need from {path} "
        f"and delete it, or set distcc_tmpfs_size to at least that much; then run the mode switch again."
    )
    return StringCommand(
        "mount", "-o", QuoteString(f"remount,{options},exec"), QuoteString(path), "|| {",
        "u=$(df -Pk", QuoteString(path), "| awk 'NR == 2 {print $3}');",
        f'[ "${{u:-0}}" -gt {tmpfs_bytes(size) // 1024} ] &&', *printf_wrapped(message, expand=True), ">&2; exit 1; }",
    )


def mount_refusal(status: MountPointStatus) -> str | None:
    """Why a tmpfs must not be mounted at this (unmounted) path: a mount
    would hide the files in the directory. None when it is safe."""
    path = status["path"]
    if status["exists"] and not status["is_directory"]:
        return f"{path} exists and is not a directory; a tmpfs cannot be mounted there."
    if status["entries"]:
        return (
            f"Refusing to mount a tmpfs over {path}: the directory holds {status['entries']} entries "
            f"that the mount would hide. Move them elsewhere (or delete them if they are not needed) "
            f"and run again."
        )
    return None


def tmpfs_change(status: MountPointStatus, size: str, mode: str) -> str | None:
    """What tmpfs_mounted does to the mount itself: "mount", "remount" (the
    size, the mode or noexec differ), or None. Shared with the build guard."""
    mounted = status["mount"]
    if mounted is None:
        return "mount"
    if mounted["fstype"] != "tmpfs":
        return None
    mode = str(mode).zfill(4)
    if mounted["size"] != tmpfs_bytes(size, status["page_size"]) or mounted["mode"] != mode or mounted["noexec"]:
        return "remount"
    return None


def unmount_due(status: MountPointStatus, discard: bool) -> bool:
    """Whether tmpfs_unmounted unmounts: a tmpfs that is empty, or any with
    discard. Shared with the build guard."""
    mounted = status["mount"]
    return mounted is not None and mounted["fstype"] == "tmpfs" and (not mounted["entries"] or discard)


@operation()
def tmpfs_mounted(path: str, size: str, mode: str = "1777"):
    """
    A tmpfs mounted at path with the given size and mode, exec allowed, and
    persisted in /etc/fstab. A wrong size or mode (or noexec) is fixed with a
    remount, which keeps the contents.

    + path: the mount point (created when missing)
    + size: tmpfs size, e.g. ``"3G"``
    + mode: permission bits of the mount's root, e.g. ``"1777"``

    Refuses to mount over a directory that holds files: the mount would hide
    them. Refuses to replace something else mounted there. Refuses a mount
    the path no longer reaches (something mounted over a parent after it).
    Of several live fstab lines for path, the first is set to the tmpfs
    line and the others are commented out (with a warning), so `mount -a`
    mounts one tmpfs.
    The size is compared in the host's pages (4 KiB, or 16 KiB on Raspberry
    Pi 5 kernels), as the kernel rounds it.

    **Example:**

    .. code:: python

        mounts.tmpfs_mounted(path="/tmp/kernel-build", size="3G")
    """
    mode = str(mode).zfill(4)
    status = observed(TmpfsMount, path=path)
    mounted = status["mount"]
    options = mount_options(size, mode)

    if mount_hidden(status):
        raise OperationRefusal(hidden_mount_fix(status, "run again") + ".")
    if mounted is None:
        refusal = mount_refusal(status)
        if refusal:
            raise OperationRefusal(refusal)
        if not status["exists"]:
            yield StringCommand("mkdir", "-p", QuoteString(path))
        yield StringCommand("mount", "-t", "tmpfs", "-o", QuoteString(options), "tmpfs", QuoteString(path))
    elif mounted["fstype"] != "tmpfs":
        raise OperationRefusal(
            f"{path} is a {mounted['fstype']} mount, not a tmpfs. Unmount it yourself (this package does "
            f"not own it) and run again."
        )
    elif tmpfs_change(status, size, mode) == "remount":
        yield remount_command(path, options, size)
    else:
        host.noop(f"tmpfs at {path} already {size} with mode {mode}, exec allowed")

    wanted = fstab_entry(path, size, mode)
    if status["fstab_duplicates"]:
        logger.warning(host.print_prefix + logged(
            f"/etc/fstab has {1 + len(status['fstab_duplicates'])} live lines for {path}; "
            f"the first is kept as the tmpfs line, the others are commented out (marked "
            f"'{DUPLICATE_MARK}')"
        ))
        yield fstab_duplicates_disabled(path)
    if status["fstab"] != wanted:
        yield from files.line._inner(
            path="/etc/fstab",
            line=fstab_line_regex(path),
            replace=" ".join(wanted),
        )


@operation()
def tmpfs_unmounted(path: str, discard: bool = False):
    """
    The tmpfs at path unmounted and taken out of /etc/fstab, but only when it
    is empty. A tmpfs that holds files stays mounted, with a warning, unless
    discard is set: build output is never lost silently.

    + path: the mount point
    + discard: unmount even when it holds files, discarding them

    **Example:**

    .. code:: python

        mounts.tmpfs_unmounted(path="/tmp/kernel-build")
    """
    status = observed(TmpfsMount, path=path)
    mounted = status["mount"]
    if mount_hidden(status):
        raise OperationRefusal(hidden_mount_fix(status, "run again") + ".")
    if mounted is None:
        host.noop(f"nothing is mounted at {path}")
    elif mounted["fstype"] != "tmpfs":
        host.noop(f"{path} is a {mounted['fstype']} mount, not this package's tmpfs; left alone")
        return
    elif not unmount_due(status, discard):
        message = (
            f"keeping the tmpfs at {path}: it holds {mounted['entries']} entries (build output?). "
            f"Copy what you need and empty it, or set distcc_discard_tmpfs=True to discard it."
        )
        logger.warning(host.print_prefix + logged(message))
        host.noop(message)
        return
    else:
        yield StringCommand("umount", QuoteString(path))

    if status["fstab"] is not None:
        yield from files.line._inner(path="/etc/fstab", line=fstab_line_regex(path), present=False)
