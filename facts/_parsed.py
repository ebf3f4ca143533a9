"""The base of this package's facts: a fact's value is one pure function of
its output lines, so process() and default() come from that function alone."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Generic, TypeVar

from pyinfra.api import FactBase

T = TypeVar("T")


class ParsedFact(FactBase[T], Generic[T]):
    """A fact parsed by `parse`. default() is parse([]): what a host that
    printed nothing, or died before it could answer, gets, so every caller
    sees a well-shaped value and only that host fails."""

    parse: ClassVar[Callable[[list[str]], Any]]

    def process(self, output: list[str]) -> T:
        return type(self).parse(output)

    def default(self) -> T:  # type: ignore[override]
        return type(self).parse([])
