"""Live preview: serve the deck on 127.0.0.1, rebuild on every change, patch the open pages in place.

Each rebuild runs in this process (the render cache stays warm; the demo server
starts only when a demo's inputs changed).  Its result is pushed to every open
page as a Server-Sent Event holding only the slides that changed (deck/live.py),
and the page patches them without reloading (templates/live.js); each demo a
rebuild runs is announced as it starts, so the page can show its progress.  The presenter
can rerun a demo from the open deck (``POST /__deck__/rerun?demo=MODULE.FUNCTION``);
reruns and rebuilds take turns in the main thread, one at a time.  A failed build
leaves the last good deck on screen with the error over it.
"""
from __future__ import annotations

import errno
import http.server
import json
import queue
import re
import secrets
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs

from deck.errors import BuildError
from deck.live import EventStream, Guard, Snapshot
from deck.output import allow_inline_script
from deck.result import DemoCall
from deck.runner import DemoStarted

DEMOS_SHOWN = re.compile(r'data-demos="([^"]*)"')


class Preview:
    """The served deck: its last good build, the error of the last build, and the pages watching it."""

    def __init__(self, out_dir: Path, live_script: str, guard: Guard):
        self.out_dir, self.live_script, self.guard = out_dir, live_script, guard
        self.events = EventStream()
        self.jobs: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        # the page as last published and its version change together, so a page fetched during a
        # rebuild is never the new deck under the old version (or the old deck under the new one)
        self.version, self.error = 0, ""
        self.built, self.snapshot = self.read_deck()

    def read_deck(self) -> tuple[str, Snapshot]:
        """The built page as it is on disk now, and the same page cut into slides."""
        try:
            page = (self.out_dir / "index.html").read_text(encoding="utf-8")
        except OSError:
            page = ""
        css = self.out_dir / "assets" / "deck.css"
        return page, Snapshot.of(page, css.read_text(encoding="utf-8") if css.is_file() else "")

    def page(self) -> str:
        """The deck's page as last published, with its version and the live script added (allowed by the
        page's own policy)."""
        with self.lock:
            page, version = self.built, self.version
        if not page:
            page = "<!doctype html><html><head></head><body><p>No deck has been built yet.</p></body></html>"
        page = allow_inline_script(page, self.live_script).replace(
            "</head>", f'<meta name="deck-live-version" content="{version}">\n</head>', 1)
        head, end, tail = page.rpartition("</body>")
        return f"{head}<script>{self.live_script}</script>{end}{tail}" if end else page

    def demos(self) -> set[str]:
        with self.lock:
            shown = " ".join(m.group(1) for html in self.snapshot.sections.values() for m in DEMOS_SHOWN.finditer(html))
        return set(shown.split())

    def state(self) -> dict:
        with self.lock:
            return {"version": self.version, "error": self.error}

    def rebuild(self, build_once: Callable[[DemoStarted], object], changed: list[str]) -> None:
        """Build; push each demo it runs as it starts, then what changed to the open pages, or the error
        (the last good deck stays)."""
        self.events.publish("state", json.dumps({**self.state(), "building": changed}))
        try:
            build_once(self.demo_started)
        except BuildError as failure:
            print(f"error: {failure}\n(the last good deck stays on screen)", file=sys.stderr, flush=True)
            with self.lock:
                self.error = str(failure)
        else:
            self.publish_update()
        self.events.publish("state", json.dumps(self.state()))

    def demo_started(self, index: int, count: int, call: DemoCall) -> None:
        self.events.publish("demo", json.dumps({"demo": call.demo, "index": index, "count": count}))

    def publish_update(self) -> None:
        page, new = self.read_deck()
        with self.lock:
            update = self.snapshot.changes(new)
            self.built, self.snapshot, self.error = page, new, ""
            self.version += 1
            update["version"] = self.version
        self.events.publish("update", json.dumps(update))

    def rerun(self, rerun_once: Callable[[str], object], demo: str) -> dict:
        """Rerun one demo; its slides change only if the new result holds every claim of the deck."""
        self.events.publish("rerun", json.dumps({"demo": demo, "state": "running"}))
        try:
            rerun_once(demo)
        except BuildError as failure:
            print(f"rerun of {demo}: {failure}\n(the slides keep the previous result)", file=sys.stderr, flush=True)
            outcome = {"demo": demo, "state": "kept", "reason": str(failure)}
        else:
            self.publish_update()
            outcome = {"demo": demo, "state": "updated"}
        self.events.publish("rerun", json.dumps(outcome))
        return outcome


