"""Every line the package prints by default fits in 100 columns, at 16
workers with names as long as a real farm's (pi-worker16.cluster.lan): the
smoke test, validation (table, problems, counts), the build report, and the
errors it raises. The wide form (distcc_wide_tables) keeps the long lines.

The sixteen-worker inputs are the captured lab outputs of tests/unit
(smoke/, surveys/, report/, facts/), each host renamed (tests/unit/captured.py).
These tests fail on the package as it was before its default output was
narrowed: rendered by that code, these very inputs gave lines of up to 413
columns in the smoke test (35 lines over 100; the same lines the wide form
prints now), 435 in validation's problem lines (32 over 100) and 188 in the
build report's notes (19 over 100).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from pyinfra.api.exceptions import PyinfraError

from deploys.library.report import build_report, ccache_window, render
from deploys.library.smoketest import render_smoke, smoke_outcome
from deploys.library.validation.render import render_table
from operations._printed import Refusal
from tests.unit.captured import (
    fact_value,
    paragraphs_joined,
    renamed,
    report_log,
    sixteen_worker_cluster,
    smoke_case,
)

WIDTH = 100
REPO = Path(__file__).resolve().parents[2]
BUILDER = "pi-builder.cluster.lan"
MARKER = "5e1f0c2a9d47"


def worker_name(i: int) -> str:
    return f"pi-worker{i}.cluster.lan"


def over(text: str) -> list[str]:
    return [line for line in text.splitlines() if len(line) > WIDTH]



# --- the smoke test ---------------------------------------------------------


def _job_renamed(line: str, marker: str, source: int, index: int) -> str:
    """A line about job `source` (or `source.N`) of a capture as one about
    job `index` of this run: its marker, file names and job ID."""
    line = line.replace(marker, MARKER)
    line = re.sub(rf"\b(smoke-{MARKER}-|obj-){source}((?:\.\d+)?\.[co])\b", rf"\g<1>{index}\g<2>", line)
    key, _, rest = line.partition(" ")
    if key == str(source) or key.startswith(f"{source}."):
        line = f"{index}{key[len(str(source)):]} {rest}"
    return line


def sixteen_worker_smoke(case: str):
    """The captured case at 16 workers: worker i is the capture's worker
    (i - 1) % 2 under a new name, its jobs renumbered; the real path is the
    capture's (its jobs went to the first two workers); the pump path is the
    build user's captured distcc-pump log as the script prints it (`P log`)."""
    fixture = smoke_case(case)
    captured = fixture["workers"]
    names = {old: worker_name(i) for i, old in enumerate(captured, start=1)} | {"builder.distcc.internal": BUILDER}
    builder_lines = [renamed(line, names) for line in fixture["builder_lines"] if line.startswith("R ")]
    worker_lines = {}
    for index in range(16):
        source = index % len(captured)
        own = {captured[source]: worker_name(index + 1), "builder.distcc.internal": BUILDER}
        builder_lines += [
            renamed(_job_renamed(line, fixture["marker"], source, index), own)
            for line in fixture["builder_lines"] if line.split(" ", 1)[0].split(".")[0] == str(source)
        ]
        worker_lines[worker_name(index + 1)] = [
            renamed(_job_renamed(line, fixture["marker"], source, index), own)
            for line in fixture["worker_lines"][captured[source]]
        ]
    pump = {f"worker{i}.distcc.internal": worker_name(i) for i in (1, 2)}
    builder_lines += ["P rc 0", *(f"P log {renamed(line, pump)}" for line in report_log("client-pump.log"))]
    return smoke_outcome(
        MARKER, BUILDER, [worker_name(i) for i in range(1, 17)], builder_lines, worker_lines, fixture["timeout"],
        fixture["cross"],
    )


SMOKE_CASES = ["cross-healthy", "cross-whitelist-missing", "cross-builder-broken"]


