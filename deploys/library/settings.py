"""Every setting of this package, each declared once: its key, default,
meaning and check, as one field of `Settings` below (setting_checks.py says
how a declaration and its check work). The key is `distcc_` and the field's
name; the checking in `settings_for(host)` and the table in
docs/settings.md both follow from the declarations.

All deploys read settings through `settings_for(host)`, which refuses bad
input with one paragraph naming the host, the setting and the fix, before any
operation is planned (so before any host is changed). Settings are pyinfra
host data: set them in inventories/group_data/*.py, or per host in the
inventory (see inventories/cluster.py).

After changing a declaration, regenerate docs/settings.md with
`make settings-doc` (write_settings_doc below).
"""

from __future__ import annotations

import difflib
import getpass
import ipaddress
import re
from dataclasses import dataclass, fields
from pathlib import Path

from deploys.library.setting_checks import (
    ADDRESS,
    FLAG,
    SIZE,
    Check,
    Declaration,
    Reading,
    SettingsError,
    dedicated_path,
    is_dedicated_path,
    listing,
    matches,
    optional,
    refusal,
    refuse_non_ascii,
    setting,
    shown,
    whole,
)

# Every key carries it, so that none clashes with pyinfra's own data
# (ssh_*, _sudo ...).
PREFIX = "distcc_"
_LOG_LEVELS = ("critical", "error", "warning", "notice", "info", "debug")
# distccd writes its one dcc_job_summary line per job at notice: the smoke
# test and the build report read those lines, so quieter levels would make
# every worker look idle.
_QUIET_LOG_LEVELS = ("critical", "error", "warning")
_NAME = re.compile(r"^[a-z_][a-z0-9_-]*$")
_UNIT = re.compile(r"^[A-Za-z0-9@._-]+$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$")
_COMPILER = re.compile(r"^[A-Za-z0-9._+-]+$")
CROSS_COMPILER = re.compile(r"^(?P<triplet>[a-z0-9_]+-linux-gnu[a-z]*)-(?P<driver>gcc|g\+\+)(?:-(?P<version>\d+))?$")


# --- the checks of one setting each (the shared ones are in setting_checks.py) --


def _networks(value: object, at: Reading) -> tuple[str, ...]:
    # A string may hold several CIDRs ("10.0.0.10/32,10.0.0.12/32"), as
    # --data passes them.
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or items == [""]:
        raise at.fail(value, "is not a list of CIDRs", f"set {at.key} = ['10.0.0.10/32']")
    nets = []
    for item in items:
        try:
            net = ipaddress.IPv4Network(str(item), strict=True)
        except ValueError as exc:
            raise at.fail(
                value, f"holds {ascii(item)}, which is not a valid IPv4 CIDR ({exc})",
                "write each entry as ADDRESS/PREFIX with the host bits zero, e.g. 10.0.0.10/32 or 10.0.0.0/24",
            ) from None
        nets.append(net)
    # Open is judged on the union: 0.0.0.0/1 plus 128.0.0.0/1 is every address too.
    if any(net.prefixlen == 0 for net in ipaddress.collapse_addresses(nets)) and not at.checked["allow_open_ok"]:
        raise at.fail(
            value, "opens distccd to every address (anyone who can reach the port can run "
            "compilers on the worker)", "list only the builder, e.g. its address /32; if you really accept the "
            "risk, also set distcc_allow_open_ok = True",
        )
    return tuple(str(net) for net in nets)


def _log_level(value: object, at: Reading) -> object:
    if value not in _LOG_LEVELS:
        raise at.fail(value, "is not a distccd log level", f"use one of {', '.join(_LOG_LEVELS)}")
    if value in _QUIET_LOG_LEVELS:
        raise at.fail(
            value, "is below notice, so distccd would not log the per-job summaries that "
            "the smoke test and the build report count", "use notice, info (the default) or debug",
        )
    return value


