"""The builder side of build mode: never a distccd, the build tree's tmpfs,
and the client environment of the build user; and the way back."""

from __future__ import annotations

from pyinfra import host, inventory, logger, state
from pyinfra.api import deploy

from deploys.library.build_guard import refuse_under_running_build, running_build
from deploys.library.cluster import host_resources, peer_name, role_of, worker_hosts, worker_jobs
from deploys.library.settings import Settings, SettingsError, settings_for, tmpfs_size_for
from facts.distcc import COMPILER_NAME, MASQUERADE_DIR, DistccProcesses
from facts.host import HostNames
from facts.logs import BackoffMarkers, ClientLogsWithJobs
from facts.mounts import MountPointStatus, TmpfsMount, hidden_mount_fix, mount_hidden
from facts.paths import PathStatus
from facts.pump import PUMP_OPTIONS
from facts.systemd import UnitState
from facts.users import OVERRIDDEN, LoginEnv, LoginEnvironment
from operations import distcc, mounts, paths
from operations._observed import BODY, BOTH, observed, plan_reads
from operations._printed import Refusal, logged
from operations.templates import render_template


class DataSafetyRefusal(Refusal):
    """The builder's state makes a change unsafe (files would be hidden)."""


class LoginDriftRefusal(Refusal):
    """The build user's own shell files take builds away from the farm."""


def _bypasses_masquerade(command: str, ccache: bool = False) -> bool:
    """Whether CC/CXX would run a compiler other than through distcc: an
    absolute path outside /usr/lib/distcc, or a name distcc does not serve.
    With distcc_ccache, `ccache gcc` goes through distcc too (the profile's
    CCACHE_PREFIX=distcc)."""
    first = command.split()[0] if command.split() else ""
    if first.endswith("/distcc") or first == "distcc" or first.startswith(f"{MASQUERADE_DIR}/"):
        return False
    if ccache and (first == "ccache" or first.endswith("/ccache")):
        return False
    return first.startswith("/") or not COMPILER_NAME.match(first)


def login_drift(login: LoginEnv, ccache: bool = False) -> str | None:
    """What in the build user's own login environment takes compiles away
    from the farm, file and line named, or None. The mode switch cannot heal
    it (a user's shell files are theirs). A PATH that merely puts ~/bin or
    ~/.local/bin first (Debian's ~/.profile does) is fine while every
    compiler name still runs the masquerade."""
    problems = []
    for override in login["overrides"]:
        key, _, value = override["text"].removeprefix("export").strip().partition("=")
        value = value.strip().strip("\"'")
        if key not in OVERRIDDEN:
            continue  # CCACHE_*, DISTCC_PUMP_HOSTS: B-CCACHE and B-PUMP judge them
        if key in ("CC", "CXX") and not _bypasses_masquerade(value, ccache):
            continue
        why = {
            "DISTCC_HOSTS": "replaces the farm's host list in ~/.distcc/hosts",
            "DISTCC_DIR": "moves distcc's state and host list away from ~/.distcc",
        }.get(key, "runs that compiler directly instead of through distcc")
        problems.append(f"{override['file']} line {override['line']}: {override['text']} ({why})")
    home = login["home"] or "/nonexistent"
    for name, found in sorted(login["compilers"].items()):
        if found and found.startswith(f"{home}/"):
            problems.append(f"{found} comes before {MASQUERADE_DIR} on the login PATH, so `{name}` compiles locally")
    if not problems:
        return None
    return (
        f"the build user {login['user']}'s own shell files take compiles away from the farm: "
        f"{'; '.join(problems)}. Fix: remove or rename those (the farm's settings come from ~/.distcc/hosts and "
        f"{PROFILE_SCRIPT}), then run the mode switch again"
    )


PROFILE_SCRIPT = "/etc/profile.d/distcc-build.sh"
PROFILE_TEMPLATE = "distcc-profile.sh.j2"
# The build user's client log (DISTCC_LOG, set by the profile script), under their home.
CLIENT_LOG = ".distcc/client.log"


