"""The build report: for one build, how many jobs each worker compiled or
failed (and why), and how many the builder compiled itself (and why).

Sources: each worker's distccd log (one dcc_job_summary line per job, at
notice and above) and the build user's client log on the builder (DISTCC_LOG,
set by the guard's profile script). Neither carries timestamps, so "one build"
is a byte window: since the mark that deploys/cluster_distcc_mark.py wrote
(reports/build-mark.json), or, without one, since the last mode switch (the
guard clears the client log then; on workers, since distccd last started).

Like validation, it adds no operation: every host answers two read-only
facts while the deploy file loads, and the last host to answer prints the
table and writes the JSON report.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pyinfra import host, inventory
from pyinfra.api import deploy
from pyinfra.context import ctx_state

from deploys.library.builder import CLIENT_LOG, ccache_dir
from deploys.library.cluster import builder_host, check_inventory, first_loader, on_each, peer_name, role_of, worker_hosts
from deploys.library.settings import settings_for
from deploys.library.tables import narrow_table
from facts.ccache import CcacheStats, summary
from facts.logs import BackoffMarkers, LogPosition, LogSince
from facts.users import LoginEnvironment
from operations._printed import Refusal, wrapped

WORKER_START = "dcc_log_daemon_started"
BACKOFF_PERIOD = 60

# Worker side: why a job failed.
WHITELIST, DENIED, TIMEOUT, COMPILER_ERROR, DISCONNECT, OTHER = (
    "whitelist", "access denied", "timeout", "compiler error", "disconnect", "other",
)
FAILURE_REASONS = (WHITELIST, DENIED, TIMEOUT, COMPILER_ERROR, DISCONNECT, OTHER)
# Builder side: why a job ran locally.
FALLBACK, NOT_DISTRIBUTABLE, BACKOFF, NO_HOST_FREE, NO_HOSTS = (
    "fallback after a failure", "not distributable", "backoff", "no host free", "no host list",
)
LOCAL_REASONS = (FALLBACK, NOT_DISTRIBUTABLE, BACKOFF, NO_HOST_FREE, NO_HOSTS)

_SUMMARY = re.compile(
    r"^distccd\[(?P<pid>\d+)\] \(dcc_job_summary\) client: (?P<client>[0-9.]+):\d+ (?P<status>[A-Z_]+) "
    r"exit:(?P<exit>\d+) .*?time:(?P<ms>\d+)ms ?(?:(?P<compiler>\S+) (?P<file>\S+))?"
)
_WORKER_PID = re.compile(r"^distccd\[(\d+)\] ")
_DENIED = re.compile(r"connection from client '([0-9.]+):\d+' denied by access list")
_CLIENT = re.compile(r"^distcc\[(\d+)\] (.*)$")
_COMPILE_FROM = re.compile(r"^compile from (\S+) to (\S+)$")
_REMOTE_OK = re.compile(r"^compile (\S+) on (\S+?)(?::\d+)?(?:/\d+)?(?:,\S+)? completed ok$")
_FALLBACK_HOST = re.compile(r"failed to distribute (\S+) to (\S+?)(?::\d+)?(?:/\d+)?(?:,\S+)?, running locally instead")
_SCAN = re.compile(r"^\(dcc_scan_args\) (.*)$")
_STATUS_REASON = {
    "COMPILE_ERROR": COMPILER_ERROR, "COMPILE_TIMEOUT": TIMEOUT, "CLI_DISCONN": DISCONNECT,
}


@dataclass
class WorkerJobs:
    """One worker's jobs in the window, from its own distccd log."""

    ok: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    log_lines: int = 0
    clients: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.ok + sum(self.failed.values())