def _octal_mode(value: object, at: Reading) -> str:
    mode = str(value)
    if not re.fullmatch(r"[0-7]{3,4}", mode):
        raise at.fail(mode, "is not an octal mode", "write it like '1777' or '0755'")
    return mode.zfill(4)


def _build_user(value: object, at: Reading) -> str:
    # Raspberry Pi OS has had no default `pi` user since 2022: the one who
    # logs in (the SSH user; like ssh, paramiko defaults to the local user
    # name) is the one who builds, unless told otherwise.
    if value is None:
        value = at.data.get("ssh_user") or getpass.getuser()
    if not isinstance(value, str) or not _NAME.match(value):
        raise at.fail(value, "is not a user name", "set the user who runs the build, e.g. 'alice'")
    return value


def _file_path(value: object, at: Reading) -> str:
    if not isinstance(value, str) or not value:
        raise at.fail(value, "is not a file path", "set e.g. 'reports/validate.json'")
    return value


# --- the settings --------------------------------------------------------------


def declarations_of(cls: type) -> dict[str, Declaration]:
    """Key to declaration, for every field of cls; a field that is not a
    setting(...) stops the import, naming the field."""
    undeclared = [f.name for f in fields(cls) if "declaration" not in f.metadata]
    if undeclared:
        raise TypeError(f"{cls.__name__}: declare {', '.join(undeclared)} with setting(default, meaning, check)")
    return {PREFIX + f.name: f.metadata["declaration"] for f in fields(cls)}


