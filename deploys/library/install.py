"""distcc installed for each role: the client on the builder; on a worker
the daemon, the compilers, the whitelist and the hardened override."""

from __future__ import annotations

from pyinfra import host
from pyinfra.api import deploy
from pyinfra.facts.deb import DebPackages

from deploys.library.cluster import role_of
from deploys.library.settings import Settings, compiler_package, settings_for
from deploys.library.worker import daemon_config, override_text
from facts.compiler import OsRelease
from facts.distcc import DistccMasquerade
from facts.paths import PathStatus
from facts.systemd import UnitNeedsReload, UnitSources, UnitSourcesInfo, UnitState
from operations import apt, distcc, paths, systemd
from operations._observed import BODY, observed
from operations._printed import Refusal
from operations.templates import render_template

# The distro's default C and C++ compilers: the same OS release on every Pi
# gives every worker the builder's gcc (validation's H-GCC compares them).
# logrotate keeps distccd's log, which grows a line per job, from filling
# the SD card.
WORKER_PACKAGES = ["distcc", "gcc", "g++", "logrotate"]
LOGROTATE_CONFIG = "/etc/logrotate.d/distccd-farm"
# The builder runs the build: the client, and make, which drives it (the
# smoke test proves the real path with `make -j`); the kernel's own build
# tools come from distcc_build_packages.
BUILDER_PACKAGES = ["distcc", "make"]

# What a unit runs, as whom, with which environment and sandbox. Set by a
# file this package does not own, any of them changes distccd beside the
# override: Environment=DISTCC_CMDLIST=... turns the compiler whitelist off,
# User=root runs every job as root, an ExecStartPre runs before it.
GOVERNING_KEYS = frozenset({
    "ExecStart", "ExecStartPre", "ExecStartPost", "ExecStop", "ExecReload", "User", "Group", "DynamicUser",
    "Environment", "EnvironmentFile", "UnsetEnvironment", "PassEnvironment", "Type", "KillMode", "RemainAfterExit",
    "Restart", "WorkingDirectory", "RootDirectory", "PrivateTmp", "TemporaryFileSystem", "ProtectSystem",
    "ReadWritePaths", "ProtectHome", "PrivateDevices", "NoNewPrivileges", "RestrictAddressFamilies",
    "CapabilityBoundingSet", "AmbientCapabilities", "SupplementaryGroups",
})
# Unit files that are not anyone's hand edit: systemd's generators and
# packages (a future Debian native unit, which the override is made to cover).
_NOT_EDITS = ("/run/systemd/generator", "/lib/systemd/system/", "/usr/lib/systemd/system/")


def cross_packages(settings: Settings) -> list[str]:
    """Debian's packages of the cross compilers the build uses: the builder
    preprocesses with them, the workers compile with them."""
    return sorted({compiler_package(name) for name in settings.cross_compilers})


class UnitDriftRefusal(Refusal):
    """distcc.service was changed by hand in a way the mode switch must not undo."""


def unit_drift(sources: UnitSourcesInfo, own_dropin: str) -> str | None:
    """Why the worker's distcc unit, as changed by hand, cannot be taken over
    as is (with the fix), or None. The mode switch heals its own override;
    it does not unmask a unit or delete an admin's file."""
    unit = sources["unit"] or "distcc.service"
    if sources["file_state"] == "masked":
        return (
            f"{unit} is masked (linked to /dev/null), so distccd cannot start. Fix: if the mask is not wanted, "
            f"run 'systemctl unmask {unit}', then run the mode switch again"
        )
    if sources["file_state"] == "masked-runtime":
        # What an install of distcc cut off by SIGKILL leaves (apt.install_command).
        return (
            f"{unit} is masked until the next boot (a link to /dev/null in /run/systemd/system, as an install "
            f"cut off before it finished leaves it), so distccd cannot start. Fix: check that apt-get and dpkg "
            f"are done ('sudo dpkg --configure -a'), run 'systemctl unmask --runtime {unit}', then run the mode "
            f"switch again"
        )
    foreign = [
        s for s in sources["settings"]
        if s["file"] != own_dropin and not s["file"].startswith(_NOT_EDITS) and s["key"] in GOVERNING_KEYS
    ]
    if not foreign:
        return None
    found = "; ".join(f"{s['file']} line {s['line']}: {s['key']}={s['value']}" for s in foreign)
    return (
        f"{unit} has settings from files this package does not own that change how distccd runs beside its "
        f"override ({found}). Fix: remove those lines or files (a drop-in renamed to end in .disabled is "
        f"ignored; 'systemctl revert {unit}' drops a hand-written unit file), then run the mode switch again; "
        f"what the override sets comes from the distcc_* settings"
    )