@pytest.mark.parametrize("case", SMOKE_CASES)
def test_the_smoke_test_at_16_workers_fits_100_columns(case):
    outcome = sixteen_worker_smoke(case)
    text = render_smoke(outcome)
    assert over(text) == [] and text.isascii()
    lines = text.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("worker ")))
    assert lines[header].split() == ["worker", "gcc", "aarch64-linux-gnu-gcc", "real", "path"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[header + 1: header + 17]}
    assert list(rows) == [worker_name(i) for i in range(1, 17)]
    # Each compile's verdict, and every FAIL's cause in full below the table.
    for name, jobs in outcome.jobs.items():
        assert rows[name][:2] == [verdict.result for _, verdict in jobs]
    said = paragraphs_joined(lines)
    for jobs in outcome.jobs.values():
        for compiler, verdict in jobs:
            if verdict.result == "FAIL":
                shared = [p for p in said if p.startswith(f"FAIL {compiler} ") and p.endswith(f": {verdict.cause}")]
                named = re.split(r"[ ,()]+", shared[0][: -len(f": {verdict.cause}")]) if shared else []
                assert len(shared) == 1 and verdict.worker in named, (verdict, shared)
    assert any(line.startswith("real path (build user, login shell, make -j4, 8 files): ") for line in said)
    assert any(line.startswith("pump path (build user, ") for line in said)
    assert lines[-1] == f"smoke test: {sum(v.result == 'PASS' for v in outcome.verdicts.values())} of 16 workers PASS"


def test_the_smoke_tests_wide_form_keeps_every_compiles_evidence_on_one_line():
    outcome = sixteen_worker_smoke("cross-healthy")
    text = render_smoke(outcome, wide=True)
    first = next(line for line in text.splitlines() if re.match(rf"  {re.escape(worker_name(1))} +PASS  client: ", line))
    assert "ELF = builder's (ELF64/Advanced Micro Devices X86-64/), program ran, cc1 under distccd seen" in first
    assert first.endswith(", real path: 4 jobs") and len(first) > 200
    assert over(text)


# --- validation -------------------------------------------------------------


def test_validation_at_16_workers_fits_100_columns():
    results, roles = sixteen_worker_cluster(worker_name, BUILDER, in_details=True)
    text = render_table(results, roles)
    assert over(text) == [] and text.isascii()
    lines = text.splitlines()
    assert lines[0].split() == ["host", "role", "PASS", "WARN", "FAIL", "first", "problem"]
    assert [line.split()[0] for line in lines[1:18]] == list(results)
    # The problem paragraphs name the new hosts, and the counts use the
    # table's words.
    problems = paragraphs_joined(lines[lines.index("", 18) + 1: -2])
    assert len(problems) == sum(c.result != "PASS" for checks in results.values() for c in checks)
    assert any(p.startswith(f"FAIL W-DISTCCD {worker_name(12)}: distccd runs, but its listen address") for p in problems)
    assert any(f"{worker_name(12)} resolves the builder's name {BUILDER} to 127.0.1.1" in p for p in problems)
    assert re.fullmatch(r"validation: \d+ PASS, \d+ WARN, \d+ FAIL", lines[-1])


def test_validations_wide_form_keeps_the_matrix_and_each_problem_on_one_line():
    results, roles = sixteen_worker_cluster(worker_name, BUILDER, in_details=True)
    text = render_table(results, roles, wide=True)
    assert len(text.splitlines()[0]) > 200
    assert any(line.startswith(f"FAIL H-GCC {worker_name(2)}: ") and len(line) > WIDTH for line in text.splitlines())
    assert re.search(rf"^{re.escape(BUILDER)} +\| PASS ", text, re.M)


# --- the build report -------------------------------------------------------


