"""What a build may reuse from the build before it in the same process: values computed from files.

A one-shot build makes a new Memo, so it computes everything once, as it always did; ``serve`` keeps
one Memo for its whole run and passes it to every rebuild, so a prose edit does not decode the results
archive, parse ``demos/`` or read the assets again.  A value is kept with the stamp (path, size,
mtime_ns, inode) of each file it was computed from, taken before it is computed; it is reused only
while every stamp is the same and no file has appeared or gone.  A file changed within the last
second is not trusted to show its next change in its stamp (a file system's clock is coarse), so a
value computed from it is not kept.  A value derived from an object (a result's digest) is reused
while that very object is passed again: such objects are never changed in place.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
SETTLED_NS = 1_000_000_000   # a file whose mtime is older than this has settled


def stamp(path: Path | str) -> tuple:
    """What identifies a file's content without reading it; a missing file is stamped as missing."""
    try:
        status = os.stat(path)
    except OSError:
        return (str(path), None)
    return (str(path), status.st_size, status.st_mtime_ns, status.st_ino)


def files_under(folder: Path) -> list[Path]:
    """Every file below the folder, in a fixed order (links to folders are not followed)."""
    found = []
    for parent, folders, files in os.walk(folder):
        folders.sort()
        found.extend(Path(parent, name) for name in sorted(files))
    return found


class Memo:
    def __init__(self):
        self.by_files: dict[object, tuple[tuple, object]] = {}
        self.by_object: dict[object, tuple[object, object]] = {}

    def of_files(self, name: object, paths: Iterable[Path | str], compute: Callable[[], T]) -> T:
        """``compute()``, or the value it gave last time under ``name`` if none of ``paths`` changed since."""
        stamps = tuple(stamp(path) for path in paths)
        kept = self.by_files.get(name)
        if kept is not None and kept[0] == stamps:
            return kept[1]
        value = compute()
        settled = time.time_ns() - SETTLED_NS
        if all(s[1] is None or s[2] < settled for s in stamps):
            self.by_files[name] = (stamps, value)
        else:
            self.by_files.pop(name, None)
        return value

    def of_object(self, name: object, thing: object, compute: Callable[[], T]) -> T:
        """``compute()``, or the value it gave last time under ``name`` if that was for this same ``thing``."""
        kept = self.by_object.get(name)
        if kept is not None and kept[0] is thing:
            return kept[1]
        value = compute()
        self.by_object[name] = (thing, value)
        return value
