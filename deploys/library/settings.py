"""Every setting of this package: its default, what it means, and how it is
validated. All deploys read settings through `settings_for(host)`, which
refuses bad input with one paragraph naming the host, the setting and the fix,
before any operation is planned (so before any host is changed).

Settings are pyinfra host data: set them in inventories/group_data/*.py, or
per host in the inventory (see inventories/cluster.py).
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import re
from dataclasses import dataclass

from pyinfra.api.exceptions import PyinfraError

from operations.mounts import parse_size

# key: (default, meaning). Keys are prefixed so they never clash with
# pyinfra's own data (ssh_*, _sudo ...).
DEFAULTS: dict[str, tuple[object, str]] = {
    "distcc_port": (3632, "workers: distccd's TCP port"),
    "distcc_allow": (None, "workers: CIDRs distccd accepts; default: the builder's address as the worker resolves it, /32"),
    "distcc_allow_open_ok": (False, "accept an allow list that covers every address (0.0.0.0/0): distccd is remote code execution"),
    "distcc_listen": (None, "workers: address distccd listens on; default: the worker's source address toward the builder"),
    "distcc_builder_address": (None, "address of the builder as workers see it; default: the builder's name resolved on the worker"),
    "distcc_jobs": (None, "workers: parallel jobs distccd accepts (--jobs) and the builder sends; default: CPUs, at most one per 400 MiB"),
    "distcc_nice": (10, "workers: distccd --nice (0-20)"),
    "distcc_log_level": ("info", "workers: distccd --log-level (critical, error, warning, notice, info, debug)"),
    "distcc_log_dir": ("/var/log/distccd", "workers: directory of distccd's log file"),
    "distcc_compilers": (None, "compiler names whitelisted in /usr/lib/distcc; default: every installed gcc/g++ name"),
    # A remote job keeps its preprocessed source, object and stderr in distccd's
    # /tmp: a preprocessed kernel .c is commonly 1-5 MB and the odd one near
    # 10 MB, its object a few MB (over 10 MB with debug info), so under 30 MB
    # a job; with --jobs 4 (a CM4's CPUs) that is at most about 120 MB. 256M
    # gives twice that, and a tmpfs holds only what is written to it.
    "distcc_worker_tmp_size": ("256M", "workers: size cap of distccd's private /tmp in RAM, for remote jobs' temporary files (K, M or G)"),
    # Raspberry Pi's kernel guide builds a 64-bit kernel from the 32-bit OS
    # with CROSS_COMPILE=aarch64-linux-gnu-: then the builder sends that name.
    "distcc_cross_compilers": (
        [], "cross compilers the build runs, e.g. ['aarch64-linux-gnu-gcc']: installed on every node from Debian, "
        "whitelisted, compared with the builder's and smoke-tested",
    ),
    # What Raspberry Pi's kernel guide installs before a build (libelf-dev
    # for configs with BTF or objtool); the cross compilers come with
    # distcc_cross_compilers. An empty list installs none of them.
    "distcc_build_packages": (
        ["bc", "bison", "flex", "libssl-dev", "libelf-dev", "make"],
        "builder: Debian packages a kernel build needs, installed in build mode (an empty list installs none)",
    ),
    # ccache in front of distcc on the builder: a rebuild of the same tree
    # (after make clean, a bisect step, a branch switch) hits the cache and
    # neither preprocesses nor compiles. The cache lives under the build
    # user's home by default: on disk, so it survives a reboot.
    "distcc_ccache": (False, "builder: ccache in front of distcc for the build user (CCACHE_PREFIX=distcc)"),
    "distcc_ccache_dir": (None, "builder: ccache's directory; default: ~/.ccache of the build user (on disk)"),
    "distcc_ccache_size": ("2G", "builder: ccache's size cap (K, M or G); one cold build's share is in bench/build-results.md"),
    # distcc's pump mode moves preprocessing to the workers; Debian 12's
    # include server fails under Python 3.11, so it is refused there.
    "distcc_pump": (
        False,
        "builder: distcc-pump installed and DISTCC_PUMP_HOSTS (the host list with ,cpp,lzo) in the build user's "
        "profile, for `distcc-pump make`",
    ),
    "distcc_smoke_timeout": (60, "smoke test: seconds one compile may take (timeout), raised for slow or emulated workers"),
    "distcc_force_restart": (False, "workers: restart distccd in the reset even when it is healthy"),
    "distcc_tmpfs_path": ("/tmp/kernel-build", "builder: where the build tree's tmpfs is mounted"),
    "distcc_tmpfs_size": (None, "builder: tmpfs size (K, M or G); must fit in the builder's memory; default: half of it"),
    "distcc_tmpfs_mode": ("1777", "builder: permission bits of the tmpfs root"),
    "distcc_discard_tmpfs": (False, "builder: on the way back to k3s mode, unmount the tmpfs even when it holds files"),
    # A build in another terminal is the normal case: a deploy that would
    # stop or restart distccd, unmount or remount the build tree, or start
    # k3s refuses while one runs, unless told to go ahead.
    "distcc_build_running_ok": (
        False, "go ahead while a build runs: its remote jobs fail (and are compiled on the builder, or fail the build "
        "with fallback off), an unmounted tree is lost to it, and k3s takes CPU and memory from it",
    ),
    "distcc_build_dirs": (
        [], "builder: directories besides the tmpfs where a build runs (an O= output directory), watched for make, "
        "gcc and cc1 working there",
    ),
    "distcc_build_user": (None, "builder: the user who runs the kernel build (gets PATH and host list); default: the SSH user"),
    "distcc_client_fallback": (True, "builder: DISTCC_FALLBACK for the build user; True compiles locally when no worker can"),
    "distcc_k3s_units": (["k3s", "k3s-server", "k3s-agent"], "k3s units stopped in build mode and started in k3s mode"),
    # Kubernetes gives a pod 30 s between SIGTERM and SIGKILL by default
    # (terminationGracePeriodSeconds); the pods are stopped together, so the
    # switch waits at most this long for all of them.
    "distcc_pod_grace": (30, "seconds a pod gets between SIGTERM and SIGKILL when build mode stops k3s (0: SIGKILL at once)"),
    # Pi clusters take minutes to settle after a start (SD cards, etcd).
    "distcc_k3s_timeout": (600, "k3s mode: seconds each node's k3s may take to be active and Ready before it is named as late"),
    "distcc_mtu": (1500, "MTU every node must have on the path between builder and workers"),
    "distcc_report_path": ("reports/validate.json", "where validation writes its JSON report (on this machine)"),
    # Read from the builder's data. The narrow default fits a 100-column
    # terminal at any cluster size; the full tables (24 check columns, 220
    # and more characters a row) wrap on most terminals.
    "distcc_wide_tables": (
        False, "validation and the build report print their full tables (one column per check, per failure "
        "reason) instead of one narrow line per host",
    ),
    "distcc_apt_lock_wait": (120, "seconds to wait for another apt or dpkg run (unattended-upgrades) to let go of the dpkg lock"),
}

_LOG_LEVELS = ("critical", "error", "warning", "notice", "info", "debug")
# distccd writes its one dcc_job_summary line per job at notice: the smoke
# test and the build report read those lines, so quieter levels would make
# every worker look idle.
_QUIET_LOG_LEVELS = ("critical", "error", "warning")
_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
_UNIT = re.compile(r"^[A-Za-z0-9@._-]+$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$")
_COMPILER = re.compile(r"^[A-Za-z0-9._+-]+$")
CROSS_COMPILER = re.compile(r"^(?P<triplet>[a-z0-9_]+-linux-gnu[a-z]*)-(?P<driver>gcc|g\+\+)(?:-(?P<version>\d+))?$")
_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


class SettingsError(PyinfraError):
    """Bad inventory or host data, found before anything is changed."""


@dataclass(frozen=True)
class Settings:
    port: int
    allow: tuple[str, ...] | None
    allow_open_ok: bool
    listen: str | None
    builder_address: str | None
    jobs: int | None
    nice: int
    log_level: str
    log_dir: str
    compilers: tuple[str, ...] | None
    cross_compilers: tuple[str, ...]
    build_packages: tuple[str, ...]
    ccache: bool
    ccache_dir: str | None
    ccache_size: str
    pump: bool
    worker_tmp_size: str
    force_restart: bool
    smoke_timeout: int
    tmpfs_path: str
    tmpfs_size: str | None
    tmpfs_mode: str
    discard_tmpfs: bool
    build_running_ok: bool
    build_dirs: tuple[str, ...]
    build_user: str
    client_fallback: bool
    k3s_units: tuple[str, ...]
    pod_grace: int
    k3s_timeout: int
    mtu: int
    report_path: str
    wide_tables: bool
    apt_lock_wait: int


def shown(text: str) -> str:
    """A name as printed: as is when ASCII, else escaped (everything printed is ASCII)."""
    return text if text.isascii() else ascii(text)


def _fail(host_name: str, key: str, value: object, problem: str, fix: str) -> SettingsError:
    return SettingsError(
        f"host {shown(host_name)}: setting {shown(key)} = {ascii(value)} {problem}. Fix: {fix} "
        f"(in the inventory's host data, inventories/group_data/ or --data). Nothing was changed on any host."
    )


def _bool(host_name: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail(host_name, key, value, "is not True or False", f"set {key} = True or {key} = False")
    return value


def _int(host_name: str, key: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(host_name, key, value, f"is not a whole number from {low} to {high}", f"set {key} to such a number")
    return value


def _ascii(host_name: str, key: str, value: object) -> None:
    if not repr(value).isascii():
        raise _fail(
            host_name, key, value, "contains non-ASCII characters",
            "use plain ASCII: everything this package writes and prints is ASCII",
        )


def _address(host_name: str, key: str, value: object) -> str:
    """One host's own unicast IPv4 address: 0.0.0.0 would mean every address
    (distccd on all interfaces), and loopback or multicast cannot link the
    builder and a worker."""
    try:
        address = ipaddress.IPv4Address(str(value).strip())
    except ValueError:
        raise _fail(host_name, key, value, "is not an IPv4 address", f"set {key} to an address like 10.0.0.11") from None
    kind = (
        "the any-address (every interface)" if address.is_unspecified
        else "a loopback address" if address.is_loopback
        else "a multicast or broadcast address" if address.is_multicast or address == _BROADCAST
        else None
    )
    if kind:
        raise _fail(
            host_name, key, value, f"is {kind}, not one host's address on the cluster network",
            f"set {key} to the LAN address of that Pi, e.g. 10.0.0.11, or leave it unset for the default",
        )
    return str(address)


def _networks(host_name: str, key: str, value: object, open_ok: bool) -> tuple[str, ...]:
    # A string may hold several CIDRs ("10.0.0.10/32,10.0.0.12/32"), as
    # --data passes them.
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or items == [""]:
        raise _fail(host_name, key, value, "is not a list of CIDRs", f"set {key} = ['10.0.0.10/32']")
    nets = []
    for item in items:
        try:
            net = ipaddress.IPv4Network(str(item), strict=True)
        except ValueError as exc:
            raise _fail(
                host_name, key, value, f"holds {ascii(item)}, which is not a valid IPv4 CIDR ({exc})",
                "write each entry as ADDRESS/PREFIX with the host bits zero, e.g. 10.0.0.10/32 or 10.0.0.0/24",
            ) from None
        nets.append(net)
    # Open is judged on the union: 0.0.0.0/1 plus 128.0.0.0/1 is every address too.
    if any(net.prefixlen == 0 for net in ipaddress.collapse_addresses(nets)) and not open_ok:
        raise _fail(
            host_name, key, value, "opens distccd to every address (anyone who can reach the port can run "
            "compilers on the worker)", "list only the builder, e.g. its address /32; if you really accept the "
            "risk, also set distcc_allow_open_ok = True",
        )
    return tuple(str(net) for net in nets)


def _misspelt(key: str) -> bool:
    """A key meant as one of this package's settings but not spelt as one:
    a case or hyphen variant, or a near miss of the distcc_ prefix
    (distc_, distccd_, dsitcc_). Other tools' keys are left alone."""
    if key in DEFAULTS or key.startswith("_"):
        return False
    normal = key.lower().replace("-", "_")
    prefix = normal.partition("_")[0]
    return normal.startswith("distcc") or difflib.SequenceMatcher(None, prefix, "distcc").ratio() > 0.8