@dataclass(frozen=True)
class Settings:
    """One host's settings, checked. Each field declares its setting once:
    the default, the meaning, and the check that refuses a bad value.
    They are checked in this order, so a check may read an earlier one."""

    port: int = setting(3632, "workers: distccd's TCP port.", whole(1, 65535))
    # Before distcc_allow, whose check reads it.
    allow_open_ok: bool = setting(
        False, "Accept an allow list that covers every address (0.0.0.0/0): distccd is remote code execution.", FLAG,
    )
    allow: tuple[str, ...] | None = setting(
        None, "workers: CIDRs distccd accepts. Default: the builder's address as the worker resolves it, /32.",
        optional(Check("a list of IPv4 CIDRs, or one string of them", _networks)),
    )
    listen: str | None = setting(
        None, "workers: the address distccd listens on. Default: the worker's source address toward the builder.",
        optional(ADDRESS),
    )
    builder_address: str | None = setting(
        None, "The builder's address as workers see it. Default: the builder's name resolved on the worker.",
        optional(ADDRESS),
    )
    jobs: int | None = setting(
        None, "workers: parallel jobs distccd accepts (--jobs) and the builder sends. Default: the worker's CPUs, "
        "at most one job per 400 MiB of its memory (2 on a 1 GB CM3+, 4 on a 2 GB CM4).", optional(whole(1, 256)),
    )
    nice: int = setting(10, "workers: distccd --nice.", whole(0, 20))
    log_level: str = setting(
        "info", "workers: distccd --log-level. Quieter levels would drop the per-job lines that the smoke test "
        "and the build report read.", Check("notice, info or debug", _log_level),
    )
    log_dir: str = setting(
        "/var/log/distccd", "workers: directory of distccd's log file.",
        dedicated_path("use a path of its own such as /tmp/kernel-build"),
    )
    compilers: tuple[str, ...] | None = setting(
        None, "Compiler names whitelisted in /usr/lib/distcc. Default: every installed gcc/g++ name.",
        optional(listing(
            "a list of compiler names", matches(_COMPILER), "is not a list of compiler names", "set e.g. ['gcc', 'gcc-12']",
        )),
    )
    # A remote job keeps its preprocessed source, object and stderr in distccd's
    # /tmp: a preprocessed kernel .c is commonly 1-5 MB and the odd one near
    # 10 MB, its object a few MB (over 10 MB with debug info), so under 30 MB
    # a job; with --jobs 4 (a CM4's CPUs) that is at most about 120 MB. 256M
    # gives twice that, and a tmpfs holds only what is written to it.
    worker_tmp_size: str = setting(
        "256M", "workers: size of distccd's private /tmp in RAM (systemd TemporaryFileSystem=), where remote jobs "
        "keep their temporary files off the SD card.", SIZE,
    )
    # Raspberry Pi's kernel guide builds a 64-bit kernel from the 32-bit OS
    # with CROSS_COMPILE=aarch64-linux-gnu-: then the builder sends that name.
    cross_compilers: tuple[str, ...] = setting(
        [], "Cross compilers the build runs, e.g. ['aarch64-linux-gnu-gcc'] for CROSS_COMPILE=aarch64-linux-gnu-. "
        "Installed on every node, whitelisted, checked by validation and compiled with by the smoke test.",
        listing(
            "a list of TRIPLET-gcc or TRIPLET-g++ names", matches(CROSS_COMPILER),
            "is not a list of cross compiler names (TRIPLET-gcc or TRIPLET-g++)",
            "set e.g. ['aarch64-linux-gnu-gcc', 'aarch64-linux-gnu-g++'], the names CROSS_COMPILE makes the build run",
        ),
    )
    # What Raspberry Pi's kernel guide installs before a build (libelf-dev
    # for configs with BTF or objtool, libncurses-dev for make menuconfig);
    # the cross compilers come with distcc_cross_compilers.
    build_packages: tuple[str, ...] = setting(
        ["bc", "bison", "flex", "libssl-dev", "libelf-dev", "libncurses-dev", "make"],
        "builder: Debian packages a kernel build needs, installed in build mode with the distcc client. "
        "Add git to clone the tree there; [] installs none.",
        listing(
            "a list of Debian package names", matches(_PACKAGE), "is not a list of Debian package names",
            "set e.g. ['bc', 'bison', 'flex', 'libssl-dev', 'libelf-dev', 'make'], or [] to install none",
        ),
    )
    # ccache in front of distcc on the builder: a rebuild of the same tree
    # (after make clean, a bisect step, a branch switch) hits the cache and
    # neither preprocesses nor compiles. The cache lives under the build
    # user's home by default: on disk, so it survives a reboot.
    ccache: bool = setting(
        False, "builder: ccache in front of distcc for the build user (CCACHE_PREFIX=distcc), so that a rebuild of "
        "the same sources neither preprocesses nor compiles. See [performance.md](performance.md).", FLAG,
    )
    ccache_dir: str | None = setting(
        None, "builder: ccache's directory. Default: ~/.ccache of the build user, on disk, so that the cache "
        "survives a reboot and a return to k3s mode.",
        optional(dedicated_path("use a directory of its own on disk, e.g. '/var/cache/kbuild-ccache', or leave it unset")),
    )
    ccache_size: str = setting(
        "2G", "builder: ccache's size cap. What one cold build writes is in "
        "[bench/build-results.md](../bench/build-results.md).", SIZE,
    )
    # distcc's pump mode moves preprocessing to the workers; Debian 12's
    # include server fails under Python 3.11, so it is refused there.
    pump: bool = setting(
        False, "builder: installs distcc-pump and puts DISTCC_PUMP_HOSTS in the build user's profile, for "
        "`distcc-pump make`, which preprocesses on the workers. Refused on bookworm, whose include server is broken.",
        FLAG,
    )
    smoke_timeout: int = setting(
        60, "Smoke test: seconds one compile may take before it counts as a FAIL. Raise it for slow or emulated "
        "workers (the ARM lab uses 600).", whole(5, 3600),
    )
    smoke_functions: int = setting(
        400, "Smoke test: functions in its test program, so that cc1 runs long enough for the worker to see it "
        "(a fraction of a second on a PC, seconds on a CM3+). Lower it for emulated workers (the ARM lab uses 40).",
        whole(10, 5000),
    )
    force_restart: bool = setting(False, "workers: restart distccd in the reset even when it is healthy.", FLAG)
    tmpfs_path: str = setting(
        "/tmp/kernel-build", "builder: where the build tree's tmpfs is mounted.",
        dedicated_path("use a path of its own such as /tmp/kernel-build"),
    )
    # None: sized from the builder's memory when it is known (tmpfs_size_for).
    tmpfs_size: str | None = setting(
        None, "builder: size of the tmpfs; it must fit in the builder's memory. Default: half of it (a tmpfs "
        "takes memory only as files fill it).", optional(SIZE),
    )
    tmpfs_mode: str = setting("1777", "builder: permission bits of the tmpfs root.", Check("an octal mode", _octal_mode))
    discard_tmpfs: bool = setting(
        False, "builder: on the way back to k3s mode, unmount the tmpfs even when it holds files.", FLAG,
    )
    # A build in another terminal is the normal case: a deploy that would
    # stop or restart distccd, unmount or remount the build tree, or start
    # k3s refuses while one runs, unless told to go ahead.
    build_running_ok: bool = setting(
        False, "Go ahead while a build runs. Without it a deploy that would stop distccd, unmount the tree or "
        "start k3s during a build is refused before any change, naming the processes.", FLAG,
    )
    build_dirs: tuple[str, ...] = setting(
        [], "builder: directories besides the tmpfs where a build runs (an O= directory on disk), watched like "
        "the tmpfs for make, gcc and cc1.",
        listing(
            "a list of absolute paths of their own", is_dedicated_path, "is not a list of dedicated absolute paths",
            "set e.g. ['/srv/kernel-out'], the O= directory of a build outside the tmpfs, or [] for none",
            each=lambda path: path.rstrip("/"),
        ),
    )
    build_user: str = setting(
        None, "builder: the user who runs the kernel build (gets PATH and the host list). Default: the SSH user "
        "(ssh_user).", Check("a user name, or None", _build_user),
    )
    client_fallback: bool = setting(
        True, "builder: DISTCC_FALLBACK for the build user. True compiles locally when no worker can.", FLAG,
    )
    k3s_units: tuple[str, ...] = setting(
        ["k3s", "k3s-server", "k3s-agent"], "k3s units stopped (pods first, then k3s-killall.sh) and disabled in "
        "build mode, enabled and started in k3s mode.",
        listing("a list of unit names", matches(_UNIT), "is not a list of unit names", "set e.g. ['k3s', 'k3s-agent']"),
    )
    # Kubernetes gives a pod 30 s between SIGTERM and SIGKILL by default
    # (terminationGracePeriodSeconds); the pods are stopped together, so the
    # switch waits at most this long for all of them.
    pod_grace: int = setting(
        30, "Seconds a pod gets between SIGTERM and SIGKILL when build mode stops k3s; 0 kills at once.",
        whole(0, 3600),
    )
    # Pi clusters take minutes to settle after a start (SD cards, etcd).
    k3s_timeout: int = setting(
        600, "k3s mode: seconds a node may take to be active and (where a server answers) Ready before it is "
        "named as late.", whole(10, 86400),
    )
    mtu: int = setting(1500, "The MTU every node must have on the path between builder and workers.", whole(576, 9216))
    report_path: str = setting(
        "reports/validate.json", "Where validation writes its JSON report, on this machine.",
        Check("a file path", _file_path),
    )
    # Read from the builder's data. The narrow default fits a 100-column
    # terminal at any cluster size; the full tables (24 check columns, 220
    # and more characters a row) and the smoke test's evidence (300 a
    # compile) wrap on most terminals.
    wide_tables: bool = setting(
        False, "Validation, the smoke test and the build report print their wide form (a column per check, a "
        "line per compile with its evidence, each problem on one line) instead of lines within 100 columns. "
        "From the builder's data.", FLAG,
    )
    apt_lock_wait: int = setting(
        120, "Seconds to wait for another apt or dpkg run (unattended-upgrades) to let go of the dpkg lock.",
        whole(0, 3600),
    )


