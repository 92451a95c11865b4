"""Write the deck: into a temporary folder first, then swapped into place in one step.

The output folder is the builder's alone: it writes only into one that is new,
empty or marked as its own.  A failed, interrupted or killed build leaves the
last good deck whole, and two builds of the same output take turns (a lock),
so the deck is never a mix of both.
The deck carries a Content-Security-Policy that lets only its own scripts run.
"""
from __future__ import annotations

import base64
import contextlib
import ctypes
import errno
import fcntl
import hashlib
import os
import re
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
SCRIPTS = ["assets/reveal.js", "assets/notes.js", "assets/deck.js"]


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
        scripts = [Markup("<script>" + inline_script(files[name]) + "</script>") for name in SCRIPTS]
        return styles, scripts
    return ([Markup(f'<link rel="stylesheet" href="{name}">') for name in STYLESHEETS],
            [Markup(f'<script src="{name}"></script>') for name in SCRIPTS])


def inline_script(source: bytes) -> str:
    return "\n" + source.decode().replace("</script", "<\\/script") + "\n"


def content_security_policy(files: dict[str, bytes], single_file: bool) -> Markup:
    """The deck's Content-Security-Policy as a <meta> tag: only the deck's own scripts run.

    Linked scripts are allowed as 'self', inlined ones (--single-file) by their SHA-256, so an
    inline script or event handler that is not the deck's own never runs. reveal's speaker view
    is a popup that the notes plugin writes itself; it inherits this policy, so its one inline
    script is allowed by its hash too. Styles may be inline (reveal sets them as it lays out,
    --single-file inlines the stylesheets); images and fonts come only as data: URLs.
    """
    scripts = [script_hash(speaker_view_script(files["assets/notes.js"]))]
    if single_file:
        scripts += [script_hash(inline_script(files[name])) for name in SCRIPTS]
    else:
        scripts.insert(0, "'self'")
    directives = {
        "default-src": "'none'",
        "script-src": " ".join(scripts),
        "style-src": "'unsafe-inline'" if single_file else "'self' 'unsafe-inline'",
        "img-src": "data:",
        "font-src": "data:",
        "connect-src": "'self'",              # serve's page: its event stream and the rerun request
        "frame-src": "'self'",                # the speaker view shows this slide and the next in frames
        "base-uri": "'none'",
        "form-action": "'none'",
    }
    policy = "; ".join(f"{name} {value}" for name, value in directives.items())
    return Markup(f'<meta http-equiv="Content-Security-Policy" content="{policy}">')


def allow_inline_script(page: str, script: str) -> str:
    """A built page whose policy also allows one more inline script with exactly this text."""
    return page.replace("script-src ", f"script-src {script_hash(script)} ", 1)


def script_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def speaker_view_script(notes_plugin: bytes) -> str:
    """The inline script of the speaker view page that reveal's notes plugin writes into its popup."""
    literal = re.search(r"\.document\.write\(`((?:[^`\\$]|\\.|\$(?!\{))*)`", notes_plugin.decode(), flags=re.S)
    page = javascript_unescape(literal.group(1)) if literal else ""
    found = re.search(r"<script>(.*?)</script>", page, flags=re.S)
    if not found:
        raise BuildError("reveal's notes plugin has changed: its speaker view page was not found, so the "
                         "deck's Content-Security-Policy cannot allow it; reinstall the reveal.js of package-lock.json")
    return found.group(1)


JS_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0", "\n": ""}


def javascript_unescape(text: str) -> str:
    """The value of a JavaScript string written as text (escapes: \\n, \\xHH, \\uHHHH, \\u{H...}, \\c)."""
    def one(match: re.Match) -> str:
        escaped = match.group(1)
        if escaped[0] in "xu" and len(escaped) > 1:
            return chr(int(escaped[1:].strip("{}"), 16))
        return JS_ESCAPES.get(escaped, escaped)
    return re.sub(r"\\(x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]+\}|u[0-9a-fA-F]{4}|.)", one, text, flags=re.S)