def _unknown_key(host_name: str, key: str, value: object) -> SettingsError:
    # Compared without the prefix, which every setting shares.
    normal = key.lower().replace("-", "_")
    rest = normal.partition("_")[2] or normal.removeprefix("distcc")
    settings = {k.partition("_")[2]: k for k in DEFAULTS}
    close = difflib.get_close_matches(rest, settings, n=1, cutoff=0.6)
    hint = f"did you mean {settings[close[0]]}?" if close else "see deploys/library/settings.py for every setting"
    return _fail(host_name, key, value, "is not a setting of this package", f"remove or rename it ({hint})")


def settings_for(host) -> Settings:
    """This host's validated settings, defaults filled in."""
    name = host.name
    if not name.isascii():
        raise SettingsError(
            f"host {ascii(name)}: the host name has non-ASCII characters. Fix: use its ASCII name (or address) "
            f"in the inventory. Nothing was changed on any host."
        )
    data = host.data.dict()
    for key, value in data.items():
        if _misspelt(key):
            raise _unknown_key(name, key, value)
    ssh_user = data.get("ssh_user")
    if ssh_user not in (None, "root") and data.get("_sudo") is not True:
        # Without it every fact and operation runs as the SSH user and fails
        # one by one on permissions; a copied inventory loses group_data/all.py,
        # which sets it for the lab and the template.
        raise SettingsError(
            f"host {shown(name)}: setting _sudo is not True, and the SSH user {shown(str(ssh_user))} is not root, "
            f"but every deploy here needs root. Fix: set _sudo = True in the host's data (inventories/cluster.py "
            f"does) or in group_data/all.py beside the inventory, and give that user passwordless sudo. Nothing "
            f"was changed on any host."
        )

    def get(key: str) -> object:
        value = data.get(key, DEFAULTS[key][0])
        _ascii(name, key, value)
        return value

    port = _int(name, "distcc_port", get("distcc_port"), 1, 65535)
    allow_open_ok = _bool(name, "distcc_allow_open_ok", get("distcc_allow_open_ok"))
    allow = get("distcc_allow")
    listen = get("distcc_listen")
    builder_address = get("distcc_builder_address")
    jobs = get("distcc_jobs")
    compilers = get("distcc_compilers")
    if compilers is not None:
        if not isinstance(compilers, list | tuple) or not all(isinstance(c, str) and _COMPILER.match(c) for c in compilers):
            raise _fail(name, "distcc_compilers", compilers, "is not a list of compiler names", "set e.g. ['gcc', 'gcc-12']")
    cross = get("distcc_cross_compilers")
    if isinstance(cross, str) or not isinstance(cross, list | tuple) or not all(
        isinstance(c, str) and CROSS_COMPILER.match(c) for c in cross
    ):
        raise _fail(
            name, "distcc_cross_compilers", cross, "is not a list of cross compiler names (TRIPLET-gcc or TRIPLET-g++)",
            "set e.g. ['aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-g++'], the names CROSS_COMPILE makes the build run",
        )
    build_packages = get("distcc_build_packages")
    if isinstance(build_packages, str) or not isinstance(build_packages, list | tuple) or not all(
        isinstance(p, str) and _PACKAGE.match(p) for p in build_packages
    ):
        raise _fail(
            name, "distcc_build_packages", build_packages, "is not a list of Debian package names",
            "set e.g. ['bc', 'bison', 'flex', 'libssl-dev', 'libelf-dev', 'make'], or [] to install none",
        )
    log_level = get("distcc_log_level")
    if log_level not in _LOG_LEVELS:
        raise _fail(name, "distcc_log_level", log_level, "is not a distccd log level", f"use one of {', '.join(_LOG_LEVELS)}")
    if log_level in _QUIET_LOG_LEVELS:
        raise _fail(
            name, "distcc_log_level", log_level, "is below notice, so distccd would not log the per-job summaries that "
            "the smoke test and the build report count", "use notice, info (the default) or debug",
        )
    for key in ("distcc_log_dir", "distcc_tmpfs_path"):
        value = get(key)
        if not isinstance(value, str) or not _PATH.match(value) or value.rstrip("/") in ("", "/tmp", "/var", "/usr", "/home"):
            raise _fail(name, key, value, "is not a dedicated absolute path", "use a path of its own such as /tmp/kernel-build")
    ccache_dir = get("distcc_ccache_dir")
    if ccache_dir is not None and (not isinstance(ccache_dir, str) or not _PATH.match(ccache_dir)
                                   or ccache_dir.rstrip("/") in ("", "/tmp", "/var", "/usr", "/home")):
        raise _fail(name, "distcc_ccache_dir", ccache_dir, "is not a dedicated absolute path",
                    "use a directory of its own on disk, e.g. '/var/cache/kbuild-ccache', or leave it unset")
    for key in ("distcc_tmpfs_size", "distcc_worker_tmp_size", "distcc_ccache_size"):
        size = get(key)
        if size is None and key == "distcc_tmpfs_size":
            continue  # sized from the builder's memory (tmpfs_size_for)
        try:
            if isinstance(size, bool) or parse_size(str(size)) < 16 * 1024**2:
                raise ValueError("too small")
        except ValueError:
            raise _fail(
                name, key, size, "is not a size of at least 16M",
                "write it as a whole number with K, M or G (powers of 1024), e.g. '3G' or '1536M'",
            ) from None
    build_dirs = get("distcc_build_dirs")
    if isinstance(build_dirs, str) or not isinstance(build_dirs, list | tuple) or not all(
        isinstance(d, str) and _PATH.match(d) and d.rstrip("/") not in ("", "/tmp", "/var", "/usr", "/home")
        for d in build_dirs
    ):
        raise _fail(
            name, "distcc_build_dirs", build_dirs, "is not a list of dedicated absolute paths",
            "set e.g. ['/srv/kernel-out'], the O= directory of a build outside the tmpfs, or [] for none",
        )
    tmpfs_size = get("distcc_tmpfs_size")
    tmpfs_mode = str(get("distcc_tmpfs_mode"))
    if not re.fullmatch(r"[0-7]{3,4}", tmpfs_mode):
        raise _fail(name, "distcc_tmpfs_mode", tmpfs_mode, "is not an octal mode", "write it like '1777' or '0755'")
    # Raspberry Pi OS has had no default `pi` user since 2022: the one who
    # logs in (the SSH user; like ssh, paramiko defaults to the local user
    # name) is the one who builds, unless told otherwise.
    build_user = get("distcc_build_user")
    if build_user is None:
        build_user = data.get("ssh_user") or getpass.getuser()
    if not isinstance(build_user, str) or not _NAME.match(build_user):
        raise _fail(name, "distcc_build_user", build_user, "is not a user name", "set the user who runs the build, e.g. 'alice'")
    units = get("distcc_k3s_units")
    if isinstance(units, str) or not isinstance(units, list | tuple) or not all(isinstance(u, str) and _UNIT.match(u) for u in units):
        raise _fail(name, "distcc_k3s_units", units, "is not a list of unit names", "set e.g. ['k3s', 'k3s-agent']")
    report_path = get("distcc_report_path")
    if not isinstance(report_path, str) or not report_path:
        raise _fail(name, "distcc_report_path", report_path, "is not a file path", "set e.g. 'reports/validate.json'")

    return Settings(
        port=port,
        allow=None if allow is None else _networks(name, "distcc_allow", allow, allow_open_ok),
        allow_open_ok=allow_open_ok,
        listen=None if listen is None else _address(name, "distcc_listen", listen),
        builder_address=None if builder_address is None else _address(name, "distcc_builder_address", builder_address),
        jobs=None if jobs is None else _int(name, "distcc_jobs", jobs, 1, 256),
        nice=_int(name, "distcc_nice", get("distcc_nice"), 0, 20),
        log_level=log_level,
        log_dir=get("distcc_log_dir").rstrip("/"),
        compilers=None if compilers is None else tuple(compilers),
        cross_compilers=tuple(cross),
        build_packages=tuple(build_packages),
        ccache=_bool(name, "distcc_ccache", get("distcc_ccache")),
        ccache_dir=None if ccache_dir is None else ccache_dir.rstrip("/"),
        ccache_size=str(get("distcc_ccache_size")).upper(),
        pump=_bool(name, "distcc_pump", get("distcc_pump")),
        worker_tmp_size=str(get("distcc_worker_tmp_size")).upper(),
        force_restart=_bool(name, "distcc_force_restart", get("distcc_force_restart")),
        smoke_timeout=_int(name, "distcc_smoke_timeout", get("distcc_smoke_timeout"), 5, 3600),
        tmpfs_path=get("distcc_tmpfs_path").rstrip("/"),
        tmpfs_size=None if tmpfs_size is None else str(tmpfs_size).upper(),
        tmpfs_mode=tmpfs_mode.zfill(4),
        discard_tmpfs=_bool(name, "distcc_discard_tmpfs", get("distcc_discard_tmpfs")),
        build_running_ok=_bool(name, "distcc_build_running_ok", get("distcc_build_running_ok")),
        build_dirs=tuple(d.rstrip("/") for d in build_dirs),
        build_user=build_user,
        client_fallback=_bool(name, "distcc_client_fallback", get("distcc_client_fallback")),
        k3s_units=tuple(units),
        pod_grace=_int(name, "distcc_pod_grace", get("distcc_pod_grace"), 0, 3600),
        k3s_timeout=_int(name, "distcc_k3s_timeout", get("distcc_k3s_timeout"), 10, 86400),
        mtu=_int(name, "distcc_mtu", get("distcc_mtu"), 576, 9216),
        report_path=report_path,
        wide_tables=_bool(name, "distcc_wide_tables", get("distcc_wide_tables")),
        apt_lock_wait=_int(name, "distcc_apt_lock_wait", get("distcc_apt_lock_wait"), 0, 3600),
    )


