"""Operations on files and directories this package owns, decided from one
PathStatus read (so they share the host's snapshot, see _observed), and
written atomically: a temporary file beside the target, then a rename."""

from __future__ import annotations

import hashlib
from io import StringIO
from pathlib import Path

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents

from facts.paths import PathStatus
from operations._observed import observed
from operations._printed import OperationRefusal
from operations._pyinfra import color_diff


def temporary_path(path: str) -> str:
    """Where a new version is written before the rename. It never ends in
    .conf, so a unit's drop-in directory never loads it half-written."""
    return f"{path}.tmp"


def show_diff(path: str, exists: bool, content: str) -> None:
    old = host.get_fact(FileContents, path=path) if exists else None
    host.log(f"Will {'modify' if exists else 'create'} {path}", logger.info)
    for line in color_diff([f"{x}\n" for x in old or []], content.splitlines(keepends=True)):
        logger.info("  %s", line)
    logger.info("")


def ascii_only(path: str, content: str) -> None:
    if not content.isascii():
        raise OperationRefusal(f"{path}: the content to write is not ASCII; every file this package writes is ASCII.")


def owner(user: str, group: str | None) -> QuoteString:
    """chown's argument: a group of None leaves the group as it is."""
    return QuoteString(user if group is None else f"{user}:{group}")


def owned_by(status, user: str, group: str | None) -> bool:
    return status["user"] == user and (group is None or status["group"] == group)


def write_commands(path: str, content: str, user: str, group: str | None, mode: str):
    """Upload to the temporary path, set owner and mode there, then rename."""
    ascii_only(path, content)
    temporary = temporary_path(path)
    yield StringCommand("mkdir", "-p", QuoteString(str(Path(path).parent)))
    yield FileUploadCommand(StringIO(content), temporary, remote_temp_filename=host.get_temp_filename(temporary))
    yield StringCommand(
        "chown", owner(user, group), QuoteString(temporary), "&&",
        "chmod", QuoteString(mode), QuoteString(temporary), "&&",
        "mv", "-f", QuoteString(temporary), QuoteString(path),
    )


@operation()
def file_installed(path: str, content: str, user: str = "root", group: str | None = "root", mode: str = "644"):
    """
    A file holding exactly content, with this owner and mode, written
    atomically when its content differs; only chown/chmod when just those
    differ. `--diff` shows the change.

    + path: the file
    + content: its text
    + user, group: its owner (group None: left as it is)
    + mode: its permission bits, e.g. ``"644"``

    Refuses when something other than a regular file is at path.

    **Example:**

    .. code:: python

        paths.file_installed(path="/etc/logrotate.d/distccd-farm", content="...")
    """
    status = observed(PathStatus, path=path)
    mode = str(mode).lstrip("0") or "0"
    if status["kind"] not in (None, "file"):
        raise OperationRefusal(f"{path} is a {status['kind']}, not a file; move it away and run again")
    ascii_only(path, content)
    digest = hashlib.sha256(content.encode()).hexdigest()
    if status["sha256"] != digest:
        if state.config.DIFF:
            show_diff(path, status["kind"] == "file", content)
        yield from write_commands(path, content, user, group, mode)
        return
    if not owned_by(status, user, group):
        yield StringCommand("chown", owner(user, group), QuoteString(path))
    if status["mode"] != mode:
        yield StringCommand("chmod", QuoteString(mode), QuoteString(path))
    if owned_by(status, user, group) and status["mode"] == mode:
        host.noop(f"{path} is up to date")


@operation()
def directory_present(path: str, user: str = "root", group: str | None = "root", mode: str = "755"):
    """
    A directory with this owner and mode.

    + path: the directory (parents are created)
    + user, group: its owner (group None: left as it is)
    + mode: its permission bits, e.g. ``"2750"``

    **Example:**

    .. code:: python

        paths.directory_present(path="/var/log/distccd", user="distccd", group="adm", mode="2750")
    """
    status = observed(PathStatus, path=path)
    mode = str(mode).lstrip("0") or "0"
    if status["kind"] not in (None, "directory"):
        raise OperationRefusal(f"{path} is a {status['kind']}, not a directory; move it away and run again")
    if status["kind"] is None:
        yield StringCommand("mkdir", "-p", QuoteString(path))
    if status["kind"] is None or not owned_by(status, user, group):
        yield StringCommand("chown", owner(user, group), QuoteString(path))
    if status["kind"] is None or status["mode"] != mode:
        yield StringCommand("chmod", QuoteString(mode), QuoteString(path))
    if status["kind"] == "directory" and owned_by(status, user, group) and status["mode"] == mode:
        host.noop(f"{path} is a directory owned by {owner(user, group).obj} with mode {mode}")
