"""bench/build.py's pure parts, on a client log captured from the lab."""

from __future__ import annotations

from pathlib import Path

from bench.build import job_children_cpu, limits

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