class DeckHandler(http.server.SimpleHTTPRequestHandler):
    """The deck's files, the event stream, and the rerun request; each request is checked by the Guard first."""
    server: "PreviewServer"

    def do_GET(self):
        path, _, query = self.path.partition("?")
        preview = self.server.preview
        refusal = preview.guard.refusal(self.headers)
        if refusal:
            return self.send_json(403, {"refused": refusal})
        if path == "/__deck__/events":
            return self.stream_events(preview)
        if path in ("/", "/index.html"):
            cookie = preview.guard.cookie() if preview.guard.has_token(self.headers, query) else ""
            return self.send_bytes(preview.page().encode(), "text/html; charset=utf-8", cookie)
        return super().do_GET()

    def do_HEAD(self):
        refusal = self.server.preview.guard.refusal(self.headers)
        return self.send_json(403, {"refused": refusal}) if refusal else super().do_HEAD()

    def do_POST(self):
        path, _, query = self.path.partition("?")
        preview = self.server.preview
        refusal = preview.guard.change_refusal(self.headers, query)
        if refusal:
            return self.send_json(403, {"refused": refusal})
        if path != "/__deck__/rerun":
            return self.send_json(404, {"refused": f"no such action: {path}"})
        demo = parse_qs(query).get("demo", [""])[0]
        if demo not in preview.demos():
            return self.send_json(404, {"refused": f"{demo or '(no ?demo=)'} is not a demo this deck shows"})
        done: Future = Future()
        preview.jobs.put(("rerun", demo, done))
        return self.send_json(200, done.result())

    def stream_events(self, preview: Preview) -> None:
        subscriber = preview.events.subscribe()
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(f"event: state\ndata: {json.dumps(preview.state())}\n\n".encode())
            self.wfile.flush()
            for message in preview.events.messages(subscriber):
                self.wfile.write(message)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass   # the page went away
        finally:
            preview.events.unsubscribe(subscriber)

    def send_json(self, status: int, body: dict) -> None:
        self.send_bytes(json.dumps(body).encode(), "application/json", status=status)

    def send_bytes(self, body: bytes, content_type: str, cookie: str = "", status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        if cookie:
            self.send_header("Set-Cookie", cookie)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass  # the terminal is for build progress


class PreviewServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128   # a browser opens many connections at once; a burst must not wait for a retry
    preview: Preview


def listen(port: int, out_dir: Path) -> PreviewServer:
    """The preview's server, bound to 127.0.0.1:port before anything is built, so a taken port fails at once."""
    try:
        return PreviewServer(("127.0.0.1", port), lambda *a: DeckHandler(*a, directory=str(out_dir)))
    except OSError as error:
        reason = "is already in use" if error.errno == errno.EADDRINUSE else f"cannot be used: {error.strerror}"
        raise BuildError(f"port {port} on 127.0.0.1 {reason}; choose another one with --port "
                         f"(e.g. python build.py serve --port {port + 1})") from None


def watch(watched: list[Path], jobs: queue.Queue, ready: threading.Event, stop: threading.Event) -> None:
    """Put each batch of changed files on the job queue (a thread: builds run in the main thread)."""
    import watchfiles

    # debounce/step: a save is yielded once 10 ms pass with no other change (watchfiles' default waits 50 ms).
    # yield_on_timeout: the first (empty) batch arrives once the watcher runs, so no edit after "serving" is missed.
    for changes in watchfiles.watch(*watched, stop_event=stop, debounce=400, step=10, rust_timeout=500,
                                    yield_on_timeout=True, raise_interrupt=False):
        ready.set()
        if changes:
            jobs.put(("files", sorted({Path(path).name for _, path in changes}), None))


def serve(build_once: Callable[[DemoStarted], object], rerun_once: Callable[[str], object], out_dir: Path,
          watched: list[Path], port: int, live_script: Path) -> int:
    """Build, serve, and rebuild on change or rerun on request, until Ctrl-C."""
    try:
        server = listen(port, out_dir)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    guard = Guard(port=server.server_address[1], token=secrets.token_urlsafe(24))
    server.preview = preview = Preview(out_dir, live_script.read_text(encoding="utf-8"), guard)
    preview.rebuild(build_once, [])
    out_dir.mkdir(parents=True, exist_ok=True)
    ready, stop = threading.Event(), threading.Event()
    # it checks for shutdown every poll interval: 0.1 s, not the default 0.5, so Ctrl-C ends serve at once
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    threading.Thread(target=watch, args=(watched, preview.jobs, ready, stop), daemon=True).start()
    try:
        ready.wait()
        print(f"serving http://127.0.0.1:{guard.port}/?token={guard.token} ; watching "
              f"{', '.join(p.name + '/' for p in watched)} (Ctrl-C stops)", file=sys.stderr, flush=True)
        while True:
            work(preview, build_once, rerun_once)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        preview.events.close()
        server.shutdown()
        server.server_close()
    print("stopped", file=sys.stderr)
    return 0


def work(preview: Preview, build_once: Callable[[DemoStarted], object], rerun_once: Callable[[str], object]) -> None:
    """The next job, in the order asked: a rerun, or one rebuild for every batch of changed files waiting."""
    job = preview.jobs.get()
    if job[0] == "files":
        names, job = set(job[1]), None
        while job is None:   # edits that arrived during the last build are all in this one
            try:
                job = preview.jobs.get_nowait()
            except queue.Empty:
                break
            if job[0] == "files":
                names.update(job[1])
                job = None
        print(f"changed: {', '.join(sorted(names))}", file=sys.stderr, flush=True)
        preview.rebuild(build_once, sorted(names))
    if job is not None:   # a rerun, asked for after those edits
        _, demo, done = job
        outcome = {"demo": demo, "state": "kept", "reason": "the preview stopped"}
        try:
            outcome = preview.rerun(rerun_once, demo)
        finally:
            done.set_result(outcome)
