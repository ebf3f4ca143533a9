"""Operations on k3s: stopped for build mode with its pods, and started again.

k3s's units have KillMode=process, so `systemctl stop k3s` leaves the
containerd shims and every pod running, holding the CPU and memory a build
needs. k3s installs k3s-killall.sh for exactly this, and it is what stops them
here. The units are disabled in build mode and enabled again in k3s mode, so
that a node that reboots comes back in the mode it was in.
"""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import QuoteString, StringCommand, operation

from facts.systemd import COUNT_K3S, COUNT_SHIMS, K3sUnits, UnitsPresent
from operations._observed import observed

# Processes killed by kill -9 leave the process table once reaped; give that
# a few seconds before calling them left over.
_SETTLE_TICKS = 25


def _services(units: list[str]) -> list[QuoteString]:
    return [QuoteString(f"{u}.service") for u in units]


def nothing_left_command(killall: str | None) -> StringCommand:
    """Fail, naming what is left and the fix, while a k3s process or a
    containerd shim (a pod) still runs after k3s was stopped."""
    if killall:
        fix = (
            f"{killall} ran, so something started them again: look for a k3s unit or a script that is not "
            f"in distcc_k3s_units (systemctl list-units 'k3s*'; ps -ef), stop it, then run the mode switch again."
        )
    else:
        fix = (
            "k3s-killall.sh, which k3s's install script writes to /usr/local/bin to stop them, is not on this "
            "node: reinstall k3s (or copy k3s-killall.sh back) and run the mode switch again."
        )
    return StringCommand(
        "t=0; while :; do",
        f"s=$({COUNT_SHIMS}); k=$({COUNT_K3S});",
        '[ "$s$k" = "00" ] && break;',
        f"if [ $t -ge {_SETTLE_TICKS} ]; then",
        "echo \"k3s is stopped but $k k3s processes and $s containerd-shim processes (pods) still run, holding "
        f"the CPU and memory the build needs. Fix: {fix}\" >&2; exit 1; fi;",
        "t=$((t + 1)); sleep 0.2; done",
    )


@operation()
def k3s_stopped(units: list[str]):
    """
    k3s stopped with its pods, and its units disabled, on a node that has
    them; a missing unit is not an error.

    + units: unit names without ``.service``, e.g. ``["k3s", "k3s-agent"]``

    When a unit runs or pods are left, k3s-killall.sh (k3s's own) stops the
    units and kills the containerd shims and the pods under them; without
    it, the running units are stopped and leftover pods make the operation
    fail with the fix.

    **Example:**

    .. code:: python

        k3s.k3s_stopped(units=["k3s", "k3s-server", "k3s-agent"])
    """
    found: UnitsPresent = observed(K3sUnits, units=list(units))
    present = found["units"]
    running = sorted(u for u, s in present.items() if s["active"] not in ("inactive", "failed"))
    enabled = sorted(u for u, s in present.items() if s["enabled_state"] == "enabled")
    leftovers = found["containerd_shims"] + found["k3s_processes"]
    if not running and not enabled and not leftovers:
        host.noop(f"k3s stopped and disabled, no pod left ({', '.join(present) or 'no k3s unit installed'})")
        return
    if enabled:
        yield StringCommand("systemctl", "disable", "--quiet", *_services(enabled))
    if not running and not leftovers:
        return
    if found["killall"]:
        # The real script ends with iptables commands that fail on a node
        # without them, so its exit status says nothing; what is left is
        # checked next.
        yield StringCommand(QuoteString(found["killall"]), ">/dev/null", "2>&1", "||", "true")
    elif running:
        yield StringCommand("systemctl", "stop", *_services(running))
    yield nothing_left_command(found["killall"])


def units_to_start(present: dict) -> list[str]:
    """The k3s units k3s_started starts: present, not active, not masked."""
    return sorted(u for u, s in present.items() if s["active"] != "active" and s["enabled_state"] != "masked")


@operation()
def k3s_started(units: list[str]):
    """
    k3s's units enabled and started again where they exist; a missing unit
    is not an error. A masked unit is left masked (someone meant it).

    + units: unit names without ``.service``

    **Example:**

    .. code:: python

        k3s.k3s_started(units=["k3s-agent"])
    """
    present = observed(K3sUnits, units=list(units))["units"]
    disabled = sorted(u for u, s in present.items() if s["enabled_state"] == "disabled")
    stopped = units_to_start(present)
    if not disabled and not stopped:
        host.noop(f"k3s running and enabled ({', '.join(present) or 'no k3s unit installed'})")
        return
    if disabled:
        yield StringCommand("systemctl", "enable", "--quiet", *_services(disabled))
    if stopped:
        yield StringCommand("systemctl", "start", *_services(stopped))
