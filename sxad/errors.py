"""The exceptions sxad raises on purpose. Everything a user can get wrong ends in one of these
(or in ``TypeError``/``ValueError`` naming the argument)."""
from __future__ import annotations

from .ir import Loc


class SxadError(Exception):
    """Base class of sxad's own errors."""


class UnsupportedError(SxadError):
    """Source outside the supported Python subset, reported at its file, line and column."""

    def __init__(self, what: str, loc: Loc | None = None, source_line: str | None = None,
                 end_col: int | None = None) -> None:
        self.what = what
        self.loc = loc
        self.source_line = source_line
        super().__init__(self._format(end_col))

    def _format(self, end_col: int | None) -> str:
        if self.loc is None:
            return self.what
        text = f"{self.loc}: {self.what}"
        if self.source_line is not None:
            line = self.source_line.rstrip("\n")
            start = self.loc.col - 1  # Loc columns count from 1, as editors do
            width = (end_col - start) if end_col and end_col > start else 1
            text += f"\n    {line}\n    {' ' * start}{'^' * width}"
        return text


class SourceUnavailableError(UnsupportedError):
    """The function's source cannot be read (defined in a REPL, by ``exec``, or built in)."""
