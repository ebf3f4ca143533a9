"""Every line the package prints by default fits in 100 columns: here, the
errors it raises, each wrapped on the lines after pyinfra's own "--> pyinfra
error in FILE line N:"."""

from __future__ import annotations

import ast
from pathlib import Path

from pyinfra.api.exceptions import PyinfraError

from operations._printed import Refusal

WIDTH = 100
REPO = Path(__file__).resolve().parents[2]


# --- errors -----------------------------------------------------------------


def package_errors() -> list[tuple[str, str]]:
    """(file, class) of every exception class the package defines on PyinfraError or OperationError."""
    found = []
    for path in sorted([*(REPO / "deploys").rglob("*.py"), *(REPO / "operations").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {getattr(b, "id", getattr(b, "attr", "")) for b in node.bases}
                if bases & {"PyinfraError", "OperationError", "Refusal", "OperationRefusal"}:
                    found.append((str(path.relative_to(REPO)), node.name))
    return found


def test_every_error_the_package_raises_is_wrapped():
    """pyinfra prints an error's text after "--> pyinfra error in FILE line
    N:" as it is: each of the package's error classes wraps its paragraph."""
    import importlib

    errors = package_errors()
    assert ("deploys/library/setting_checks.py", "SettingsError") in errors and len(errors) >= 10
    for path, name in errors:
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        assert issubclass(getattr(module, name), Refusal), f"{path}: {name} does not wrap its text (Refusal)"


def test_no_raise_of_a_bare_pyinfra_error_in_the_package():
    for path in [*(REPO / "deploys").rglob("*.py"), *(REPO / "operations").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                called = getattr(node.exc.func, "id", getattr(node.exc.func, "attr", ""))
                assert called not in {"PyinfraError", "OperationError"}, f"{path}:{node.lineno}"


def test_a_refusal_naming_a_long_host_is_printed_within_100_columns():
    from deploys.library.setting_checks import refusal

    host = "pi-worker16.cluster.lan"
    error = refusal(host, "distcc_tmpfs_size", "64G", "is more than the builder's 3.7 GiB of memory",
                    "set distcc_tmpfs_size to 1G or less, or leave it unset to size it from the memory")
    lines = str(error).splitlines()
    assert lines[0] == "" and all(len(line) <= WIDTH for line in lines) and len(lines) >= 3
    assert " ".join(" ".join(lines).split()) == error.paragraph
    assert error.paragraph.startswith(f"host {host}: setting distcc_tmpfs_size = '64G' is more than")
    assert isinstance(error, PyinfraError)