def parse_worker_log(lines: list[str]) -> WorkerJobs:
    """Count a worker's jobs: one per dcc_job_summary line, and one failed
    (access denied) per connection its --allow refused (no summary then)."""
    jobs = WorkerJobs()
    failed: Counter[str] = Counter()
    clients: Counter[str] = Counter()
    whitelisted: set[str] = set()
    for line in lines:
        summary = _SUMMARY.match(line)
        if summary:
            jobs.log_lines += 1
            pid, status = summary["pid"], summary["status"]
            clients[summary["client"]] += 1
            if status == "COMPILE_OK":
                jobs.ok += 1
            elif status in _STATUS_REASON:
                failed[_STATUS_REASON[status]] += 1
            elif pid in whitelisted:
                failed[WHITELIST] += 1
            else:
                failed[OTHER] += 1
            whitelisted.discard(pid)
            continue
        denied = _DENIED.search(line)
        if denied:
            jobs.log_lines += 1
            failed[DENIED] += 1
            clients[denied[1]] += 1
            continue
        pid = _WORKER_PID.match(line)
        if pid and "dcc_check_compiler_whitelist" in line:
            whitelisted.add(pid[1])
    jobs.failed = dict(failed)
    jobs.clients = dict(clients)
    return jobs


@dataclass
class ClientJobs:
    """The builder's view: every distcc invocation in the window."""

    compile_jobs: int = 0
    remote_ok: dict[str, int] = field(default_factory=dict)
    local: dict[str, int] = field(default_factory=dict)
    local_detail: dict[str, int] = field(default_factory=dict)
    local_files: dict[str, list[str]] = field(default_factory=dict)
    failed_no_fallback: int = 0
    interrupted: int = 0
    # Jobs distcc sent to another worker after one failed them (distcc 3.4
    # retries a refused or timed-out connect elsewhere), by the failed
    # worker and cause: they ran on workers, and the failed one is backed off.
    retried: dict[str, int] = field(default_factory=dict)
    # Pump mode (distcc-pump, ,cpp hosts): compile jobs a worker also
    # preprocessed, and those preprocessed here after all, by the include
    # server's reason (distcc then sends them as in plain mode).
    pumped: int = 0
    pump_fallback: dict[str, int] = field(default_factory=dict)

    @property
    def remote_total(self) -> int:
        return sum(self.remote_ok.values())

    @property
    def remote_share(self) -> float | None:
        return self.remote_total / self.compile_jobs if self.compile_jobs else None


def _fallback_cause(messages: list[str]) -> str:
    text = "\n".join(messages)
    if "failed with exit code 118" in text:
        return "timeout on the worker"
    if "remote compilation of" in text:
        return "compiler error on the worker (retried here)"
    if "server provided no answer" in text:
        return "no answer (whitelist, access denied or worker out of space: see that worker's log)"
    if "Connection reset by peer" in text:
        return "connection reset (access denied: see that worker's log)"
    if "Connection refused" in text:
        return "connection refused (no distccd listening)"
    if "timeout while connecting" in text or "timed out" in text:
        return "connect timeout (worker down or filtered)"
    return "other failure"


_EXEC_ON = re.compile(r"^exec on (\S+?)(?::\d+)?(?:/\d+)?(?:,\S+)?: ")


# The job went to a pump host (,cpp): its exec line says so, and so does its
# "completed ok" line, which the build report's log fact keeps (it drops
# the exec lines of remote jobs).
_PUMP_EXEC = re.compile(r"^(?:exec on|compile \S+ on) \S+?,cpp\b")
_INCLUDE_SERVER = re.compile(r"^\((?:dcc_talk_to_include_server|dcc_build_somewhere)\) Warning: (.*)$")


def _pump_outcome(job: list[str], out: ClientJobs) -> None:
    """A remote job to a pump host (,cpp): preprocessed on the worker, or
    here when the include server gave no answer (distcc says why)."""
    if not any(_PUMP_EXEC.match(message) for message in job):
        return
    warnings = [w[1] for w in map(_INCLUDE_SERVER.match, job) if w]
    if not warnings and not any(m.startswith("cpp ") and " on localhost completed ok" in m for m in job):
        out.pumped += 1
        return
    reason = next((w for w in warnings if "failed to get includes" not in w), warnings[0] if warnings else
                  "preprocessed here, no reason logged")
    out.pump_fallback[reason] = out.pump_fallback.get(reason, 0) + 1


