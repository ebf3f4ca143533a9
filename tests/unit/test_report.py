"""The build report's log parsing, on logs captured from the lab
(tests/unit/report/, see README there)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deploys.library.report import (
    BACKOFF,
    COMPILER_ERROR,
    DENIED,
    DISCONNECT,
    FAILURE_REASONS,
    FALLBACK,
    NO_HOSTS,
    NOT_DISTRIBUTABLE,
    TIMEOUT,
    WHITELIST,
    build_report,
    failure_reasons,
    parse_client_log,
    parse_worker_log,
    render,
    report_json,
    window_line,
)

LOGS = Path(__file__).parent / "report"


def lines(name: str) -> list[str]:
    return (LOGS / name).read_text().splitlines()


def test_make_j8_through_the_masquerade():
    # f1..f8 and main on the four workers, asm.S and the link local (not
    # distributable), bad.c failed on worker1 and was retried here, and
    # `cc -c main.c -o -` local (output to stdout).
    jobs = parse_client_log(lines("client-make-j8.log"))
    assert jobs.compile_jobs == 10
    assert jobs.remote_ok == {
        "worker1.distcc.internal": 3, "worker2.distcc.internal": 2,
        "worker3.distcc.internal": 2, "worker4.distcc.internal": 2,
    }
    assert jobs.remote_share == 0.9
    assert jobs.local == {NOT_DISTRIBUTABLE: 4, FALLBACK: 1}
    assert jobs.local_detail[f"{NOT_DISTRIBUTABLE}: no reason logged (-E and the like)"] == 1
    assert jobs.local_detail[f"{FALLBACK}: worker1.distcc.internal: compiler error on the worker (retried here)"] == 1
    assert jobs.local_detail[f"{NOT_DISTRIBUTABLE}: no visible input file"] == 1
    assert jobs.local_detail[f"{NOT_DISTRIBUTABLE}: called for link?  i give up"] == 1
    assert jobs.local_detail[f"{NOT_DISTRIBUTABLE}: output to stdout?  running locally"] == 1
    assert jobs.local_files == {FALLBACK: ["bad.c"]}


def test_parallel_compiles_without_o_are_compile_jobs_on_workers():
    """`for f in *.c; do cc -c $f & done` from the build user's login shell,
    worker2's distccd stopped: distcc notes that it adds -o (a dcc_scan_args
    line, which is no reason to compile locally), and a job whose first
    worker refused the connection was sent to worker1 (12 had picked worker2
    before the first refusal backed it off). The builder's section
    agrees with worker1's (24 jobs); the report said 0 C/C++ compile jobs."""
    jobs = parse_client_log(lines("client-parallel-no-o.log"))
    assert jobs.compile_jobs == 24
    assert jobs.remote_ok == {"worker1.distcc.internal": 24}
    assert jobs.remote_share == 1.0
    assert jobs.local == {}
    # The jobs started before the first refusal left a backoff marker.
    assert jobs.retried == {"worker2.distcc.internal: connection refused (no distccd listening)": 12}
    text = render(build_report({}, {"worker1.distcc.internal": []}, lines("client-parallel-no-o.log"), []))
    assert "C/C++ compile jobs 24, on workers 24 (100.0%)" in text
    assert "on another worker after a failure: 12 (worker2.distcc.internal: connection refused" in text


def test_client_failures_each_get_their_reason():
    jobs = parse_client_log(lines("client-failures.log"))
    detail = jobs.local_detail
    assert detail[f"{FALLBACK}: worker3.distcc.internal: no answer (whitelist, access denied or worker out of space: "
                  f"see that worker's log)"] == 1
    assert detail[f"{FALLBACK}: worker3.distcc.internal: timeout on the worker"] == 1
    assert detail[f"{FALLBACK}: worker3.distcc.internal: connection refused (no distccd listening)"] == 1
    assert detail[f"{BACKOFF}: every worker in backoff after a failure"] == 1
    assert detail[f"{NO_HOSTS}: no host list"] == 1
    # The client killed mid-compile never logged its end.
    assert jobs.interrupted == 1
    assert jobs.remote_total == 0
    assert jobs.compile_jobs == 6