# Key (distcc_ and the field's name) to its declaration, in declaration order.
SETTINGS: dict[str, Declaration] = declarations_of(Settings)


def _misspelt(key: str) -> bool:
    """A key meant as one of this package's settings but not spelt as one:
    a case or hyphen variant, or a near miss of the distcc_ prefix
    (distc_, distccd_, dsitcc_). Other tools' keys are left alone."""
    if key in SETTINGS or key.startswith("_"):
        return False
    normal = key.lower().replace("-", "_")
    prefix = normal.partition("_")[0]
    return normal.startswith("distcc") or difflib.SequenceMatcher(None, prefix, "distcc").ratio() > 0.8


def _unknown_key(host_name: str, key: str, value: object) -> SettingsError:
    # Compared without the prefix, which every setting shares.
    normal = key.lower().replace("-", "_")
    rest = normal.partition("_")[2] or normal.removeprefix("distcc")
    settings = {k.partition("_")[2]: k for k in SETTINGS}
    close = difflib.get_close_matches(rest, settings, n=1, cutoff=0.6)
    hint = f"did you mean {settings[close[0]]}?" if close else "see deploys/library/settings.py for every setting"
    return refusal(host_name, key, value, "is not a setting of this package", f"remove or rename it ({hint})")


def _check_host(name: str, data: dict[str, object]) -> None:
    """What is wrong with the host itself rather than one setting: a name
    that cannot be printed, a misspelt key, or no way to become root."""
    if not name.isascii():
        raise SettingsError(
            f"host {ascii(name)}: the host name has non-ASCII characters. Fix: use its ASCII name (or address) "
            f"in the inventory. Nothing was changed on any host."
        )
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


