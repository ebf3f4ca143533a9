"""The layout is the architecture: facts (what a host is), then operations
(how one thing changes), then deploys (the playbooks), each importing only
from the layers below it, never from above or sideways into a layer above."""

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
