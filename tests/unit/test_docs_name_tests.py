"""Every test that README.md and docs/*.md name exists.

A sentence in the docs that says a test shows something names that test, so
a renamed or dropped test must not leave its claim behind. The docs name
tests in several forms, each read here:

- `tests/lab/test_x.py::test_y` (and `::test_y[param id]`);
- `test_y` in `tests/lab/test_x.py`;
- `tests/lab/test_x.py`: `test_y`, `test_z` (a path, then its functions, in
  one table row or paragraph);
- a bare `test_y` or `test_x.py` (safety.md's tables name the function
  only): it must exist in some file under tests/.

A function must be defined (with def, at module level or in a class) in the
file it is bound to, parsed with ast, and a `[param id]` must be one of the
file's string literals.
"""

import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"

_PATH = r"tests/(?:[a-z0-9_]+/)*test_[a-z0-9_]+\.py"
_FILE = r"(?<![/\w])test_[a-z0-9_]+\.py"
_TOKEN = re.compile(
    rf"(?P<full>{_PATH}|{_FILE})::(?P<full_name>test_[a-z0-9_]+)(?:\[(?P<full_param>[^\]\n]*)\])?"
    rf"|(?P<path>{_PATH})"
    rf"|(?P<file>{_FILE})"
    r"|\b(?P<name>test_[a-z0-9_]+)\b(?!\.py)(?:\[(?P<param>[^\]\n]*)\])?"
)
# "`test_y` in `tests/lab/test_x.py`": the name belongs to the path after it.
_IN_THE_NEXT_PATH = re.compile(r"[`\s]*(?:in|of|from)\s+`?")
# "`test_y`, `test_z` (all in `tests/lab/test_x.py`)": so do the names before it.
_ALL_IN_THE_NEXT_PATH = re.compile(r"\(all in\s+`?$")
_NEW_UNIT = re.compile(r"\s*(?:[-*] |\d+\. |#|\|)")


@dataclass(frozen=True)
class Claim:
    doc: str
    line: int
    name: str  # a test function, or "" where only a file is named
    param: str | None
    file: str | None  # a path under the repository, or a bare file name, or None


def units(text: str) -> list[tuple[int, str]]:
    """The text in units that one claim lives in, each with its first line:
    a table row, a heading, a list item or paragraph (up to a blank line or
    the next item), a line of a fenced block."""
    found: list[tuple[int, str]] = []
    current: list[str] = []
    start = 0
    fenced = False

    def close():
        if current:
            found.append((start, " ".join(current)))
            current.clear()

    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):
            close()
            fenced = not fenced
            continue
        if fenced or line.lstrip().startswith("|") or line.lstrip().startswith("#"):
            close()
            found.append((number, line))
            continue
        if not line.strip():
            close()
            continue
        if _NEW_UNIT.match(line):
            close()
        if not current:
            start = number
        current.append(line.strip())
    close()
    return found


def claims(doc: str, text: str) -> list[Claim]:
    """Each test function or test file the text names, bound to its file."""
    found = []
    for line, unit in units(text):
        tokens = list(_TOKEN.finditer(unit))
        last_file = None
        unbound: list[int] = []  # names with no file yet, since the last file named
        for index, token in enumerate(tokens):
            if token["full"]:
                found.append(Claim(doc, line, token["full_name"], token["full_param"], token["full"]))
                last_file = token["full"]
                unbound = []
            elif token["path"] or token["file"]:
                last_file = token["path"] or token["file"]
                if _ALL_IN_THE_NEXT_PATH.search(unit[:token.start()]):
                    for at in unbound:
                        found[at] = Claim(doc, line, found[at].name, found[at].param, last_file)
                unbound = []
                found.append(Claim(doc, line, "", None, last_file))
            else:
                file = last_file
                following = tokens[index + 1] if index + 1 < len(tokens) else None
                if following and (following["path"] or following["file"]) and _IN_THE_NEXT_PATH.fullmatch(
                    unit[token.end():following.start()]
                ):
                    file = following["path"] or following["file"]
                if file is None:
                    unbound.append(len(found))
                found.append(Claim(doc, line, token["name"], token["param"], file))
    return found


@cache
def _test_files() -> dict[str, list[Path]]:
    files: dict[str, list[Path]] = {}
    for path in sorted(TESTS.rglob("test_*.py")):
        files.setdefault(path.name, []).append(path)
    return files


