"""Operations on systemd: a drop-in rendered from templates/ and written
atomically, with a daemon-reload only when it changed."""

from __future__ import annotations

import hashlib
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, QuoteString, StringCommand, operation
from pyinfra.facts.files import FileContents
from pyinfra.facts.server import Command
from pyinfra.operations.util.files import generate_color_diff

from facts.systemd import UnitState
from operations.templates import render_template


def dropin_path(unit: str, dropin: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{dropin}"


@operation()
def dropin_installed(unit: str, template: str, context: dict, dropin: str = "override.conf"):
    """
    A drop-in for unit rendered from templates/, written atomically (a
    temporary file in the same directory, then a rename), followed by a
    daemon-reload only when the file changed. `--diff` shows the change.

    + unit: the unit, e.g. ``"distcc.service"``
    + template: file name under templates/
    + context: template variables
    + dropin: the drop-in's file name (must end in .conf to be read)

    **Example:**

    .. code:: python

        systemd.dropin_installed(unit="distcc.service", template="distcc-override.conf.j2",
                                 context={"argv": [...]})
    """
    content = render_template(template, context)
    digest = hashlib.sha256(content.encode()).hexdigest()
    dest = dropin_path(unit, dropin)
    temporary = f"{dest}.tmp"
    current = host.get_fact(UnitState, unit=unit)["dropins"].get(dest)
    if current == digest:
        # A run cut off after the rename leaves the drop-in current but not
        # loaded (a restart would still run the old one); one cut off before
        # it, then rerun with the old settings, leaves a stale .tmp.
        probe = (
            f"systemctl show {shlex.quote(unit)} -p NeedDaemonReload --value; "
            f"test -e {shlex.quote(temporary)} && echo stale-tmp || true"
        )
        leftovers = (host.get_fact(Command, command=probe) or "").split()
        if "stale-tmp" in leftovers:
            yield StringCommand("rm", "-f", QuoteString(temporary))
        if "yes" in leftovers:
            yield "systemctl daemon-reload"
        if "stale-tmp" not in leftovers and "yes" not in leftovers:
            host.noop(f"{dest} is up to date")
        return

    if state.config.DIFF:
        old = host.get_fact(FileContents, path=dest) if current else None
        host.log(f"Will {'modify' if current else 'create'} {dest}", logger.info)
        for line in generate_color_diff([f"{x}\n" for x in old or []], content.splitlines(keepends=True)):
            logger.info("  %s", line)
        logger.info("")

    yield StringCommand("mkdir", "-p", QuoteString(str(Path(dest).parent)))
    yield FileUploadCommand(StringIO(content), temporary, remote_temp_filename=host.get_temp_filename(temporary))
    # systemd reads only *.conf, so the half-written .tmp is never loaded; the
    # rename makes the new drop-in appear whole.
    yield StringCommand("chmod", "644", QuoteString(temporary), "&&", "mv", "-f", QuoteString(temporary), QuoteString(dest))
    yield "systemctl daemon-reload"