def test_access_denied_seen_from_the_client():
    jobs = parse_client_log(lines("client-denied.log"))
    assert jobs.local_detail == {
        f"{FALLBACK}: worker3.distcc.internal: connection reset (access denied: see that worker's log)": 1
    }


def test_worker_failures_each_get_their_reason():
    jobs = parse_worker_log(lines("worker-failures.log"))
    assert jobs.ok == 0
    assert jobs.failed == {TIMEOUT: 1, WHITELIST: 1, DISCONNECT: 1, DENIED: 1}
    assert jobs.total == 4 == jobs.log_lines
    assert jobs.clients == {"172.31.249.2": 3, "172.31.249.6": 1}


def test_worker_counts_equal_its_summary_lines():
    raw = lines("worker1-make-j8.log")
    jobs = parse_worker_log(raw)
    summaries = [line for line in raw if "(dcc_job_summary)" in line]
    assert jobs.total == len(summaries) == 8
    assert jobs.ok == sum("COMPILE_OK" in line for line in summaries) == 6
    assert jobs.failed == {COMPILER_ERROR: 2}


def test_report_cross_checks_and_renders_ascii():
    client = lines("client-make-j8.log")
    report = build_report(
        {"builder": "mark", "worker1": "lost"},
        {"worker1.distcc.internal": lines("worker1-make-j8.log")},
        client,
        [{"file": "/home/pi/.distcc/lock/backoff_tcp_worker3.distcc.internal_3632_0",
          "host": "worker3.distcc.internal:3632", "age_seconds": 12}],
    )
    text = render(report)
    assert text.isascii()
    assert "ACTIVE" in text and "worker3.distcc.internal:3632" in text
    # worker1's log holds jobs from the earlier build too (6 OK against 3).
    assert any(n.startswith("worker1.distcc.internal: its log has 6 COMPILE_OK") for n in report.notes)
    assert any("rotated more than once" in n for n in report.notes)
    body = report_json(report)
    assert body["builder"]["remote_share"] == 0.9
    assert body["workers"]["worker1.distcc.internal"]["total"] == 8


def sixteen_worker_report(worker_name=lambda i: f"worker{i}.distcc.internal"):
    """Sixteen workers: most with the make -j8 log (6 OK, 2 compiler errors),
    every third with the failures captured on worker3 (one of each reason)."""
    logs = {worker_name(i): lines("worker1-make-j8.log" if i % 3 else "worker-failures.log") for i in range(1, 17)}
    window = {"builder.distcc.internal": "mark", **{name: "mark" for name in logs}}
    return build_report(window, logs, lines("client-make-j8.log"), [])


def worker_table(text: str) -> list[str]:
    """The header and the line of each worker."""
    lines = text.splitlines()
    start = lines.index("build report: jobs per worker (from each worker's distccd log)") + 1
    return lines[start: lines.index("", start)]


def test_docs_show_what_the_builder_section_prints():
    """docs/build-report.md's example is the builder's section for the make
    -j8 client log, every line within 100 columns."""
    docs = (Path(__file__).resolve().parents[2] / "docs" / "build-report.md").read_text()
    text = render(build_report({}, {}, lines("client-make-j8.log"), []))
    section = text[text.index("builder (from"): text.index("\n\nbackoff")]
    assert f"```text\n{section}\n```" in docs
    assert max(len(line) for line in section.splitlines()) <= 100


def test_failure_reasons_commonest_first():
    jobs = parse_worker_log(lines("worker-failures.log") + lines("worker1-make-j8.log"))
    assert failure_reasons(jobs) == "compiler error 2, whitelist 1, access denied 1, timeout 1, disconnect 1"
    assert failure_reasons(parse_worker_log([])) == "-"


def test_at_16_workers_the_default_table_fits_100_columns():
    report = sixteen_worker_report()
    table = worker_table(render(report))
    assert table[0] == "worker                    ok  failed  failed because"
    assert len(table) == 17 and max(len(line) for line in table) <= 100
    assert table[1] == "worker1.distcc.internal    6       2  compiler error 2"
    assert table[3] == "worker3.distcc.internal    0       4  whitelist 1, access denied 1, timeout 1, disconnect 1"


