"""docs/survey-builder.sh and docs/survey-worker.sh, the survey laid out to
be read (deploys/library/survey_docs.py): each is what the code renders
today for the lab's cluster, with the arguments validation computes, and
each is the very command validation sends, only laid out. When a section's
command changes, these fail until `make survey-docs` is run."""

from __future__ import annotations

import difflib
import json
import re
import shutil
import subprocess
from collections import Counter

import pytest

from deploys.library.survey_docs import DOCS, lab_survey_arguments, rendered
from facts._script import WIDTH, one_line
from facts.survey import MARK, HostSurvey, survey_parts
from facts.survey_sections import survey_sections

ROLES = ["builder", "worker"]
ARGUMENTS = lab_survey_arguments()
REGENERATE = "the code sends another survey now: run make survey-docs and commit docs/survey-*.sh"


def checked_in(role: str) -> str:
    return (DOCS / f"survey-{role}.sh").read_text()


@pytest.mark.parametrize("role", ROLES)
def test_the_checked_in_survey_is_what_the_code_renders(role):
    path = DOCS / f"survey-{role}.sh"
    diff = list(difflib.unified_diff(
        checked_in(role).splitlines(), rendered()[path].splitlines(), "checked in", "rendered now", lineterm="",
    ))
    assert not diff, "\n".join([REGENERATE, *diff[:60]])


@pytest.mark.parametrize("role", ROLES)
def test_the_checked_in_survey_is_the_command_validation_sends(role):
    # Its comment lines out, its lines joined by one space: the command,
    # character for character.
    assert one_line(checked_in(role)) == HostSurvey().command(**ARGUMENTS[role]).get_raw_value(), REGENERATE


def test_the_arguments_are_validations_for_a_builder_and_two_workers():
    builder, worker = ARGUMENTS["builder"], ARGUMENTS["worker"]
    assert builder["workers"] == ["worker1.distcc.internal", "worker2.distcc.internal"]
    assert builder["build_user"] == "pi" and builder["tmpfs_path"] == "/tmp/kernel-build"
    assert worker["builder_peer"] == "builder.distcc.internal" and worker["log_dir"] == "/var/log/distccd"


@pytest.mark.parametrize("role", ROLES)
def test_every_section_has_its_comment_and_its_mark(role):
    text = checked_in(role)
    for section in survey_sections(**{k: v for k, v in ARGUMENTS[role].items() if k != "k3s_units"}):
        assert f"# {section.name}: {section.reads}\n" in text or f"# {section.name} (at once): {section.reads}\n" in text
        assert f"{MARK}{section.name}" in text or f"_survey_{section.name}() {{ (" in text


@pytest.mark.parametrize("role", ROLES)
def test_comments_fit_in_the_width_and_the_script_parses(role):
    text = checked_in(role)
    assert [line for line in text.splitlines() if line.lstrip().startswith("#") and len(line) > WIDTH] == []
    proc = subprocess.run(["sh", "-n", str(DOCS / f"survey-{role}.sh")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_shellcheck_note_is_about_something_in_a_survey():
    """A note whose pattern matches nothing in either survey is stale: its
    command changed under it."""
    notes, matched = set(), set()
    for arguments in ARGUMENTS.values():
        for part in survey_parts(**arguments):
            notes |= set(part.notes)
            matched |= {note for note in part.notes if re.search(note.at, part.get_raw_value())}
    assert notes - matched == set()


DIRECTIVE = re.compile(r"^ *# shellcheck disable=(SC\d+) # \S")


@pytest.mark.skipif(not shutil.which("shellcheck"), reason="shellcheck is not installed (make unit installs it)")
@pytest.mark.parametrize("role", ROLES)
def test_shellcheck_finds_nothing_but_what_each_directive_explains(role):
    """shellcheck passes on the file; without its directives, it finds
    exactly one finding for each of them, of its code: none is stale."""
    text = checked_in(role)
    directives = [m.group(1) for m in map(DIRECTIVE.match, text.splitlines()) if m]
    assert len(directives) == text.count("# shellcheck disable="), "a directive without its reason"
    passed = subprocess.run(["shellcheck", "-s", "sh", "-"], input=text, capture_output=True, text=True)
    assert passed.returncode == 0, passed.stdout
    bare = "\n".join(line for line in text.splitlines() if not DIRECTIVE.match(line)) + "\n"
    found = subprocess.run(["shellcheck", "-s", "sh", "-f", "json1", "-"], input=bare, capture_output=True, text=True)
    codes = [f"SC{comment['code']}" for comment in json.loads(found.stdout)["comments"]]
    assert Counter(codes) == Counter(directives)
