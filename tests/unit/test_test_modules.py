"""Test modules share helpers through modules that are not tests
(tests/lab/harness.py, tests/unit/harness.py, tests/refusals.py), never by
importing one another: a helper kept in a test module ties every importer
to that file, which a change to its own tests may rename or delete, and a
test function imported by name is collected and run a second time."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def is_test_module(dotted: str) -> bool:
    return dotted.rpartition(".")[2].startswith("test_")


def package_of(path: Path) -> list[str]:
    return list(path.relative_to(TESTS.parent).with_suffix("").parts[:-1])


def imported_test_modules(path: Path, source: str) -> list[str]:
    """`module:line` for each test module that source (the file at path)
    imports: import statements, absolute or relative, and names brought
    in by `from PACKAGE import test_x`."""
    found = []
    for node in ast.walk(ast.parse(source, str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package_of(path)[: len(package_of(path)) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            modules = [module, *(f"{module}.{alias.name}" for alias in node.names)]
        else:
            continue
        found += [f"{module}:{node.lineno}" for module in modules if is_test_module(module)]
    return found


def test_no_test_module_imports_another():
    files = sorted([*TESTS.rglob("test_*.py"), *TESTS.rglob("conftest.py")])
    assert len(files) > 30
    offenders = {
        str(path.relative_to(TESTS.parent)): imported
        for path in files
        if (imported := imported_test_modules(path, path.read_text()))
    }
    assert offenders == {}


def test_the_scan_finds_every_form_of_such_an_import():
    here = TESTS / "lab" / "test_x.py"
    forms = [
        "from tests.lab.test_c_operations import big_c_source",
        "import tests.unit.test_settings",
        "from tests.unit import test_settings",
        "from .test_c_operations import big_c_source",
        "from . import test_c_operations",
        "from ..unit.test_settings import FakeHost",
        "def f():\n    from tests.unit.test_settings import WORKER",
    ]
    for form in forms:
        assert imported_test_modules(here, form), form
    allowed = "from tests.lab.harness import sh\nfrom tests.unit import harness\nimport pytest\nfrom . import harness"
    assert imported_test_modules(here, allowed) == []
