"""The talk's folder is a boundary: nothing it publishes or runs may come from outside it."""
from __future__ import annotations

from pathlib import Path

from deck.errors import BuildError


def check_inside(folder: Path, root: Path) -> None:
    """Every file and folder under ``folder`` resolves inside ``root``; a symlink leading out is an error
    naming both ends (code() would publish its target, a demo would run it)."""
    root = root.resolve()
    for path in [folder, *sorted(folder.rglob("*"))] if folder.exists() else []:
        if "__pycache__" in path.parts:
            continue
        target = path.resolve()
        if not target.is_relative_to(root):
            raise BuildError(f"{path} is a link to {target}, outside the talk's folder {root}; "
                             "copy the file into the talk instead")


def display(path: Path, root: Path) -> str:
    """A path as the presenter knows it: relative to the talk's folder where it is inside."""
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
