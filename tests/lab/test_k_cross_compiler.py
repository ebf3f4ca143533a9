"""A cross compiler in the farm (distcc_cross_compilers), as Raspberry Pi's
kernel guide uses one to build a 64-bit kernel from the 32-bit OS
(CROSS_COMPILE=aarch64-linux-gnu-): here the amd64 lab builds for AArch64.
The mode switch installs it on every node, validation judges its name
(B-PATH on the builder, W-WHITELIST and W-COMPILERS on the workers), and the
smoke test compiles with it on every worker and checks the object's target."""

import json

import pytest

from tests.lab.harness import REPO, by_role, deploy, gcc_version, pyinfra, running_lab, sh

CROSS = "aarch64-linux-gnu-gcc"
DATA = {"distcc_cross_compilers": json.dumps([CROSS])}
REPORT = REPO / "reports" / "validate-cross.json"


def validate() -> tuple[int, dict, str]:
    REPORT.unlink(missing_ok=True)
    run = pyinfra(
        "deploys/cluster_distcc_validate.py", json_output=False, data={**DATA, "distcc_report_path": str(REPORT)}
    )
    return run.returncode, json.loads(REPORT.read_text()), run.stderr


def result(report: dict, host: str, check_id: str) -> dict:
    return next(c for c in report["hosts"][host] if c["id"] == check_id)


@pytest.fixture(scope="module")
def nodes(lab):
    run = deploy("mode_switch", data=DATA, json_output=False, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return running_lab()


def test_mode_switch_installs_and_links_the_cross_compiler_everywhere(nodes):
    for node in nodes:
        assert sh(node.container, f"{CROSS} -dumpmachine").strip() == "aarch64-linux-gnu", node.fqdn
        # The builder's link is what its build runs; a worker's is distccd's whitelist.
        assert sh(node.container, f"readlink /usr/lib/distcc/{CROSS}").strip() == "../../bin/distcc", node.fqdn


def test_validation_passes_every_check_with_the_cross_compiler(nodes):
    code, report, output = validate()
    assert code == 0 and not report["failed"], output[-4000:]
    assert " 0 WARN, 0 FAIL" in output, output[-4000:]
    builder = by_role(nodes, "builder")[0]
    assert f"{CROSS}, c++, cc, g++, gcc run /usr/lib/distcc" in result(report, builder.fqdn, "B-PATH")["detail"]
    # Debian builds its cross gcc from the same GCC release as the native one.
    version = gcc_version(builder)
    for worker in by_role(nodes, "worker"):
        assert f"{CROSS} {version} aarch64-linux-gnu" in result(report, worker.fqdn, "W-COMPILERS")["detail"]
        assert CROSS in result(report, worker.fqdn, "W-WHITELIST")["detail"]


def test_smoke_test_compiles_natively_and_for_aarch64_on_every_worker(nodes):
    # The wide form: a line per compile, with all its evidence.
    run = deploy("cluster_distcc_smoketest", data={**DATA, "distcc_wide_tables": "True"}, json_output=False)
    print(run.stderr[-4000:])
    workers = by_role(nodes, "worker")
    assert run.returncode == 0, run.stderr[-4000:]
    assert f"one compile per worker with gcc and {CROSS}" in run.stderr
    assert f"smoke test: {len(workers)} of {len(workers)} workers PASS" in run.stderr
    lines = run.stderr.splitlines()
    for worker in workers:
        native = next(x for x in lines if x.startswith(f"  {worker.fqdn}  PASS  client: compiled on worker"))
        assert "ELF = builder's (ELF64/Advanced Micro Devices X86-64/)" in native, native
        assert "program ran" in native and "cc1 under distccd seen on worker" in native, native
        cross = next(x for x in lines if x.startswith(f"  {worker.fqdn}  PASS  {CROSS}: client: compiled on worker"))
        assert "worker log: COMPILE_OK from" in cross, cross
        assert "ELF = builder's (ELF64/AArch64/)" in cross, cross
        assert "cc1 under distccd seen on worker (pid" in cross and f", {CROSS})" in cross, cross


def test_a_missing_builder_link_is_named_and_update_distcc_symlinks_heals_it(nodes):
    """Without /usr/lib/distcc/aarch64-linux-gnu-gcc on the builder its build
    runs the cross compiler directly, all locally: B-PATH names the cause
    and the fix, and the fix works."""
    builder = by_role(nodes, "builder")[0]
    sh(builder.container, f"rm /usr/lib/distcc/{CROSS}")
    try:
        code, report, output = validate()
        assert code != 0 and report["failed"] == [f"B-PATH@{builder.fqdn}"], output[-4000:]
        detail = result(report, builder.fqdn, "B-PATH")["detail"]
        assert f"/usr/lib/distcc/{CROSS} is missing on the builder" in detail, detail
        assert f"runs /usr/bin/{CROSS} directly" in detail and "update-distcc-symlinks" in detail, detail
    finally:
        sh(builder.container, "update-distcc-symlinks")
    code, report, output = validate()
    assert code == 0 and not report["failed"], output[-4000:]
