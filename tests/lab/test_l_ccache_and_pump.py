"""ccache in front of distcc (distcc_ccache) and pump mode (distcc_pump), as a
kernel builder turns them on for the builder: the mode switch installs and
configures both (a second run changes nothing), validation passes B-CCACHE
and B-PUMP, a real build goes to the workers through ccache and a rebuild
after `make clean` is served from the cache (the build report counts both),
a pump build is preprocessed on the workers, the smoke test runs its pump
path, and k3s mode leaves the cache alone."""

import json
import shlex

import pytest

from tests.lab.harness import REPO, deploy, paragraphs_of, pyinfra, running_lab, sh
from tests.lab.kernel_guide import TREE, block

DATA = {"distcc_ccache": "True", "distcc_pump": "True"}
VALIDATE = REPO / "reports" / "validate-speed.json"
REPORT = REPO / "reports" / "build-report.json"
PROJECT = "/tmp/kernel-build/speed"
FILES = 8


def as_build_user(container: str, script: str) -> str:
    return sh(container, f"runuser -l pi -c {shlex.quote(script)}")


def validate(data: dict) -> tuple[int, dict, str]:
    VALIDATE.unlink(missing_ok=True)
    run = pyinfra("deploys/cluster_distcc_validate.py", json_output=False,
                  data={**data, "distcc_report_path": str(VALIDATE)})
    return run.returncode, json.loads(VALIDATE.read_text()), run.stderr


def result(report: dict, host: str, check_id: str) -> dict:
    return next(c for c in report["hosts"][host] if c["id"] == check_id)


