"""What the package prints fits a terminal: every line it writes by
default, tables, details and errors alike, within WIDTH columns (pyinfra's
own framing aside: its "[host] " prefix and its "--> pyinfra error in FILE
line N:"), as kubectl's default output does. The wide form
(distcc_wide_tables) keeps the long lines for whoever wants them.

Here, below the deploys, so that operations and deploys wrap alike.
"""

from __future__ import annotations

import textwrap

from pyinfra.api import QuoteString
from pyinfra.api.exceptions import OperationError, PyinfraError

# A 120-column terminal with room to spare, and most editors' and mail
# clients' width.
WIDTH = 100
# The lines after a paragraph's first are indented this much, so that a
# reader sees where each paragraph (a check's detail, a note) starts.
HANGING = "  "


def wrapped(text: str, indent: str = HANGING, width: int = WIDTH) -> list[str]:
    """One paragraph as lines within width columns: the first line starts
    as text does (its own leading spaces kept), each later one after
    `indent`. Words are never broken, so a single word longer than a line
    (a long path) stands alone on a longer line."""
    return textwrap.wrap(
        text, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False,
    ) or [text]


def paragraphs(text: str, width: int = WIDTH) -> str:
    """An error's text as pyinfra prints it: on the lines after pyinfra's
    "--> pyinfra error in FILE line N:", each of its paragraphs (lines of
    text) wrapped within width columns, flush left."""
    lines = [line for part in text.split("\n") for line in wrapped(part, "", width)]
    return "\n" + "\n".join(lines)


class Refusal(PyinfraError):
    """An error this package raises, from a deploy as it loads: one
    paragraph naming host, setting or cause, and fix, wrapped within WIDTH
    columns on the lines after pyinfra's own framing. `paragraph` keeps it
    on one line, as it was written."""

    def __init__(self, text: str) -> None:
        self.paragraph = " ".join(text.split())
        super().__init__(paragraphs(text))


class OperationRefusal(OperationError, Refusal):
    """An operation's refusal (pyinfra names it an "Operation error"), wrapped as Refusal."""


def logged(text: str) -> str:
    """A message for pyinfra's log, which prints it after the host's
    "[name] ": wrapped within WIDTH columns, its later lines indented four
    spaces, as pyinfra indents the lines under a host's."""
    return "\n".join(wrapped(text, "    "))


def printf_wrapped(text: str, expand: bool = False) -> list:
    """The parts of a shell command that prints one paragraph wrapped within
    WIDTH columns, a printf argument a line (pyinfra prints each line of a
    command's output after the host's name). With expand, the lines are in
    double quotes so that the shell fills in the $variables in text, which
    must then hold no other character special there; else each is quoted."""
    # A $variable's value (a count, a size in KiB) may be up to 8
    # characters longer than its name.
    lines = wrapped(text, width=WIDTH - 8 if expand else WIDTH)
    if not expand:
        return ["printf", QuoteString("%s\\n"), *(QuoteString(line) for line in lines)]
    special = sorted({c for c in text if c in '"`\\'})
    if special:
        raise ValueError(f"cannot print {text!r} in double quotes: it holds {special}")
    return ["printf", "'%s\\n'", *(f'"{line}"' for line in lines)]
