"""make bench: how fast the deploys are on the Docker lab, against a floor.

For each lab size (BENCH_SIZES, default 1,4,8,16 workers; BENCH_WORKERS=16 is
the largest), in ascending order: lab/docker_lab.up(size), the cluster put
into DISTCC BUILD MODE once (pyinfra -y inventories/lab.py
deploys/mode_switch.py, untimed), then BENCH_REPEAT (5) rounds of:

  true       (reference) one OpenSSH exec per host of `true`, no sudo
  floor      issue 14's floor: one OpenSSH exec per host, all hosts at once:
             the real `ssh` as pi with the lab key, running
             `sudo -H -n sh -c PROBE` with bench/analysis.py's PROBE (the
             minimal probe of the seed's checks). Wall = from starting the
             first ssh until the last one exits. Measured just before each
             timed deploy, which is divided by it (x floor).
  survey     (reference, right before the floor before validate) the same
             kind of exec of validation's own survey command for each host,
             str(HostSurvey().command(**survey_arguments(...))), built by
             deploys/library/validation/survey.py's own code (see survey_targets());
             divided by that floor, and per host by the host's own probe time
  pyinfra floor
             (reference) pyinfra -y inventories/lab.py
             bench/pyinfra_floor.py: pyinfra reading one fact per host
             whose command is PROBE, with sudo, and nothing else (the same
             `sudo -H -n sh -c PROBE` exec as the floor): the least any
             pyinfra deploy costs at this size (start-up, SSH connects, one
             exec, disconnect); checked to send 1 command per host
  validate   pyinfra -y inventories/lab.py deploys/cluster_distcc_validate.py
  noop       deploys/mode_switch.py on the cluster already in build mode
  from k3s   deploys/k3s_mode.py (untimed), then deploys/mode_switch.py

The targets (issue 14) are checked at every size: validation <= 1.5x the
floor; a no-change mode switch <= 6 remote commands per host (the worst run)
and <= 3x the floor; a worker's survey asks about 1 name and 1 peer whatever
the size, the builder's about every worker. pyinfra's peak memory is reported,
and the pyinfra floor beside validation's 1.5x limit in seconds: when it is
over the limit, pyinfra alone cannot meet that target at that size.

BENCH_ARCH=arm64 runs every lab node as arm64 under qemu-user (LAB_ARCH=arm64;
default sizes just 4, longer timeouts) and writes bench/results-arm64.json and
bench/results-arm64.md instead of bench/results.json and bench/results.md.

The checkout's modules are compiled to bytecode first, as pip does when it
installs a package (pyinfra itself never writes .pyc files, so otherwise
each run would compile them again).

Every pyinfra run is `/usr/bin/time -f '%M %U %S' pyinfra -y --json -vv ...`
from the repository root: wall seconds around the process, peak memory = max
RSS of the pyinfra process as GNU time reports it (fallback without it: VmHWM
polled from /proc), its CPU seconds (user + system), remote commands per host counted from the -vv echo (see
bench/analysis.py for how, and how the count is checked), changes from the
--json totals. Each figure is the median of the rounds. Raw logs go to
bench/runs/ (ignored by git); bench/results.json holds every raw sample,
bench/results.md the tables and the targets, which are printed at the end.

The benchmark runs its own lab (LAB_PREFIX=benchlab, LAB_SUBNET=
172.31.254.0/24 unless set) and takes it down at the end (BENCH_KEEP_LAB=1
keeps it). It refuses the prefixes of the other labs on this engine.
"""

from __future__ import annotations

import os
import sys

# Before anything reads them: lab/settings.py at import, inventories/lab.py
# in every pyinfra child. `make bench` never touches the test lab; importing
# this module (the unit tests do) changes nothing.
if __name__ == "__main__":
    os.environ.setdefault("LAB_PREFIX", "benchlab")
    os.environ.setdefault("LAB_SUBNET", "172.31.254.0/24")
    # BENCH_ARCH alone decides the nodes' architecture, so a LAB_ARCH left in
    # the shell cannot put arm64 figures into the amd64 results.
    os.environ.pop("LAB_WORKER_ARCHS", None)
    if os.environ.get("BENCH_ARCH", "amd64").strip() == "arm64":
        os.environ["LAB_ARCH"] = "arm64"
    else:
        os.environ.pop("LAB_ARCH", None)

import compileall  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.analysis import (  # noqa: E402
    PROBE,
    PROBE_END,
    TIMED_DEPLOYS,
    evaluate_targets,
    fact_breakdown,
    median,
    parse_pyinfra_log,
    render_markdown,
    summarize_counts,
    summarize_samples,
    survey_scope,
    survey_work,
)
from lab import docker_lab  # noqa: E402

