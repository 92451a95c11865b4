"""Live preview: serve the deck on 127.0.0.1, rebuild on every change, reload the open page.

The page polls ``/__deck__/state``; when a build finishes it reloads, and reveal's
URL hash brings it back to the slide it was showing.  A failed build leaves the
last good deck on screen with the error over it.
"""
from __future__ import annotations

import errno
import functools
import http.server
import json
import sys
import threading
from pathlib import Path
from typing import Callable

from deck.errors import BuildError
from deck.output import allow_inline_script

LIVE_SCRIPT = """
(function () {
  var seen = null, overlay = document.createElement("pre");
  overlay.id = "deck-build-error";
  overlay.setAttribute("role", "alert");
  overlay.style.cssText = "position:fixed;left:0;right:0;bottom:0;max-height:60%;overflow:auto;margin:0;" +
    "padding:1em;background:#5b0d0d;color:#fff;font:14px/1.4 monospace;z-index:100000;white-space:pre-wrap;";
  overlay.hidden = true;
  document.body.appendChild(overlay);
  function poll() {
    fetch("/__deck__/state", {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (state) {
      if (seen === null) seen = state.version;
      if (state.version !== seen) { location.reload(); return; }
      overlay.textContent = state.error ? "Build failed; showing the last good deck.\\n\\n" + state.error : "";
      overlay.hidden = !state.error;
      setTimeout(poll, 200);
    }).catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
"""


def with_live_reload(page: str) -> str:
    """The deck's page with the live-reload script added, and allowed by the page's own policy."""
    head, end, tail = allow_inline_script(page, LIVE_SCRIPT).rpartition("</body>")
    return f"{head}<script>{LIVE_SCRIPT}</script>{end}{tail}" if end else page


class LiveState:
    def __init__(self):
        self.version = 0
        self.error = ""
        self.lock = threading.Lock()

    def as_json(self) -> bytes:
        with self.lock:
            return json.dumps({"version": self.version, "error": self.error}).encode()


class DeckHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, state: LiveState, **kwargs):
        self.state = state
        super().__init__(*args, **kwargs)

    def do_GET(self):
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        if path == "/__deck__/state":
            return self.send_bytes(self.state.as_json(), "application/json")
        if path in ("/", "/index.html"):
            try:
                page = (Path(self.directory) / "index.html").read_text(encoding="utf-8")
            except OSError:
                page = "<!doctype html><html><body><p>No deck has been built yet.</p></body></html>"
            page = with_live_reload(page)
            return self.send_bytes(page.encode(), "text/html; charset=utf-8")
        return super().do_GET()

    def send_bytes(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass  # the terminal is for build progress


def listen(port: int, handler) -> http.server.ThreadingHTTPServer:
    """The preview's server, bound to 127.0.0.1:port before anything is built, so a taken port fails at once."""
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as error:
        reason = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be used: {error.strerror}"
        raise BuildError(f"port {port} on 127.0.0.1 {reason}; choose another one with --port "
                         f"(e.g. python build.py serve --port {port + 1})") from None


def serve(build_once: Callable[[], object], out_dir: Path, watched: list[Path], port: int) -> int:
    """Build, serve, and rebuild on change until Ctrl-C."""
    import watchfiles

    state = LiveState()
    try:
        server = listen(port, functools.partial(DeckHandler, state=state, directory=str(out_dir)))
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    def rebuild() -> None:
        try:
            build_once()
            error = ""
        except BuildError as failure:
            error = str(failure)
            print(f"error: {error}\n(the last good deck stays on screen)", file=sys.stderr)
        with state.lock:
            state.version += 0 if error else 1
            state.error = error

    rebuild()
    out_dir.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # yield_on_timeout: the first (empty) batch arrives once the watcher is running, so nothing
    # edited after "serving" is printed can be missed.
    changes_batches = watchfiles.watch(*watched, raise_interrupt=True, yield_on_timeout=True, rust_timeout=500)
    try:
        next(changes_batches)
        print(f"serving http://127.0.0.1:{server.server_address[1]}/ ; watching "
              f"{', '.join(p.name + '/' for p in watched)} (Ctrl-C stops)", file=sys.stderr, flush=True)
        for changes in changes_batches:
            if not changes:
                continue
            names = sorted({Path(path).name for _, path in changes})
            print(f"changed: {', '.join(names)}", file=sys.stderr, flush=True)
            rebuild()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
    print("stopped", file=sys.stderr)
    return 0