def sixteen_worker_build_report():
    """Sixteen workers' logs (the make -j8 log of worker1, every third the
    failures captured on worker3), the builder's client logs of those runs
    together, a backoff marker, ccache's counters and a lost window."""
    names = {f"worker{i}.distcc.internal": worker_name(i) for i in range(1, 5)}
    logs = {worker_name(i): report_log("worker1-make-j8.log" if i % 3 else "worker-failures.log") for i in range(1, 17)}
    client = [renamed(line, names) for log in ("client-make-j8.log", "client-failures.log", "client-parallel-no-o.log")
              for line in report_log(log)]
    backoff = [{**marker, "host": renamed(marker["host"], names), "file": renamed(marker["file"], names)}
               for marker in fact_value("logs.BackoffMarkers", "after_refused_worker")]
    window = {BUILDER: "mark", **{name: "mark" for name in logs}, worker_name(7): "lost"}
    report = build_report(window, logs, client, backoff, "172.31.241.2")
    report.ccache = ccache_window(fact_value("ccache.CcacheStats", "cold_then_warm"), None)
    return report


def test_the_build_report_at_16_workers_fits_100_columns():
    report = sixteen_worker_build_report()
    text = render(report)
    assert over(text) == [] and text.isascii()
    # Its items are indented, so a wrapped line is told by its words: each
    # note, the ccache line and the backoff marker are all there, in order.
    words = " ".join(text.split())
    for note in report.notes:
        assert f" note: {note}" in words
    assert " ccache (distcc_ccache): 8 hits (neither preprocessed nor compiled), 8 misses " in words
    marker = f"/tmp/kernel-build/cap2/state/lock/backoff_tcp_{worker_name(3)}_3702_0"
    assert f" {worker_name(3)}:3702: expired, set 165 s ago ({marker}) " in words
    assert text.splitlines()[text.splitlines().index("backoff markers (the next build skips these workers while "
                                                      "fresh; the mode switch clears them):") + 2] == f"    ({marker})"


def test_the_build_reports_wide_form_keeps_the_long_lines():
    text = render(sixteen_worker_build_report(), wide=True)
    assert len(over(text)) > 10
    assert any(line.startswith("note: ") and len(line) > WIDTH for line in text.splitlines())


# --- errors -----------------------------------------------------------------


def package_errors() -> list[tuple[str, str]]:
    """(file, class) of every exception class the package defines on PyinfraError or OperationError."""
    found = []
    for path in sorted([*(REPO / "deploys").rglob("*.py"), *(REPO / "operations").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & {"PyinfraError", "OperationError", "Refusal", "OperationRefusal"}:
                    found.append((str(path.relative_to(REPO)), node.name))
    return found


def test_every_error_the_package_raises_is_wrapped():
    """pyinfra prints an error's text after "--> pyinfra error in FILE line
    N:" as it is: each of the package's error classes wraps its paragraph."""
    import importlib

    errors = package_errors()
    assert ("deploys/library/setting_checks.py", "SettingsError") in errors and len(errors) >= 10
    for path, name in errors:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert issubclass(getattr(module, name), Refusal), f"{path}: {name} does not wrap its text (Refusal)"


def test_no_raise_of_a_bare_pyinfra_error_in_the_package():
    for path in [*(REPO / "deploys").rglob("*.py"), *(REPO / "operations").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                called = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                assert called not in {"PyinfraError", "OperationError"}, f"{path}:{node.lineno}"


def test_a_refusal_naming_a_long_host_is_printed_within_100_columns():
    from deploys.library.setting_checks import refusal

    host = "pi-worker16.cluster.lan"
    error = refusal(host, "distcc_tmpfs_size", "64G", "is more than the builder's 3.7 GiB of memory",
                    "set distcc_tmpfs_size to 1G or less, or leave it unset to size it from the memory")
    lines = str(error).splitlines()
    assert lines[0] == "" and all(len(line) <= WIDTH for line in lines) and len(lines) >= 3
    assert " ".join(" ".join(lines).split()) == error.paragraph
    assert error.paragraph.startswith(f"host {host}: setting distcc_tmpfs_size = '64G' is more than")
    assert isinstance(error, PyinfraError)