@contextlib.contextmanager
def build_lock(cache_dir: Path):
    """Hold the lock of one talk (its cache): a second build of the same talk, to any output folder,
    waits its turn, and then finds the first one's results instead of running the same demos at once."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / "build.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("another build of this talk is running; waiting for it to finish ...", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


MARKER = ".deck-output"   # in every output folder the builder writes: the folder is its to replace
MARKER_TEXT = "This folder is written by the talk's builder; every build replaces all of it.\n"


def own_output_folder(out_dir: Path, root: Path, builder: Path) -> None:
    """Check that ``out_dir`` is the builder's to replace, before anything runs; then put back a deck an
    interrupted swap left aside, and remove what earlier builds left beside the folder."""
    check_output_folder(out_dir, root, builder)
    out_dir = out_dir.resolve()
    leftovers = [path for kind in ("tmp", "old")
                 for path in sorted(out_dir.parent.glob(f".{out_dir.name}.{kind}-*"))]
    try:
        set_aside = [path for path in leftovers if ".old-" in path.name]
        if set_aside and not out_dir.exists():   # killed between the two renames of swap_in's fallback
            os.rename(set_aside[-1], out_dir)
        for path in leftovers:
            shutil.rmtree(path, ignore_errors=True)
    except OSError as error:
        raise BuildError(f"cannot tidy the output folder {out_dir}: {error.strerror or error}") from None


def check_output_folder(out_dir: Path, root: Path, builder: Path) -> None:
    """A build replaces its whole output folder, so it writes only into one that is missing, empty, or
    marked as its own; anything that is or holds the talk or the builder is refused."""
    out = out_dir.resolve()
    refuse = f"cannot write the deck to {out}: "
    for folder, what in ((root.resolve(), "the talk's folder"), (builder.resolve(), "the builder's folder")):
        if folder.is_relative_to(out):
            raise BuildError(refuse + (f"it is {what}" if folder == out else f"it holds {what}, {folder}")
                             + "; a build replaces its whole output folder: use --out with a folder of its "
                             f"own (the default is {root.resolve() / 'dist'})")
    for folder in (root / "slides", root / "demos", root / "templates",
                   builder / "deck", builder / "templates", builder / "node_modules"):
        if out.is_relative_to(folder.resolve()):
            raise BuildError(refuse + f"it is inside {folder.resolve()}, which holds the talk's or the builder's "
                             "own files; use --out with a folder of its own")
    if out.exists() and not out.is_dir():
        raise BuildError(refuse + "it is a file, not a folder")
    try:
        entries = sorted(os.listdir(out)) if out.is_dir() else []
    except OSError as error:
        raise BuildError(refuse + (error.strerror or str(error))) from None
    if entries and MARKER not in entries:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise BuildError(refuse + f"it holds files this builder did not write ({shown}) and a build replaces "
                         "the whole folder; use a new or empty folder (a deck built before output folders "
                         f"were marked with {MARKER}: delete it, then build again)")


def write_atomically(files: dict[str, bytes | str], out_dir: Path) -> None:
    """Write files into a fresh folder beside out_dir, then swap it in: out_dir is always a whole deck,
    the last one or the new one, even if the build is killed at any point."""
    target = out_dir.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as error:
        raise BuildError(f"cannot write the deck to {out_dir}: {error.strerror or error}") from None
    try:
        (staging / MARKER).write_text(MARKER_TEXT)
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)
        for name, content in files.items():
            path = staging / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
        swap_in(staging, target)
    except OSError as error:
        raise BuildError(f"cannot write the deck to {out_dir}: {error.strerror or error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)   # after an exchange, the previous deck


def swap_in(staging: Path, out_dir: Path) -> None:
    """Put the staging folder at out_dir; the previous deck, if any, ends up at the staging path.

    Where the system can exchange two paths in one step (Linux, macOS), out_dir is never missing.
    Elsewhere it takes two renames; a kill between them leaves the previous deck beside out_dir as
    .NAME.old-PID, which the next build puts back before it starts (own_output_folder)."""
    if not out_dir.exists():
        os.rename(staging, out_dir)
        return
    if exchange(staging, out_dir):
        return
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    with signals_deferred():   # SIGINT/SIGTERM wait until both renames are done
        os.rename(out_dir, old)
        try:
            os.rename(staging, out_dir)
        except OSError:
            os.rename(old, out_dir)
            raise
    os.rename(old, staging)


AT_FDCWD, RENAME_EXCHANGE, RENAME_SWAP = -100, 2, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one system call (Linux renameat2, macOS renamex_np); False where the
    system or the file system cannot."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform in ("linux", "darwin") else None
    if libc is not None and hasattr(libc, "renameat2"):
        call = libc.renameat2
        call.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        failed = call(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE)
    elif libc is not None and hasattr(libc, "renamex_np"):
        call = libc.renamex_np
        call.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_uint]
        failed = call(os.fsencode(a), os.fsencode(b), RENAME_SWAP)
    else:
        return False
    if not failed:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


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
