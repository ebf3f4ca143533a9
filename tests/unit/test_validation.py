"""Validation's checks against surveys captured from the real lab, healthy
and broken one way at a time (tests/unit/surveys/CASE.json, made by
`python3 -m lab.capture_surveys`; each fixture says what was broken).

Every survey is parsed with facts.survey.parse_survey, the inventory is
rebuilt in the captured shape with the captured host data, and the registered
check functions evaluate it. No host is needed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploys.library.validation.checks import CHECKS, COLUMNS, REGISTRY
from deploys.library.validation.checks.host import gcc_package_reads
from deploys.library.validation.model import FAIL, PASS, WARN, Check
from deploys.library.validation.render import WIDE_HINT, first_problem, render_table
from facts.survey import HostSurvey, parse_surveys
from lab.capture_fact import command_sha256
from tests.unit.captured import (
    BUILDER,
    SURVEYS,
    WORKER1,
    WORKER2,
    evaluate_case,
    load,
    paragraphs_joined,
    roles_of,
    sixteen_worker_cluster,
)

HEAL = "run deploys/mode_switch.py"


def outcome(case: str, host: str, check_id: str) -> Check:
    found = [c for c in evaluate_case(case)[host] if c.id == check_id]
    assert len(found) == 1, f"{check_id} on {host}: {found}"
    return found[0]


def not_passing(case: str) -> set[tuple[str, str, str]]:
    return {(c.id, host, c.result) for host, checks in evaluate_case(case).items() for c in checks if c.result != PASS}


CASES = sorted(p.stem for p in SURVEYS.glob("*.json"))


# --- the fixtures are real and current -------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_fixture_matches_the_current_survey_command(case):
    """A fixture is the output of the command validation sends today; if the
    survey changes, re-capture (python3 -m lab.capture_surveys CASE)."""
    fixture = load(case)
    for host, arguments in fixture["arguments"].items():
        command = HostSurvey().command(**arguments).get_raw_value()
        assert command_sha256(command) == fixture["command_sha256"][host], (
            f"tests/unit/surveys/{case}.json: {host}'s lines come from another survey command than the code sends "
            f"now; re-capture it: python3 -m lab.capture_surveys {case} (docs/testing.md)"
        )


@pytest.mark.parametrize("case", CASES)
def test_gcc_packages_are_read_only_where_h_gcc_fails(case):
    """The second command goes to the hosts whose gcc differs from the
    builder's and to the builder (the fixture holds what validation's
    gcc_package_reads chose when it was captured), never to a cluster whose
    compilers agree: there validation sends one command a host."""
    fixture = load(case)
    surveys = parse_surveys(fixture["outputs"])
    reads = gcc_package_reads(surveys, fixture["inventory"]["builder"][0])
    assert sorted(reads) == sorted(fixture.get("gcc_package", {}))
    failing = {host for host, checks in evaluate_case(case).items() for c in checks if c.id == "H-GCC" and c.result == FAIL}
    assert set(reads) == (failing | {fixture["inventory"]["builder"][0]} if failing else set())


@pytest.mark.parametrize("case", CASES)
def test_every_message_is_ascii_without_python_reprs(case):
    for checks in evaluate_case(case).values():
        for c in checks:
            assert c.detail.isascii()
            assert not re.search(r"\bNone\b|\[\'|\{\'|\(\'|<[a-zA-Z_.]+ object", c.detail), c.detail


# --- the registry ----------------------------------------------------------------


def test_registry_keeps_ids_columns_and_order():
    assert list(CHECKS) == [
        "H-REACHABLE", "B-TMPFS", "B-DISTCCD-OFF", "B-CLIENT", "B-HOSTS", "B-PATH", "B-KERNEL-ARCH", "B-CCACHE", "B-PUMP",
        "B-DRYRUN", "W-DISTCCD", "W-OVERRIDE", "W-WHITELIST", "W-COMPILERS", "W-ALLOW", "W-INSECURE", "W-LISTEN", "W-USER",
        "W-REACH", "W-ALLOW-BUILDER", "H-GCC", "H-MTU", "H-NAMES", "H-K3S",
        "B-TMPFS-SPACE", "H-MEMORY", "W-TMP-SPACE",
    ]
    assert len(set(COLUMNS.values())) == len(COLUMNS)
    assert all(spec.about and spec.role in ("builder", "worker", "host") for spec in REGISTRY)
    # Columns are words, not abbreviations that need the legend.
    assert {c: COLUMNS[c] for c in ("B-DISTCCD-OFF", "W-ALLOW-BUILDER", "W-OVERRIDE", "B-HOSTS")} == {
        "B-DISTCCD-OFF": "distccd-off", "W-ALLOW-BUILDER": "allows-builder", "W-OVERRIDE": "override",
        "B-HOSTS": "host-list",
    }


def test_each_check_lives_in_the_module_of_its_subject():
    """A reader finds a check by its ID: B-* in checks/builder.py, H-* in
    checks/host.py, a worker's own W-* in checks/worker.py, and the
    cluster-wide W-* (what the builder sees of a worker) in checks/reach.py."""
    modules = {spec.id: spec.evaluate.__module__.rsplit(".", 1)[-1] for spec in REGISTRY if spec.id != "H-REACHABLE"}
    cluster_wide = {spec.id for spec in REGISTRY if spec.about.startswith("cluster: ")}
    assert cluster_wide == {"W-REACH", "W-ALLOW-BUILDER"}
    expected = {
        check_id: "reach" if check_id in cluster_wide else {"B": "builder", "W": "worker", "H": "host"}[check_id[0]]
        for check_id in modules
    }
    assert modules == expected


def test_validation_doc_names_every_check_with_its_column():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "validation.md").read_text()
    for spec in REGISTRY:
        assert f"| `{spec.id}` | {spec.column} |" in doc, spec.id


def test_healthy_lab_passes_every_check_that_applies():
    results = evaluate_case("healthy")
    assert {h: [c.id for c in checks] for h, checks in results.items()} == {
        BUILDER: ["H-REACHABLE", "B-TMPFS", "B-DISTCCD-OFF", "B-CLIENT", "B-HOSTS", "B-PATH", "B-KERNEL-ARCH",
                  "B-CCACHE", "B-PUMP", "B-DRYRUN", "H-GCC", "H-MTU", "H-NAMES", "H-K3S", "B-TMPFS-SPACE", "H-MEMORY"],
        WORKER1: ["H-REACHABLE", "W-DISTCCD", "W-OVERRIDE", "W-WHITELIST", "W-COMPILERS", "W-ALLOW", "W-INSECURE", "W-LISTEN",
                  "W-USER", "W-REACH", "W-ALLOW-BUILDER", "H-GCC", "H-MTU", "H-NAMES", "H-K3S", "H-MEMORY",
                  "W-TMP-SPACE"],
        WORKER2: ["H-REACHABLE", "W-DISTCCD", "W-OVERRIDE", "W-WHITELIST", "W-COMPILERS", "W-ALLOW", "W-INSECURE", "W-LISTEN",
                  "W-USER", "W-REACH", "W-ALLOW-BUILDER", "H-GCC", "H-MTU", "H-NAMES", "H-K3S", "H-MEMORY",
                  "W-TMP-SPACE"],
    }
    assert not_passing("healthy") == set()


def table_part(text: str) -> list[str]:
    """The lines before the problem lines and the counts."""
    lines = text.splitlines()
    return lines[: lines.index("")]


def after_the_table(results: dict[str, list[Check]]) -> list[str]:
    """The problem lines and the counts, each problem on one line, as the
    wide form prints them: users and the lab tests grep `FAIL H-GCC
    worker2...` and the counts."""
    problems = [f"{c.result} {c.id} {host}: {c.detail}" for host, checks in results.items() for c in checks if c.result != PASS]
    counts = [sum(c.result == r for checks in results.values() for c in checks) for r in (PASS, WARN, FAIL)]
    return [*([""] + problems if problems else []), "", "validation: {} PASS, {} WARN, {} FAIL".format(*counts)]



def test_default_table_is_one_line_per_host():
    table = render_table(evaluate_case("healthy"), roles_of("healthy"))
    assert table_part(table) == [
        "host                     role     PASS  WARN  FAIL  first problem",
        "builder.distcc.internal  builder    16     0     0  -",
        "worker1.distcc.internal  worker     17     0     0  -",
        "worker2.distcc.internal  worker     17     0     0  -",
        WIDE_HINT,
    ]
    assert table.endswith("\n\nvalidation: 50 PASS, 0 WARN, 0 FAIL") and table.isascii()


@pytest.mark.parametrize("doc", ["docs/validation.md", "README.md"])
def test_docs_show_what_validation_prints(doc):
    """docs/validation.md's and README's example is what validation prints
    by default for the captured distccd-stopped lab."""
    docs = (Path(__file__).resolve().parents[2] / doc).read_text()
    table = render_table(evaluate_case("distccd-stopped"), roles_of("distccd-stopped"))
    assert f"```text\n{table}\n```" in docs


def test_wide_table_names_columns_in_words_and_prints_the_legend():
    table = render_table(evaluate_case("healthy"), roles_of("healthy"), wide=True)
    header = table.splitlines()[0]
    assert header.split(" | ")[1].split() == [COLUMNS[c] for c in CHECKS]
    assert "columns: reachable=H-REACHABLE, tmpfs=B-TMPFS," in table
    assert f"{BUILDER} | PASS " in table and table.isascii()
    assert WIDE_HINT not in table
    assert table.endswith("validation: 50 PASS, 0 WARN, 0 FAIL")


def test_a_host_line_names_its_first_fail_before_any_warn():
    checks = [Check("H-REACHABLE", PASS, "surveyed"), Check("W-ALLOW", WARN, "distccd is not running"),
              Check("W-REACH", FAIL, "refused"), Check("H-K3S", FAIL, "k3s-agent still active")]
    assert first_problem(checks) == checks[2]
    assert first_problem(checks[:2]) == checks[1]
    assert first_problem(checks[:1]) is None


def test_at_16_workers_the_default_table_fits_100_columns_and_the_problem_lines_stay():
    results, roles = sixteen_worker_cluster()
    text = render_table(results, roles)
    table = table_part(text)
    assert len(table) == 1 + 17 + 1  # header, a line per host, the hint
    assert max(len(line) for line in table) <= 100
    assert text.isascii()
    rows = {line.split()[0]: line for line in table[1:-1]}
    assert list(rows) == list(results)
    assert rows["worker2.distcc.internal"].split()[1:5] == ["worker", "16", "0", "1"]
    assert "  H-GCC: gcc 13.3.0 x86_64-linux-gnu" in rows["worker2.distcc.internal"]
    assert rows["worker2.distcc.internal"].endswith("...")
    assert rows["worker1.distcc.internal"].endswith("  -")
    assert "  H-REACHABLE: pyinfra could not connect" in rows["worker16.distcc.internal"]
    assert "  B-TMPFS: findmnt lists a tmpfs mounted at" in rows[BUILDER]
    # Then the causes and fixes, a paragraph each within 100 columns, its
    # later lines indented, and the counts.
    after = text.splitlines()[len(table):]
    assert max(len(line) for line in after) <= 100
    assert paragraphs_joined(after) == after_the_table(results)
    assert any(line.startswith("  ") for line in after)
    assert "FAIL H-GCC worker2.distcc.internal: gcc 13.3.0" in text
    # The wide form keeps each on one line.
    assert max(len(line) for line in render_table(results, roles, wide=True).splitlines()) > 200


def test_at_16_workers_the_wide_setting_gives_the_full_matrix():
    results, roles = sixteen_worker_cluster()
    text = render_table(results, roles, wide=True)
    lines = text.splitlines()
    assert lines[0].split(" | ")[1].split() == [COLUMNS[c] for c in CHECKS]
    assert len(lines[0]) > 200  # why it is not the default
    assert [line.split(" | ")[0].strip() for line in lines[2:19]] == list(results)
    assert lines[20].startswith("columns: reachable=H-REACHABLE, ")
    assert lines[21:] == after_the_table(results)


@pytest.mark.parametrize("length", [40, 44, 70])
def test_a_long_host_name_does_not_push_a_line_past_100_columns(length):
    """The problem is cut more first; only a name so long that under 30
    characters of problem would be left is cut itself. The problem lines
    below always carry the whole name."""
    def name(i: int) -> str:
        return f"worker{i}.".ljust(length - len(".example.internal"), "x") + ".example.internal"

    results, roles = sixteen_worker_cluster(name)
    assert len(name(16)) == length
    text = render_table(results, roles)
    table = table_part(text)
    assert max(len(line) for line in table) <= 100
    row = next(line for line in table if line.startswith(name(2)[:20]))
    if length <= 40:
        assert row.startswith(name(2) + "  worker ")
    else:
        assert name(2) not in row and "... worker " in row.replace("  ", " ")
    assert len(row[row.index("H-GCC: "):]) >= 30
    assert f"FAIL H-GCC {name(2)}: gcc 13.3.0" in text


# --- one test per check and outcome ------------------------------------------------------
# (case, host, check, result, words the detail must contain)

OUTCOMES = [
    # H-REACHABLE
    ("healthy", WORKER2, "H-REACHABLE", PASS, ["surveyed"]),
    ("worker-unreachable", WORKER2, "H-REACHABLE", FAIL, ["could not connect", "sshd", "SSH user and key"]),
    # B-TMPFS
    ("healthy", BUILDER, "B-TMPFS", PASS, ["tmpfs 256M mode 1777 exec, in fstab"]),
    ("tmpfs-unmounted", BUILDER, "B-TMPFS", FAIL, ["nothing is mounted at /tmp/kernel-build", HEAL]),
    ("tmpfs-hidden", BUILDER, "B-TMPFS", FAIL,
     ["findmnt lists a tmpfs mounted at /tmp/kernel-build, but /tmp/kernel-build does not exist",
      "mounted over /tmp", "`findmnt -T /tmp`", "`sudo umount /tmp` when that is the one", f"then {HEAL}"]),
    ("tmpfs-wrong", BUILDER, "B-TMPFS", FAIL,
     ["size 1073741824 bytes, want 268435456 (256M)", "mounted noexec", "mode 0755, want 1777",
      "missing from /etc/fstab", HEAL]),
    # What the next boot mounts is judged as the mode switch writes it.
    ("fstab-edited", BUILDER, "B-TMPFS", FAIL,
     ["its /etc/fstab line is 'tmpfs /tmp/kernel-build tmpfs size=64M,noexec 0 0', not "
      "'tmpfs /tmp/kernel-build tmpfs size=256M,mode=1777,nosuid,nodev 0 0', so the next boot mounts it wrong", HEAL]),
    # B-DISTCCD-OFF
    ("healthy", BUILDER, "B-DISTCCD-OFF", PASS, ["inactive, disabled, nothing listening"]),
    ("distccd-on-builder", BUILDER, "B-DISTCCD-OFF", FAIL,
     ["distccd processes run (pids ", "something listens on port 3632", "must not serve compiles", HEAL]),
    # B-CLIENT
    ("healthy", BUILDER, "B-CLIENT", PASS, ["distcc installed"]),
    ("client-removed", BUILDER, "B-CLIENT", FAIL, ["distcc is not installed", HEAL]),
    ("client-log-unwritable", BUILDER, "B-CLIENT", WARN,
     ["distcc installed, but the build user pi cannot write its client log /home/pi/.distcc/client.log "
      "(owner root, mode 600)", "the build report cannot count the builder's jobs", "remove the file"]),
    # B-HOSTS
    ("healthy", BUILDER, "B-HOSTS", PASS,
     ["2 workers: worker1.distcc.internal:3632/2 worker2.distcc.internal:3632/2"]),
    ("hosts-file-wrong", BUILDER, "B-HOSTS", FAIL,
     ["host list is worker1.distcc.internal:3632/2, want worker1.distcc.internal:3632/2 "
      "worker2.distcc.internal:3632/2", HEAL]),
    ("distcc-hosts-env", BUILDER, "B-HOSTS", FAIL,
     ["host list is localhost", "DISTCC_HOSTS is set in pi's login environment", "remove it from pi's shell files"]),
    ("client-removed", BUILDER, "B-HOSTS", FAIL,
     ["distcc --show-hosts cannot run for pi (distcc is not installed or not on pi's PATH)", HEAL]),
    ("worker-unreachable", BUILDER, "B-HOSTS", WARN, ["cannot compare: no survey from worker2.distcc.internal"]),
    ("build-user-missing", BUILDER, "B-HOSTS", FAIL,
     ["the build user kbuild does not exist on the builder", "adduser kbuild", "set distcc_build_user"]),
    # What distcc skips in silence, named with its owner and mode.
    ("client-hosts-unreadable", BUILDER, "B-HOSTS", FAIL,
     ["the build user pi cannot read /home/pi/.distcc/hosts (owner root, mode 600)",
      "distcc skips it and uses its default host list (127.0.0.1)", HEAL]),
    ("client-dir-root", BUILDER, "B-HOSTS", FAIL,
     ["the build user pi cannot write /home/pi/.distcc (owner root, mode 755)", "where distcc keeps its locks",
      "chown -R pi /home/pi/.distcc"]),
    # B-PATH
    ("healthy", BUILDER, "B-PATH", PASS, ["c++, cc, g++, gcc run /usr/lib/distcc (first on pi's login PATH)"]),
    # Debian's ~/.profile puts ~/bin or ~/.local/bin first: harmless while no compiler is there.
    ("path-prepended", BUILDER, "B-PATH", PASS, ["run /usr/lib/distcc (after /home/pi/bin on pi's login PATH)"]),
    ("pip-local-bin", BUILDER, "B-PATH", PASS, ["run /usr/lib/distcc (after /home/pi/.local/bin on pi's login PATH)"]),
    ("gcc-shadowed", BUILDER, "B-PATH", FAIL,
     ["/home/pi/.local/bin/gcc comes before /usr/lib/distcc on the login PATH, so `gcc` compiles locally",
      "remove or rename those"]),
    ("profile-removed", BUILDER, "B-PATH", FAIL,
     ["pi's login shell runs c++ -> /usr/bin/c++", "/etc/profile.d/distcc-build.sh is missing", HEAL]),
    ("path-replaced", BUILDER, "B-PATH", FAIL,
     ["pi's login PATH is /usr/bin:/bin, without /usr/lib/distcc", "replaces PATH", "does not edit pi's own files"]),
    ("distcc-hosts-env", BUILDER, "B-PATH", FAIL,
     ["line 28: export DISTCC_HOSTS=localhost (replaces the farm's host list"]),
    ("build-user-missing", BUILDER, "B-PATH", FAIL, ["the build user kbuild does not exist on the builder"]),
    ("profile-unreadable", BUILDER, "B-PATH", FAIL,
     ["the build user pi cannot read /etc/profile.d/distcc-build.sh (owner root, mode 600), which the login shell "
      "then skips", f"then {HEAL}"]),
    # The cross compiler named in distcc_cross_compilers is judged as cc and gcc are.
    ("cross-compiler", BUILDER, "B-PATH", PASS,
     ["aarch64-linux-gnu-gcc, c++, cc, g++, gcc run /usr/lib/distcc (first on pi's login PATH)"]),
    ("cross-link-missing", BUILDER, "B-PATH", FAIL,
     ["/usr/lib/distcc/aarch64-linux-gnu-gcc is missing on the builder",
      "runs /usr/bin/aarch64-linux-gnu-gcc directly", "compiles on the builder, never on a worker",
      "run update-distcc-symlinks as root on the builder"]),
    ("cross-compiler-missing", BUILDER, "B-PATH", FAIL,
     ["the cross compiler aarch64-linux-gnu-gcc (distcc_cross_compilers) is not installed on the builder",
      f"{HEAL} (it installs Debian's gcc-aarch64-linux-gnu)"]),
    # B-KERNEL-ARCH
    ("healthy", BUILDER, "B-KERNEL-ARCH", PASS, ["make without ARCH= builds for x86: kernel x86_64, userland amd64"]),
    # 32-bit Raspberry Pi OS on a 64-bit kernel (armhf lab, uname -m made to say aarch64).
    ("kernel-arch", BUILDER, "B-KERNEL-ARCH", WARN,
     ["the running kernel is aarch64 but the userland and its gcc are armhf", "would build for ARCH=arm64",
      "Pass ARCH=arm for a kernel this gcc builds", "ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu-"]),
    # B-CCACHE
    ("healthy", BUILDER, "B-CCACHE", PASS, ["not asked for (distcc_ccache)"]),
    ("ccache-pump", BUILDER, "B-CCACHE", PASS,
     ["/home/pi/.ccache: 0 MiB of 2G, distcc behind it, depend mode, no compression"]),
    ("ccache-prefix-overridden", BUILDER, "B-CCACHE", FAIL,
     ["prefix_command = (empty) (default), want distcc",
      "Set by the user's own shell files over /etc/profile.d/distcc-build.sh: /home/pi/.profile line 28 "
      "(export CCACHE_PREFIX=); remove that"]),
    ("ccache-dir-unwritable", BUILDER, "B-CCACHE", FAIL,
     ["pi cannot write the cache /home/pi/.ccache", "chown -R pi /home/pi/.ccache", f"then {HEAL}"]),
    ("ccache-tempdir-missing", BUILDER, "B-CCACHE", FAIL,
     ["pi cannot write ccache's temporary directory /run/distcc-ccache",
      "every compile ccache has not cached fails with 'ccache: error: Permission denied'",
      "made at boot from /etc/tmpfiles.d/distcc-ccache.conf", HEAL]),
    # B-PUMP
    ("healthy", BUILDER, "B-PUMP", PASS, ["not asked for (distcc_pump)"]),
    ("ccache-pump", BUILDER, "B-PUMP", PASS, ["a pump compile reached 2 workers and was preprocessed there"]),
    ("pump-hosts-overridden", BUILDER, "B-PUMP", FAIL,
     ["DISTCC_PUMP_HOSTS in pi's login shell is 'localhost'",
      "'worker1.distcc.internal:3632/4,cpp,lzo worker2.distcc.internal:3632/4,cpp,lzo'",
      "/home/pi/.profile line 28 (export DISTCC_PUMP_HOSTS=localhost); remove that"]),
    ("pump-worker-stopped", BUILDER, "B-PUMP", FAIL,
     ["worker1.distcc.internal: the pump compile failed (exit 116; see W-REACH and W-DISTCCD)"]),
    # The include server asks gcc (ccache's) for the system include directories.
    ("ccache-dir-unwritable", BUILDER, "B-PUMP", FAIL,
     ["worker1.distcc.internal: preprocessed here, not on the worker", "ccache cannot write its cache",
      "fix B-CCACHE first"]),
    # The include server's `gcc -v` through ccache needs no temporary file.
    ("ccache-tempdir-missing", BUILDER, "B-PUMP", PASS, ["a pump compile reached 2 workers"]),
    # B-DRYRUN
    ("healthy", BUILDER, "B-DRYRUN", PASS, ["distcc -j: 4 slots"]),
    ("hosts-file-wrong", BUILDER, "B-DRYRUN", FAIL, ["distcc -j says 2 slots, the workers offer 4", HEAL]),
    ("distcc-hosts-env", BUILDER, "B-DRYRUN", FAIL,
     ["distcc -j says 2 slots, the workers offer 4", "DISTCC_HOSTS in pi's login environment", "remove it"]),
    ("client-removed", BUILDER, "B-DRYRUN", FAIL, ["distcc -j gave no slot count for pi", HEAL]),
    ("build-user-missing", BUILDER, "B-DRYRUN", FAIL, ["the build user kbuild does not exist on the builder"]),
    # W-DISTCCD
    ("healthy", WORKER1, "W-DISTCCD", PASS, ["listening on 172.31.241.3:3632"]),
    ("worker-distcc-removed", WORKER1, "W-DISTCCD", FAIL, ["distcc is not installed", HEAL]),
    ("distccd-stopped", WORKER1, "W-DISTCCD", FAIL, ["distcc.service is inactive (dead) with no daemon", HEAL]),
    # Another program on distccd's port: named, never called distccd, with a fix that works.
    ("port-held-by-perl", WORKER1, "W-DISTCCD", FAIL,
     ["port 3632 is held by perl (pid 1466, not distccd) on 0.0.0.0", "cannot listen on 172.31.243.3:3632",
      "kill 1466", "distcc_port", f"then {HEAL}"]),
    ("open-insecure-wildcard", WORKER1, "W-DISTCCD", FAIL,
     ["active but not listening on 172.31.241.3:3632 (found 0.0.0.0:3632)", HEAL]),
    ("dns-worker", WORKER1, "W-DISTCCD", FAIL,
     ["its listen address cannot be worked out", "builder.distcc.internal does not resolve on this worker"]),
    ("hosts-wrong-builder", WORKER1, "W-DISTCCD", FAIL,
     ["its listen address cannot be worked out", "worker1.distcc.internal resolves the builder's name "
      "builder.distcc.internal to 172.31.241.99, but the builder's addresses are 172.31.241.2"]),
    # distccd serves on and logs to the journal, where its jobs go uncounted.
    ("distccd-log-unwritable", WORKER1, "W-DISTCCD", FAIL,
     ["listening on 172.31.241.3:3632, but user distccd cannot write /var/log/distccd/distccd.log "
      "(owner root, mode 600)", "distccd logs to the journal instead", "chown distccd:adm"]),
    # W-OVERRIDE
    ("healthy", WORKER1, "W-OVERRIDE", PASS, ["override.conf as rendered"]),
    ("override-removed", WORKER1, "W-OVERRIDE", FAIL, ["override.conf is missing", HEAL]),
    ("allow-wrong", WORKER1, "W-OVERRIDE", FAIL, ["differs from what this package renders", HEAL]),
    ("dns-worker", WORKER1, "W-OVERRIDE", FAIL,
     ["builder.distcc.internal does not resolve on this worker", "/etc/hosts", "set distcc_builder_address"]),
    ("noroute-worker", WORKER1, "W-OVERRIDE", FAIL,
     ["this worker has no route to the builder builder.distcc.internal (172.31.241.2)", "ip route"]),
    ("hosts-wrong-builder", WORKER1, "W-OVERRIDE", FAIL,
     ["cannot render the override", "worker1.distcc.internal resolves the builder's name builder.distcc.internal to "
      "172.31.241.99, but the builder's addresses are 172.31.241.2",
      "make builder.distcc.internal resolve to one of those on worker1.distcc.internal (its /etc/hosts or DNS)"]),
    # W-WHITELIST
    ("healthy", WORKER1, "W-WHITELIST", PASS,
     ["the 2 compiler names the builder sends are linked: x86_64-linux-gnu-g++, x86_64-linux-gnu-gcc"]),
    ("whitelist-link-removed", WORKER1, "W-WHITELIST", FAIL,
     ["/usr/lib/distcc lacks `x86_64-linux-gnu-gcc` (what the builder sends for cc, gcc), so every job", HEAL]),
    # distcc 3.4 on amd64 never sends plain gcc: a missing link for it stops no job.
    ("unsent-link-removed", WORKER1, "W-WHITELIST", PASS, ["the 2 compiler names the builder sends are linked"]),
    ("worker-distcc-removed", WORKER1, "W-WHITELIST", FAIL,
     ["/usr/lib/distcc lacks `x86_64-linux-gnu-g++` (what the builder sends for c++, g++)", HEAL]),
    # W-COMPILERS
    ("healthy", WORKER1, "W-COMPILERS", PASS,
     ["same as the builder: x86_64-linux-gnu-g++ 14.2.0 x86_64-linux-gnu, x86_64-linux-gnu-gcc 14.2.0 x86_64-linux-gnu"]),
    ("sent-compiler-missing", WORKER1, "W-COMPILERS", FAIL,
     ["`x86_64-linux-gnu-gcc` (what the builder sends for cc, gcc) is not installed here", "install Debian's gcc here"]),
    ("cross-compiler", WORKER1, "W-COMPILERS", PASS,
     ["same as the builder: aarch64-linux-gnu-gcc 14.2.0 aarch64-linux-gnu, x86_64-linux-gnu-g++ 14.2.0"]),
    ("cross-compiler-missing", WORKER1, "W-COMPILERS", WARN,
     ["cannot compare `aarch64-linux-gnu-gcc`: the builder cannot run it", "see B-PATH on the builder"]),
    ("whitelist-stray-file", WORKER1, "W-WHITELIST", WARN, ["also holds non-links stray; remove them"]),
    ("whitelist-unreadable", WORKER1, "W-WHITELIST", FAIL,
     ["user distccd cannot read /usr/lib/distcc (owner root, mode 700)", "refuses every job",
      "chmod 755 /usr/lib/distcc"]),
    # A bookworm builder and a trixie worker: each release has its own gcc.
    ("release-mismatch", WORKER2, "W-COMPILERS", FAIL,
     ["`x86_64-linux-gnu-gcc` (what the builder sends for cc, gcc) is gcc 14.2.0 here but 12.2.0 on the builder",
      "this worker runs Debian GNU/Linux 13 (trixie), the builder Debian GNU/Linux 12 (bookworm)",
      "run one release on every Pi"]),
    # W-ALLOW
    ("healthy", WORKER1, "W-ALLOW", PASS, ["--allow 172.31.241.2/32"]),
    ("distccd-stopped", WORKER1, "W-ALLOW", WARN, ["distccd is not running; its --allow cannot be read"]),
    ("allow-missing", WORKER1, "W-ALLOW", FAIL, ["no --allow: distccd 3.4 then accepts every address", HEAL]),
    ("open-insecure-wildcard", WORKER1, "W-ALLOW", FAIL, ["--allow 0.0.0.0/0 covers every address"]),
    ("open-allowed", WORKER1, "W-ALLOW", WARN, ["--allow 0.0.0.0/0 covers every address"]),
    # W-INSECURE
    ("healthy", WORKER1, "W-INSECURE", PASS, ["compiler whitelist enforced"]),
    ("open-insecure-wildcard", WORKER1, "W-INSECURE", FAIL, ["distccd runs with --enable-tcp-insecure", HEAL]),
    # W-LISTEN
    ("healthy", WORKER1, "W-LISTEN", PASS, ["listens on one address only"]),
    ("distccd-stopped", WORKER1, "W-LISTEN", PASS, ["not listening"]),
    ("open-insecure-wildcard", WORKER1, "W-LISTEN", FAIL, ["listening on all addresses (0.0.0.0)", HEAL]),
    ("port-held-by-perl", WORKER1, "W-LISTEN", PASS, ["not listening"]),
    # W-USER
    ("healthy", WORKER1, "W-USER", PASS, ["runs as distccd"]),
    ("distccd-stopped", WORKER1, "W-USER", WARN, ["distccd is not running"]),
    ("distccd-as-nobody", WORKER1, "W-USER", FAIL,
     ["runs as nobody, not distccd", "the mode switch leaves a running, listening distccd alone",
      f"so {HEAL}, then restart distccd",
      "deploys/worker_distccd_reset.py --data distcc_force_restart=True"]),
    # W-REACH
    ("healthy", WORKER1, "W-REACH", PASS, ["builder 172.31.241.2 -> 172.31.241.3:3632 open"]),
    ("distccd-stopped", WORKER1, "W-REACH", FAIL,
     ["to 172.31.241.3:3632 was refused: nothing listens there (distccd down)", HEAL]),
    ("firewall-reject", WORKER1, "W-REACH", FAIL,
     ["refused although distccd listens there: a firewall rule rejects it",
      "allow TCP port 3632 from 172.31.241.2 on this worker's firewall"]),
    ("firewall-drop", WORKER1, "W-REACH", FAIL,
     ["timed out: a firewall drops it (port filtered)", "allow TCP port 3632 from 172.31.241.2"]),
    ("firewall-reject-icmp", WORKER1, "W-REACH", FAIL,
     ["the builder gets host unreachable for 172.31.241.3:3632", "a firewall rejects with ICMP",
      "allow TCP port 3632 from 172.31.241.2"]),
    ("noroute-builder", WORKER1, "W-REACH", FAIL,
     ["the builder has no route to worker1.distcc.internal (172.31.241.3)", "ip route"]),
    ("noroute-worker", WORKER1, "W-REACH", FAIL,
     ["got no answer (timeout)", "this worker has no route to the builder"]),
    ("dns-builder", WORKER1, "W-REACH", FAIL,
     ["the builder cannot resolve worker1.distcc.internal", "the builder's /etc/hosts"]),
    # The builder resolves worker1's name to 172.31.241.99, which no node has: its TCP there times
    # out. The cause to name is that name (as H-NAMES does on the builder), not a firewall on
    # worker1, whose own address is 172.31.241.3. Fails today: W-REACH blames a firewall.
    ("hosts-wrong-worker", WORKER1, "W-REACH", FAIL,
     ["worker1.distcc.internal to 172.31.241.99", "172.31.241.3"]),
    ("worker-unreachable", WORKER1, "W-REACH", PASS, ["open"]),
    # W-ALLOW-BUILDER
    ("healthy", WORKER1, "W-ALLOW-BUILDER", PASS, ["builder 172.31.241.2 is allowed"]),
    ("distccd-stopped", WORKER1, "W-ALLOW-BUILDER", WARN, ["cannot tell"]),
    ("allow-wrong", WORKER1, "W-ALLOW-BUILDER", FAIL,
     ["builder's address 172.31.241.2 is not in --allow 10.9.9.9/32 (its jobs are denied)",
      "the running distccd's --allow is not the configured 172.31.241.2/32", HEAL]),
    # H-GCC
    ("healthy", WORKER1, "H-GCC", PASS, ["gcc 14.2.0 x86_64-linux-gnu (amd64)"]),
    ("gcc-mismatch", WORKER1, "H-GCC", FAIL,
     ["gcc 13.3.0 x86_64-linux-gnu (package gcc-13-x86-64-linux-gnu 13.3.0-16, run as /usr/local/bin/gcc)",
      "but the builder has gcc 14.2.0 x86_64-linux-gnu (package gcc-14-x86-64-linux-gnu 14.2.0-19)",
      "objects would be silently wrong", "install gcc-14-x86-64-linux-gnu version 14.2.0-19 here"]),
    ("worker-unreachable", BUILDER, "H-GCC", PASS, ["gcc 14.2.0"]),
    ("release-mismatch", WORKER1, "H-GCC", PASS, ["gcc 12.2.0 x86_64-linux-gnu (amd64)"]),
    ("release-mismatch", WORKER2, "H-GCC", FAIL,
     ["gcc 14.2.0 x86_64-linux-gnu (package gcc-14-x86-64-linux-gnu 14.2.0-19) on Debian GNU/Linux 13 (trixie)",
      "but the builder has gcc 12.2.0 x86_64-linux-gnu (package gcc-12 12.2.0-14+deb12u1) on Debian GNU/Linux 12 "
      "(bookworm)", "each release has its own gcc", "run one release on every Pi"]),
    # H-MTU
    ("healthy", WORKER1, "H-MTU", PASS, ["MTU 1500"]),
    ("healthy", BUILDER, "H-MTU", PASS, ["MTU 1500"]),
    ("mtu-worker", WORKER1, "H-MTU", FAIL,
     ["MTU 1400 toward the builder, builder side 1500, configured 1500", "set the interface MTU to 1500"]),
    ("mtu-builder", BUILDER, "H-MTU", FAIL, ["MTU 1400 toward the workers, configured 1500"]),
    ("dns-builder", BUILDER, "H-MTU", FAIL, ["the builder cannot resolve worker1.distcc.internal, worker2.distcc.internal"]),
    ("mtu-builder", WORKER1, "H-MTU", FAIL, ["MTU 1500 toward the builder, builder side 1400"]),
    ("noroute-builder", BUILDER, "H-MTU", FAIL, ["the builder has no route to worker1.distcc.internal"]),
    ("noroute-worker", WORKER1, "H-MTU", FAIL, ["this worker has no route to the builder"]),
    ("dns-worker", WORKER1, "H-MTU", FAIL, ["builder.distcc.internal does not resolve on this worker"]),
    ("hosts-wrong-builder", WORKER1, "H-MTU", FAIL,
     ["resolves the builder's name builder.distcc.internal to 172.31.241.99, but the builder's addresses are "
      "172.31.241.2"]),
    # H-NAMES
    ("healthy", WORKER1, "H-NAMES", PASS,
     ["worker1 (worker1.distcc.internal), resolves the builder's name builder.distcc.internal"]),
    ("healthy", BUILDER, "H-NAMES", PASS, ["builder (builder.distcc.internal), resolves all 2 worker names"]),
    ("stock-short-hostname", WORKER1, "H-NAMES", PASS,
     ["worker1 (no domain), resolves the builder's name builder.distcc.internal"]),
    ("dns-worker", WORKER1, "H-NAMES", FAIL, ["worker1: cannot resolve builder.distcc.internal;", "this host's /etc/hosts"]),
    ("hosts-loopback-builder", WORKER1, "H-NAMES", FAIL,
     ["builder.distcc.internal resolve to a loopback address here", "remove them from that line"]),
    ("fqdn-duplicate", WORKER2, "H-NAMES", FAIL,
     ["hostname worker1 is also the hostname of worker1.distcc.internal", "give every Pi its own"]),
    ("fqdn-duplicate", WORKER1, "H-NAMES", FAIL, ["is also the hostname of worker2.distcc.internal"]),
    # A name that resolves, but to an address no node has (a stale /etc/hosts line): both addresses named.
    ("hosts-wrong-builder", WORKER1, "H-NAMES", FAIL,
     ["worker1 resolves builder.distcc.internal to 172.31.241.99 but its addresses are 172.31.241.2",
      "a stale or wrong line in this host's /etc/hosts"]),
    ("hosts-wrong-worker", BUILDER, "H-NAMES", FAIL,
     ["builder resolves worker1.distcc.internal to 172.31.241.99 but its addresses are 172.31.241.3",
      "a stale or wrong line in this host's /etc/hosts"]),
    # H-K3S
    ("healthy", WORKER1, "H-K3S", PASS, ["stopped and disabled, no pod: k3s-agent"]),
    ("k3s-started", WORKER1, "H-K3S", FAIL, ["k3s-agent still active", HEAL]),
    # k3s's KillMode=process leaves the pods when the unit stops: that is a FAIL, not a warning.
    ("k3s-stopped-pods-left", WORKER1, "H-K3S", FAIL,
     ["k3s is stopped but 0 k3s processes and 2 containerd-shim processes (pods) still run", HEAL]),
    ("containerd-shims", WORKER1, "H-K3S", FAIL, ["1 containerd-shim processes (pods) still run", HEAL]),
    ("k3s-enabled", WORKER1, "H-K3S", FAIL, ["k3s-agent stopped but still enabled: a reboot starts k3s", HEAL]),
    # B-TMPFS-SPACE
    ("healthy", BUILDER, "B-TMPFS-SPACE", PASS, ["/tmp/kernel-build has 256 MiB of 256 MiB free"]),
    ("tmpfs-filling", BUILDER, "B-TMPFS-SPACE", WARN,
     ["/tmp/kernel-build has 48 MiB of 256 MiB free", "a full kernel build may not fit",
      "remove finished build trees", "raise distcc_tmpfs_size"]),
    ("tmpfs-full", BUILDER, "B-TMPFS-SPACE", FAIL,
     ["/tmp/kernel-build has 6 MiB of 256 MiB free", "No space left on device"]),
    ("tmpfs-inodes", BUILDER, "B-TMPFS-SPACE", FAIL, ["of 500 inodes", "No space left on device"]),
    ("tmpfs-unmounted", BUILDER, "B-TMPFS-SPACE", WARN, ["no tmpfs at /tmp/kernel-build to measure (see B-TMPFS)"]),
    # H-MEMORY
    ("healthy", WORKER1, "H-MEMORY", PASS, ["for 2 distccd jobs"]),
    ("healthy", BUILDER, "H-MEMORY", PASS, ["for 4 slots and 256 MiB the tmpfs may still take"]),
    ("jobs-150", WORKER1, "H-MEMORY", WARN,
     ["for 150 distccd jobs (want 28800 MiB)", "may swap or be OOM-killed", "lower distcc_jobs for this worker"]),
    ("jobs-200", WORKER1, "H-MEMORY", FAIL,
     ["for 200 distccd jobs (need at least 25600 MiB)", "OOM-killed", "lower distcc_jobs for this worker"]),
    ("jobs-200", BUILDER, "H-MEMORY", WARN,
     ["for 400 slots and 256 MiB the tmpfs may still take", "(want 25856 MiB)", "lower distcc_jobs (fewer slots)"]),
    # W-TMP-SPACE
    # 256 MiB: the TemporaryFileSystem= its unit mounts (distcc_worker_tmp_size), not the host's disk.
    ("healthy", WORKER1, "W-TMP-SPACE", PASS, ["distccd's own /tmp has 256 MiB free for 2 jobs"]),
    ("distccd-stopped", WORKER1, "W-TMP-SPACE", PASS, ["the host's /tmp (distccd is not running) has"]),
    ("distccd-tmp-small", WORKER1, "W-TMP-SPACE", WARN,
     ["distccd's own /tmp has 100 MiB free for 2 jobs", "a few large files at once can fill it",
      "distcc_force_restart=True"]),
    ("distccd-tmp-full", WORKER1, "W-TMP-SPACE", FAIL,
     ["distccd's own /tmp has 16 MiB free for 2 jobs: jobs fail", "No space left on device", "lower distcc_jobs"]),
]


@pytest.mark.parametrize(
    ("case", "host", "check_id", "result", "words"), OUTCOMES,
    ids=[f"{o[2]}-{o[3]}-{o[0]}-{o[1].split('.')[0]}" for o in OUTCOMES],
)
def test_check_outcome_on_captured_survey(case, host, check_id, result, words):
    found = outcome(case, host, check_id)
    assert found.result == result, found.detail
    for word in words:
        assert word in found.detail


def test_every_check_has_a_pass_and_a_non_pass_outcome_tested():
    tested = {(o[2], o[3]) for o in OUTCOMES}
    for check_id in CHECKS:
        assert (check_id, PASS) in tested, check_id
        assert (check_id, FAIL) in tested or (check_id, WARN) in tested, check_id


def test_heal_is_advised_only_where_the_mode_switch_heals():
    """MTU, gcc, a missing build user, DNS, routes and firewalls are not the
    mode switch's business: their messages must not send the user there."""
    for case in ("mtu-worker", "mtu-builder", "gcc-mismatch", "build-user-missing", "dns-worker", "dns-builder",
                 "noroute-worker", "noroute-builder", "firewall-drop", "firewall-reject", "firewall-reject-icmp",
                 "fqdn-duplicate", "fqdn-missing", "path-prepended",
                 "path-replaced", "distcc-hosts-env", "cross-link-missing", "hosts-wrong-builder",
                 "hosts-wrong-worker", "release-mismatch", "ccache-prefix-overridden", "pump-hosts-overridden"):
        for host, checks in evaluate_case(case).items():
            for c in checks:
                if c.result == FAIL:
                    # "fix X, then run the mode switch" is fine; the mode switch alone is not.
                    assert HEAL not in c.detail.replace(f"then {HEAL}", ""), (case, host, c.id, c.detail)