OTHER_LABS = ("distcc-lab", "fixlab", "oplab", "safelab")
BENCH_DIR = REPO / "bench"
RUNS_DIR = BENCH_DIR / "runs"
INVENTORY = "inventories/lab.py"
VENV_BIN = REPO / ".venv" / "bin"
PYINFRA = str(VENV_BIN / "pyinfra") if (VENV_BIN / "pyinfra").exists() else str(Path(sys.executable).parent / "pyinfra")
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
SSH_OPTIONS = [
    "-F", "/dev/null",
    "-i", str(docker_lab.SSH_KEY),
    "-o", "StrictHostKeyChecking=no",
    "-o", "UserKnownHostsFile=/dev/null",
    "-o", "BatchMode=yes",
    "-o", "IdentitiesOnly=yes",
    "-o", "LogLevel=ERROR",
]
ARCHES = ("amd64", "arm64")
ARCH = os.environ.get("BENCH_ARCH", "amd64").strip() or "amd64"
EMULATED = ARCH == "arm64"
# Emulated nodes start every process under qemu-user, many times slower.
PYINFRA_TIMEOUT = 3600 if EMULATED else 1800
FLOOR_TIMEOUT = 900 if EMULATED else 300
# pyinfra's own SSH connect timeout (Config.CONNECT_TIMEOUT, 10 s by default)
# is raised for emulated nodes, whose sshd does its key exchange under qemu.
CONNECT_TIMEOUT = 120 if EMULATED else None
ENV = dict(os.environ, PYINFRA_YES="1")


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)


class BenchError(RuntimeError):
    """The benchmark cannot go on; the message says why."""


# --- configuration ----------------------------------------------------------


