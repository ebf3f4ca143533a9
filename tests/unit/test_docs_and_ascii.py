"""The README documents every setting, docs/validation.md every check, and
everything this package writes to hosts or keeps in the repository is ASCII."""

import subprocess
from pathlib import Path

import pytest

from deploys.library.settings import DEFAULTS
from deploys.library.validation import CHECKS
from operations.templates import TEMPLATES, render_template

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
VALIDATION_DOC = (REPO / "docs" / "validation.md").read_text()


@pytest.mark.parametrize("key", list(DEFAULTS))
def test_readme_documents_every_setting(key):
    assert f"| `{key}` |" in README


@pytest.mark.parametrize("check", list(CHECKS))
def test_validation_doc_documents_every_check(check):
    assert f"| `{check}` |" in VALIDATION_DOC


@pytest.mark.parametrize("template", sorted(p.name for p in TEMPLATES.iterdir()))
def test_templates_are_ascii(template):
    assert (TEMPLATES / template).read_bytes().isascii()


def test_rendered_override_is_ascii_and_hardened():
    argv = ["/usr/bin/distccd", "--daemon", "--no-detach", "--listen", "10.0.0.11", "--allow", "10.0.0.10/32"]
    text = render_template("distcc-override.conf.j2", {"argv": argv, "log_dir": "/var/log/distccd", "tmp_size": "256M"})
    assert text.isascii()
    for line in ("NoNewPrivileges=yes", "TemporaryFileSystem=/tmp:mode=1777,size=256M /var/tmp:ro",
                 "ProtectSystem=strict", "ReadWritePaths=/var/log/distccd",
                 "ProtectHome=yes", "PrivateDevices=yes", "ProtectKernelTunables=yes", "ProtectKernelModules=yes",
                 "ProtectControlGroups=yes", "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "User=distccd",
                 "Type=simple", "RemainAfterExit=no", "ExecStop=", "ExecStart=" + " ".join(argv)):
        assert f"\n{line}\n" in text
    assert "--enable-tcp-insecure" not in text


def test_non_ascii_template_output_is_refused(tmp_path, monkeypatch):
    from jinja2 import FileSystemLoader
    from pyinfra.api import OperationError

    import operations.templates as templates_ops

    (tmp_path / "bad.j2").write_text("x={{ value }}\n")
    monkeypatch.setattr(templates_ops._ENVIRONMENT, "loader", FileSystemLoader(str(tmp_path)))
    with pytest.raises(OperationError, match="non-ASCII"):
        render_template("bad.j2", {"value": "caf\u00e9"})


def test_every_tracked_file_is_ascii():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    # Text only: the benchmark's plots (PNG, shown in README) are images.
    texts = [name.decode() for name in files if name and not name.endswith(b".png")]
    offenders = [name for name in texts if not (REPO / name).read_bytes().isascii()]
    assert offenders == []