def build_report() -> tuple[dict, str]:
    run = deploy("cluster_distcc_report", data=DATA, json_output=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(REPORT.read_text()), run.stderr


@pytest.fixture(scope="module")
def nodes(lab):
    run = deploy("mode_switch", data=DATA, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return running_lab()


@pytest.fixture(scope="module")
def project(builder):
    """A small C project on the tmpfs, FILES files of real work each, with
    a `prepare` target (nothing to generate) for the guide's pump blocks."""
    sources = " && ".join(
        f"printf '%s\\n' '#include <stdio.h>' 'int f{i}(int x) {{ return x * {i}; }}' > u{i}.c"
        for i in range(1, FILES + 1)
    )
    makefile = ("printf '%s\\n' 'OBJS := $(patsubst %.c,%.o,$(wildcard u*.c))' 'all: $(OBJS)' '%.o: %.c' "
                "'\t$(CC) -O2 -c $< -o $@' 'clean:' '\trm -f *.o' 'prepare:' > Makefile")
    as_build_user(builder.container, f"rm -rf {PROJECT} && mkdir -p {PROJECT} && cd {PROJECT} && {sources} && {makefile}")
    return PROJECT


def test_a_second_mode_switch_changes_nothing(nodes):
    again = deploy("mode_switch", data=DATA)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.totals["success"] == 0 and again.totals["error"] == 0, again.changed_operations()


def test_ccache_and_distcc_pump_are_installed_on_the_builder_only(nodes):
    for node in nodes:
        installed = sh(node.container, "dpkg-query -W -f '${db:Status-Abbrev}' ccache distcc-pump 2>/dev/null || true")
        if node.role == "builder":
            assert installed.split() == ["ii", "ii"], (node.fqdn, installed)
        else:
            assert "ii" not in installed.split(), (node.fqdn, installed)


def test_validation_passes_b_ccache_and_b_pump(builder):
    code, report, output = validate(DATA)
    assert code == 0 and not report["failed"], output[-4000:]
    ccache = result(report, builder.fqdn, "B-CCACHE")
    assert ccache["result"] == "PASS" and "/home/pi/.ccache" in ccache["detail"], ccache
    assert "distcc behind it, depend mode, no compression" in ccache["detail"], ccache
    pump = result(report, builder.fqdn, "B-PUMP")
    assert pump["result"] == "PASS", pump
    assert "a pump compile reached 2 workers and was preprocessed there" in pump["detail"], pump
    path = result(report, builder.fqdn, "B-PATH")
    assert path["result"] == "PASS" and "ccache, then distcc" in path["detail"], path


def test_b_path_names_ccache_when_distcc_ccache_is_not_set(builder):
    """The profile puts ccache in front; validated as if distcc_ccache were
    off, B-PATH names ccache as what runs the compilers, and the fix."""
    code, report, output = validate({})
    path = result(report, builder.fqdn, "B-PATH")
    assert code != 0 and path["result"] == "FAIL", path
    assert "through ccache" in path["detail"] and "set distcc_ccache = True" in path["detail"], path


def test_a_build_goes_through_ccache_to_the_workers_and_a_rebuild_hits(builder, workers, project):
    as_build_user(builder.container, f"cd {project} && make clean >/dev/null && ccache -C >/dev/null")
    mark = deploy("cluster_distcc_mark", data=DATA, json_output=False)
    assert mark.returncode == 0, mark.stderr[-3000:]
    as_build_user(builder.container, f"cd {project} && make -j4 >/dev/null")
    cold, _ = build_report()
    assert cold["builder"]["compile_jobs"] == FILES and cold["builder"]["remote_total"] == FILES, cold["builder"]
    assert sum(cold["builder"]["remote_ok"].get(w.fqdn, 0) for w in workers) == FILES
    assert cold["ccache"]["misses"] == FILES and cold["ccache"]["hits"] == 0, cold["ccache"]
    as_build_user(builder.container, f"cd {project} && make clean >/dev/null && make -j4 >/dev/null")
    warm, output = build_report()
    # The window starts at the mark: the cold build's misses, then every file a hit.
    assert warm["ccache"]["hits"] == FILES and warm["ccache"]["misses"] == FILES, warm["ccache"]
    # A hit runs neither the preprocessor nor distcc: no new compile job.
    assert warm["builder"]["compile_jobs"] == FILES, warm["builder"]
    assert f"ccache (distcc_ccache): {FILES} hits" in output, output[-3000:]
    # ccache's temporary directory is the profile's tmpfs one, where its inode
    # cache works (under the home, on the container's overlay, it does not).
    assert [n for n in sh(builder.container, "ls /run/distcc-ccache").split() if n.startswith("inode-cache-")]


def test_the_cache_temporary_directory_is_made_at_boot(builder, project):
    """Without /run/distcc-ccache every compile ccache misses fails, and
    B-CCACHE names it; the boot's systemd-tmpfiles run (its unit's options,
    on the mode switch's tmpfiles.d file alone: on every file it would also
    write /run/nologin, which only the end of a boot removes) makes it again."""
    # A source of its own each time ($$ is the shell's pid): a miss.
    compile_one = "cd /tmp/kernel-build && printf 'int m(void) { return %d; }\\n' $$ > miss.c && cc -O2 -c miss.c"
    try:
        sh(builder.container, "rm -rf /run/distcc-ccache")
        failed = sh(builder.container, f"runuser -l pi -c {shlex.quote(compile_one)} 2>&1; echo rc=$?")
        assert "ccache: error: Permission denied" in failed and "rc=0" not in failed, failed
        code, report, output = validate(DATA)
        ccache = result(report, builder.fqdn, "B-CCACHE")
        assert code != 0 and ccache["result"] == "FAIL", ccache
        assert "pi cannot write ccache's temporary directory /run/distcc-ccache" in ccache["detail"], ccache
    finally:
        boot = sh(builder.container, "systemctl show -p ExecStart systemd-tmpfiles-setup.service")
        assert "systemd-tmpfiles --create --remove --boot" in boot, boot
        sh(builder.container, "systemd-tmpfiles --create --remove --boot /etc/tmpfiles.d/distcc-ccache.conf")
    assert sh(builder.container, "stat -c '%U %a %F' /run/distcc-ccache").strip() == "pi 700 directory"
    as_build_user(builder.container, compile_one + " && rm miss.c miss.o")
    code, report, output = validate(DATA)
    assert code == 0 and result(report, builder.fqdn, "B-CCACHE")["result"] == "PASS", output[-3000:]


def test_the_kernel_guides_pump_build_is_preprocessed_on_the_workers(builder, project):
    """docs/kernel-build.md's pump block, as written, on the small project
    in place of the kernel tree (its targets dropped)."""
    guide = block("11", "as the build user, with distcc_pump")
    lines = [line.replace(TREE, project).replace(" Image.gz modules dtbs", "") for line in guide.lines]
    assert lines[-1].startswith("distcc-pump make -j$(distcc -j) "), lines
    mark = deploy("cluster_distcc_mark", data=DATA, json_output=False)
    assert mark.returncode == 0, mark.stderr[-3000:]
    as_build_user(builder.container, f"cd {project} && make clean >/dev/null && " + " && ".join(lines) + " >/dev/null 2>&1")
    report, output = build_report()
    jobs = report["builder"]
    assert jobs["compile_jobs"] == FILES and jobs["pumped"] == FILES and not jobs["pump_fallback"], jobs
    assert f"pump mode: {FILES} preprocessed on the workers, 0 " in output, output[-3000:]


def test_the_kernel_guides_ccache_and_pump_build_caches_what_the_workers_preprocess(builder, project):
    """docs/kernel-build.md's block for both at once, as written, on the
    small project: a cold build misses every file and each miss is
    preprocessed and compiled on a worker; after `make clean` the same
    line is served from the cache, with no compile job."""
    guide = block("11", "as the build user, with distcc_ccache and distcc_pump")
    lines = [line.replace(TREE, project).replace(" Image.gz modules dtbs", "") for line in guide.lines]
    assert lines[-1].startswith("distcc-pump make -j$(distcc -j) ") and 'CC="ccache gcc"' in lines[-1], lines
    as_build_user(builder.container, f"cd {project} && make clean >/dev/null && ccache -C >/dev/null")
    mark = deploy("cluster_distcc_mark", data=DATA, json_output=False)
    assert mark.returncode == 0, mark.stderr[-3000:]
    build = " && ".join(lines) + " >/dev/null 2>&1"
    as_build_user(builder.container, build)
    cold, _ = build_report()
    assert cold["builder"]["compile_jobs"] == FILES and cold["builder"]["pumped"] == FILES, cold["builder"]
    assert not cold["builder"]["pump_fallback"], cold["builder"]
    assert cold["ccache"]["misses"] == FILES and cold["ccache"]["hits"] == 0, cold["ccache"]
    as_build_user(builder.container, f"cd {project} && make clean >/dev/null && {build}")
    warm, _ = build_report()
    assert warm["ccache"]["hits"] == FILES and warm["builder"]["compile_jobs"] == FILES, (warm["ccache"],
                                                                                          warm["builder"])


def test_the_smoke_test_runs_its_pump_path(nodes):
    run = deploy("cluster_distcc_smoketest", data=DATA, json_output=False)
    assert run.returncode == 0, run.stderr[-4000:]
    line = next(x for x in paragraphs_of(run.stderr) if x.startswith("pump path "))
    assert "preprocessed and compiled on workers, 0 preprocessed here" in line and line.endswith("PASS"), line


def test_pump_mode_refuses_a_worker_that_is_down(builder, workers):
    """B-PUMP's probe is a real compile: with a worker's distccd stopped it
    FAILs for that worker (and the mode switch heals it)."""
    sh(workers[0].container, "systemctl stop distcc")
    try:
        code, report, _ = validate(DATA)
        pump = result(report, builder.fqdn, "B-PUMP")
        assert code != 0 and pump["result"] == "FAIL", pump
        assert f"{workers[0].fqdn}: the pump compile failed" in pump["detail"], pump
        assert workers[1].fqdn not in pump["detail"], pump
    finally:
        run = deploy("mode_switch", data=DATA)
        assert run.returncode == 0, run.stderr[-3000:]


def test_k3s_mode_leaves_the_cache_alone(builder):
    cache = "find /home/pi/.ccache -type f | sort | xargs sha256sum | sha256sum"
    before = sh(builder.container, cache)
    assert sh(builder.container, "find /home/pi/.ccache -type f | wc -l").strip() != "0"
    try:
        run = deploy("k3s_mode", data=DATA)
        assert run.returncode == 0, run.stderr[-3000:]
        assert sh(builder.container, cache) == before
    finally:
        run = deploy("mode_switch", data=DATA)
        assert run.returncode == 0, run.stderr[-3000:]
    assert sh(builder.container, cache) == before