# cc1 on a large kernel file takes a few hundred MiB; distccd's own default
# (CPUs + 2, so 6 on a Pi) would push a 1 GB CM3+ into the OOM killer.
JOB_MEMORY = 400 * 1024**2


def jobs_for(settings: Settings, cpus: int, memory_bytes: int) -> int:
    """Jobs a worker takes: distcc_jobs, else its CPU count, lowered to one
    job per JOB_MEMORY of its memory (2 on a 1 GB CM3+, 4 on a 2 GB CM4)."""
    if settings.jobs is not None:
        return settings.jobs
    if not memory_bytes:
        return cpus
    return max(1, min(cpus, memory_bytes // JOB_MEMORY))


def tmpfs_size_for(settings: Settings, memory_bytes: int) -> str:
    """The builder's tmpfs size: distcc_tmpfs_size, else half of its memory
    (tmpfs's own default; it takes memory only as files fill it), so the
    default fits any Pi, a 2 GB CM4 that reports 1.8 GiB included."""
    if settings.tmpfs_size is not None:
        return settings.tmpfs_size
    return f"{max(16, memory_bytes // 2 // 1024**2)}M"


def compiler_package(name: str, native_machine: str | None = None) -> str:
    """The Debian package of a compiler name: aarch64-linux-gnu-gcc comes with
    gcc-aarch64-linux-gnu, aarch64-linux-gnu-g++-12 with g++-12-aarch64-linux-gnu;
    a plain name, or the host's own triplet name, with the native package
    (gcc, g++, gcc-12)."""
    match = CROSS_COMPILER.match(name)
    if not match:
        return name
    if match["triplet"] == native_machine:
        return match["driver"] + (f"-{match['version']}" if match["version"] else "")
    version = f"-{match['version']}" if match["version"] else ""
    return f"{match['driver']}{version}-{match['triplet']}"