@cache
def _defined(path: Path) -> tuple[frozenset[str], frozenset[str]]:
    """The functions a test file defines, and its string literals."""
    tree = ast.parse(path.read_text())
    functions = {node.name for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    strings = {node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    return frozenset(functions), frozenset(strings)


def problem(claim: Claim) -> str | None:
    """What is false about a claim, or None when the test it names exists."""
    if claim.file is None:
        candidates = [path for paths in _test_files().values() for path in paths]
        where = "any file under tests/"
    elif "/" in claim.file:
        candidates = [REPO / claim.file] if (REPO / claim.file).is_file() else []
        where = claim.file
        if not candidates:
            return f"{claim.file} does not exist"
    else:
        candidates = _test_files().get(claim.file, [])
        where = f"{claim.file} under tests/"
        if not candidates:
            return f"no file {claim.file} under tests/"
    if not claim.name:
        return None
    defining = [path for path in candidates if claim.name in _defined(path)[0]]
    if not defining:
        return f"{claim.name} is not defined in {where}"
    if claim.param is not None and not any(claim.param in _defined(path)[1] for path in defining):
        return f"{claim.name}[{claim.param}]: no string {claim.param!r} in {where}"
    return None


def _docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", _docs(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_test_a_doc_names_exists(doc):
    name = str(doc.relative_to(REPO))
    false = [
        f"{name}:{claim.line}: {found}"
        for claim in claims(name, doc.read_text())
        if (found := problem(claim)) is not None
    ]
    assert false == []


def test_the_docs_name_tests_at_all():
    """The reader below finds the docs' claims: if it found none, the test
    above would pass on anything."""
    named = [claim for doc in _docs() for claim in claims(doc.name, doc.read_text()) if claim.name]
    assert len(named) > 100
    assert any(claim.file and "/" in claim.file for claim in named)
    assert any(claim.file is None for claim in named)


def test_each_form_binds_the_function_to_its_file():
    here = "tests/unit/test_docs_name_tests.py"
    text = (
        f"Shown by `{here}::test_each_form_binds_the_function_to_its_file`.\n\n"
        f"`test_the_docs_name_tests_at_all` in `{here}` counts them.\n\n"
        f"| row | `{here}`: `test_every_test_a_doc_names_exists`, `test_nothing_of_the_kind` |\n\n"
        "- a bare `test_round_trip_keeps_build_output`, and `test_e_safety.py`\n"
        "  with `test_no_such_test_anywhere`\n\n"
        "`test_dry_run_changes_nothing`, `test_switch_ends_in_build_mode` (all in "
        "`tests/lab/test_b_mode_switch_fresh.py`); `test_d_deploys.py::test_second_run_changes_nothing`\n"
    )
    found = claims("sample.md", text)
    assert [(c.line, c.name, c.file) for c in found] == [
        (1, "test_each_form_binds_the_function_to_its_file", here),
        (3, "test_the_docs_name_tests_at_all", here),
        (3, "", here),
        (5, "", here),
        (5, "test_every_test_a_doc_names_exists", here),
        (5, "test_nothing_of_the_kind", here),
        (7, "test_round_trip_keeps_build_output", None),
        (7, "", "test_e_safety.py"),
        (7, "test_no_such_test_anywhere", "test_e_safety.py"),
        (10, "test_dry_run_changes_nothing", "tests/lab/test_b_mode_switch_fresh.py"),
        (10, "test_switch_ends_in_build_mode", "tests/lab/test_b_mode_switch_fresh.py"),
        (10, "", "tests/lab/test_b_mode_switch_fresh.py"),
        (10, "test_second_run_changes_nothing", "test_d_deploys.py"),
    ]
    assert [problem(claim) for claim in found] == [
        None, None, None, None, None,
        f"test_nothing_of_the_kind is not defined in {here}",
        None, None,
        "test_no_such_test_anywhere is not defined in test_e_safety.py under tests/",
        None, None, None, None,
    ]


def test_a_missing_file_and_an_unknown_param_id_are_false():
    assert problem(Claim("d", 1, "test_x", None, "tests/lab/test_nowhere.py")) == (
        "tests/lab/test_nowhere.py does not exist"
    )
    assert problem(Claim("d", 1, "", None, "test_nowhere.py")) == "no file test_nowhere.py under tests/"
    ok = "test_bad_input_is_refused_before_any_host_changes"
    assert problem(Claim("d", 1, ok, "no builder", "tests/lab/test_e_safety.py")) is None
    assert problem(Claim("d", 1, ok, "no such case", "tests/lab/test_e_safety.py")) == (
        f"{ok}[no such case]: no string 'no such case' in tests/lab/test_e_safety.py"
    )