# ccache's directory unless distcc_ccache_dir says otherwise: one level under
# the build user's home (made by the mode switch, owned by the user), on
# disk, so the cache survives a reboot; ccache 4 reads it as its legacy
# default too.
CCACHE_DIR = ".ccache"


def ccache_dir(settings: Settings, home: str) -> str:
    return settings.ccache_dir or f"{home}/{CCACHE_DIR}"


# ccache's temporary directory (CCACHE_TEMPDIR): on /run, a tmpfs, made
# again at every boot by systemd-tmpfiles from CCACHE_TMPFILES. ccache keeps
# its inode cache there (the hashes of the headers it has read, so that a hit
# does not read and hash them again), and uses it only on a filesystem it
# knows (ext4, btrfs, xfs, tmpfs). Its own default is /run/user/UID, which
# only a login session has, else ~/.ccache/tmp, which on an overlay root
# (Raspberry Pi OS's overlay file system, the lab's containers) turns the
# inode cache off: measured on the lab, a warm tinyconfig rebuild took
# 32.4 s here against 36.4 s there. Its temporary files stay off the SD card.
CCACHE_TEMPDIR = "/run/distcc-ccache"
CCACHE_TMPFILES = "/etc/tmpfiles.d/distcc-ccache.conf"


def profile_context(settings: Settings) -> dict:
    """What the build user's profile script is rendered from."""
    ccache = None
    if settings.ccache:
        # Sizes here are powers of 1024; ccache reads "2G" as 2 * 1000^3.
        ccache = {"dir": ccache_dir(settings, "$HOME"), "size": f"{settings.ccache_size}i", "tempdir": CCACHE_TEMPDIR,
                  "tmpfiles": CCACHE_TMPFILES}
    return {
        "build_user": settings.build_user, "fallback": 1 if settings.client_fallback else 0, "ccache": ccache,
        "pump_options": PUMP_OPTIONS if settings.pump else None, "pump_slot_factor": PUMP_SLOT_FACTOR,
    }


def tmpfs_status(settings: Settings) -> tuple[MountPointStatus, str]:
    """The builder's tmpfs mount point and the size it gets, refused while
    the deploy file loads (so before any host changes) when it cannot fit,
    or when the path no longer reaches it (mounts.mount_hidden)."""
    status = observed(TmpfsMount, path=settings.tmpfs_path)
    if mount_hidden(status):
        raise DataSafetyRefusal(
            f"host {host.name}: setting distcc_tmpfs_path = {settings.tmpfs_path!r}: "
            f"{hidden_mount_fix(status, 'run the deploy again')}. Nothing was changed on any host."
        )
    memory = status["memory_bytes"]
    size = tmpfs_size_for(settings, memory)
    if memory and mounts.parse_size(size) > memory:
        raise SettingsError(
            f"host {host.name}: setting distcc_tmpfs_size = {settings.tmpfs_size!r} is larger than the "
            f"builder's memory ({memory // 1024**2} MiB); a tmpfs that size would push the build into swap "
            f"or the OOM killer. Fix: set distcc_tmpfs_size below that, e.g. half of it. Nothing was changed "
            f"on any host."
        )
    return status, size


def misnamed_workers(workers: list) -> list[str]:
    """The workers whose names resolve here to an address that is none of
    theirs (read once per run, host_resources), each with both: distcc
    would send that worker's jobs to whoever holds the address. A worker
    not connected in this run is not judged (its addresses are unknown)."""
    names = observed(HostNames, names=[peer_name(w) for w in workers])["resolves"]
    theirs = host_resources(state, workers)
    wrong = []
    for worker in workers:
        addresses = names.get(peer_name(worker)) or []
        own = (theirs.get(worker.name) or {}).get("addresses") or []
        if addresses and own and not set(addresses) & set(own):
            wrong.append(f"{peer_name(worker)} to {', '.join(addresses)} (its addresses are {', '.join(own)})")
    return wrong


