"""make bench-build: a whole tinyconfig kernel build through the farm in each
build mode the package sets up, against the bound each mode's own work sets.

Every lab node is held to the same slice of a core (BENCH_CPUS, default 0.4,
with `docker update --cpus`): Pi-class nodes, the builder no faster than a
worker. The kernel is the lab release's own Debian linux-source (6.12 on
trixie), tinyconfig, `make vmlinux`, built as the build user in a login
shell on the builder's tmpfs, so with the profile script the mode switch
wrote. The modes (BENCH_MODES, default all seven):

- plain: `make -jJ vmlinux` after `make clean` (the masquerade, the
  builder preprocesses);
- pump: the mode switch with distcc_pump, then `DISTCC_HOSTS=<the profile's
  DISTCC_PUMP_HOSTS> distcc-pump make -jJ CC="distcc gcc" vmlinux`;
- pump-1x: the same with each worker's own slots in place of the twice as
  many DISTCC_PUMP_HOSTS offers (a tuning variant, BENCH_SCALING_REPEAT
  runs, at 4 workers only);
- ccache-pump-cold: the mode switch with distcc_ccache and distcc_pump,
  the cache emptied (`ccache -C`), `make clean`, then `DISTCC_HOSTS=<the
  profile's DISTCC_PUMP_HOSTS> distcc-pump make -jJ CC="ccache gcc"
  vmlinux` (ccache's misses go through distcc in pump mode: preprocessed
  on the workers);
- ccache-cold: the same mode switch, the cache emptied, `make clean`,
  `make vmlinux` (ccache's misses through plain distcc);
- ccache-warm: then `make clean` and `make vmlinux` again (every compile a
  hit but the one that embeds the build's time);
- one-file: then one line added to kernel/fork.c and `make vmlinux`, as an
  edit-compile cycle does.

Each at 4 workers (the largest of BENCH_SIZES), medians of BENCH_REPEAT (3);
then plain and the fastest cold mode at the other sizes (default 0, 1 and
2; 0 is the local build, DISTCC_HOSTS=localhost/2), BENCH_SCALING_REPEAT (1)
runs each. DISTCC_HOSTS names the first N entries of the profile's host
list (J = BENCH_JOBS_PER_SLOT x their slots, default 1; BENCH_SLOT_FACTOR,
default 1, multiplies each entry's slots, to tune), DISTCC_LOG a fresh file.

Recorded per run: wall seconds; C compile jobs, the share that ran on
workers, pump jobs preprocessed there, fallbacks (the build report's parser
on the client log); ccache's hits and misses (its counters zeroed first);
the builder's and the workers' CPU seconds (their cgroups).

Each mode's bound, from its own run: the wall time if the builder and the
workers were both busy all along, max(builder CPU, workers' CPU / N) /
BENCH_CPUS, as a speedup over the local build. For plain it comes out near
the limit the module's `limits` derives from the local run's split of the
work (preprocessing stays on the builder), also printed.

Writes bench/build-results.json, bench/build-results.md and
bench/build-speedup.png (and .svg), and prints the table, the targets and
how long the run took. Uses its own lab (LAB_PREFIX=benchbuild,
172.31.253.0/24, 4 workers) unless LAB_PREFIX is set, and takes it down at
the end unless BENCH_KEEP_LAB=1. BENCH_OUT sets the results files' stem.
"""

from __future__ import annotations

import os
import sys

# Its own lab, set before lab/settings.py reads them at import; only when
# run as the benchmark: the unit tests import this module, and must not move
# every later pyinfra run of theirs to another lab.
if __name__ == "__main__":
    os.environ.setdefault("LAB_PREFIX", "benchbuild")
    os.environ.setdefault("LAB_SUBNET", "172.31.253.0/24")

import json  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploys.library.builder import PUMP_OPTIONS  # noqa: E402
from deploys.library.report import BACKOFF, FALLBACK, NO_HOSTS, parse_client_log  # noqa: E402
from facts.ccache import parse_counters, summary  # noqa: E402
from lab import docker_lab  # noqa: E402