def _classify(job: list[str], out: ClientJobs, local: Counter, detail: Counter, files: dict) -> None:
    source = None
    remote_host = None
    scan = None
    fallback_host = None
    fallback_plain = False
    no_hosts = False
    local_exec = False
    for message in job:
        compiled = _COMPILE_FROM.match(message)
        if compiled:
            source = compiled[1]
            continue
        ok = _REMOTE_OK.match(message)
        if ok and ok[2] != "localhost":
            remote_host = ok[2]
            continue
        scanned = _SCAN.match(message)
        if scanned:
            scan = scanned[1]
            continue
        fell = _FALLBACK_HOST.search(message)
        if fell:
            fallback_host = fell[2]
            continue
        if "failed to distribute, running locally instead" in message:
            fallback_plain = True
        elif "contained no hosts" in message or "no hostlist is set" in message:
            no_hosts = True
        elif message.startswith("exec on localhost"):
            local_exec = True
        elif "failed to distribute and fallbacks are disabled" in message:
            out.failed_no_fallback += 1
    # A job that ran on a worker was distributable whatever dcc_scan_args
    # noted on the way ("no visible output file, going to add -o"): only a
    # job that stayed here is not distributable for what it says.
    if source is not None and remote_host:
        scan = None
    if source is None and scan is None:
        if local_exec:
            # distcc logs the reason for -E (and a nested `distcc gcc` run
            # through the masquerade) only at debug level.
            scan = "no reason logged (-E and the like)"
        else:
            return
    if source is not None and scan is None:
        out.compile_jobs += 1
    if remote_host:
        out.remote_ok[remote_host] = out.remote_ok.get(remote_host, 0) + 1
        _pump_outcome(job, out)
        tried = [m[1] for m in map(_EXEC_ON.match, job) if m]
        for failed in dict.fromkeys(h for h in tried if h != remote_host):
            cause = f"{failed}: {_fallback_cause(job)}"
            out.retried[cause] = out.retried.get(cause, 0) + 1
        return
    if not local_exec and not fallback_host and not fallback_plain:
        if source is not None and scan is None:
            out.interrupted += 1
        return
    if scan is not None:
        reason, why = NOT_DISTRIBUTABLE, scan
    elif fallback_host:
        reason, why = FALLBACK, f"{fallback_host}: {_fallback_cause(job)}"
    elif fallback_plain and no_hosts:
        reason, why = NO_HOSTS, "no host list"
    elif fallback_plain:
        reason, why = BACKOFF, "every worker in backoff after a failure"
    else:
        reason, why = NO_HOST_FREE, "localhost picked from the host list"
    local[reason] += 1
    detail[f"{reason}: {why}"] += 1
    if source is not None and reason != NOT_DISTRIBUTABLE:
        files.setdefault(reason, [])
        if len(files[reason]) < 10:
            files[reason].append(source)


def _reused(job: list[str], compile_from: str) -> bool:
    """Whether a second "compile from" in a pid's open job starts another
    process's job. In pump mode distcc logs the same line twice for one job
    (before and after asking the include server), with no exec in between."""
    seen = [m for m in job if _COMPILE_FROM.match(m)]
    if not seen:
        return False
    since = job[len(job) - job[::-1].index(seen[-1]):]
    return seen[-1] != compile_from or any(m.startswith("exec on ") or "completed ok" in m for m in since)


def parse_client_log(lines: list[str]) -> ClientJobs:
    """Group the client log by process (one distcc invocation each, ended by
    its dcc_exit line) and classify each: remote on which worker, or local
    and why."""
    out = ClientJobs()
    local: Counter[str] = Counter()
    detail: Counter[str] = Counter()
    files: dict[str, list[str]] = {}
    open_jobs: dict[str, list[str]] = {}
    for line in lines:
        match = _CLIENT.match(line)
        if not match:
            continue
        pid, message = match[1], match[2]
        job = open_jobs.get(pid)
        if job is not None and _COMPILE_FROM.match(message) and _reused(job, message):
            # The pid was reused after a process that never reached dcc_exit.
            _classify(open_jobs.pop(pid), out, local, detail, files)
            job = None
        if job is None:
            job = open_jobs.setdefault(pid, [])
        job.append(message)
        if message.startswith("(dcc_exit)"):
            _classify(open_jobs.pop(pid), out, local, detail, files)
    for job in open_jobs.values():
        _classify(job, out, local, detail, files)
    out.local = dict(local)
    out.local_detail = dict(detail)
    out.local_files = files
    return out