# distcc_pump's host-list options (facts.pump.PUMP_OPTIONS) go only in
# DISTCC_PUMP_HOSTS, which the profile derives from ~/.distcc/hosts for
# `distcc-pump`: a plain make with ,cpp hosts gets no include server, so it
# preprocesses every file here anyway, after two warnings per job.
# A pump job spends longer in flight than a plain one (the include server's
# analysis, the headers sent with it), so DISTCC_PUMP_HOSTS offers each
# worker twice its slots: distccd still runs at most --jobs compilers, and
# the next jobs wait in its listen queue instead of leaving its CPU idle.
# Measured (make bench-build, 4 workers at 0.4 CPU, linux-source-6.12
# tinyconfig): 152.6 s at 1x, 130.1 s at 2x, 130.4 s at 3x; plain 165.2 s.
PUMP_SLOT_FACTOR = 2


def pump_host_entry(entry: str) -> str:
    """A plain host-list entry ("NAME:PORT/SLOTS") as DISTCC_PUMP_HOSTS has it."""
    name, slash, slots = entry.rpartition("/")
    if slash and slots.isdigit():
        entry = f"{name}/{int(slots) * PUMP_SLOT_FACTOR}"
    return f"{entry}{PUMP_OPTIONS}"


def host_list(settings: Settings) -> list[str]:
    """HOST:PORT/LIMIT for every worker the builder can send jobs to,
    refused while loading when a worker's name resolves here to another
    host."""
    workers = worker_hosts(inventory)
    jobs = worker_jobs(state, workers)
    wrong = misnamed_workers(workers)
    if wrong:
        raise SettingsError(
            f"host {host.name}: the builder resolves {'; '.join(wrong)}, so distcc would send those workers' jobs "
            f"to other hosts. Fix: correct the builder's /etc/hosts or the DNS records so each worker's name "
            f"resolves to its own address, then run the mode switch again. Nothing was changed on any host."
        )
    entries = []
    for worker in workers:
        limit = jobs[worker.name]
        if limit is None:
            logger.warning(host.print_prefix + logged(
                f"worker {worker.name} is not reachable in this run and has no distcc_jobs; "
                f"it is left out of the host list until the next run reaches it"
            ))
            continue
        entries.append(f"{peer_name(worker)}:{settings_for(worker).port}/{limit}")
    return entries


def client_logs(home: str) -> list[str]:
    return [f"{home}/{CLIENT_LOG}", f"{home}/{CLIENT_LOG}.1"]


def home_reads(home: str, settings: Settings | None = None) -> list:
    """What builder_client_only reads under the build user's home."""
    ccache = [
        (PathStatus, {"path": ccache_dir(settings, home)}),
        (PathStatus, {"path": CCACHE_TMPFILES}),
        (PathStatus, {"path": CCACHE_TEMPDIR}),
    ] if settings and settings.ccache else []
    return [
        *ccache,
        (PathStatus, {"path": f"{home}/.distcc"}),
        (BackoffMarkers, {"directory": f"{home}/.distcc"}),
        (ClientLogsWithJobs, {"paths": client_logs(home)}),
        (PathStatus, {"path": f"{home}/.distcc/hosts"}),
    ]


def client_only_reads(settings: Settings) -> list:
    """What builder_client_only reads before the build user's home is known."""
    return [
        (TmpfsMount, {"path": settings.tmpfs_path}, BOTH),
        (HostNames, {"names": [peer_name(w) for w in worker_hosts(inventory)]}, BODY),
        (DistccProcesses, {}),
        (UnitState, {"unit": distcc.UNIT}),
        (LoginEnvironment, {"user": settings.build_user}, BODY),
        (PathStatus, {"path": PROFILE_SCRIPT}),
    ]


def tmpfs_released_reads(settings: Settings) -> list:
    return [(TmpfsMount, {"path": settings.tmpfs_path}, BOTH)]


