"""make bench-build: a whole tinyconfig kernel build through the farm, at 0
(local on the builder), 1, 2 and 4 workers, against the limit the builder's
own work sets.

Every lab node is held to the same slice of a core (BENCH_CPUS, default 0.4,
with `docker update --cpus`): Pi-class nodes, the builder no faster than a
worker. For each size (BENCH_SIZES, default 0,1,2,4) and round (BENCH_REPEAT,
default 3), as the build user in a login shell on the builder's tmpfs:
`make clean; make tinyconfig` (untimed), then `make -jJ vmlinux` timed, with
DISTCC_HOSTS naming the first N workers (J = BENCH_JOBS_PER_SLOT x slots,
default 1) and DISTCC_LOG a fresh file. Size 0 runs through distcc too, with
DISTCC_HOSTS=localhost/J (every job local, so its log gives the CPU of each
compile).

Recorded per run: wall seconds; the share of C compile jobs that ran on
workers and the fallbacks (the build report's parser on the client log); the
builder's CPU busy share (its cgroup's CPU seconds over wall x BENCH_CPUS).

The limit: from the local run, the compilers' CPU for the jobs distcc can
send (each job's `children` CPU in its dcc_exit line, for `compile from`
jobs), and the builder's CPU for everything else (cgroup total minus that):
make, host tools, linking, assembler files. Preprocessing stays on the
builder too; its CPU is taken from the distributed runs' logs (there each
remote job's children are the local preprocessor alone). With B = builder
work and R = the rest of the compile work, each node at BENCH_CPUS:
limit(N) = T_local / (max(B, R / N) / BENCH_CPUS), the wall time the busier
side needs at its CPU slice; with unlimited workers, (B + R) / B.

Tuning: BENCH_JOBS_PER_SLOT (make -j per host-list slot), BENCH_LOCALSLOTS_CPP
(--localslots_cpp in the host list), BENCH_OUT (results file stem), and
BENCH_LOCAL_FROM (reuse the local runs of an earlier results file).

Writes bench/build-results.json, bench/build-results.md and
bench/build-speedup.png. Uses its own lab (LAB_PREFIX=benchbuild,
172.31.253.0/24, 4 workers) unless LAB_PREFIX is set, and takes it down at
the end unless BENCH_KEEP_LAB=1.
"""

from __future__ import annotations

import os
import sys

# Its own lab, set before lab/docker_lab.py reads them at import; only when
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
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from deploys.library.report import BACKOFF, FALLBACK, NO_HOSTS, parse_client_log  # noqa: E402
from lab import docker_lab  # noqa: E402

BENCH = REPO / "bench"
PYINFRA = str(REPO / ".venv" / "bin" / "pyinfra")
TMPFS = "/tmp/kernel-build"
SOURCE = f"{TMPFS}/linux-source-6.1"
BUILD_TOOLS = "make flex bison bc libelf-dev libssl-dev xz-utils perl linux-source-6.1"
SLOTS_PER_WORKER = 2
_EXIT = re.compile(r"^distcc\[(\d+)\] \(dcc_exit\) exit: code \d+; self: \S+ user \S+ sys; children: (\S+) user (\S+) sys")
_PID = re.compile(r"^distcc\[(\d+)\] (.*)$")


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


