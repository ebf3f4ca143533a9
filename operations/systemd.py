"""Operations on systemd: a drop-in written atomically, with a daemon-reload
only when it changed (or a cut-off run left one pending)."""

from __future__ import annotations

import hashlib

from pyinfra import host, state
from pyinfra.api import QuoteString, StringCommand, operation

from facts.paths import PathStatus
from facts.systemd import UnitNeedsReload
from operations._observed import observed
from operations.paths import ascii_only, show_diff, temporary_path, write_commands


def dropin_path(unit: str, dropin: str) -> str:
    return f"/etc/systemd/system/{unit}.d/{dropin}"


@operation()
def dropin_installed(unit: str, content: str, dropin: str = "override.conf"):
    """
    A drop-in for unit holding exactly content, written atomically (a
    temporary file in the same directory, then a rename), followed by a
    daemon-reload only when the file changed. `--diff` shows the change.

    + unit: the unit, e.g. ``"distcc.service"``
    + content: the drop-in's text, as rendered by its owner (for distccd:
      deploys.library.worker.override_text, which validation compares too)
    + dropin: the drop-in's file name (must end in .conf to be read)

    **Example:**

    .. code:: python

        systemd.dropin_installed(unit="distcc.service", content="[Service]\\n...")
    """
    dest = dropin_path(unit, dropin)
    temporary = temporary_path(dest)
    ascii_only(dest, content)
    current = observed(PathStatus, path=dest)
    if current["sha256"] == hashlib.sha256(content.encode()).hexdigest():
        # A run cut off after the rename leaves the drop-in current but not
        # loaded (a restart would still run the old one); one cut off before
        # it, then rerun with the old settings, leaves a stale .tmp.
        stale_tmp = observed(PathStatus, path=temporary)["kind"] is not None
        reload_pending = observed(UnitNeedsReload, unit=unit)
        if stale_tmp:
            yield StringCommand("rm", "-f", QuoteString(temporary))
        if reload_pending:
            yield "systemctl daemon-reload"
        if not stale_tmp and not reload_pending:
            host.noop(f"{dest} is up to date")
        return

    if state.config.DIFF:
        show_diff(dest, current["kind"] == "file", content)
    # systemd reads only *.conf, so the half-written .tmp is never loaded; the
    # rename makes the new drop-in appear whole.
    yield from write_commands(dest, content, "root", "root", "644")
    yield "systemctl daemon-reload"