def _int_list(text: str, name: str) -> list[int]:
    try:
        values = sorted({int(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise BenchError(f"{name}={text!r}: write whole numbers separated by commas, e.g. 1,4,8,16") from None
    if not values or values[0] < 1:
        raise BenchError(f"{name}={text!r}: every size must be at least 1 worker")
    return values


def configuration() -> dict:
    if ARCH not in ARCHES:
        raise BenchError(f"BENCH_ARCH={ARCH}: the benchmark runs amd64 (the default) or arm64 (emulated)")
    workers = int(os.environ.get("BENCH_WORKERS", "4" if EMULATED else "16"))
    if "BENCH_SIZES" in os.environ:
        sizes = _int_list(os.environ["BENCH_SIZES"], "BENCH_SIZES")
        if sizes[-1] > workers:
            raise BenchError(f"BENCH_SIZES={os.environ['BENCH_SIZES']} goes above BENCH_WORKERS={workers}")
    elif EMULATED:
        # Issue 14 asks for the emulated figures at 4 workers; more take hours.
        sizes = [workers]
    else:
        sizes = sorted({s for s in (1, 4, 8, 16) if s <= workers} | {workers})
    repeat = int(os.environ.get("BENCH_REPEAT", "5"))
    if repeat < 1:
        raise BenchError(f"BENCH_REPEAT={repeat}: at least 1")
    prefix = docker_lab.PREFIX
    if any(prefix.startswith(other) for other in OTHER_LABS):
        raise BenchError(
            f"LAB_PREFIX={prefix}: that is another lab on this engine ({', '.join(OTHER_LABS)}); "
            "the benchmark runs its own (default benchlab)"
        )
    return {
        "arch": ARCH,
        "results": "results-arm64" if EMULATED else "results",
        "workers": workers,
        "sizes": sizes,
        "repeat": repeat,
        "lab_prefix": prefix,
        "lab_subnet": docker_lab.SUBNET,
        "keep_lab": os.environ.get("BENCH_KEEP_LAB") == "1",
    }


def _run_text(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (proc.stdout or proc.stderr).strip() or "?"


def machine_info() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace") if Path("/proc/cpuinfo").exists() else ""
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
         if line.split(":", 1)[0].strip() in ("model name", "Model", "Hardware")),
        "?",
    )
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    mem_kib = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    try:
        pyinfra_version = metadata.version("pyinfra")
    except metadata.PackageNotFoundError:
        pyinfra_version = "?"
    return {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpu_model": model,
        "nproc": len(os.sched_getaffinity(0)),
        "memory_mib": mem_kib // 1024,
        "kernel": platform.release(),
        "docker": _run_text(["docker", "version", "--format", "{{.Server.Version}}"]),
        "docker_client": _run_text(["docker", "version", "--format", "{{.Client.Version}}"]),
        "openssh": _run_text(["ssh", "-V"]),
        "python": platform.python_version(),
        "pyinfra": pyinfra_version,
        "gnu_time": GNU_TIME is not None,
        "loadavg_start": " ".join(f"{v:.2f}" for v in os.getloadavg()),
        "containers_running_start": len(_run_text(["docker", "ps", "-q"]).split()),
    }


def tree_state() -> dict:
    """The code measured: HEAD plus a digest of uncommitted changes (the
    working tree is shared; the bench's own files are left out)."""
    def git(*args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=60)
        return proc.stdout if proc.returncode == 0 else ""

    mine = ("bench/", "tests/unit/test_bench.py")
    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if not line[3:].startswith(mine)]
    sha = hashlib.sha256(git("diff", "HEAD", "--", ".", ":(exclude)bench", ":(exclude)tests/unit/test_bench.py").encode())
    for name in sorted(git("ls-files", "--others", "--exclude-standard").splitlines()):
        if not name.startswith(mine) and (REPO / name).is_file():
            sha.update(name.encode() + b"\0" + (REPO / name).read_bytes())
    return {"head": git("rev-parse", "HEAD").strip(), "uncommitted": changed, "digest": sha.hexdigest()[:16]}


# --- the floor --------------------------------------------------------------


def survey_targets() -> list[dict]:
    """Child mode (--survey-commands): validation's survey command for every
    host of inventories/lab.py, from validation's own code.

    Runs in a separate process because pyinfra_cli monkey-patches the standard
    library with gevent on import, which the timing parent must not have."""
    from pyinfra.api import Config, State
    from pyinfra.context import ctx_host, ctx_inventory, ctx_state

    from deploys.library.cluster import role_of
    from deploys.library.settings import settings_for
    from deploys.library.validation.survey import survey_arguments
    from facts.survey import HostSurvey
    from operations._pyinfra import load_inventory

    state = State(check_for_changes=False)
    state.cwd = str(REPO)
    ctx_state.set(state)
    inventory = load_inventory(INVENTORY, cwd=str(REPO))
    ctx_inventory.set(inventory)
    state.init(inventory, Config())
    targets = []
    for host in inventory:
        with ctx_host.use(host):
            arguments = survey_arguments(settings_for(host))
            command = HostSurvey().command(**arguments)
        targets.append({
            "name": host.name,
            "role": role_of(host),
            "address": host.data.get("ssh_hostname") or host.name,
            "user": host.data.get("ssh_user") or "pi",
            "sudo": bool(host.data.get("_sudo")),
            "arguments": arguments,
            "command": command.get_raw_value(),
            "sections": len(HostSurvey.section_names(**arguments)),
        })
    return targets


def load_survey_targets() -> list[dict]:
    proc = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), "--survey-commands"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300,
    )
    if proc.returncode != 0:
        raise BenchError(f"building the survey commands failed:\n{proc.stderr[-3000:]}")
    targets = json.loads(proc.stdout.strip().splitlines()[-1])
    for target in targets:
        if not target["sudo"]:
            raise BenchError(f"{target['name']}: _sudo is not set in its data; validation would not use sudo")
        # What pyinfra itself sends for a fact with _sudo=True (see -vv).
        target["remote"] = "sudo -H -n sh -c " + shlex.quote(target["command"])
        target["marker"] = "##survey "
        target["scope"] = survey_scope(target["arguments"], target["role"])
    return targets


def probe_targets(targets: list[dict]) -> list[dict]:
    """The floor: issue 14's minimal probe on every host, with sudo as
    validation's survey runs."""
    remote = "sudo -H -n sh -c " + shlex.quote(PROBE)
    return [dict(t, remote=remote, marker=PROBE_END, sections=1) for t in targets]


def waiter(proc: subprocess.Popen, ended: dict[int, float], key: int) -> threading.Thread:
    """A started thread that waits for proc with a blocking waitpid and puts
    when it ended in ended[key]: Popen.wait(timeout=) polls with sleeps of up
    to 50 ms, which would add 0 to 50 ms (25 on average) to what it times.
    The floor and every pyinfra run are timed so."""

    def wait() -> None:
        proc.wait()
        ended[key] = time.monotonic()

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return thread


