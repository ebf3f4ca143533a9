"""The builder's survey runs its slow sections at once (facts/survey.py
_at_once and _collect): run here by a real sh, with sections that show
whether they overlapped, with and without a usable temporary directory."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from pyinfra.api import StringCommand

from facts.survey import AT_ONCE, MARK, SNAPSHOTS, HostSurvey, _at_once, _collect
from facts.survey_sections import Section

# "first" waits (up to 5 s) for a flag that "second" sets: when they run at
# once it sees the flag, when in turn (first before second) it does not.
SECTIONS = {
    "first": 'i=0; while [ ! -e "$FLAG" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done; '
             '[ -e "$FLAG" ] && echo together || echo alone; echo "a line  with  spaces"',
    "second": 'touch "$FLAG"; printf "back\\\\slash\\n"',
    "unfinished": "printf 'no newline at the end'",
}


def script(names: list[str]) -> str:
    bits: list[object] = ["echo '##survey before';"]
    bits += _at_once([Section(name, SECTIONS[name], "a test section") for name in names])
    bits += ["echo '##survey foreground'; echo in-foreground;"]
    bits += _collect(names)
    bits.append("true")
    return StringCommand(*bits).get_raw_value()


def run(tmp_path: Path, tmpdir: str) -> list[str]:
    flag = tmp_path / "flag"
    env = dict(os.environ, FLAG=str(flag), TMPDIR=tmpdir)
    proc = subprocess.run(["sh", "-c", script(list(SECTIONS))], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.splitlines()


def expected(overlap: str) -> list[str]:
    return [
        "##survey before", "##survey foreground", "in-foreground",
        f"{MARK}first", overlap, "a line  with  spaces",
        f"{MARK}second", "back\\slash",
        f"{MARK}unfinished", "no newline at the end",
    ]


def test_sections_run_at_once_and_print_in_order(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    assert run(tmp_path, str(tmpdir)) == expected("together")
    assert list(tmpdir.iterdir()) == []  # the directory is removed


def test_without_a_temporary_directory_they_run_in_turn(tmp_path):
    # mktemp fails: every section runs in the foreground, output unchanged.
    assert run(tmp_path, str(tmp_path / "missing")) == expected("alone")


def test_a_section_whose_file_is_not_whole_runs_again_once(tmp_path):
    # "unfinished" leaves its last line without a newline, so its DONE line
    # is not a line of its own: it is run again in the foreground, and
    # printed once.
    lines = run(tmp_path, str(tmp_path))
    assert lines.count("no newline at the end") == 1


def test_the_builder_reads_its_snapshots_before_anything_starts_at_once():
    command = HostSurvey().command(
        builder_peer="builder.distcc.internal", names=["worker1.distcc.internal"], tmpfs_path="/tmp/kernel-build",
        build_user="pi", workers=["worker1.distcc.internal"], profile_script="/etc/profile.d/distcc-build.sh",
        sent_names=["cc", "gcc"], ccache=True, pump=True,
    ).get_raw_value()
    start = command.index("D=$(mktemp -d")
    for name in SNAPSHOTS:
        assert command.index(f"echo '{MARK}{name}'") < start, name
    for name in AT_ONCE:
        assert f"_survey_{name}; echo" in command[start:], name
        assert f"echo '{MARK}{name}'" not in command, name  # printed by _collect only


def test_a_worker_survey_runs_in_turn():
    command = HostSurvey().command(builder_peer="builder.distcc.internal", names=["worker1.distcc.internal"])
    assert "mktemp" not in command.get_raw_value()


def test_the_temporary_directory_goes_when_the_survey_is_stopped(tmp_path):
    # pyinfra stopped (Ctrl-C) or its ssh channel closed: sh gets a signal
    # while it waits for the background sections.
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = dict(os.environ, FLAG=str(tmp_path / "never"), TMPDIR=str(tmpdir))
    proc = subprocess.Popen(["sh", "-c", script(["first"])], env=env, stdout=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if any(tmpdir.iterdir()):
                break
            time.sleep(0.05)
        assert any(tmpdir.iterdir())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) != 0
    finally:
        proc.kill()
    assert list(tmpdir.iterdir()) == []
