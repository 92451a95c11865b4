"""Files written whole or not at all: a temporary file beside the target, then one rename."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from deck.errors import BuildError


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole, or raise a BuildError and leave nothing half-written."""
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp-")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, path)
    except OSError as error:
        if temporary:
            Path(temporary).unlink(missing_ok=True)
        full = " (the disk is full)" if error.errno == errno.ENOSPC else ""
        raise BuildError(f"cannot write {path}: {error.strerror or error}{full}") from None