def measure_floor(targets: list[dict], log_dir: Path, tag: str) -> dict:
    """One parallel OpenSSH exec per host; wall from first start to last exit."""
    outs = []
    procs = []
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        start = time.monotonic()
        for i, target in enumerate(targets):
            out = open(Path(tmp) / f"{i}.out", "w+b")
            err = open(Path(tmp) / f"{i}.err", "w+b")
            outs.append((out, err))
            procs.append(subprocess.Popen(
                ["ssh", *SSH_OPTIONS, f"{target['user']}@{target['address']}", target["remote"]],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            ))
        # One waiter per ssh: each host's own end, to tell which survey
        # bounds the floor.
        ended: dict[int, float] = {}
        threads = [waiter(p, ended, i) for i, p in enumerate(procs)]
        deadline = start + FLOOR_TIMEOUT
        for thread, proc in zip(threads, procs, strict=True):
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                proc.kill()
                thread.join()
        wall = time.monotonic() - start
        codes = [p.returncode for p in procs]
        problems = []
        with open(log_dir / f"{tag}.log", "w", encoding="ascii", errors="backslashreplace") as log:
            for target, code, (out, err) in zip(targets, codes, outs, strict=True):
                out.seek(0)
                err.seek(0)
                stdout = out.read().decode(errors="replace")
                stderr = err.read().decode(errors="replace")
                out.close()
                err.close()
                marker = target.get("marker")
                seen = sum(1 for line in stdout.splitlines() if marker and line.startswith(marker))
                if code != 0 or seen != target["sections"]:
                    problems.append(f"{target['name']}: exit {code}, {seen}/{target['sections']} sections: {stderr.strip()[-300:]}")
                log.write(f"=== {target['name']} exit {code}\n{stdout}\n--- stderr\n{stderr}\n")
    return {
        "wall_s": wall,
        "per_host_s": {t["name"]: ended[i] - start if i in ended else None for i, t in enumerate(targets)},
        "ok": not problems,
        "problems": problems,
        "commands": {t["name"]: 1 for t in targets},
    }


# --- pyinfra runs -----------------------------------------------------------


def _pyinfra_config() -> list[str]:
    """--config FILE raising pyinfra's SSH connect timeout, when it must be."""
    if CONNECT_TIMEOUT is None:
        return []
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    path = RUNS_DIR / "pyinfra-config.py"
    path.write_text(f"from pyinfra import config\n\nconfig.CONNECT_TIMEOUT = {CONNECT_TIMEOUT}\n")
    return ["--config", str(path)]


CONFIG_ARGS: list[str] = []


def _poll_vmhwm(pid: int, stop: threading.Event, found: list[int]) -> None:
    while not stop.is_set():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    found.append(int(line.split()[1]))
        except OSError:
            return
        stop.wait(0.02)


def run_pyinfra(deploy: str, log_dir: Path, tag: str, extra: tuple[str, ...] = ()) -> dict:
    """pyinfra -y --json -vv INVENTORY deploy; wall, peak RSS, commands, changes."""
    out_path, err_path, time_path = (log_dir / f"{tag}.{ext}" for ext in ("json", "log", "time"))
    argv = [PYINFRA, "-y", "--json", "-vv", *CONFIG_ARGS, *extra, INVENTORY, deploy]
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "%M %U %S", "-o", str(time_path), *argv]
    peaks: list[int] = []
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=REPO, env=ENV, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        stop = threading.Event()
        poller = None
        if not GNU_TIME:
            poller = threading.Thread(target=_poll_vmhwm, args=(proc.pid, stop, peaks), daemon=True)
            poller.start()
        ended: dict[int, float] = {}
        waiting = waiter(proc, ended, 0)
        waiting.join(PYINFRA_TIMEOUT)
        if waiting.is_alive():
            proc.kill()
            waiting.join()
        code = proc.returncode
        wall = ended[0] - start
        stop.set()
        if poller:
            poller.join()
    peak_kib = cpu_s = None
    if GNU_TIME and time_path.exists():
        # Last line "MAXRSS_KIB USER_S SYS_S" (a failed run adds a line before it).
        fields = (time_path.read_text().strip().splitlines()[-1:] or [""])[0].split()
        if len(fields) == 3 and fields[0].isdigit():
            peak_kib = int(fields[0])
            cpu_s = float(fields[1]) + float(fields[2])
    elif peaks:
        peak_kib = max(peaks)
    log = parse_pyinfra_log(err_path.read_text(errors="replace"))
    changes = errors = None
    try:
        totals = json.loads(out_path.read_text())["results"]["totals"]
        changes, errors = totals.get("success"), totals.get("error")
    except (ValueError, KeyError, TypeError):
        pass
    return {
        "deploy": deploy,
        "wall_s": wall,
        "rc": code,
        "ok": code == 0,
        "peak_kib": peak_kib,
        "cpu_s": cpu_s,
        "changes": changes,
        "errors": errors,
        "log": str(err_path.relative_to(REPO)),
        **log,
    }


def _tail(path: str, lines: int = 30) -> str:
    text = (REPO / path).read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


# --- remote-side cross-check of the command counter ---------------------------

SUDO_SESSIONS = (
    "journalctl --sync >/dev/null 2>&1; "
    "journalctl -t sudo -o cat --no-pager 2>/dev/null | grep -c 'sudo:session): session opened for user root' || true"
)


