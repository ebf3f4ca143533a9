"""Facts about ccache on the builder (distcc_ccache): how the build user's
login shell has it configured, and its statistics counters, which the build
report reads before and after a build."""

from __future__ import annotations

from typing import TypedDict

from pyinfra.api import StringCommand

from facts._parsed import ParsedFact
from facts._script import ShellNote
from facts._shell import assign

# ccache's statistics counters (ccache --print-stats, 4.x) that are neither a
# hit nor a miss nor bookkeeping: a call ccache could not cache (a link, -E,
# a compile that failed, an option it does not support, ...).
HITS = ("direct_cache_hit", "preprocessed_cache_hit")
MISSES = ("cache_miss",)
BOOKKEEPING_PREFIXES = (
    "local_storage_", "remote_storage_", "stats_", "cache_size_", "max_", "files_in_cache", "cleanups_performed",
    "direct_cache_miss", "preprocessed_cache_miss", "recache",
)


def parse_counters(lines: list[str]) -> dict[str, int]:
    """`ccache --print-stats`: one "NAME<TAB>VALUE" line per counter."""
    counters: dict[str, int] = {}
    for line in lines:
        name, _, value = line.strip().partition("\t")
        if name and value.strip().isdigit():
            counters[name] = int(value.strip())
    return counters


def summary(counters: dict[str, int]) -> dict[str, int]:
    """Hits, misses and uncacheable calls among these counters."""
    uncacheable = sum(
        value for name, value in counters.items()
        if name not in (*HITS, *MISSES) and not name.startswith(BOOKKEEPING_PREFIXES)
    )
    return {"hits": sum(counters.get(n, 0) for n in HITS), "misses": sum(counters.get(n, 0) for n in MISSES),
            "uncacheable": uncacheable}


class CcacheStats(ParsedFact[dict[str, int]]):
    """
    ccache's statistics counters for one cache directory, read as its user.
    Empty when ccache is not installed or the directory holds no cache yet.

    .. code:: python

        {"direct_cache_hit": 501, "cache_miss": 538, "called_for_link": 4, ...}
    """

    def command(self, user: str, cache_dir: str) -> StringCommand:
        return StringCommand(
            assign("u", user), ";", assign("d", cache_dir), ";",
            'command -v ccache >/dev/null 2>&1 && [ -d "$d" ] &&',
            'runuser -u "$u" -- env CCACHE_DIR="$d" ccache --print-stats 2>/dev/null; true',
        )

    parse = staticmethod(parse_counters)


class CcacheSetup(TypedDict):
    installed: bool
    # ccache -p in the build user's login shell: key -> {"value", "origin"}.
    config: dict[str, dict[str, str]]
    cache_size_bytes: int | None
    # statfs of the cache directory's filesystem.
    free_bytes: int | None
    writable: bool
    # ccache's temporary directory (temporary_dir) is a directory the user can write.
    tempdir_writable: bool


# The keys of ccache's configuration the farm sets (the profile script).
CONFIG_KEYS = ("cache_dir", "max_size", "prefix_command", "depend_mode", "compression", "temporary_dir")


def parse_setup(lines: list[str]) -> CcacheSetup:
    setup = CcacheSetup(installed=False, config={}, cache_size_bytes=None, free_bytes=None, writable=False,
                        tempdir_writable=False)
    for line in lines:
        kind, _, rest = line.strip().partition(" ")
        if kind == "installed":
            setup["installed"] = True
        elif kind == "writable":
            setup["writable"] = True
        elif kind == "tempdir_writable":
            setup["tempdir_writable"] = True
        elif kind == "config" and rest.startswith("("):
            # "(environment) prefix_command = distcc"
            origin, _, assignment = rest[1:].partition(") ")
            key, _, value = assignment.partition(" = ")
            if key.strip() in CONFIG_KEYS:
                setup["config"][key.strip()] = {"value": value.strip(), "origin": origin}
        elif kind == "cache_size_kibibyte" and rest.strip().isdigit():
            setup["cache_size_bytes"] = int(rest) * 1024
        elif kind == "statfs" and len(rest.split()) == 5 and all(f.isdigit() for f in rest.split()):
            size, _blocks, available, _inodes, _free_inodes = (int(f) for f in rest.split())
            setup["free_bytes"] = size * available
    return setup


class CcacheConfig(ParsedFact[CcacheSetup]):
    """
    ccache as the build user's login shell has it (the farm's profile sets
    CCACHE_PREFIX, CCACHE_DIR, CCACHE_MAXSIZE, CCACHE_DEPEND,
    CCACHE_NOCOMPRESS and CCACHE_TEMPDIR): whether it is installed, the
    configuration keys the farm sets with where each comes from, the cache's
    size, the free space on its filesystem, and whether the user can write
    there and in the temporary directory.

    .. code:: python

        {"installed": True,
         "config": {"prefix_command": {"value": "distcc", "origin": "environment"}, ...},
         "cache_size_bytes": 37748736, "free_bytes": 20401094656, "writable": True, "tempdir_writable": True}
    """

    shellcheck = (ShellNote("SC2016", r"runuser -l \"\$u\" -c '", "for the build user's login shell"),)

    def command(self, user: str) -> StringCommand:
        keys = "|".join(f'"{key} ="*' for key in CONFIG_KEYS)
        return StringCommand(
            assign("u", user), "; runuser -l \"$u\" -c '",
            "command -v ccache >/dev/null 2>&1 || exit 0; echo installed;",
            "ccache -p 2>/dev/null | while IFS= read -r l; do case \"${l#*) }\" in",
            f"{keys}) printf \"config %s\\n\" \"$l\";; esac; done;",
            "ccache --print-stats 2>/dev/null | while IFS=\"\t\" read -r k v; do",
            "[ \"$k\" = cache_size_kibibyte ] && printf \"%s %s\\n\" \"$k\" \"$v\"; done;",
            "t=$(ccache -k temporary_dir 2>/dev/null); [ -d \"$t\" ] && [ -w \"$t\" ] && echo tempdir_writable;",
            "d=$(ccache -k cache_dir 2>/dev/null); [ -n \"$d\" ] || exit 0;",
            "[ -d \"$d\" ] && [ -w \"$d\" ] && echo writable;",
            "stat -f -c \"statfs %S %b %a %c %d\" \"$d\" 2>/dev/null; true'",
            "</dev/null 2>/dev/null; true",
        )

    parse = staticmethod(parse_setup)

