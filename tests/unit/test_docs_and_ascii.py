"""docs/settings.md documents every setting, as the declarations render it,
and docs/validation.md every check; the README stays a user's page (short, no commit hashes) and every relative link
in README.md and docs/ leads to a file; everything this package writes to
hosts or keeps in the repository is ASCII."""

import re
import subprocess
from pathlib import Path

import pytest

from deploys.library.settings import REGENERATE, SETTINGS, SETTINGS_DOC, settings_markdown
from deploys.library.validation.checks import CHECKS
from operations.templates import TEMPLATES, render_template

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
VALIDATION_DOC = (REPO / "docs" / "validation.md").read_text()
README_MAX_LINES = 300
# A lowercase hex word of 7 to 40 characters with a letter and a digit reads
# as a commit hash; history lives in git, not in the README or docs/. Words
# that only look like one:
# ed25519 is a key type; fba99a20d430 is the marker of the captured smoke
# test (tests/unit/smoke/cross-whitelist-missing.json) that
# docs/validation.md prints as the smoke test printed it.
NOT_HASHES = {"ed25519", "fba99a20d430"}


@pytest.mark.parametrize("key", list(SETTINGS))
def test_settings_doc_documents_every_setting(key):
    assert f"| `{key}` |" in SETTINGS_DOC.read_text()


def test_settings_doc_is_what_the_declarations_render():
    assert SETTINGS_DOC.read_text() == settings_markdown(), (
        f"docs/settings.md differs from the declarations in deploys/library/settings.py: run {REGENERATE} "
        "and commit docs/settings.md"
    )


def test_readme_points_to_the_settings_doc():
    assert "[docs/settings.md](docs/settings.md)" in README


@pytest.mark.parametrize("key", list(SETTINGS))
def test_each_setting_has_a_short_meaning_of_its_own_cell(key):
    """A cell is a sentence or two, not a paragraph, and nothing in it can
    break the table's row."""
    declaration = SETTINGS[key]
    cells = (repr(declaration.default), declaration.check.accepts, declaration.meaning)
    assert not any("|" in cell or "\n" in cell for cell in cells)
    assert len(declaration.meaning) <= 240 and declaration.meaning.isascii()


@pytest.mark.parametrize("check", list(CHECKS))
def test_validation_doc_documents_every_check(check):
    assert f"| `{check}` |" in VALIDATION_DOC


def test_readme_is_a_users_page_of_at_most_300_lines():
    assert len(README.splitlines()) <= README_MAX_LINES


def _hash_like_words(text: str) -> list[str]:
    return [
        word for word in re.findall(r"\b[0-9a-f]{7,40}\b", text)
        if re.search(r"[a-f]", word) and re.search(r"[0-9]", word) and word not in NOT_HASHES
    ]


def _docs() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


@pytest.mark.parametrize("doc", _docs(), ids=lambda path: str(path.relative_to(REPO)))
def test_no_commit_hashes_in_readme_or_docs(doc):
    assert _hash_like_words(doc.read_text()) == []


def test_a_commit_hash_is_recognised_and_a_plain_word_is_not():
    assert _hash_like_words("at commit 2be39a0, see dfbcf91ab") == ["2be39a0", "dfbcf91ab"]
    assert _hash_like_words("ssh-keygen -t ed25519; deadbeef 1234567 172.31.250.2 sha256") == []


def _tracked() -> set[str]:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    names = {name.decode() for name in files if name}
    return names | {str(Path(name).parent) for name in names}


@pytest.mark.parametrize("doc", _docs(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_in_the_repository(doc):
    """Markdown links `](path)` without a scheme, anchors cut off: the file
    (or folder) is tracked by git, so a link works on a fresh clone."""
    targets = re.findall(r"\]\(([^)\s]+)\)", doc.read_text())
    relative = [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]
    tracked = _tracked()
    missing = []
    for target in relative:
        resolved = (doc.parent / target).resolve()
        inside = resolved.is_relative_to(REPO)
        if not inside or str(resolved.relative_to(REPO)) not in tracked:
            missing.append(target)
    assert missing == []


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

    import facts._templates as templates_ops

    (tmp_path / "bad.j2").write_text("x={{ value }}\n")
    monkeypatch.setattr(templates_ops._ENVIRONMENT, "loader", FileSystemLoader(str(tmp_path)))
    with pytest.raises(OperationError, match="non-ASCII"):
        render_template("bad.j2", {"value": "caf\u00e9"})


def test_every_tracked_file_is_ascii():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    # Text only: the benchmark's plots (PNG) are images.
    texts = [name.decode() for name in files if name and not name.endswith(b".png")]
    offenders = [name for name in texts if not (REPO / name).read_bytes().isascii()]
    assert offenders == []