def sudo_sessions(nodes: list) -> dict[str, int | None]:
    """Sudo sessions each node's journal holds, read with docker exec (not
    SSH, so the reading adds none). Keyed by inventory name (the FQDN)."""
    def one(node):
        proc = subprocess.run(
            ["docker", "exec", node.container, "sh", "-c", SUDO_SESSIONS], capture_output=True, text=True, timeout=60
        )
        text = proc.stdout.strip()
        return node.fqdn, int(text) if text.isdigit() else None

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, nodes))


def cross_check(before: dict, after: dict, sample: dict) -> dict:
    checked = {}
    for host, counted in sorted(before.items()):
        if counted is None or after.get(host) is None:
            continue
        checked[host] = {"vv_sudo": sample["sudo"].get(host, 0), "journal_sudo": after[host] - counted}
    return checked


# --- one size ---------------------------------------------------------------


def with_floor(sample: dict, floor: dict, roles: dict[str, str]) -> dict:
    sample["floor_s"] = floor["wall_s"]
    sample["x_floor"] = sample["wall_s"] / floor["wall_s"] if floor["wall_s"] else None
    sample["command_summary"] = summarize_counts(sample["commands"], roles)
    return sample


def lab_up(size: int, anomalies: list[str], attempts: int = 3) -> list:
    """docker_lab.up(size), tried again when a node does not boot.

    With many new systemd containers on a loaded 2-core machine, a node can
    miss lab/containers.py's 120 s boot deadline, or its systemd can hang in
    'initializing' with every job waiting (seen at 16 workers). Waiting longer
    does not help the latter, so each benchmark container whose systemd is not
    running/degraded is saved to a log, removed, and up() (which keeps what
    runs) is called again. Only this lab's containers (LAB_PREFIX) are listed."""
    for attempt in range(1, attempts + 1):
        try:
            return docker_lab.up(size)
        except docker_lab.LabError as exc:
            report = RUNS_DIR / f"lab-up-w{size:02d}-attempt{attempt}.log"
            stuck = []
            with open(report, "w", encoding="ascii", errors="backslashreplace") as log:
                log.write(f"{exc}\n")
                for name in docker_lab.lab_containers():
                    proc = subprocess.run(
                        ["docker", "exec", name, "sh", "-c",
                         "systemctl is-system-running; systemctl list-jobs --no-pager; systemctl --failed --no-pager"],
                        capture_output=True, text=True, timeout=60,
                    )
                    state = (proc.stdout.splitlines() or ["?"])[0].strip()
                    if state not in ("running", "degraded"):
                        stuck.append(name)
                    log.write(f"=== {name}\n{proc.stdout}{proc.stderr}\n")
            anomalies.append(
                f"lab up with {size} workers, attempt {attempt}: {exc}; not booted: {', '.join(stuck) or 'none'} "
                f"(systemd state saved in {report.relative_to(REPO)})"
            )
            if attempt == attempts:
                raise
            for name in stuck:
                if name.startswith(docker_lab.PREFIX + "-"):
                    subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=120)
            say(f"lab up failed ({exc}); removed {', '.join(stuck) or 'nothing'}, trying again")
    raise AssertionError("unreachable")