def one_build(builder: str, workers: list[docker_lab.Node], nodes: list[docker_lab.Node], size: int,
              jobs_per_slot: float, cpus: float) -> dict:
    slots = SLOTS_PER_WORKER * size if size else 2
    jobs = max(1, round(jobs_per_slot * slots))
    hosts = " ".join(f"{w.fqdn}:3632/{SLOTS_PER_WORKER}" for w in workers[:size]) if size else f"localhost/{jobs}"
    cpp_slots = os.environ.get("BENCH_LOCALSLOTS_CPP")
    if size and cpp_slots:
        hosts = f"--localslots_cpp={int(cpp_slots)} {hosts}"
    as_build_user(builder, f"cd {SOURCE} && make -s clean && make -s tinyconfig >/dev/null && rm -rf ~/.distcc/lock/backoff_* "
                           f"{TMPFS}/bench-client.log")
    before = {n.container: cgroup_cpu_seconds(n.container) for n in nodes}
    start = time.monotonic()
    as_build_user(builder, f"cd {SOURCE} && DISTCC_HOSTS='{hosts}' DISTCC_LOG={TMPFS}/bench-client.log "
                           f"make -s -j{jobs} vmlinux >/dev/null 2>&1")
    wall = time.monotonic() - start
    after = {n.container: cgroup_cpu_seconds(n.container) for n in nodes}
    lines = run(["docker", "exec", builder, "cat", f"{TMPFS}/bench-client.log"]).stdout.splitlines()
    parsed = parse_client_log(lines)
    remote_children, local_children = job_children_cpu(lines)
    builder_cpu = after[builder] - before[builder]
    return {
        "workers": size, "make_jobs": jobs, "hosts": hosts, "wall_s": round(wall, 2),
        "compile_jobs": parsed.compile_jobs, "remote_jobs": parsed.remote_total,
        "remote_share": parsed.remote_share,
        "fallbacks": sum(parsed.local.get(r, 0) for r in (FALLBACK, BACKOFF, NO_HOSTS)),
        "builder_cpu_s": round(builder_cpu, 2),
        "builder_busy_share": round(builder_cpu / (wall * cpus), 3),
        "worker_cpu_s": round(sum(after[w.container] - before[w.container] for w in workers[:size]), 2),
        "children_cpu_remote_jobs_s": round(remote_children, 2),
        "children_cpu_local_jobs_s": round(local_children, 2),
    }


def limits(local: dict, distributed: list[dict], cpus: float, sizes: list[int]) -> dict:
    """Speedup limit per size from the builder's own work (see the module doc)."""
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
        bound = max(builder_work, remote_work / size) / cpus
        out["per_size"][str(size)] = round(t_local / bound, 2) if bound else None
    return out