def settings_for(host) -> Settings:
    """This host's checked settings, defaults filled in. pyinfra has merged
    the host's data already: --data over host data over group data; a key
    none of them sets takes its declared default."""
    name = host.name
    data = host.data.dict()
    _check_host(name, data)
    checked: dict[str, object] = {}
    for key, declaration in SETTINGS.items():
        value = data.get(key, declaration.default)
        refuse_non_ascii(name, key, value)
        checked[key.removeprefix(PREFIX)] = declaration.check.run(value, Reading(name, key, data, checked))
    return Settings(**checked)


# --- docs/settings.md ----------------------------------------------------------

SETTINGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
REGENERATE = "make settings-doc"
_DOC_HEAD = f"""# Settings

Every setting is pyinfra host data: set it for every host in `inventories/group_data/all.py`, per
group in `inventories/group_data/<group>.py`, per host in the inventory (as `inventories/cluster.py`
does), or for one run with `--data distcc_discard_tmpfs=True`. `--data` wins over host data, host
data over the data of the host's groups, that over the data for all hosts, and a setting none of
them sets takes the default below.

Every deploy checks every setting before it changes anything, and refuses a bad value with one
paragraph naming the host, the setting and the fix. A `distcc_*` key not listed here is refused as
a typo.

This page is generated from the declarations in
[deploys/library/settings.py](../deploys/library/settings.py). After changing one, run
`{REGENERATE}`;
`tests/unit/test_docs_and_ascii.py::test_settings_doc_is_what_the_declarations_render` fails until
this page matches them.
"""


def settings_markdown() -> str:
    """docs/settings.md as the declarations render it."""
    rows = [
        f"| `{key}` | `{declaration.default!r}` | {declaration.check.accepts} | {declaration.meaning} |"
        for key, declaration in SETTINGS.items()
    ]
    return "\n".join([_DOC_HEAD, "| setting | default | accepts | meaning |", "|---|---|---|---|", *rows, ""])


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


def write_settings_doc() -> None:
    """What `make settings-doc` runs."""
    SETTINGS_DOC.write_text(settings_markdown())
    print(f"wrote {SETTINGS_DOC.relative_to(SETTINGS_DOC.parents[1])}")