class SizeBench:
    """The timed rounds at one size: the samples, counter cross-checks and
    survey work they collect, and the anomalies they find."""

    def __init__(self, size: int, nodes: list, targets: list[dict], log_dir: Path, anomalies: list[str]) -> None:
        self.size, self.nodes, self.targets, self.log_dir, self.anomalies = size, nodes, targets, log_dir, anomalies
        self.roles = {n.fqdn: n.role for n in nodes}
        self.probes = probe_targets(targets)
        self.validate_extra = ("--data", f"distcc_report_path={(log_dir / 'validate.json').relative_to(REPO)}")
        self.samples: dict[str, list[dict]] = {
            k: [] for k in ("connect_only", "floor", "survey_exec", *TIMED_DEPLOYS, "k3s_mode")
        }
        self.checks: dict[str, dict] = {}
        self.work_rounds: list[dict] = []
        # For reference only (no target): the same parallel OpenSSH execs running
        # `true` without sudo, i.e. what connecting alone costs at this size.
        self.connect_targets = [dict(t, remote="true", marker=None, sections=0) for t in targets]

    def floor(self, tag: str, what: str) -> dict:
        """The probe floor measured now, kept among the samples."""
        floor = measure_floor(self.probes, self.log_dir, tag)
        self.samples["floor"].append(floor)
        if not floor["ok"]:
            self.anomalies.append(f"{self.size} workers, {what}: " + "; ".join(floor["problems"]))
        return floor

    def survey_exec(self, floor: dict, survey: dict) -> None:
        """Validation's own survey exec against the floor measured right after
        it: the survey's x floor and each host's survey time over its probe time."""
        survey["x_floor"] = survey["wall_s"] / floor["wall_s"] if floor["wall_s"] else None
        self.samples["survey_exec"].append(survey)
        self.work_rounds.append({"probe": floor["per_host_s"], "survey": survey["per_host_s"]})

    def timed(self, key: str, deploy: str, r: int, extra: tuple[str, ...] = (), check: bool = False) -> dict:
        survey = None
        if key == "validate":
            survey = measure_floor(self.targets, self.log_dir, f"survey-exec-r{r}")
            if not survey["ok"]:
                self.anomalies.append(f"{self.size} workers, survey exec run {r}: " + "; ".join(survey["problems"]))
        floor = self.floor(f"floor-before-{key}-r{r}", f"floor before {key} run {r}")
        if survey is not None:
            self.survey_exec(floor, survey)
        before = sudo_sessions(self.nodes) if check else None
        sample = with_floor(run_pyinfra(deploy, self.log_dir, f"{key}-r{r}", extra), floor, self.roles)
        if check:
            time.sleep(0.5)
            self.checks[key] = cross_check(before, sudo_sessions(self.nodes), sample)
        self.samples[key].append(sample)
        return sample

    def from_k3s(self, r: int, first: bool) -> tuple[dict, dict, dict]:
        """k3s mode (untimed), then the mode switch back from it, timed over
        the floor measured on the cluster in build mode before."""
        floor = measure_floor(self.probes, self.log_dir, f"floor-before-mode_switch_from_k3s-r{r}")
        self.samples["floor"].append(floor)
        k = run_pyinfra("deploys/k3s_mode.py", self.log_dir, f"k3s_mode-r{r}")
        self.samples["k3s_mode"].append(k)
        before = sudo_sessions(self.nodes) if first else None
        m = with_floor(run_pyinfra("deploys/mode_switch.py", self.log_dir, f"mode_switch_from_k3s-r{r}"), floor, self.roles)
        if first:
            time.sleep(0.5)
            self.checks["mode_switch_from_k3s"] = cross_check(before, sudo_sessions(self.nodes), m)
        self.samples["mode_switch_from_k3s"].append(m)
        return floor, k, m

    def run_round(self, r: int, repeat: int) -> None:
        first = r == 1
        connect = measure_floor(self.connect_targets, self.log_dir, f"connect-only-r{r}")
        self.samples["connect_only"].append(connect)
        if not connect["ok"]:
            self.anomalies.append(f"{self.size} workers, connect-only run {r}: " + "; ".join(connect["problems"]))
        ran = {"connect": connect}
        ran["pyinfra_floor"] = self.timed("pyinfra_floor", "bench/pyinfra_floor.py", r)
        ran["validate"] = self.timed("validate", "deploys/cluster_distcc_validate.py", r, self.validate_extra, check=first)
        ran["mode_switch_noop"] = self.timed("mode_switch_noop", "deploys/mode_switch.py", r, check=first)
        ran["floor"], ran["k3s_mode"], ran["mode_switch_from_k3s"] = self.from_k3s(r, first)
        self.round_anomalies(r, ran)
        self.say_round(r, repeat, ran)

    def round_anomalies(self, r: int, ran: dict[str, dict]) -> None:
        size, roles = self.size, self.roles
        for key in ("pyinfra_floor", "validate", "mode_switch_noop", "k3s_mode", "mode_switch_from_k3s"):
            s = ran[key]
            if not s["ok"]:
                self.anomalies.append(f"{size} workers, {key} run {r}: exit {s['rc']} (log {s['log']})")
        pyinfra_floor, v, n = ran["pyinfra_floor"], ran["validate"], ran["mode_switch_noop"]
        counted, with_sudo = pyinfra_floor["commands"], pyinfra_floor["sudo"]
        if pyinfra_floor["ok"] and any(counted.get(h, 0) != 1 or with_sudo.get(h, 0) != 1 for h in roles):
            self.anomalies.append(
                f"{size} workers, pyinfra floor run {r}: the counter saw {counted} commands ({with_sudo} with sudo), "
                "not 1 sudo command per host: it no longer measures pyinfra with one probe exec per host"
            )
        if v["ok"] and any(c != 1 for c in (v["commands"].get(h, 0) for h in roles)):
            self.anomalies.append(
                f"{size} workers, validate run {r}: the counter saw {v['commands']} commands, not 1 per host: "
                "the -vv count is off (or validation no longer sends one survey)"
            )
        if n["changes"]:
            self.anomalies.append(
                f"{size} workers, mode_switch no-change run {r}: {n['changes']} operations changed something"
            )

    def say_round(self, r: int, repeat: int, ran: dict[str, dict]) -> None:
        connect, floor, pyinfra_floor = ran["connect"], ran["floor"], ran["pyinfra_floor"]
        v, n, k, m = (ran[key] for key in ("validate", "mode_switch_noop", "k3s_mode", "mode_switch_from_k3s"))
        survey = self.samples["survey_exec"][-1]
        say(
            f"{self.size} worker(s) run {r}/{repeat}: true {connect['wall_s']:.2f}s | floor {floor['wall_s']:.2f}s | "
            f"survey exec {survey['wall_s']:.2f}s ({survey['x_floor']:.2f}x) | pyinfra floor {pyinfra_floor['wall_s']:.2f}s "
            f"({pyinfra_floor['x_floor']:.2f}x) | validate {v['wall_s']:.2f}s "
            f"({v['x_floor']:.2f}x, {v['command_summary']['max']} cmd/host) | mode_switch noop {n['wall_s']:.2f}s "
            f"({n['x_floor']:.2f}x, {n['command_summary']['max']} cmd/host, {n['changes']} changed) | "
            f"k3s_mode {k['wall_s']:.2f}s | mode_switch from k3s {m['wall_s']:.2f}s ({m['x_floor']:.2f}x, "
            f"{m['command_summary']['max']} cmd/host)"
        )

    def check_counters(self) -> None:
        for key, per_host in self.checks.items():
            wrong = {h: c for h, c in per_host.items() if c["vv_sudo"] != c["journal_sudo"]}
            if wrong:
                self.anomalies.append(
                    f"{self.size} workers, {key}: -vv sudo count differs from the journal's sudo sessions: {wrong}"
                )

    def medians(self) -> dict:
        samples, roles = self.samples, self.roles
        medians = {key: summarize_samples(samples[key]) for key in ("connect_only", "floor", "survey_exec", *TIMED_DEPLOYS)}
        for key in ("connect_only", "floor", "survey_exec"):
            medians[key]["commands_max"] = 1
        builder = next(h for h, r in roles.items() if r == "builder")
        medians["floor"]["builder_s"] = median([f["per_host_s"].get(builder) for f in samples["floor"]])
        medians["floor"]["worker_max_s"] = median([
            max((t for h, t in f["per_host_s"].items() if roles.get(h) == "worker" and t is not None), default=None)
            for f in samples["floor"]
        ])
        return medians

    def scope(self) -> dict:
        by_role = {
            role: [t["scope"] for t in self.targets if t["role"] == role] for role in ("builder", "worker")
        }
        return {
            "worker_names": max((s["names"] for s in by_role["worker"]), default=None),
            "worker_peers": max((s["peers"] for s in by_role["worker"]), default=None),
            "builder_names": max((s["names"] for s in by_role["builder"]), default=None),
            "builder_peers": max((s["peers"] for s in by_role["builder"]), default=None),
            **survey_work(self.work_rounds, self.roles),
        }