# distcc-pump's include server fails under Debian 12's Python 3.11
# ("SystemError: PY_SSIZE_T_CLEAN macro must be defined for '#' formats"),
# and distcc then preprocesses every file on the builder: Debian fixed it
# in trixie's 3.4+really3.4-6 (upstream PR #479).
PUMP_BROKEN_RELEASES = {"bullseye": "Debian 11", "bookworm": "Debian 12"}


class PumpRefusal(Refusal):
    """distcc_pump asked for on a release whose include server does not work."""


def pump_refusal(settings: Settings, release: dict) -> str | None:
    """Why distcc_pump cannot be had on this builder, with the fix; None when it can."""
    codename = release.get("release") or ""
    if not settings.pump or codename not in PUMP_BROKEN_RELEASES:
        return None
    return (
        f"setting distcc_pump = True, but this builder runs {release.get('release_name') or codename}, whose "
        f"distcc-pump include server fails under its Python 3.11 (SystemError: PY_SSIZE_T_CLEAN), so every file "
        f"would still be preprocessed here. Fix: set distcc_pump = False on {codename}, or move the cluster to "
        f"Raspberry Pi OS trixie (docs/releases.md), whose distcc-pump works"
    )


def builder_packages(settings: Settings) -> list[str]:
    """The builder's packages: the client and make, the kernel's build tools,
    the cross compilers, and ccache and distcc-pump when asked for."""
    extra = [*(["ccache"] if settings.ccache else []), *(["distcc-pump"] if settings.pump else [])]
    return list(dict.fromkeys([*BUILDER_PACKAGES, *settings.build_packages, *cross_packages(settings), *extra]))


def installed_reads(settings: Settings, role: str | None) -> list:
    """What distcc_installed reads on a host of this role."""
    if role == "builder":
        return [(DebPackages, {}), *([(OsRelease, {}, BODY)] if settings.pump else [])]
    if role != "worker":
        return []
    return [
        (UnitSources, {"unit": distcc.UNIT}, BODY),
        (DebPackages, {}),
        (DistccMasquerade, {}),
        (PathStatus, {"path": settings.log_dir}),
        (PathStatus, {"path": LOGROTATE_CONFIG}),
        (PathStatus, {"path": distcc.OVERRIDE}),
        (PathStatus, {"path": paths.temporary_path(distcc.OVERRIDE)}),
        (UnitNeedsReload, {"unit": distcc.UNIT}),
        (UnitState, {"unit": distcc.UNIT}),
    ]


@deploy("distcc installed")
def distcc_installed():
    """distcc installed for this host's role, and nothing started. The
    builder gets the client; a worker also gets the compilers, the
    whitelist, the log directory and the hardened override, and the unit
    enabled (so it serves again after a reboot in build mode)."""
    settings = settings_for(host)
    role = role_of(host)
    if role == "builder":
        refusal = pump_refusal(settings, observed(OsRelease)) if settings.pump else None
        if refusal:
            raise PumpRefusal(f"host {host.name}: {refusal}. Nothing was changed on any host.")
        apt.packages_installed(
            name="Install the distcc client and the kernel's build tools", packages=builder_packages(settings),
            wait_seconds=settings.apt_lock_wait, held_units=[distcc.UNIT],
        )
        return
    if role != "worker":
        return
    config = daemon_config(settings)
    drift = unit_drift(observed(UnitSources, unit=distcc.UNIT), distcc.OVERRIDE)
    if drift:
        raise UnitDriftRefusal(f"host {host.name}: {drift}. Nothing was changed on any host.")
    apt.packages_installed(
        name="Install distcc", packages=[*WORKER_PACKAGES, *cross_packages(settings)], wait_seconds=settings.apt_lock_wait,
        held_units=[distcc.UNIT],
    )
    distcc.masquerade_links(
        name="Whitelist the installed compilers in /usr/lib/distcc",
        compilers=list(settings.compilers) if settings.compilers else None,
    )
    paths.directory_present(
        name="distccd log directory", path=settings.log_dir, user="distccd", group="adm", mode="2750"
    )
    paths.file_installed(
        name="distccd log rotation",
        path=LOGROTATE_CONFIG,
        content=render_template("distccd-logrotate.j2", {"log_file": f"{settings.log_dir}/distccd.log"}),
    )
    systemd.dropin_installed(
        name="distccd override (foreground, hardened)", unit=distcc.UNIT, content=override_text(config)
    )
    distcc.distccd_enabled(name="distccd enabled")