def test_at_16_workers_the_wide_setting_gives_a_column_per_reason():
    text = render(sixteen_worker_report(), wide=True)
    table = worker_table(text)
    assert table[0].split(" | ")[3].split() == [r.replace(" ", "-")[:9] for r in FAILURE_REASONS]
    assert len(table) == 18  # header, rule, a line per worker
    assert table[4].split() == ["worker3.distcc.internal", "|", "0", "|", "4", "|", "1", "1", "1", "0", "1", "0"]
    assert len(table[0]) > 100  # why it is not the default


def test_a_long_worker_name_does_not_push_the_table_past_100_columns():
    def name(i: int) -> str:
        return f"worker{i}.".ljust(70 - len(".example.internal"), "x") + ".example.internal"

    table = worker_table(render(sixteen_worker_report(name)))
    assert max(len(line) for line in table) <= 100
    assert table[3].endswith("...") and "  whitelist 1, access" in table[3]


def test_the_window_line_counts_hosts_per_kind_unless_wide():
    report = sixteen_worker_report()
    assert "\nwindow: mark on 17 hosts\n" in render(report)
    window = {**report.window, "worker3.distcc.internal": "lost", "worker4.distcc.internal": "mark, then rotated"}
    assert window_line(window) == "window: mark on 15 hosts; lost on 1 host; mark, then rotated on 1 host"
    wide = window_line(window, wide=True)
    assert wide.startswith("window: builder.distcc.internal mark, worker1.distcc.internal mark, ")
    assert "worker3.distcc.internal lost" in wide


def test_pump_jobs_are_told_from_jobs_preprocessed_here_with_the_include_servers_reason():
    """distcc-pump make: every job preprocessed and compiled on a worker (no
    local cpp); the same hosts without distcc-pump: each preprocessed here,
    distcc saying why (no include server). distcc logs "compile from" twice
    for one pump job: still one job."""
    jobs = parse_client_log(lines("client-pump.log"))
    assert jobs.compile_jobs == 16 and jobs.remote_total == 16
    assert jobs.pumped == 8
    assert jobs.pump_fallback == {"INCLUDE_SERVER_PORT not set - did you forget to run under 'distcc-pump'?": 8}
    text = render(build_report({}, {}, lines("client-pump.log"), []))
    assert "pump mode: 8 preprocessed on the workers, 8 preprocessed here after all" in text
    assert "8  include server: INCLUDE_SERVER_PORT not set - did you forget to run under 'distcc-pump'?" in text


def test_pump_jobs_are_told_apart_in_the_lines_the_log_fact_keeps():
    """The build report reads the client log through LogSince, which keeps
    only the lines the report needs (no exec line of a remote job)."""
    from facts.logs import _REPORT_LINES

    kept = [line for line in lines("client-pump.log") if re.search(_REPORT_LINES, line)]
    assert len(kept) < len(lines("client-pump.log"))
    jobs = parse_client_log(kept)
    assert jobs.compile_jobs == 16 and jobs.pumped == 8 and sum(jobs.pump_fallback.values()) == 8


def test_ccache_counts_of_the_window_are_the_counters_less_the_marks():
    """ccache's counters captured from the lab: an emptied cache at the
    mark, then the same 8 files built cold and, after rm *.o, warm."""
    from deploys.library.report import ccache_window

    facts = Path(__file__).parent / "facts" / "ccache.CcacheStats"
    at_mark = json.loads((facts / "empty.json").read_text())["fact"]
    now = json.loads((facts / "cold_then_warm.json").read_text())["fact"]
    assert ccache_window(now, at_mark) == {"hits": 8, "misses": 8, "uncacheable": 0}
    report = build_report({}, {}, [], [])
    report.ccache = ccache_window(now, at_mark)
    assert "ccache (distcc_ccache): 8 hits (neither preprocessed nor compiled), 8 misses" in render(report)