def bench_size(size: int, repeat: int, anomalies: list[str]) -> dict:
    say(f"--- {size} worker(s): lab up")
    started = time.monotonic()
    nodes = [n for n in lab_up(size, anomalies) if n.role in ("builder", "worker")]
    lab_up_s = time.monotonic() - started
    log_dir = RUNS_DIR / f"w{size:02d}"
    if log_dir.exists():
        shutil.rmtree(log_dir)
    log_dir.mkdir(parents=True)
    roles = {n.fqdn: n.role for n in nodes}

    say(f"{size} worker(s): build mode (mode_switch.py, untimed; apt installs distcc on new workers)")
    setup = run_pyinfra("deploys/mode_switch.py", log_dir, "setup-mode_switch")
    if not setup["ok"]:
        raise BenchError(f"the setup mode switch failed (exit {setup['rc']}); log {setup['log']}:\n{_tail(setup['log'])}")
    targets = load_survey_targets()
    if {t["name"] for t in targets} != set(roles):
        raise BenchError(f"inventory hosts {sorted(t['name'] for t in targets)} are not the lab's {sorted(roles)}")

    bench = SizeBench(size, nodes, targets, log_dir, anomalies)
    for r in range(1, repeat + 1):
        bench.run_round(r, repeat)
    bench.check_counters()
    medians = bench.medians()
    return {
        "hosts": len(nodes),
        "roles": roles,
        "scope": bench.scope(),
        "lab_up_s": lab_up_s,
        "setup": setup,
        "survey_targets": [
            {k: t[k] for k in ("name", "role", "address", "arguments", "sections", "scope")} for t in targets
        ],
        "probe": PROBE,
        "samples": bench.samples,
        "counter_cross_check": bench.checks,
        "medians": medians,
    }


