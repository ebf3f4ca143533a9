"""The smoke test's judge on the output of its own scripts, captured from the
lab (tests/unit/smoke/CASE.json, made by `python3 -m lab.capture_smoke`):
a native and a cross compile per worker, each proven by the client, the
worker's log, the object's target and a cc1 that distccd ran (the
Cc1Processes fact on the process tables the worker took)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deploys.library.smoketest import (
    NATIVE,
    builder_script,
    distccd_cc1,
    judge_worker,
    render_smoke,
    smoke_outcome,
    worker_script,
    worker_verdict,
)
from lab.capture_fact import command_sha256

SMOKE = Path(__file__).parent / "smoke"
CROSS = "aarch64-linux-gnu-gcc"
CASES = sorted(p.stem for p in SMOKE.glob("*.json"))


def load(case: str) -> dict:
    return json.loads((SMOKE / f"{case}.json").read_text())


@pytest.mark.parametrize("case", CASES)
def test_fixture_was_captured_by_the_scripts_the_code_sends(case):
    """A fixture's lines are what today's scripts print: each script made
    from the fixture's own arguments hashes to the sha256 recorded when it
    was captured, and those arguments are the fixture's marker, workers,
    timeout and cross compilers."""
    fixture = load(case)
    assert sorted(fixture["arguments"]) == sorted(["builder", *fixture["workers"]])
    builder = fixture["arguments"]["builder"]
    assert (builder["marker"], builder["timeout"], builder["cross"]) == (
        fixture["marker"], fixture["timeout"], fixture["cross"],
    )
    assert [name for name, _ in builder["workers"]] == fixture["workers"]
    for whose, arguments in fixture["arguments"].items():
        script = builder_script(**arguments) if whose == "builder" else worker_script(**arguments)
        assert arguments["marker"] == fixture["marker"]
        assert command_sha256(script) == fixture["command_sha256"][whose], (
            f"tests/unit/smoke/{case}.json: the {whose} lines come from another "
            f"{'builder_script' if whose == 'builder' else 'worker_script'} than the code sends now; "
            f"re-capture it: python3 -m lab.capture_smoke {case} (docs/testing.md)"
        )


def verdicts(case: str) -> dict[str, dict[str, object]]:
    fixture = load(case)
    found = {}
    for index, worker in enumerate(fixture["workers"]):
        jobs = judge_worker(
            worker, index, fixture["marker"], fixture["builder_lines"], fixture["worker_lines"][worker],
            fixture["timeout"], fixture["cross"],
        )
        found[worker] = {"jobs": dict(jobs), "worker": worker_verdict(worker, jobs)}
    return found


def test_distccd_cc1_finds_each_compilers_cc1_under_distccd():
    fixture = load("cross-healthy")
    for worker, lines in fixture["worker_lines"].items():
        drivers = {(p["parent_command"] or "").split(" ", 1)[0] for p in distccd_cc1(lines)}
        assert {"x86_64-linux-gnu-gcc", CROSS} <= drivers, (worker, drivers)
        assert all(p["user"] == "distccd" and p["distccd_pid"] for p in distccd_cc1(lines))


@pytest.mark.parametrize("worker", ["worker1.distcc.internal", "worker2.distcc.internal"])
def test_both_compilers_pass_on_a_healthy_worker(worker):
    found = verdicts("cross-healthy")[worker]
    assert found["worker"].result == "PASS", found["worker"].cause
    native, cross = found["jobs"][NATIVE], found["jobs"][CROSS]
    assert "ELF = builder's (ELF64/Advanced Micro Devices X86-64/)" in native.evidence
    assert "program ran" in native.evidence
    assert "ELF = builder's (ELF64/AArch64/)" in cross.evidence
    assert f".comment = builder's {CROSS}" in cross.evidence
    assert "program ran" not in cross.evidence  # an AArch64 object cannot run on the amd64 builder
    assert any(e.startswith("cc1 under distccd seen on worker (pid ") and e.endswith(f", {CROSS})")
               for e in cross.evidence), cross.evidence


def test_a_worker_without_the_cross_compiler_in_its_whitelist_fails_on_that_compiler_only():
    found = verdicts("cross-whitelist-missing")
    first, second = found["worker1.distcc.internal"], found["worker2.distcc.internal"]
    assert first["jobs"][NATIVE].result == "PASS", first["jobs"][NATIVE].cause
    assert first["jobs"][CROSS].result == "FAIL"
    assert first["jobs"][CROSS].cause == "the compiler is not in the worker's /usr/lib/distcc whitelist"
    assert first["worker"].result == "FAIL"
    assert first["worker"].cause == f"{CROSS}: the compiler is not in the worker's /usr/lib/distcc whitelist"
    assert second["worker"].result == "PASS", second["worker"].cause


def test_a_cross_compiler_broken_on_the_builder_is_named_as_the_builders():
    """Its cc1 moved away on the builder: distcc cannot preprocess there, so
    no worker ever compiles the file; the cause is the builder's compiler's
    own error, not the worker."""
    for worker, found in verdicts("cross-builder-broken").items():
        assert found["jobs"][NATIVE].result == "PASS", (worker, found["jobs"][NATIVE].cause)
        cause = found["jobs"][CROSS].cause
        assert found["jobs"][CROSS].result == "FAIL"
        assert cause.startswith(f"{CROSS} failed on the builder before the job was sent"), cause
        assert "fatal error: cannot execute 'cc1'" in cause, cause
        assert "repair the builder's aarch64-linux-gnu-gcc: reinstall Debian's gcc-aarch64-linux-gnu" in cause, cause


def test_docs_show_what_the_smoke_test_prints():
    """docs/validation.md's example is the smoke test's default output for
    the captured cross-whitelist-missing case; its wide form is the line per
    compile, with the evidence, that the lab tests read."""
    fixture = load("cross-whitelist-missing")
    outcome = smoke_outcome(
        fixture["marker"], "builder.distcc.internal", fixture["workers"], fixture["builder_lines"],
        fixture["worker_lines"], fixture["timeout"], fixture["cross"],
    )
    docs = (Path(__file__).resolve().parents[2] / "docs" / "validation.md").read_text()
    assert f"```text\n{render_smoke(outcome).strip()}\n```" in docs
    wide = render_smoke(outcome, wide=True).splitlines()
    assert f"  worker1.distcc.internal  FAIL  {CROSS}: cause: the compiler is not in the worker's /usr/lib/distcc whitelist" in wide
    assert any(line.startswith(f"  worker2.distcc.internal  PASS  {CROSS}: client: compiled on worker") for line in wide)
