"""Write the deck: into a temporary folder first, then moved into place in one step.

A failed or interrupted build never touches the last good deck, and two builds
of the same output take turns (a lock), so the deck is never a mix of both.
The deck carries a Content-Security-Policy that lets only its own scripts run.
"""
from __future__ import annotations

import base64
import contextlib
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
        "connect-src": "'self'",              # serve's live reload asks its server for the deck's state
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
