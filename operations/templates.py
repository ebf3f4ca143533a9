"""The one way this package renders a file for a host: templates/ through
one Jinja setup, checked to be ASCII. The operation that writes a file and
the validation that compares it render it here, so they cannot disagree."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from pyinfra.api import OperationError

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_ENVIRONMENT = Environment(
    loader=FileSystemLoader(str(TEMPLATES)),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_template(template: str, context: dict) -> str:
    """Render templates/<template>; the result must be pure ASCII."""
    text = _ENVIRONMENT.get_template(template).render(**context)
    if not text.isascii():
        raise OperationError(f"templates/{template} rendered non-ASCII text; every file written is ASCII.")
    return text
