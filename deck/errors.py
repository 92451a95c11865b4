"""The one error type the builder reports: something wrong, and where."""
from __future__ import annotations


class BuildError(Exception):
    """An error in the talk's sources, reported as ``FILE:LINE: message``."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None,
                 detail: str = ""):
        super().__init__(message)
        self.message = message
        self.file = file
        self.line = line
        self.detail = detail  # e.g. a demo's traceback, printed below the message

    @property
    def location(self) -> str:
        if self.file and self.line:
            return f"{self.file}:{self.line}"
        return self.file or ""

    def __str__(self) -> str:
        head = f"{self.location}: {self.message}" if self.location else self.message
        return f"{head}\n{self.detail.rstrip()}" if self.detail else head


def closest(name: str, candidates, n: int = 3) -> str:
    """' (did you mean: a, b?)' for the candidates closest to name, or ''."""
    import difflib
    matches = difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.5)
    return f" (did you mean: {', '.join(matches)}?)" if matches else ""