def breakdown(size: int, block: dict) -> dict | None:
    """What the no-change mode switch spends its round trips on (middle sample)."""
    samples = sorted(block["samples"]["mode_switch_noop"], key=lambda s: s["wall_s"])
    if not samples:
        return None
    sample = samples[len(samples) // 2]
    roles = block["roles"]
    builder = next(h for h, r in roles.items() if r == "builder")
    worker = max((h for h, r in roles.items() if r == "worker"), key=lambda h: sample["commands"].get(h, 0))
    floor = block["medians"]["floor"]
    return {
        "size": size,
        "floor_builder_s": floor.get("builder_s"),
        "floor_worker_max_s": floor.get("worker_max_s"),
        "prepare": f"{sample['prepare'].get(builder, 0)} / {sample['prepare'].get(worker, 0)}",
        "execute": f"{sample['execute'].get(builder, 0)} / {sample['execute'].get(worker, 0)}",
        "facts": fact_breakdown(sample, roles),
        "log": sample["log"],
    }


# The packages a pyinfra run imports from this checkout (pyinfra puts the
# current directory on sys.path), and the inventory and deploy files it runs.
SOURCES = ("facts", "operations", "deploys", "inventories", "lab", "bench")


def compile_sources() -> None:
    """Bytecode for every module a deploy imports from this checkout, as pip
    writes it when it installs a package. pyinfra never writes .pyc files
    (sys.dont_write_bytecode), so without this every timed run would compile
    this package's sources again (about 30 ms per run on this machine), a
    cost that a pip-installed copy does not pay."""
    for name in SOURCES:
        if not compileall.compile_dir(REPO / name, quiet=1, force=False):
            raise BenchError(f"compiling {name}/ failed")


def main() -> int:
    if sys.argv[1:] == ["--survey-commands"]:
        print(json.dumps(survey_targets()))
        return 0
    config = configuration()
    CONFIG_ARGS[:] = _pyinfra_config()
    say(
        f"lab {config['lab_prefix']} ({config['lab_subnet']}, {config['arch']}), sizes {config['sizes']}, "
        f"{config['repeat']} runs each; results to bench/{config['results']}.json and .md"
    )
    if not GNU_TIME:
        say("/usr/bin/time not found (apt package `time`): peak memory from /proc/<pid>/status VmHWM polling")
    RUNS_DIR.mkdir(parents=True, exist_ok=True)
    compile_sources()
    results: dict = {"config": config, "machine": machine_info(), "code": tree_state(), "sizes": {}, "anomalies": []}
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = None
    try:
        for size in config["sizes"]:
            results["sizes"][str(size)] = bench_size(size, config["repeat"], results["anomalies"])
    except (BenchError, docker_lab.LabError, subprocess.SubprocessError, OSError) as exc:
        failed = str(exc)
        results["anomalies"].append(f"benchmark stopped early: {exc}")
    finally:
        results["machine"]["loadavg_end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
        results["code_end"] = tree_state()
        start, end = results["code"], results["code_end"]
        if (start["head"], start["digest"]) != (end["head"], end["digest"]):
            results["anomalies"].append(
                f"the working tree changed during the benchmark (HEAD {start['head'][:12]} -> {end['head'][:12]}, "
                f"uncommitted changes digest {start['digest']} -> {end['digest']}): runs may have measured different code"
            )
        if config["keep_lab"]:
            say("BENCH_KEEP_LAB=1: the lab is left running")
        else:
            say("taking the benchmark lab down")
            try:
                docker_lab.down()
            except docker_lab.LabError as exc:
                say(f"ERROR taking the lab down: {exc}")

    medians = {int(size): block["medians"] for size, block in results["sizes"].items()}
    results["counter_checks"] = [
        f"{size} worker{'s' if size != '1' else ''}: " + ", ".join(
            f"{key} {sum(1 for c in per_host.values() if c['vv_sudo'] == c['journal_sudo'])}/{len(per_host)}"
            for key, per_host in block["counter_cross_check"].items()
        )
        for size, block in results["sizes"].items()
    ]
    results["scopes"] = {size: block["scope"] for size, block in results["sizes"].items()}
    results["targets"] = evaluate_targets(medians, {int(s): v for s, v in results["scopes"].items()})
    if medians:
        big = max(medians)
        results["breakdown"] = breakdown(big, results["sizes"][str(big)])
    name = config["results"]
    (BENCH_DIR / f"{name}.json").write_text(json.dumps(results, indent=2, sort_keys=True, ensure_ascii=True) + "\n")
    markdown = render_markdown(results)
    (BENCH_DIR / f"{name}.md").write_text(markdown, encoding="ascii", errors="backslashreplace")
    print()
    print(markdown.encode("ascii", "backslashreplace").decode())
    say(f"wrote bench/{name}.json and bench/{name}.md")
    if failed:
        say(f"ERROR: {failed}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
