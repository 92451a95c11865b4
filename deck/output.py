"""Write the deck: into a temporary folder first, then moved into place in one step.

A failed or interrupted build never touches the last good deck, and two builds
of the same output take turns (a lock), so the deck is never a mix of both.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from markupsafe import Markup

from deck.errors import BuildError

# Third-party browser files, installed by npm at set-up (package.json), copied at build time.
REVEAL_FILES = {
    "assets/reveal.css": "reveal.js/dist/reveal.css",
    "assets/theme.css": "reveal.js/dist/theme/white.css",
    "assets/reveal.js": "reveal.js/dist/reveal.js",
    "assets/notes.js": "reveal.js/dist/plugin/notes.js",
}
STYLESHEETS = ["assets/reveal.css", "assets/theme.css", "assets/deck.css"]
SCRIPTS = ["assets/reveal.js", "assets/notes.js"]


def third_party_assets(node_modules: Path) -> dict[str, bytes]:
    files = {}
    for target, source in REVEAL_FILES.items():
        path = node_modules / source
        if not path.is_file():
            raise BuildError(f"{path} is missing: reveal.js is not installed; run the set-up command "
                             "in README.md (it runs `npm ci`)")
        files[target] = path.read_bytes()
    return files


def link_tags(files: dict[str, bytes], single_file: bool) -> tuple[list[str], list[str]]:
    """<link>/<script> tags for the assets, or the assets themselves inlined for --single-file."""
    if single_file:
        styles = [Markup("<style>\n" + files[name].decode() + "\n</style>") for name in STYLESHEETS]
        scripts = [Markup("<script>\n" + files[name].decode().replace("</script", "<\\/script") + "\n</script>")
                   for name in SCRIPTS]
        return styles, scripts
    return ([Markup(f'<link rel="stylesheet" href="{name}">') for name in STYLESHEETS],
            [Markup(f'<script src="{name}"></script>') for name in SCRIPTS])


@contextlib.contextmanager
def output_lock(out_dir: Path, cache_dir: Path):
    """Hold the lock of one output folder; a second build of the same folder waits its turn."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:16]
    with open(cache_dir / f"build-{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another build is writing {out_dir}; waiting for it to finish ...", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def write_atomically(files: dict[str, bytes | str], out_dir: Path) -> None:
    """Write files into a fresh folder beside out_dir, then swap it in."""
    parent = out_dir.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=parent))
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
    except OSError as error:
        raise BuildError(f"cannot write the deck to {out_dir}: {error.strerror or error}") from None
    old = parent / f".{out_dir.name}.old-{os.getpid()}"
    try:
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        # From here to the end, SIGINT/SIGTERM wait: the swap is two renames and must not stop between them.
        with signals_deferred():
            if out_dir.exists():
                os.rename(out_dir, old)
            os.rename(staging, out_dir)
    except OSError as error:
        raise BuildError(f"cannot write the deck to {out_dir}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def signals_deferred():
    received = []
    handlers = {s: signal.signal(s, lambda number, frame: received.append(number))
                for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)
        for number in received:
            os.kill(os.getpid(), number)