@dataclass
class BuildReport:
    window: dict[str, str]
    workers: dict[str, WorkerJobs]
    builder: ClientJobs
    backoff: list[dict]
    notes: list[str]
    # With distcc_ccache: the cache's hits, misses and uncacheable calls in
    # the window (its counters now less those at the mark); None without.
    ccache: dict[str, int] | None = None


def ccache_window(now: dict[str, int], at_mark: dict[str, int] | None) -> dict[str, int]:
    """ccache's hits, misses and uncacheable calls since the mark (since the
    cache began, without one: its counters are never zeroed by the farm)."""
    before = at_mark or {}
    return summary({name: value - before.get(name, 0) for name, value in now.items()})


def build_report(window: dict[str, str], worker_lines: dict[str, list[str]], client_lines: list[str],
                 backoff: list[dict], builder_address: str | None = None) -> BuildReport:
    workers = {name: parse_worker_log(lines) for name, lines in worker_lines.items()}
    builder = parse_client_log(client_lines)
    notes = []
    for name, jobs in workers.items():
        sent = builder.remote_ok.get(name, 0)
        if jobs.ok != sent:
            notes.append(
                f"{name}: its log has {jobs.ok} COMPILE_OK, the builder's client log {sent} compiled there "
                f"(other clients, the smoke test, or a window that starts at a different time on each side)"
            )
        others = {c: n for c, n in jobs.clients.items() if builder_address and c != builder_address}
        if others:
            notes.append(f"{name}: jobs from other addresses: " + ", ".join(f"{c} ({n})" for c, n in sorted(others.items())))
    for name, how in window.items():
        if how == "lost":
            notes.append(f"{name}: the window's start is no longer in the log (rotated more than once): every line "
                         f"still there is counted")
    return BuildReport(window, workers, builder, backoff, notes)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def failure_reasons(jobs: WorkerJobs) -> str:
    """A worker's failed jobs by reason, the commonest first: "timeout 3, whitelist 1"."""
    order = sorted(jobs.failed.items(), key=lambda item: (-item[1], FAILURE_REASONS.index(item[0])))
    return ", ".join(f"{reason} {count}" for reason, count in order) or "-"


def _worker_lines(report: BuildReport, wide: bool) -> list[str]:
    """By default one line per worker within tables.WIDTH columns: jobs OK,
    failed, and the failures' reasons; `wide` (distcc_wide_tables) gives a
    column per reason instead."""
    if not wide:
        rows = [(name, str(jobs.ok), str(sum(jobs.failed.values())), failure_reasons(jobs))
                for name, jobs in report.workers.items()]
        return narrow_table(("worker", "ok", "failed", "failed because"), rows, right=(1, 2))
    width = max([len("worker"), *(len(n) for n in report.workers)])
    header = "worker".ljust(width) + " |    ok | failed | " + " ".join(r.replace(" ", "-")[:9].rjust(9) for r in FAILURE_REASONS)
    lines = [header, "-" * len(header)]
    for name, jobs in report.workers.items():
        failed = sum(jobs.failed.values())
        cells = " ".join(str(jobs.failed.get(r, 0)).rjust(9) for r in FAILURE_REASONS)
        lines.append(f"{name.ljust(width)} | {str(jobs.ok).rjust(5)} | {str(failed).rjust(6)} | {cells}")
    return lines


def window_line(window: dict[str, str], wide: bool = False) -> str:
    """How each host's window was found. By default the hosts are counted
    per kind ("mark on 16 hosts; lost on 1 host"), one line at any cluster
    size (a lost window also gets a note naming its host); `wide` names
    every host, as the JSON report does."""
    if wide:
        return "window: " + ", ".join(f"{n} {w}" for n, w in window.items())
    kinds = Counter(window.values()).most_common()
    return "window: " + "; ".join(f"{kind} on {count} host{'s' if count > 1 else ''}" for kind, count in kinds)


