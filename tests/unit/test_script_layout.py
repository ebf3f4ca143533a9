"""facts/_script.py lays a one-line command out as a script: only a space
becomes a line break, and only where sh reads a newline as it read the
space. Checked on every command a fact fixture was captured with and the
survey for every captured survey's arguments, laid out narrow too so that
it breaks wherever it may, and on a few made up to show where it must not."""

from __future__ import annotations

import json
import re
import subprocess
from itertools import pairwise
from pathlib import Path

import pytest

from facts._script import ShellNote, as_script, laid_out, one_line
from facts.survey import HostSurvey

FACTS = sorted((Path(__file__).parent / "facts").glob("*/*.json"))


def _captured() -> set[str]:
    return {json.loads(path.read_text())["command"] for path in FACTS}

SURVEYS = sorted((Path(__file__).parent / "surveys").glob("*.json"))
# A command that is already a script (rendered from templates/, one line a
# statement) is laid out by its file, not by this.
COMMANDS = sorted(
    {json.loads(path.read_text())["command"] for path in FACTS} - {c for c in _captured() if "\n" in c}
    | {
        HostSurvey().command(**arguments).get_raw_value()
        for path in SURVEYS
        for arguments in json.loads(path.read_text())["arguments"].values()
    }
)

# What may end a line that a space used to go on from (a separator, an
# opening word, a case's `in` or an arm's pattern), or begin the next one (a
# closing word).
ENDS = re.compile(r"(;|;;|&&|\|\||\||&|\bdo|\bthen|\belse|\{|\(|\bcase .* in|\))$")
BEGINS = re.compile(r"^(done|fi|esac|else|\}|\))")


def breaks_where_a_newline_means_the_space(lines: list[str]) -> list[str]:
    """The lines that end where a newline would not mean what the space did."""
    code = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    return [line for line, after in pairwise(code) if not ENDS.search(line) and not BEGINS.match(after)]


def test_there_are_commands_to_lay_out():
    assert len(COMMANDS) > 50


@pytest.mark.parametrize("width", [100, 40])
def test_every_captured_command_laid_out_is_the_same_command(width):
    for command in COMMANDS:
        lines = as_script(command, width=width)
        assert one_line("\n".join(lines)) == command
        assert breaks_where_a_newline_means_the_space(lines) == [], command
        proc = subprocess.run(["sh", "-n"], input="\n".join(lines) + "\n", capture_output=True, text=True)
        assert proc.returncode == 0, (proc.stderr, command)


def test_a_command_that_fits_stays_on_its_line():
    assert as_script("a=1; for f in x y; do echo \"$f\"; done") == ["a=1;", 'for f in x y; do echo "$f"; done']


def test_a_long_loop_is_opened_up_one_command_a_line():
    command = "for f in x y; do " + "; ".join(f"echo {n} {'z' * 30}" for n in range(3)) + "; done; true"
    assert as_script(command) == [
        "for f in x y; do",
        f"  echo 0 {'z' * 30};",
        f"  echo 1 {'z' * 30};",
        f"  echo 2 {'z' * 30};",
        "done;",
        "true",
    ]


def test_quoted_text_is_never_broken_but_a_script_for_sh_c_is():
    words = " ".join(["word;"] * 30)
    assert as_script(f"printf '{words}'; echo \"{words}\"") == [f"printf '{words}';", f'echo "{words}"']
    lines = as_script(f"sh -c 'a; {'b ' * 50}; c' -")
    assert lines[0] == "sh -c 'a;" and lines[-1] == "  c' -"


def test_a_note_goes_before_the_command_that_holds_it_outside_any_quoted_script():
    note = ShellNote("SC2016", r"\$HOME", "the login shell's")
    command = "x=1; if true; then runuser -c 'echo $HOME; " + "echo long enough to be opened up; " * 3 + "true'; fi"
    lines = as_script(command, [note])
    directive = "  # shellcheck disable=SC2016 # the login shell's"
    assert lines[lines.index(directive) + 1].startswith("  runuser -c 'echo $HOME;")
    assert one_line("\n".join(lines)) == command


def test_lines_begin_after_the_space_they_replace():
    command = "a; b && c"
    assert [line.text for line in laid_out(command, width=3)] == ["a;", "b &&", "c"]
