"""bench/build.py's pure parts, on a client log captured from the lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.build import bound, hosts_for, job_children_cpu, limits, render, summarize, targets

LOG = Path(__file__).parent / "report" / "client-make-j8.log"


def test_children_cpu_split_by_where_the_job_compiled():
    remote, local = job_children_cpu(LOG.read_text().splitlines())
    # Nine jobs compiled on workers (their children: the local preprocessor),
    # and bad.c compiled here after its remote failure; links, -E and
    # `-o -` are not compile jobs.
    assert round(remote, 6) == round(0.008810 + 0.005505 + 0.004684 + 0.001376 + 0.001385 + 0.004350 + 0.004646
                                     + 0.001363 + 0.001362 + 0.004638 + 0.006417 + 0.003417 + 0.002129 + 0.001108
                                     + 0.004141, 6)
    assert round(local, 6) == round(0.006329 + 0.008729, 6)


def test_limit_is_set_by_the_builder_or_the_workers():
    local = {"wall_s": 400.0, "builder_cpu_s": 160.0, "children_cpu_local_jobs_s": 120.0, "compile_jobs": 400}
    distributed = [{"children_cpu_remote_jobs_s": 20.0, "remote_jobs": 400}]
    out = limits(local, distributed, 0.4, [0, 1, 2, 4])
    # Builder: 40 s other + 20 s preprocessing; workers: 100 s of compiling.
    assert out["builder_serial_cpu_s"] == 60.0 and out["remote_compile_cpu_s"] == 100.0
    assert out["per_size"] == {"1": round(400 / (100 / 0.4), 2), "2": round(400 / (60 / 0.4), 2),
                               "4": round(400 / (60 / 0.4), 2)}
    assert out["amdahl_limit"] == round(160 / 60, 2)


def test_hosts_for_takes_the_first_entries_of_the_deployed_list():
    pump = ["w1.lab:3632/2,cpp,lzo", "w2.lab:3632/2,cpp,lzo", "w3.lab:3632/2,cpp,lzo"]
    assert hosts_for(pump, 2) == ("w1.lab:3632/2,cpp,lzo w2.lab:3632/2,cpp,lzo", 4)
    # The tuning knob multiplies each entry's slots, options kept.
    assert hosts_for(pump, 1, slot_factor=2) == ("w1.lab:3632/4,cpp,lzo", 4)
    assert hosts_for(["w1.lab:3632/3", "w2.lab:3632/2"], 2) == ("w1.lab:3632/3 w2.lab:3632/2", 5)
    # The local build: every job on the builder, two at a time.
    assert hosts_for(pump, 0) == ("localhost/2", 2)


def test_a_modes_bound_is_set_by_its_busier_side():
    # Builder-bound: 60 CPU s on the builder, 100 on 4 workers (25 each).
    assert bound(300.0, 60.0, 100.0, 4, 0.4) == round(300 / (60 / 0.4), 2)
    # Worker-bound: one worker does all 100.
    assert bound(300.0, 60.0, 100.0, 1, 0.4) == round(300 / (100 / 0.4), 2)
    assert bound(300.0, 120.0, 0.0, 0, 0.4) == 1.0


RESULTS = Path(__file__).resolve().parents[2] / "bench" / "build-results.json"


@pytest.mark.skipif(not RESULTS.exists(), reason="no make bench-build results yet")
def test_the_results_table_and_targets_are_what_the_samples_give():
    """bench/build-results.md is rendered from the samples of the same run:
    the medians, speedups, bounds and targets recomputed from them match."""
    results = json.loads(RESULTS.read_text())
    rows = summarize(results["samples"], results["cpus"])
    assert rows == results["summary"]
    assert [list(t) for t in targets(rows, results["largest"])] == results["targets"]
    assert render(results) == RESULTS.with_suffix(".md").read_text()
    assert render(results).isascii()
    assert {s["mode"] for s in results["samples"]} == set(results["modes"])