def render(report: BuildReport, wide: bool = False) -> str:
    """What the build report prints: by default every line within WIDTH
    columns, a long one wrapped with its later lines indented under its
    text; `wide` (distcc_wide_tables) gives the table a column per reason
    and each line whole."""
    lines = ["", "build report: jobs per worker (from each worker's distccd log)", *_worker_lines(report, wide)]

    def add(line: str, indent: int = 2) -> None:
        lines.extend([line] if wide else wrapped(line, " " * indent))

    b = report.builder
    lines += ["", "builder (from the build user's client log):",
              f"  C/C++ compile jobs {b.compile_jobs}, on workers {b.remote_total} ({_pct(b.remote_share)})"]
    for reason in LOCAL_REASONS:
        lines.append(f"  local, {reason}: {b.local.get(reason, 0)}")
    for text, count in sorted(b.local_detail.items()):
        add(f"    {count:6d}  {text}", 12)
    for reason, names in sorted(b.local_files.items()):
        add(f"    {reason}, e.g.: {' '.join(names)}", 6)
    for cause, count in sorted(b.retried.items()):
        add(f"  on another worker after a failure: {count} ({cause})", 4)
    if b.failed_no_fallback:
        lines.append(f"  failed, fallback off: {b.failed_no_fallback}")
    if b.interrupted:
        lines.append(f"  interrupted (no end in the log): {b.interrupted}")
    if b.pumped or b.pump_fallback:
        add(f"  pump mode: {b.pumped} preprocessed on the workers, {sum(b.pump_fallback.values())} "
            f"preprocessed here after all", 4)
        for reason, count in sorted(b.pump_fallback.items()):
            add(f"    {count:6d}  include server: {reason}", 12)
    if report.ccache is not None:
        c = report.ccache
        lines.append("")
        add(f"ccache (distcc_ccache): {c['hits']} hits (neither preprocessed nor compiled), {c['misses']} "
            f"misses (sent through distcc: the compile jobs above), {c['uncacheable']} uncacheable calls "
            f"(links, -E, kbuild's compiler probes)")
    if report.backoff:
        lines.append("")
        add("backoff markers (the next build skips these workers while fresh; the mode switch clears them):")
        for marker in report.backoff:
            fresh = "ACTIVE" if marker["age_seconds"] < BACKOFF_PERIOD else "expired"
            add(f"  {marker['host']}: {fresh}, set {marker['age_seconds']} s ago ({marker['file']})", 4)
    else:
        lines += ["", "backoff markers: none"]
    lines.append("")
    add(window_line(report.window, wide))
    for note in report.notes:
        add(f"note: {note}")
    return "\n".join(lines)


def report_json(report: BuildReport) -> dict:
    b = report.builder
    return {
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "window": report.window,
        "workers": {n: {**asdict(j), "total": j.total} for n, j in report.workers.items()},
        "builder": {**asdict(b), "remote_total": b.remote_total, "remote_share": b.remote_share},
        "backoff": report.backoff,
        "ccache": report.ccache,
        "notes": report.notes,
    }


# ---- the deploys --------------------------------------------------------

def mark_path(report_path: str) -> Path:
    return Path(report_path).parent / "build-mark.json"


def report_path(report_path: str) -> Path:
    return Path(report_path).parent / "build-report.json"


def _log_path(node) -> str:
    if role_of(node) == "builder":
        return ""
    return f"{settings_for(node).log_dir}/distccd.log"


def _ccache_counters(node, client_log: str) -> dict[str, int]:
    """ccache's counters in the build user's cache (the client log's home tells where it is)."""
    settings = settings_for(node)
    home = client_log.removesuffix(f"/{CLIENT_LOG}")
    return node.get_fact(CcacheStats, user=settings.build_user, cache_dir=ccache_dir(settings, home))


