"""The one way this package renders a file or a script for a host:
templates/ through one Jinja setup, checked to be ASCII. The operation that
writes a file and the validation that compares it render it here, so they
cannot disagree; facts and operations render their longer shell here too.
It sits in the lowest layer (facts) so that every layer can use it."""

from __future__ import annotations

import shlex
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
# The one way a template quotes a value for the shell: `{{ path | quoted }}`.
_ENVIRONMENT.filters["quoted"] = lambda value: shlex.quote(str(value))


def render_template(template: str, context: dict) -> str:
    """Render templates/<template>; the result must be pure ASCII."""
    text = _ENVIRONMENT.get_template(template).render(**context)
    if not text.isascii():
        raise OperationError(f"templates/{template} rendered non-ASCII text; every file written is ASCII.")
    return text


def render_script(template: str, context: dict) -> str:
    """A shell script from templates/, as sent to a host: its comment lines
    and blank lines left out (the file keeps them for its reader; a host is
    sent only what runs), so that the script can be one bundle's section."""
    lines = render_template(template, context).splitlines()
    return "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