# --- each breakage gives exactly its own findings ----------------------------------------

BREAKAGE_FINDINGS = {
    "distccd-stopped": {("W-DISTCCD", WORKER1, FAIL), ("W-REACH", WORKER1, FAIL), ("W-ALLOW", WORKER1, WARN),
                        ("W-USER", WORKER1, WARN), ("W-ALLOW-BUILDER", WORKER1, WARN)},
    "override-removed": {("W-OVERRIDE", WORKER1, FAIL)},
    "allow-wrong": {("W-OVERRIDE", WORKER1, FAIL), ("W-ALLOW-BUILDER", WORKER1, FAIL)},
    "whitelist-link-removed": {("W-WHITELIST", WORKER1, FAIL)},
    "tmpfs-unmounted": {("B-TMPFS", BUILDER, FAIL), ("B-TMPFS-SPACE", BUILDER, WARN)},
    "tmpfs-hidden": {("B-TMPFS", BUILDER, FAIL), ("B-TMPFS-SPACE", BUILDER, WARN)},
    "distccd-on-builder": {("B-DISTCCD-OFF", BUILDER, FAIL)},
    "k3s-started": {("H-K3S", WORKER1, FAIL)},
    "k3s-stopped-pods-left": {("H-K3S", WORKER1, FAIL)},
    "mtu-worker": {("H-MTU", WORKER1, FAIL)},
    "cross-compiler": set(),
    "cross-link-missing": {("B-PATH", BUILDER, FAIL)},
    "cross-compiler-missing": {("B-PATH", BUILDER, FAIL), ("W-COMPILERS", WORKER1, WARN), ("W-COMPILERS", WORKER2, WARN)},
    "fstab-edited": {("B-TMPFS", BUILDER, FAIL)},
    "hosts-wrong-builder": {("H-NAMES", WORKER1, FAIL), ("W-OVERRIDE", WORKER1, FAIL), ("W-DISTCCD", WORKER1, FAIL),
                            ("H-MTU", WORKER1, FAIL)},
    "hosts-wrong-worker": {("H-NAMES", BUILDER, FAIL), ("W-REACH", WORKER1, FAIL)},
    "client-hosts-unreadable": {("B-HOSTS", BUILDER, FAIL)},
    "client-dir-root": {("B-HOSTS", BUILDER, FAIL)},
    "profile-unreadable": {("B-PATH", BUILDER, FAIL)},
    "client-log-unwritable": {("B-CLIENT", BUILDER, WARN)},
    "whitelist-unreadable": {("W-WHITELIST", WORKER1, FAIL)},
    "distccd-log-unwritable": {("W-DISTCCD", WORKER1, FAIL)},
    "port-held-by-perl": {("W-DISTCCD", WORKER1, FAIL), ("W-ALLOW", WORKER1, WARN), ("W-USER", WORKER1, WARN),
                          ("W-ALLOW-BUILDER", WORKER1, WARN)},
    "kernel-arch": {("B-KERNEL-ARCH", BUILDER, WARN)},
    "release-mismatch": {("H-GCC", WORKER2, FAIL), ("W-COMPILERS", WORKER2, FAIL)},
    "ccache-pump": set(),
    "ccache-prefix-overridden": {("B-CCACHE", BUILDER, FAIL)},
    "ccache-dir-unwritable": {("B-CCACHE", BUILDER, FAIL), ("B-PUMP", BUILDER, FAIL)},
    "ccache-tempdir-missing": {("B-CCACHE", BUILDER, FAIL)},
    "pump-hosts-overridden": {("B-PUMP", BUILDER, FAIL)},
    "pump-worker-stopped": {("B-PUMP", BUILDER, FAIL), ("W-DISTCCD", WORKER1, FAIL), ("W-REACH", WORKER1, FAIL),
                            ("W-ALLOW", WORKER1, WARN), ("W-USER", WORKER1, WARN), ("W-ALLOW-BUILDER", WORKER1, WARN)},
}


@pytest.mark.parametrize("case", list(BREAKAGE_FINDINGS))
def test_breakage_gives_exactly_its_findings(case):
    assert not_passing(case) == BREAKAGE_FINDINGS[case]


def test_a_finished_runs_entry_goes_with_its_state():
    """Cluster-wide reads (validation, the build report, the mark) are
    started once per pyinfra State, remembered weakly: nothing accumulates in
    a long-lived process, and a new State never inherits an old run. Keyed
    by the State itself, not by pyinfra's context proxy, which is one object
    for every run (the report keyed its gathers by id() of that proxy)."""
    import gc

    from pyinfra import state as context_proxy
    from pyinfra.api import State
    from pyinfra.context import ctx_state

    from deploys.library import cluster

    first, second = State(), State()
    assert cluster.first_loader(first, "build report") and not cluster.first_loader(first, "build report")
    assert cluster.first_loader(first, "validation")
    assert cluster.first_loader(second, "build report")
    with ctx_state.use(second):
        assert not cluster.first_loader(context_proxy, "build report")
    with ctx_state.use(first):
        assert not cluster.first_loader(context_proxy, "validation")
    assert len(cluster._run_caches) == 2
    del first, second
    gc.collect()
    assert len(cluster._run_caches) == 0