@deploy("builder client only")
def builder_client_only():
    """No distccd on the builder, the tmpfs at its integrity, and the build
    user's client environment (host list, masquerade PATH, fallback policy).
    Runs after distcc_installed."""
    settings = settings_for(host)
    if role_of(host) != "builder":
        return
    status, size = tmpfs_status(settings)
    refusal = mounts.mount_refusal(status) if status["mount"] is None else None
    if refusal:
        # Refused here, while the deploy file loads, rather than by the mount
        # operation mid-run: then no host has changed yet.
        raise DataSafetyRefusal(f"host {host.name}: {refusal} Nothing was changed on any host.")
    if mounts.tmpfs_change(status, size, settings.tmpfs_mode) == "remount":
        refuse_under_running_build(
            settings, f"remount the tmpfs at {settings.tmpfs_path} with new options (size {size}, mode "
            f"{settings.tmpfs_mode}, exec)", "a remount under the build can fail it midway (a smaller size)",
        )
    distcc.distccd_stopped(name="distccd stopped and disabled on the builder", disable=True)
    mounts.tmpfs_mounted(
        name="Build tree tmpfs mounted", path=settings.tmpfs_path, size=size, mode=settings.tmpfs_mode
    )
    user = settings.build_user
    login = observed(LoginEnvironment, user=user)
    home = login["home"]
    if home is None:
        raise SettingsError(
            f"host {host.name}: setting distcc_build_user = {user!r} names no user on the builder. Fix: set it "
            f"to the user who runs the kernel build, or create that user. Nothing was changed on any host."
        )
    drift = login_drift(login, settings.ccache)
    if drift:
        raise LoginDriftRefusal(f"host {host.name}: {drift}. Nothing was changed on any host.")
    # What lives under the build user's home can be planned only now that
    # the home is known; the operations read it with the rest of theirs.
    plan_reads(host, home_reads(home, settings))
    paths.directory_present(
        name="distcc state directory of the build user", path=f"{home}/.distcc", user=user, group=None, mode="755"
    )
    if settings.ccache:
        paths.directory_present(
            name="ccache directory of the build user", path=ccache_dir(settings, home), user=user, group=None, mode="755"
        )
        paths.file_installed(
            name="ccache's temporary directory made at boot (tmpfiles.d)",
            path=CCACHE_TMPFILES,
            content=render_template("distcc-ccache-tmpfiles.conf.j2", {"path": CCACHE_TEMPDIR, "user": user}),
        )
        paths.directory_present(
            name="ccache's temporary directory of the build user", path=CCACHE_TEMPDIR, user=user, group=None,
            mode="700",
        )
    if running_build(settings):
        # The running build's client log is the build report's window, and
        # its backoff markers its own: a mode switch under it keeps both.
        logger.info(f"{host.print_prefix}a build is running: its client log and backoff markers are kept")
    else:
        distcc.client_state_cleared(
            name="Client state of the last build cleared (backoff markers, client log)",
            directory=f"{home}/.distcc", logs=client_logs(home),
        )
    paths.file_installed(
        name="distcc host list of the build user",
        path=f"{home}/.distcc/hosts",
        content=render_template("distcc-hosts.j2", {"hosts": host_list(settings)}),
        user=user,
        group=None,
        mode="644",
    )
    paths.file_installed(
        name="Masquerade PATH and fallback policy for the build user",
        path=PROFILE_SCRIPT,
        content=render_template(PROFILE_TEMPLATE, profile_context(settings)),
    )


@deploy("builder tmpfs released")
def builder_tmpfs_released():
    """The tmpfs unmounted when it is empty (or when discarding is asked for)."""
    settings = settings_for(host)
    if role_of(host) != "builder":
        return
    status, _ = tmpfs_status(settings)
    if mounts.unmount_due(status, settings.discard_tmpfs):
        refuse_under_running_build(
            settings, f"unmount the tmpfs at {settings.tmpfs_path}", "the build loses its tree and its output"
        )
    mounts.tmpfs_unmounted(
        name="Build tree tmpfs unmounted when empty", path=settings.tmpfs_path, discard=settings.discard_tmpfs
    )