def render(results: dict) -> str:
    cpus = results["cpus"]
    lim = results["limit"]
    lines = [
        "# Kernel build benchmark (make bench-build)",
        "",
        f"{results['generated']}; {results['machine']}. linux-source-6.1, tinyconfig, `make vmlinux`; every lab node "
        f"held to {cpus} CPU (`docker update --cpus`); median of {results['repeat']} run(s) per size. "
        f"Make -j = {results['jobs_per_slot']} x slots"
        + (f"; --localslots_cpp={results['localslots_cpp']} in the host list" if results.get("localslots_cpp") else "")
        + (f"; the local run from {results['local_from']}" if results.get("local_from") else "") + ".",
        "",
        "| workers | make -j | wall s | speedup | limit | of limit | C jobs | on workers | fallbacks | builder busy |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["summary"]:
        limit = lim["per_size"].get(str(row["workers"]))
        share = "-" if row["remote_share"] is None else f"{100 * row['remote_share']:.1f}%"
        of = "-" if not limit else f"{100 * row['speedup'] / limit:.0f}%"
        lines.append(
            f"| {row['workers']} | {row['make_jobs']} | {row['wall_s']:.1f} | {row['speedup']:.2f} | "
            f"{limit if limit else '-'} | {of} | {row['compile_jobs']} | {share} | {row['fallbacks']} | "
            f"{100 * row['builder_busy_share']:.0f}% |"
        )
    lines += [
        "",
        f"Builder work that stays on the builder (from the local run): {lim['other_builder_cpu_s']} CPU s outside "
        f"the compilers of distributable jobs (make, host tools, assembler files, linking) plus "
        f"{lim['preprocess_cpu_s']} CPU s of preprocessing (per-job preprocessor CPU from the distributed runs' "
        f"client logs); {lim['remote_compile_cpu_s']} CPU s of compiling can go to workers. Limit at N workers: "
        f"T_local / max(builder work, compile work / N) at {cpus} CPU per node; with unlimited workers "
        f"{lim['amdahl_limit']}x.",
    ]
    return "\n".join(lines) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results["summary"]]
    sizes = [r["workers"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [r["speedup"] for r in rows], "o-", label="measured speedup")
    limit_sizes = [s for s in sizes if s]
    ax.plot([0, *limit_sizes], [1.0, *[results["limit"]["per_size"][str(s)] for s in limit_sizes]], "s--",
            label="limit from the builder's own work")
    ax.set_xlabel("workers")
    ax.set_ylabel("speedup over the local build")
    ax.set_xticks(sizes)
    ax.set_title(f"tinyconfig vmlinux, every node at {results['cpus']} CPU")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    # The same plot as text: every file this repository tracks is ASCII
    # (tests/unit/test_docs_and_ascii.py), so the README shows the SVG.
    plt.rcParams["svg.hashsalt"] = "bench-build"
    fig.savefig(path.with_suffix(".svg"), metadata={"Date": None})
    plt.close(fig)


def main() -> int:
    cpus = float(os.environ.get("BENCH_CPUS", "0.4"))
    sizes = [int(s) for s in os.environ.get("BENCH_SIZES", "0,1,2,4").split(",")]
    repeat = int(os.environ.get("BENCH_REPEAT", "3"))
    jobs_per_slot = float(os.environ.get("BENCH_JOBS_PER_SLOT", "1"))
    out_name = os.environ.get("BENCH_OUT", "build-results")
    # A tuning run may reuse the local runs of an earlier results file, as
    # its baseline (BENCH_LOCAL_FROM=bench/build-results.json).
    local_from = os.environ.get("BENCH_LOCAL_FROM")
    earlier: list[dict] = []
    if local_from:
        earlier = [s for s in json.loads(Path(local_from).read_text())["samples"] if s["workers"] == 0]
        if not earlier:
            raise SystemExit(f"BENCH_LOCAL_FROM={local_from} holds no local (0 workers) run")
    elif 0 not in sizes:
        raise SystemExit("BENCH_SIZES must include 0 (or set BENCH_LOCAL_FROM): the local run is what speedup and "
                         "the limit are measured against")
    nodes = [n for n in docker_lab.nodes() if n.state == "running"]
    if sum(1 for n in nodes if n.role == "worker") < max(sizes):
        log(f"starting lab {os.environ['LAB_PREFIX']} with {max(sizes)} workers")
        nodes = docker_lab.up(max(sizes))
    builder = next(n for n in nodes if n.role == "builder")
    workers = sorted((n for n in nodes if n.role == "worker"), key=lambda n: n.hostname)
    log("mode switch")
    run([PYINFRA, "-y", "--data", "distcc_tmpfs_size=3G", "inventories/lab.py", "deploys/mode_switch.py"], check=True)
    log("build tools and kernel source on the builder")
    run(["docker", "exec", builder.container, "sh", "-c",
         f"dpkg -s {BUILD_TOOLS} >/dev/null 2>&1 || DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
         f"--no-install-recommends {BUILD_TOOLS} >/dev/null"])
    as_build_user(builder.container, f"[ -f {SOURCE}/Makefile ] || tar -C {TMPFS} -xJf /usr/src/linux-source-6.1.tar.xz")
    for node in nodes:
        run(["docker", "update", "--cpus", str(cpus), node.container])
    samples: list[dict] = []
    try:
        for size in sizes:
            for round_ in range(repeat):
                log(f"{size} workers, round {round_ + 1} of {repeat}")
                sample = one_build(builder.container, workers, nodes, size, jobs_per_slot, cpus)
                log(json.dumps(sample))
                samples.append(sample)
    finally:
        for node in nodes:
            run(["docker", "update", "--cpus", "0", node.container], check=False)
    if earlier and 0 not in sizes:
        samples = earlier + samples
        sizes = [0, *sizes]
    summary = []
    for size in sizes:
        mine = [s for s in samples if s["workers"] == size]
        best = sorted(mine, key=lambda s: s["wall_s"])[len(mine) // 2]
        summary.append(dict(best))
    local = summary[0]
    for row in summary:
        row["speedup"] = round(local["wall_s"] / row["wall_s"], 2)
    results = {
        "generated": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, shared with other work",
        "cpus": cpus, "repeat": repeat, "jobs_per_slot": jobs_per_slot, "sizes": sizes,
        "localslots_cpp": os.environ.get("BENCH_LOCALSLOTS_CPP"), "local_from": local_from,
        "samples": samples, "summary": summary,
        "limit": limits(local, [s for s in samples if s["workers"]], cpus, sizes),
    }
    (BENCH / f"{out_name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (BENCH / f"{out_name}.md").write_text(render(results))
    plot(results, BENCH / f"{out_name.replace('results', 'speedup')}.png")
    print(render(results))
    if os.environ.get("BENCH_KEEP_LAB") != "1" and os.environ["LAB_PREFIX"] == "benchbuild":
        docker_lab.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
