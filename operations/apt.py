"""Operations on apt: packages installed only when missing, with dpkg free
first, so a locked or interrupted dpkg gives one clear message instead of a
race, and an installed node is never touched (not even apt-get update)."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.facts.deb import DebPackages

from facts._templates import render_script
from operations._observed import observed
from operations._printed import printf_wrapped

# What apt-get install takes (the frontend lock first, since apt 1.9) and
# what apt-get update takes; unattended-upgrades and apt-daily hold them
# for minutes after a Pi boots.
LOCKS = ("/var/lib/dpkg/lock-frontend", "/var/lib/dpkg/lock", "/var/lib/apt/lists/lock")
# dpkg journals a run here and empties it when the run completes.
DPKG_UPDATES = "/var/lib/dpkg/updates"


def dpkg_free_command(packages: list[str], wait_seconds: int) -> StringCommand:
    """Fail when an earlier dpkg run was cut off; else wait until no process
    holds an apt or dpkg lock, up to wait_seconds, then fail naming the
    holders. Holders are read from /proc/locks (apt's fcntl locks; flock(1)
    cannot test them). Everything printed is ASCII."""
    names = " ".join(packages)
    ticks = max(0, int(wait_seconds)) * 5
    locks = " ".join(LOCKS)
    return StringCommand(
        "ascii() { LC_ALL=C tr -cd '\\11\\12\\40-\\176'; };",
        f'if [ -n "$(ls -A {DPKG_UPDATES} 2>/dev/null)" ]; then',
        *printf_wrapped(
            f"dpkg was interrupted in an earlier run ({DPKG_UPDATES} is not empty), so {names} cannot be "
            f"installed. Fix: run 'sudo dpkg --configure -a' on this host, then run the deploy again."
        ), ">&2; exit 1; fi;",
        "holders() { for f in", locks, "; do",
        'i=$(stat -c %i "$f" 2>/dev/null) || continue;',
        "awk -v i=\"$i\" -v f=\"$f\" '$2 != \"->\" && $5 > 0 { n = split($6, a, \":\"); if (a[n] == i) print $5, f }'",
        "/proc/locks; done; };",
        f"t=0; while [ -n \"$(holders)\" ]; do if [ $t -ge {ticks} ]; then",
        *printf_wrapped(
            f"dpkg is locked: another package manager run holds its lock and did not let go within "
            f"{int(wait_seconds)}s (setting distcc_apt_lock_wait), so {names} cannot be installed:"
        ), ">&2;",
        # A holder's command is cut so that its line stays within 100 columns.
        "holders | sort -u | while read -r p f; do",
        'printf \'  %s held by pid %s: %s\\n\' "$f" "$p" "$(ps -o args= -p "$p" | cut -c1-50)";',
        "done | ascii >&2;",
        *printf_wrapped(
            "Fix: let it finish (unattended-upgrades or apt-daily often runs after boot) or stop it, "
            "then run the deploy again; or raise distcc_apt_lock_wait."
        ), ">&2; exit 1; fi;",
        "t=$((t + 1)); sleep 0.2; done",
    )


def install_command(packages: list[str], wait_seconds: int, held_units: list[str]) -> StringCommand:
    """apt-get install of these packages, with each of held_units masked at
    runtime (/run/systemd/system, gone at the next boot) while it runs, so
    that no maintainer script starts it: Debian 13's distcc ships a native
    unit that its postinst enables and starts, with /etc/default/distcc's
    defaults, before this package has written its override. Both
    deb-systemd-invoke and invoke-rc.d skip a masked unit without failing
    (bookworm's postinst fails on an init script that does not start). The
    masks go when the install ends, whatever way it ends but SIGKILL."""
    lock_wait = f"-o DPkg::Lock::Timeout={max(0, int(wait_seconds))}"
    install = StringCommand(
        "DEBIAN_FRONTEND=noninteractive", "apt-get", "-q", "-y", lock_wait, "--no-install-recommends", "install",
        *(QuoteString(p) for p in packages),
    )
    if not held_units:
        return install
    units = [QuoteString(u) for u in held_units]
    return StringCommand(
        "unhold() { systemctl unmask --runtime", *units, ">/dev/null 2>&1; };",
        "trap unhold EXIT; trap 'exit 1' HUP INT TERM;",
        "systemctl mask --runtime", *units, ">/dev/null &&", install,
    )


def explained(command: StringCommand) -> StringCommand:
    """command (an apt-get run), its output shown as apt gives it; on a
    failure apt names but gives no fix for, the fix too
    (templates/apt-get-explained.sh.j2)."""
    return StringCommand(render_script("apt-get-explained.sh.j2", {"command": command.get_raw_value()}))


@operation()
def packages_installed(packages: list[str], wait_seconds: int = 120, held_units: list[str] | None = None):
    """
    The given Debian packages installed; nothing at all (not even a package
    index update) when they are. Only when one is missing: dpkg free (no
    other apt or dpkg run holding its locks, waited for up to wait_seconds;
    an interrupted dpkg named with its fix), then `apt-get update` and
    `apt-get install` of the missing ones. So a second run is a no-op on any day, and a node that just booted
    does not race apt-daily for the lock unless it must install.

    + packages: Debian package names
    + wait_seconds: how long another apt or dpkg run may hold the locks
    + held_units: systemd units the packages' maintainer scripts must not
      start (masked at runtime for the install only); the package's own
      deploy starts them, configured

    Versions are never changed: an installed package stays as it is.

    **Example:**

    .. code:: python

        apt.packages_installed(name="Install distcc", packages=["distcc"])
    """
    installed = observed(DebPackages)
    missing = [p for p in packages if p not in installed]
    if not missing:
        host.noop(f"{', '.join(packages)} already installed")
        return
    yield dpkg_free_command(missing, wait_seconds)
    # Lock::Timeout makes apt itself wait for a lock taken between the check
    # above and this command (apt-daily starting just then) instead of failing.
    lock_wait = f"-o DPkg::Lock::Timeout={max(0, int(wait_seconds))}"
    yield explained(StringCommand("apt-get", "-q", lock_wait, "update"))
    yield explained(install_command(missing, wait_seconds, list(held_units or [])))
