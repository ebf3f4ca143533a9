"""The layout is the architecture: facts (what a host is), then operations
(how one thing changes), then deploys (the playbooks), each importing only
from the layers below it, never from above or sideways into a layer above.
Importing a layer changes nothing: each runnable deploy starts the run
itself (start_run), first."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LAYERS = ["facts", "operations", "deploys"]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_layers_below_it(layer: str) -> None:
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = {
        str(path.relative_to(REPO)): sorted(imported_packages(path) & above)
        for path in sorted((REPO / layer).rglob("*.py"))
        if imported_packages(path) & above
    }
    assert offenders == {}


def test_the_check_itself_sees_imports() -> None:
    assert imported_packages(REPO / "operations" / "distcc.py") >= {"facts", "pyinfra"}
    assert "operations" in imported_packages(REPO / "deploys" / "library" / "worker.py")


def test_importing_the_benchmarks_leaves_the_environment_alone():
    """The benchmarks pick their own lab (LAB_PREFIX) only when run: an
    import from a test run must not send that run's pyinfra to another lab."""
    import subprocess
    import sys

    probe = "import os, bench.build, bench.run; print(os.environ.get('LAB_PREFIX', 'unset'))"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "unset"


RUNNABLE_DEPLOYS = sorted(p for p in (REPO / "deploys").glob("*.py") if p.name != "__init__.py")


def first_statement(path: Path) -> ast.stmt | None:
    """The first statement of a file after its docstring and imports."""
    for statement in ast.parse(path.read_text()).body:
        docstring = isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
        if not docstring and not isinstance(statement, ast.Import | ast.ImportFrom):
            return statement
    return None


@pytest.mark.parametrize("path", RUNNABLE_DEPLOYS, ids=lambda p: p.name)
def test_every_runnable_deploy_starts_the_run_first(path: Path) -> None:
    """deploys.library.start_run() before anything else the file does, so
    that the SSH connector is made safe before any fact or operation runs."""
    tree = ast.parse(path.read_text())
    imported = any(
        isinstance(node, ast.ImportFrom) and node.module == "deploys.library" and any(a.name == "start_run" for a in node.names)
        for node in tree.body
    )
    first = first_statement(path)
    called_first = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Call) and isinstance(first.value.func, ast.Name)
        and first.value.func.id == "start_run" and not first.value.args and not first.value.keywords
    )
    assert imported and called_first, (
        f"{path.relative_to(REPO)}: call start_run() (from deploys.library import start_run) first, right after the "
        f"imports: it makes a host lost mid-run fail alone (operations/_connection.py)"
    )


def test_the_runnable_deploys_are_found() -> None:
    assert {"mode_switch.py", "cluster_distcc_validate.py", "cluster_distcc_report.py"} <= {p.name for p in RUNNABLE_DEPLOYS}


def test_importing_changes_no_connector_and_start_run_does() -> None:
    """Importing any module of the package leaves pyinfra's SSH connector as
    it is (patching it is start_run()'s, explicitly, where a deploy starts);
    start_run() then wraps each of its command and transfer calls, once
    however often it is called."""
    import subprocess
    import sys

    probe = """
import importlib, pathlib
from pyinfra.connectors.ssh import SSHConnector
CALLS = ("run_shell_command", "put_file", "get_file")
def wrapped():
    return [n for n in CALLS if getattr(getattr(SSHConnector, n), "_distcc_farm_lost_host_is_a_host_failure", False)]
for layer in ("facts", "operations", "deploys/library"):
    for path in sorted(pathlib.Path(layer).glob("*.py")):
        importlib.import_module(".".join(path.with_suffix("").parts).removesuffix(".__init__"))
print(wrapped())
from deploys.library import start_run
start_run()
start_run()
print(wrapped(), getattr(SSHConnector.run_shell_command.__wrapped__, "_distcc_farm_lost_host_is_a_host_failure", False))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    on_import, after_start_run = out.stdout.splitlines()
    assert on_import == "[]", "importing the package changed pyinfra's SSH connector: only start_run() may"
    assert after_start_run == "['run_shell_command', 'put_file', 'get_file'] False"