BENCH = REPO / "bench"
PYINFRA = str(REPO / ".venv" / "bin" / "pyinfra")
TMPFS = "/tmp/kernel-build"
SOURCE = f"{TMPFS}/linux"
# Debian's metapackage depends on the release's linux-source-X.Y.
BUILD_TOOLS = "xz-utils perl linux-source"
CLIENT_LOG = f"{TMPFS}/bench-client.log"
# The file the one-file mode edits: compiled in every tinyconfig build.
EDITED = "kernel/fork.c"
_EXIT = re.compile(r"^distcc\[(\d+)\] \(dcc_exit\) exit: code \d+; self: \S+ user \S+ sys; children: (\S+) user (\S+) sys")
_PID = re.compile(r"^distcc\[(\d+)\] (.*)$")
_SLOTS = re.compile(r"/(\d+)(?:,|$)")


@dataclass(frozen=True)
class Mode:
    name: str
    # The mode switch's data for it (the profile script it needs).
    data: tuple[str, ...]
    # The build's command line, {jobs} filled in.
    make: str
    # What comes before the timed build (untimed).
    before: str
    cold: bool
    pump: bool = False
    # A tuning variant: measured once (BENCH_SCALING_REPEAT runs), at the
    # largest size only, to show what the deployed setting gains.
    tuning: bool = False


CLEAN = f"cd {SOURCE} && make -s clean && make -s tinyconfig >/dev/null"
# The cold ccache modes start from an empty cache.
EMPTY_CACHE = f"ccache -C >/dev/null && {CLEAN}"
MAKE = "make -s -j{jobs} vmlinux"


def pump_make(front: str) -> str:
    """The pump modes' make line, `CC="FRONT gcc"` ({jobs} left to fill)."""
    return f'distcc-pump make -s -j{{jobs}} CC="{front} gcc" vmlinux'


# The ccache modes' mode switch: pump mode on too, for ccache-pump-cold (the
# others do not use it), so that a round needs no mode switch between them.
CCACHE = ("distcc_ccache=True", "distcc_pump=True")
MODES = {
    "plain": Mode("plain", (), MAKE, CLEAN, cold=True),
    "pump": Mode("pump", ("distcc_pump=True",), pump_make("distcc"), CLEAN, cold=True, pump=True),
    # Pump with each worker's own slots, not the twice as many the profile
    # offers (builder.PUMP_SLOT_FACTOR): the setting that factor replaced.
    "pump-1x": Mode("pump-1x", ("distcc_pump=True",), pump_make("distcc"), CLEAN, cold=True, pump=True, tuning=True),
    "ccache-pump-cold": Mode("ccache-pump-cold", CCACHE, pump_make("ccache"), EMPTY_CACHE, cold=True, pump=True),
    "ccache-cold": Mode("ccache-cold", CCACHE, MAKE, EMPTY_CACHE, cold=True),
    "ccache-warm": Mode("ccache-warm", CCACHE, MAKE, CLEAN, cold=False),
    "one-file": Mode("one-file", CCACHE, MAKE,
                     f"cd {SOURCE} && echo '/* bench-build edit '$(date +%s%N)' */' >> {EDITED}", cold=False),
}
# The order the rounds take at the largest size: warm and one-file follow a
# cold ccache build (plain make) of the same round.
ROUND = ("ccache-pump-cold", "ccache-cold", "ccache-warm", "one-file")


