"""Pieces of the shell commands that facts send (pure, no host needed)."""

from __future__ import annotations

from pyinfra.api import QuoteString, StringCommand


def assign(variable: str, value: object) -> StringCommand:
    """`variable='value'`: a value from data, quoted, bound to a shell variable."""
    return StringCommand(f"{variable}=", QuoteString(str(value)), _separator="")