def _client_log(node) -> str | None:
    home = node.get_fact(LoginEnvironment, user=settings_for(node).build_user)["home"]
    return f"{home}/{CLIENT_LOG}" if home else None


class ReportError(Refusal):
    """The report could not be made (a host did not answer)."""


@deploy("cluster distcc mark")
def cluster_distcc_mark():
    """Record where every log stands now, on this machine, as the start of
    the next build's report. Read-only on every host. The first host to load
    reads every host's log position (cluster.first_loader), so no host waits
    for another."""
    check_inventory(inventory)
    settings_for(host)
    run_state = ctx_state.get()
    if not first_loader(run_state, "build mark"):
        return

    def position(node) -> dict | None:
        path = _client_log(node) if role_of(node) == "builder" else _log_path(node)
        if not path:
            return None
        mark = node.get_fact(LogPosition, path=path)
        if role_of(node) == "builder" and settings_for(node).ccache:
            mark["ccache"] = _ccache_counters(node, path)
        return mark

    answers = _answers(run_state, position)
    missing = sorted(n for n, a in answers.items() if a is None)
    target = mark_path(settings_for(builder_host(inventory)).report_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    body = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "hosts": {n: a for n, a in answers.items() if a is not None}}
    target.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n", encoding="ascii")
    print(f"\nbuild mark: {target} ({len(body['hosts'])} logs)\n", file=sys.stderr, flush=True)
    if missing:
        raise ReportError(f"build mark: no answer from {', '.join(missing)}; check SSH and run the mark again")


def _answers(run_state, read) -> dict[str, dict | None]:
    """read(node) on every inventory host, in parallel; None for a host not
    connected in this run, or whose read failed."""
    active = list(run_state.inventory.get_active_hosts())
    answers: dict[str, dict | None] = {n.name: None for n in [builder_host(inventory), *worker_hosts(inventory)]}
    answers.update(on_each(run_state, active, read))  # type: ignore[arg-type]
    return answers


@deploy("cluster distcc report")
def cluster_distcc_report():
    """The build report since the mark (or the last mode switch). The first
    host to load reads every host's log (cluster.first_loader)."""
    check_inventory(inventory)
    settings_for(host)
    run_state = ctx_state.get()
    if not first_loader(run_state, "build report"):
        return
    builder = builder_host(inventory)
    marks_file = mark_path(settings_for(builder).report_path)
    marks = json.loads(marks_file.read_text()).get("hosts", {}) if marks_file.exists() else {}

    def since_mark(node) -> dict | None:
        mark = marks.get(node.name)
        if role_of(node) != "builder":
            return {"log": node.get_fact(LogSince, path=_log_path(node), mark=mark, start=WORKER_START)}
        path = _client_log(node)
        if not path:
            return None
        answer = {"log": node.get_fact(LogSince, path=path, mark=mark, start=""),
                  "backoff": node.get_fact(BackoffMarkers, directory=path.rsplit("/", 1)[0])}
        if settings_for(node).ccache:
            answer["ccache"] = ccache_window(_ccache_counters(node, path), (mark or {}).get("ccache"))
        return answer

    answers = _answers(run_state, since_mark)
    missing = sorted(n for n, a in answers.items() if a is None)
    window = {n: a["log"]["window"] for n, a in answers.items() if a}
    worker_lines = {peer_name(w): answers[w.name]["log"]["lines"] for w in worker_hosts(inventory) if answers.get(w.name)}
    client = answers.get(builder.name) or {"log": {"lines": []}, "backoff": []}
    result = build_report(window, worker_lines, client["log"]["lines"], client["backoff"])
    result.ccache = client.get("ccache")
    if missing:
        result.notes.append(f"no answer from {', '.join(missing)} (check SSH): their jobs are not counted")
    target = report_path(settings_for(builder).report_path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(report_json(result), indent=2, sort_keys=True) + "\n", encoding="ascii")
    since = f"the mark of {marks_file}" if marks else "the last mode switch (no mark)"
    text = render(result, wide=settings_for(builder).wide_tables)
    print(text + f"\nsince: {since}\nreport: {target}\n", file=sys.stderr, flush=True)