def log(text: str) -> None:
    print(f"[bench-build {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run(args: list[str], timeout: int = 3600, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise SystemExit(f"{' '.join(args[:6])} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return proc


def as_build_user(container: str, script: str, timeout: int = 3600) -> subprocess.CompletedProcess:
    return run(["docker", "exec", "-u", "pi", container, "sh", "-l", "-c", script], timeout=timeout)


def cgroup_cpu_seconds(container: str) -> float:
    cid = run(["docker", "inspect", "-f", "{{.Id}}", container]).stdout.strip()
    for base in ("/sys/fs/cgroup/cpu,cpuacct/docker", "/sys/fs/cgroup/cpuacct/docker"):
        path = Path(base) / cid / "cpuacct.usage"
        if path.exists():
            return int(path.read_text()) / 1e9
    path = Path(f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat")
    if path.exists():
        usage = dict(line.split() for line in path.read_text().splitlines())
        return int(usage["usage_usec"]) / 1e6
    raise SystemExit(f"no CPU accounting found for container {container} (cgroup v1 cpuacct or v2 cpu.stat)")


def job_children_cpu(lines: list[str]) -> tuple[float, float]:
    """CPU of the child processes of distributable jobs (`compile from`),
    split into those compiled on a worker (there: the local preprocessor)
    and those compiled here (the whole compile)."""
    jobs: dict[str, dict] = {}
    remote_cpu = local_cpu = 0.0
    for line in lines:
        match = _PID.match(line)
        if not match:
            continue
        pid, message = match[1], match[2]
        job = jobs.setdefault(pid, {"compile": False, "remote": False})
        if message.startswith("compile from "):
            job["compile"] = True
        elif message.startswith("(dcc_scan_args)"):
            # Not distributable after all (e.g. output to stdout): the
            # report does not count it as a compile job either.
            job["compile"] = False
        elif " completed ok" in message and message.startswith("compile ") and " on localhost " not in message:
            job["remote"] = True
        ended = _EXIT.match(line)
        if ended:
            jobs.pop(pid)
            if job["compile"]:
                cpu = float(ended[2]) + float(ended[3])
                if job["remote"]:
                    remote_cpu += cpu
                else:
                    local_cpu += cpu
    return remote_cpu, local_cpu


def hosts_for(entries: list[str], size: int, slot_factor: int = 1) -> tuple[str, int]:
    """DISTCC_HOSTS for the first `size` entries of a deployed host list
    (their slots times slot_factor, a tuning knob), and its slots; the
    local build (size 0) gets localhost with two."""
    if size == 0:
        return "localhost/2", 2
    chosen = [_SLOTS.sub(lambda m: m[0].replace(m[1], str(int(m[1]) * slot_factor), 1), e, count=1)
              for e in entries[:size]]
    slots = sum(int(m[1]) if (m := _SLOTS.search(e)) else 4 for e in chosen)
    return " ".join(chosen), slots


def bound(local_wall: float, builder_cpu: float, workers_cpu: float, size: int, cpus: float) -> float | None:
    """A mode's bound as a speedup over the local build: the wall time if
    the builder and the workers were both busy all along at their CPU
    slice. The local build is its own bound (1.0)."""
    if size == 0:
        return 1.0
    busiest = max(builder_cpu, workers_cpu / size) / cpus
    return round(local_wall / busiest, 2) if busiest else None


def one_build(builder: str, workers: list[docker_lab.Node], nodes: list[docker_lab.Node], mode: Mode, size: int,
              entries: list[str], jobs_per_slot: float, slot_factor: int, cpus: float) -> dict:
    hosts, slots = hosts_for(entries, size, slot_factor)
    jobs = max(1, round(jobs_per_slot * slots))
    as_build_user(builder, f"{mode.before} && rm -rf ~/.distcc/lock/backoff_* {CLIENT_LOG} && "
                           f"{{ ! command -v ccache >/dev/null || ccache -z >/dev/null; }}")
    before = {n.container: cgroup_cpu_seconds(n.container) for n in nodes}
    start = time.monotonic()
    as_build_user(builder, f"cd {SOURCE} && DISTCC_HOSTS='{hosts}' DISTCC_LOG={CLIENT_LOG} "
                           f"{mode.make.format(jobs=jobs)} >/dev/null 2>&1")
    wall = time.monotonic() - start
    after = {n.container: cgroup_cpu_seconds(n.container) for n in nodes}
    lines = run(["docker", "exec", builder, "cat", CLIENT_LOG], check=False).stdout.splitlines()
    parsed = parse_client_log(lines)
    remote_children, local_children = job_children_cpu(lines)
    counters = parse_counters(as_build_user(
        builder, "command -v ccache >/dev/null && ccache --print-stats || true").stdout.splitlines())
    cache = summary(counters)
    builder_cpu = after[builder] - before[builder]
    return {
        "mode": mode.name, "workers": size, "make_jobs": jobs, "hosts": hosts, "wall_s": round(wall, 2),
        "compile_jobs": parsed.compile_jobs, "remote_jobs": parsed.remote_total,
        "remote_share": parsed.remote_share, "pumped": parsed.pumped,
        "pump_fallbacks": sum(parsed.pump_fallback.values()),
        "fallbacks": sum(parsed.local.get(r, 0) for r in (FALLBACK, BACKOFF, NO_HOSTS)),
        "failed": parsed.failed_no_fallback,
        "ccache_hits": cache["hits"], "ccache_misses": cache["misses"],
        "ccache_size_kib": counters.get("cache_size_kibibyte"),
        "builder_cpu_s": round(builder_cpu, 2),
        "worker_cpu_s": round(sum(after[w.container] - before[w.container] for w in workers[:size]), 2),
        "children_cpu_remote_jobs_s": round(remote_children, 2),
        "children_cpu_local_jobs_s": round(local_children, 2),
    }


def limits(local: dict, distributed: list[dict], cpus: float, sizes: list[int]) -> dict:
    """Plain distcc's limit per size from the local run's split of the work:
    preprocessing stays on the builder with make, host tools and linking."""
    compile_cpu = local["children_cpu_local_jobs_s"]
    other_cpu = max(0.0, local["builder_cpu_s"] - compile_cpu)
    per_job_cpp = [r["children_cpu_remote_jobs_s"] / r["remote_jobs"] for r in distributed if r["remote_jobs"]]
    cpp_cpu = statistics.median(per_job_cpp) * local["compile_jobs"] if per_job_cpp else 0.0
    builder_work = other_cpu + cpp_cpu
    remote_work = max(0.0, compile_cpu - cpp_cpu)
    t_local = local["wall_s"]
    out = {"builder_serial_cpu_s": round(builder_work, 2), "remote_compile_cpu_s": round(remote_work, 2),
           "preprocess_cpu_s": round(cpp_cpu, 2), "other_builder_cpu_s": round(other_cpu, 2),
           "amdahl_limit": round((builder_work + remote_work) / builder_work, 2) if builder_work else None,
           "per_size": {}}
    for size in sizes:
        if size == 0:
            continue
        out["per_size"][str(size)] = bound(t_local, builder_work, remote_work, size, cpus)
    return out


def median_sample(samples: list[dict]) -> dict:
    return dict(sorted(samples, key=lambda s: s["wall_s"])[len(samples) // 2])


def summarize(samples: list[dict], cpus: float) -> list[dict]:
    """One row per (mode, size): the median run, its speedup over the local
    build and its bound."""
    local = median_sample([s for s in samples if s["workers"] == 0])
    rows = []
    for key in dict.fromkeys((s["mode"], s["workers"]) for s in samples):
        row = median_sample([s for s in samples if (s["mode"], s["workers"]) == key])
        row["runs"] = sum(1 for s in samples if (s["mode"], s["workers"]) == key)
        row["speedup"] = round(local["wall_s"] / row["wall_s"], 2)
        row["bound"] = bound(local["wall_s"], row["builder_cpu_s"], row["worker_cpu_s"], row["workers"], cpus)
        rows.append(row)
    order = list(MODES)
    return sorted(rows, key=lambda r: (order.index(r["mode"]), r["workers"]))


def targets(rows: list[dict], size: int) -> list[tuple[str, bool, str]]:
    """The issue's targets at the largest size: (target, met, figures)."""
    at = {r["mode"]: r for r in rows if r["workers"] == size}
    out = []
    plain, warm, pump = (at.get(m) for m in ("plain", "ccache-warm", "pump"))
    if plain and warm:
        ratio = plain["wall_s"] / warm["wall_s"]
        out.append(("a warm ccache rebuild at least 5x faster than a plain cold build", ratio >= 5,
                    f"{plain['wall_s']:.1f} s / {warm['wall_s']:.1f} s = {ratio:.2f}x"))
    for name, how in (("ccache-cold", "plain make"), ("ccache-pump-cold", "distcc-pump make")):
        cold = at.get(name)
        if plain and cold:
            slower = cold["wall_s"] / plain["wall_s"] - 1
            out.append((f"a cold build with ccache ({name}: {how}) at most 5% slower than plain", slower <= 0.05,
                        f"{cold['wall_s']:.1f} s against {plain['wall_s']:.1f} s: {100 * slower:+.1f}%"))
    colds = [r for r in at.values() if MODES[r["mode"]].cold]
    if colds:
        remote = sum(r["remote_jobs"] for r in colds)
        jobs = sum(r["compile_jobs"] for r in colds)
        bad = sum(r["failed"] + r["fallbacks"] for r in colds)
        out.append(("every distributable compile job of a cold build on a worker, none failed",
                    remote == jobs and not bad, f"{remote} of {jobs} on workers, {bad} failed or fell back"))
    if plain and pump:
        faster = 1 - pump["wall_s"] / plain["wall_s"]
        out.append(("pump faster than plain", faster > 0,
                    f"{pump['wall_s']:.1f} s against {plain['wall_s']:.1f} s: {100 * faster:.1f}% faster; "
                    f"builder CPU {pump['builder_cpu_s']:.0f} s against {plain['builder_cpu_s']:.0f} s"))
    return out


def _share(row: dict) -> str:
    if not row["compile_jobs"]:
        return "-"
    return f"{row['remote_jobs']} of {row['compile_jobs']}"


def render(results: dict) -> str:
    cpus = results["cpus"]
    lim = results["limit"]
    lines = [
        "# Kernel build benchmark (make bench-build)",
        "",
        f"{results['generated']}; {results['machine']}; the run took {results['duration_min']} min. "
        f"{results['source']} ({results['release']}), tinyconfig, `make vmlinux`; every lab node held to {cpus} CPU "
        f"(`docker update --cpus`). At {results['largest']} workers the median of {results['repeat']} runs per mode, "
        f"at the other sizes {results['scaling_repeat']} run(s). Make -j = {results['jobs_per_slot']} x the host "
        f"list's slots" + (f" (each entry's slots x {results['slot_factor']})" if results.get("slot_factor", 1) != 1
                           else "") + ". Speedup is over the local build (0 workers); a mode's bound is the speedup if its builder "
        "and its workers were both busy all along (max(builder CPU, workers' CPU / N) at the CPU slice).",
        "",
        "| mode | workers | runs | make -j | wall s | speedup | bound | of bound | on workers | pumped | ccache hits "
        "| builder CPU s | workers CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["summary"]:
        of = "-" if not row["bound"] or not row["workers"] else f"{100 * row['speedup'] / row['bound']:.0f}%"
        pumped = str(row["pumped"]) if MODES[row["mode"]].pump else "-"
        hits = "-" if not row["mode"].startswith("ccache") and row["mode"] != "one-file" else str(row["ccache_hits"])
        lines.append(
            f"| {row['mode']} | {row['workers']} | {row['runs']} | {row['make_jobs']} | {row['wall_s']:.1f} | {row['speedup']:.2f} | "
            f"{row['bound'] or '-'} | {of} | {_share(row)} | {pumped} | {hits} | {row['builder_cpu_s']:.1f} | "
            f"{row['worker_cpu_s']:.1f} |"
        )
    lines += ["", "Targets at the largest size:", ""]
    for text, met, figures in results["targets"]:
        lines.append(f"- {'met' if met else 'NOT MET'}: {text}: {figures}")
    cache = results.get("ccache_size_kib")
    if cache:
        lines += ["", f"A cold ccache build wrote {cache / 1024:.0f} MiB of cache (uncompressed, depend mode)."]
    if lim:
        lines += [
            "",
            f"Plain distcc's limit from the local run's work: {lim['other_builder_cpu_s']} CPU s outside the "
            f"compilers of distributable jobs (make, host tools, assembler files, linking) plus "
            f"{lim['preprocess_cpu_s']} CPU s of preprocessing stay on the builder; {lim['remote_compile_cpu_s']} CPU "
            f"s of compiling can go to workers: {', '.join(f'{v}x at {k}' for k, v in lim['per_size'].items())}, "
            f"{lim['amdahl_limit']}x with unlimited workers.",
        ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = dict(zip(MODES, ("tab:blue", "tab:orange", "tab:brown", "tab:olive", "tab:green", "tab:red", "tab:purple"),
                      strict=True))
    local = next(r for r in results["summary"] if r["workers"] == 0)
    for mode in MODES:
        rows = [r for r in results["summary"] if r["mode"] == mode and r["workers"]]
        if not rows:
            continue
        # A mode measured at several sizes is a line from the local build; one
        # measured at one size only is a point (a line would invent the rest).
        line = len(rows) > 1
        sizes = [0, *[r["workers"] for r in rows]] if line else [rows[0]["workers"]]
        start = [1.0] if line else []
        ax.plot(sizes, [*start, *[r["speedup"] for r in rows]], "o-" if line else "o", color=colors[mode], label=mode)
        ax.plot(sizes, [*start, *[r["bound"] or 0 for r in rows]], "s:" if line else "s", color=colors[mode],
                alpha=0.6, fillstyle="none", label=f"{mode} bound")
    ax.set_xlabel("workers")
    ax.set_ylabel(f"speedup over the local build ({local['wall_s']:.0f} s)")
    ax.set_yscale("log")
    ax.set_xticks(sorted({r["workers"] for r in results["summary"]}))
    ax.set_title(f"tinyconfig vmlinux, every node at {results['cpus']} CPU")
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    # The same plot as text: every file this repository tracks is ASCII
    # (tests/unit/test_docs_and_ascii.py), so the docs show the SVG.
    plt.rcParams["svg.hashsalt"] = "bench-build"
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)


def mode_switch(data: tuple[str, ...], nodes: list[docker_lab.Node]) -> None:
    # At full CPU: the switch is not what is measured.
    for node in nodes:
        run(["docker", "update", "--cpus", "0", node.container], check=False)
    args = [PYINFRA, "-y", "--data", "distcc_tmpfs_size=3G"]
    for item in data:
        args += ["--data", item]
    run([*args, "inventories/lab.py", "deploys/mode_switch.py"])


def deployed_hosts(builder: str, mode: Mode) -> list[str]:
    """The host list the build user's login shell has for this mode."""
    if mode.pump and not mode.tuning:
        script = 'printf "%s\\n" $DISTCC_PUMP_HOSTS'
    else:
        script = "grep -v '^#' ~/.distcc/hosts"
    entries = [e for e in as_build_user(builder, script).stdout.split() if e]
    return [f"{e}{PUMP_OPTIONS}" for e in entries] if mode.tuning else entries


@dataclass(frozen=True)
class BuildBenchSettings:
    """What to measure and how often, from BENCH_* (docs/performance.md)."""
    cpus: float
    sizes: list[int]
    modes: list[str]
    repeat: int
    scaling_repeat: int
    jobs_per_slot: float
    slot_factor: int
    out_name: str

    @classmethod
    def from_environment(cls) -> BuildBenchSettings:
        settings = cls(
            cpus=float(os.environ.get("BENCH_CPUS", "0.4")),
            sizes=[int(s) for s in os.environ.get("BENCH_SIZES", "0,1,2,4").split(",")],
            modes=[m for m in os.environ.get("BENCH_MODES", ",".join(MODES)).split(",") if m],
            repeat=int(os.environ.get("BENCH_REPEAT", "3")),
            scaling_repeat=int(os.environ.get("BENCH_SCALING_REPEAT", "1")),
            jobs_per_slot=float(os.environ.get("BENCH_JOBS_PER_SLOT", "1")),
            slot_factor=int(os.environ.get("BENCH_SLOT_FACTOR", "1")),
            out_name=os.environ.get("BENCH_OUT", "build-results"),
        )
        unknown = [m for m in settings.modes if m not in MODES]
        if unknown or 0 not in settings.sizes:
            raise SystemExit(f"BENCH_MODES: one or more of {', '.join(MODES)} (not {', '.join(unknown)}); "
                             "BENCH_SIZES must include 0, the local build speedups are measured against")
        return settings


def kernel_source(builder: str) -> tuple[str, str]:
    """Build tools and the kernel source unpacked on the builder: the
    source tarball's path and the builder's Debian release."""
    log("build tools and kernel source on the builder")
    run(["docker", "exec", builder, "sh", "-c",
         f"dpkg -s {BUILD_TOOLS} >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
         f"--no-install-recommends {BUILD_TOOLS} >/dev/null"])
    tarball = run(["docker", "exec", builder, "sh", "-c",
                   "ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n 1"]).stdout.strip()
    release = run(["docker", "exec", builder, "sh", "-c",
                   ". /etc/os-release && echo $VERSION_CODENAME"]).stdout.strip()
    as_build_user(builder, f"[ -f {SOURCE}/Makefile ] || {{ mkdir -p {SOURCE} && "
                           f"tar -C {SOURCE} --strip-components=1 -xJf {tarball}; }}")
    return tarball, release


class Measurements:
    """Timed builds, mode by mode, each node at the settings' CPU share; the
    mode switch runs only when a mode needs other data than the last one."""

    def __init__(self, settings: BuildBenchSettings, nodes: list[docker_lab.Node]) -> None:
        self.settings, self.nodes = settings, nodes
        self.builder = next(n for n in nodes if n.role == "builder")
        self.workers = sorted((n for n in nodes if n.role == "worker"), key=lambda n: n.hostname)
        self.samples: list[dict] = []
        self.current: tuple[str, ...] = ()  # the plain mode switch main() runs first

    def measure(self, mode_names: list[str], size: int, rounds: int) -> None:
        s = self.settings
        for round_ in range(rounds):
            for name in mode_names:
                mode = MODES[name]
                if mode.data != self.current:
                    log(f"mode switch {' '.join(mode.data) or '(plain)'}")
                    mode_switch(mode.data, self.nodes)
                    self.current = mode.data
                entries = deployed_hosts(self.builder.container, mode)
                for node in self.nodes:
                    run(["docker", "update", "--cpus", str(s.cpus), node.container])
                log(f"{name}, {size} workers, round {round_ + 1} of {rounds}")
                sample = one_build(self.builder.container, self.workers, self.nodes, mode, size, entries,
                                   s.jobs_per_slot, s.slot_factor, s.cpus)
                log(json.dumps(sample))
                self.samples.append(sample)

    def every_mode(self, largest: int) -> str:
        """Every mode at the largest size, then the local build and the plain
        and fastest cold modes at the other sizes; returns the fastest."""
        s = self.settings
        try:
            self.measure([m for m in s.modes if m not in ROUND and not MODES[m].tuning], largest, s.repeat)
            self.measure([m for m in s.modes if MODES[m].tuning], largest, s.scaling_repeat)
            # Warm and one-file need the cold ccache build before them.
            chain = [m for m in ROUND if m in s.modes or (m == "ccache-cold" and {"ccache-warm", "one-file"} & set(s.modes))]
            self.measure(chain, largest, s.repeat)
            at_largest = [x for x in self.samples if x["workers"] == largest and MODES[x["mode"]].cold
                          and not MODES[x["mode"]].tuning]
            cold = {m: statistics.median(x["wall_s"] for x in at_largest if x["mode"] == m)
                    for m in dict.fromkeys(x["mode"] for x in at_largest)}
            fastest = min(cold, key=cold.get) if cold else "plain"
            log(f"fastest cold mode at {largest} workers: {fastest}")
            self.measure(["plain"], 0, s.scaling_repeat)
            for name in dict.fromkeys(["plain", fastest]):
                for size in sorted(x for x in s.sizes if x not in (0, largest)):
                    self.measure([name], size, s.scaling_repeat)
        finally:
            for node in self.nodes:
                run(["docker", "update", "--cpus", "0", node.container], check=False)
        return fastest


def build_results(settings: BuildBenchSettings, samples: list[dict], largest: int, fastest: str, tarball: str,
                  release: str, began: float) -> dict:
    """bench/build-results.json: the settings, every sample, the summary and its targets."""
    s = settings
    rows = summarize(samples, s.cpus)
    local = next(r for r in rows if r["workers"] == 0)
    plain_distributed = [x for x in samples if x["mode"] == "plain" and x["workers"]]
    cold_cache = [x["ccache_size_kib"] for x in samples if x["mode"] == "ccache-cold" and x["ccache_size_kib"]]
    return {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs",
        "duration_min": round((time.monotonic() - began) / 60, 1),
        "source": Path(tarball).name.removesuffix(".tar.xz"), "release": release,
        "cpus": s.cpus, "repeat": s.repeat, "scaling_repeat": s.scaling_repeat, "jobs_per_slot": s.jobs_per_slot,
        "slot_factor": s.slot_factor, "sizes": s.sizes, "largest": largest, "modes": s.modes,
        "fastest_cold_mode": fastest,
        "samples": samples, "summary": rows,
        "targets": targets(rows, largest),
        "ccache_size_kib": statistics.median(cold_cache) if cold_cache else None,
        "limit": limits(local, plain_distributed, s.cpus, s.sizes) if plain_distributed else None,
    }


def main() -> int:
    began = time.monotonic()
    settings = BuildBenchSettings.from_environment()
    largest = max(settings.sizes)
    nodes = [n for n in docker_lab.nodes() if n.state == "running"]
    if sum(1 for n in nodes if n.role == "worker") < largest:
        log(f"starting lab {os.environ['LAB_PREFIX']} with {largest} workers")
        nodes = docker_lab.up(largest)
    measurements = Measurements(settings, nodes)
    mode_switch((), nodes)
    tarball, release = kernel_source(measurements.builder.container)
    fastest = measurements.every_mode(largest)
    results = build_results(settings, measurements.samples, largest, fastest, tarball, release, began)
    (BENCH / f"{settings.out_name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (BENCH / f"{settings.out_name}.md").write_text(render(results))
    plot(results, BENCH / f"{settings.out_name.replace('results', 'speedup')}.png")
    print(render(results))
    if os.environ.get("BENCH_KEEP_LAB") != "1" and os.environ["LAB_PREFIX"] == "benchbuild":
        docker_lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
