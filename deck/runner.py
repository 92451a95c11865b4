"""Run the demos the slides need: from a results archive, the cache, or the demo server.

A cached result stays valid while everything its demo read when it ran is
unchanged: the talk's modules it imported and the files it opened or listed,
each recorded with the hash of the content it read (see deck/readlog.py).  Its key
covers the rest of what can change a result: the demo, its arguments, the size,
the device, the torch version and the environment variables declared in
``[tool.deck] env``.  Editing prose reruns nothing; editing a file reruns exactly
the demos that read it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from deck.archive import read_archive
from deck.errors import BuildError
from deck.files import write_file
from deck.memo import Memo
from deck.protocol import (DEMO_FOLDER_PREFIX, MAX_LINE_BYTES, Problem, ProtocolError, Ready, Reply, Request,
                           ServerConfig, Stopped, decode, encode, failed)
from deck.references import Reference
from deck.result import (FORMAT, NOT_A_FILE, DemoCall, Result, ResultFormatError, file_hash, folder_hash,
                         from_json, to_json)
from deck.supervise import why_demos_cannot_run

DemoStarted = Callable[[int, int, DemoCall], None]   # (index from 1, count, call): a demo starts running
SERVER_GRACE_S = 30   # beyond a demo's own timeout, how long the builder waits for the server's reply


@dataclass
class RunSettings:
    root: Path                    # the talk: slides/ and demos/
    builder: Path                 # where build.py and the deck package live
    cache_dir: Path
    device: str = "auto"          # auto | cpu | cuda | mps
    size: str = "full"
    timeout_s: float = 600.0
    timeouts: dict | None = None  # per demo, from [tool.deck.timeouts]
    env: tuple[str, ...] = ()     # environment variables the demos depend on, from [tool.deck] env
    preload: tuple[str, ...] = ()   # modules the demo server imports once, from [tool.deck] preload
    keep_going: bool = False
    rerun: tuple[str, ...] = ()
    fresh: bool = False
    results_archive: Path | None = None   # --results FILE: results made elsewhere, used instead of running
    rerun_here: frozenset[str] = frozenset()   # demos serve reran from the open deck: never --results' result
    protected: tuple[Path, ...] = ()      # folders no demo may write into (default: slides/, templates/, dist/)
    memo: Memo = field(default_factory=Memo)   # what serve's rebuilds reuse (deck/memo.py)
    on_start: DemoStarted | None = None   # told (index, count, call) as each demo starts
    server: DemoServer | None = None      # a demo server kept between builds (serve's); else one per build

    @property
    def demos(self) -> Path:
        return self.root / "demos"

    @property
    def protected_folders(self) -> tuple[Path, ...]:
        return self.protected or tuple(self.root / name for name in ("slides", "templates", "dist"))

    def forced(self, call: DemoCall) -> bool:
        return self.fresh or call.demo in self.rerun


def torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        raise BuildError("torch is not installed; run the set-up command in README.md") from None


def installed_torch(settings: RunSettings) -> str:
    """torch's version, looked up again only when a folder on sys.path has changed (a package installed)."""
    return settings.memo.of_files("torch", [folder for folder in sys.path if folder], torch_version)


def resolve_device(settings: RunSettings) -> str:
    """'auto' becomes cuda, mps or cpu (deck.result.best_device), as the demo server found it; remembered
    for this torch and these visible GPUs, so a warm build needs no torch."""
    if settings.device != "auto":
        return settings.device
    saved = saved_auto_device(settings)
    if saved:
        return saved
    with contextlib.ExitStack() as stack:   # the build's server, which then runs its demos
        server = settings.server or stack.enter_context(DemoServer(settings))
        return server.started().device


def auto_device_probe(settings: RunSettings) -> tuple[Path, str]:
    """Where the device 'auto' found is remembered, and what must be unchanged for it to hold."""
    key = f"{installed_torch(settings)}|{os.environ.get('CUDA_VISIBLE_DEVICES', '')}|{sys.executable}"
    return settings.cache_dir / "device-auto.json", key


def saved_auto_device(settings: RunSettings) -> str | None:
    path, key = auto_device_probe(settings)
    try:
        saved = json.loads(path.read_text())
        return saved["device"] if saved["probe"] == key and isinstance(saved["device"], str) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


LEADS_OUT = "leads out of the talk"   # the hash of a path that resolves outside the talk's folder: never read


class FileHashes:
    """The current hash of each file or folder a result says its demo read, computed once per build.
    Only what lies inside the talk's folder is read, and of files only regular ones (deck.result.file_hash):
    a path that leads out through a link, a FIFO or a device is never opened, and counts as changed."""

    def __init__(self, root: Path):
        self.root = os.path.realpath(root)
        self.known: dict[str, str] = {}

    def __getitem__(self, relative: str) -> str:
        if relative not in self.known:
            path = os.path.realpath(os.path.join(self.root, relative))
            if not (path + os.sep).startswith(self.root + os.sep):
                self.known[relative] = LEADS_OUT
            else:
                self.known[relative] = folder_hash(path) if relative.endswith("/") else file_hash(path)
        return self.known[relative]

    def changed(self, result: Result) -> list[str]:
        """What the demo read that is different now; a result that recorded nothing is never current."""
        if not result.reads:
            return ["(unknown)"]
        return [path if self[path] not in (LEADS_OUT, NOT_A_FILE) else f"{path} ({self[path]})"
                for path, digest in result.reads.items() if self[path] != digest]


class ResultCache:
    def __init__(self, directory: Path):
        self.directory = directory / "results"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> Result | None:
        """The cached result, or None if missing; a damaged entry is removed and reported."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry, dict) or entry.get("format") != FORMAT or entry.get("key") != key:
                raise ResultFormatError("written by another version")
            result = from_json(entry.get("result"))
            if result.provenance is None:
                raise ResultFormatError("result.provenance: missing")
            return result
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as error:
            print(f"  discarding cache entry {path.name}: {error}", file=sys.stderr)
            path.unlink(missing_ok=True)
            return None

    def store(self, key: str, demo: str, result: Result) -> None:
        write_file(self.path(key), json.dumps({"format": FORMAT, "key": key, "demo": demo, "result": to_json(result)},
                                                allow_nan=False))


def cache_key(call: DemoCall, settings: RunSettings, device: str, torch: str) -> str:
    environment = [f"{name}={os.environ.get(name, '')}" for name in sorted(settings.env)]
    parts = [str(FORMAT), call.demo, call.args_json, settings.size, device, torch, *environment]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def run_demos(calls: list[DemoCall], references: list[Reference], settings: RunSettings) -> dict[DemoCall, Result]:
    """Every call's result, in the slides' order: from a results archive, the cache, or run here.
    A failure stops the build, or with --keep-going becomes a Result with its error for the slide."""
    hashes = FileHashes(settings.root)
    results: dict[DemoCall, Result] = {}
    if settings.results_archive:
        archive, size = settings.results_archive, settings.size
        imported = settings.memo.of_files(("archive", size), [archive], lambda: read_archive(archive, size))
        for call in calls:
            if (call.demo, call.args_json) in imported and not settings.forced(call) \
                    and call.demo not in settings.rerun_here:
                results[call] = mark_if_stale(call, imported[call.demo, call.args_json], hashes, settings.memo)
        print(f"demos: {len(results)} from {settings.results_archive.name}", file=sys.stderr)
    local = [call for call in calls if call not in results]
    if local:
        results.update(run_here(local, references, settings, hashes))
    return {call: results[call] for call in calls}


def mark_if_stale(call: DemoCall, result: Result, hashes: FileHashes, memo: Memo) -> Result:
    """An imported result as it is, or a copy marked stale when what its demo read has changed here
    (a copy: the archive's result, which the memo may keep, stays as it was read)."""
    changed = hashes.changed(result)
    if not changed:
        return result
    where = result.provenance
    why = ("its archive does not say what it read (an older format)" if not result.reads else
           f"since then {', '.join(changed[:3])}{' …' if len(changed) > 3 else ''} changed")
    print(f"  stale: {call.demo} ran on {where.device_name} at {where.ran_at}, and {why}; using that result "
          f"anyway (--rerun {call.demo} runs it here)", file=sys.stderr)
    return memo.of_object(("stale", call), result, lambda: dataclasses.replace(
        result, provenance=dataclasses.replace(where, stale=True)))


def run_here(calls: list[DemoCall], references: list[Reference], settings: RunSettings,
             hashes: FileHashes) -> dict[DemoCall, Result]:
    """Results from the cache where still valid; the rest run in the demo server (then cached)."""
    with contextlib.ExitStack() as stack:
        if settings.server is None:   # the build's own, started if a demo runs or --device auto is new here
            settings = dataclasses.replace(settings, server=stack.enter_context(DemoServer(settings)))
        device, torch = resolve_device(settings), installed_torch(settings)
        cache = ResultCache(settings.cache_dir)
        results: dict[DemoCall, Result] = {}
        for call in calls:
            key = cache_key(call, settings, device, torch)
            cached = None if settings.forced(call) else \
                settings.memo.of_files(("cached", key), [cache.path(key)], lambda: cache.load(key))
            if cached is not None and not hashes.changed(cached):
                results[call] = cached
        todo = [call for call in calls if call not in results]
        print(f"demos: {len(calls)} needed, {len(results)} cached, {len(todo)} to run on {device}", file=sys.stderr)
        for call, result in run_each(todo, references, settings):
            remember({call: result}, settings)   # at once: a later failure or Ctrl-C keeps what already ran
            results[call] = result
        return results


def run_now(calls: list[DemoCall], references: list[Reference], settings: RunSettings) -> dict[DemoCall, Result]:
    """Run these calls in the demo server now, ignoring cache and archive, storing nothing; a failure is
    a Result with its error (as with --keep-going)."""
    return dict(run_each(calls, references, dataclasses.replace(settings, keep_going=True)))


def remember(results: dict[DemoCall, Result], settings: RunSettings) -> None:
    """Store these results (not failures) under the keys a later build looks up."""
    device, torch = resolve_device(settings), installed_torch(settings)
    cache = ResultCache(settings.cache_dir)
    for call, result in results.items():
        if not result.failed:
            cache.store(cache_key(call, settings, device, torch), call.demo, result)


def run_each(calls: list[DemoCall], references: list[Reference],
             settings: RunSettings) -> Iterator[tuple[DemoCall, Result]]:
    """Each call run in the demo server, in order, with progress on stderr.  A failure stops the build,
    or with --keep-going becomes a Result with its error for the slide."""
    if not calls:
        return
    reason = why_demos_cannot_run()
    if reason:
        raise BuildError(f"{len(calls)} demo(s) need to run, and the demo server cannot run here: {reason}. "
                         "Run the demos on Linux (or WSL) with --export-results FILE.tar and build here with "
                         "--results FILE.tar")
    with contextlib.ExitStack() as stack:
        server = settings.server or stack.enter_context(DemoServer(settings))
        for index, call in enumerate(calls, start=1):
            print(f"[{index}/{len(calls)}] {call.demo} ...", end="", file=sys.stderr, flush=True)
            if settings.on_start:
                settings.on_start(index, len(calls), call)
            reply = run_once_more_if_changed(server, call, settings)
            if reply.problem is Problem.DEVICE_UNAVAILABLE:   # no demo can run: said once, not per demo
                raise BuildError(reply.message)
            if reply.ok:
                print(f" {reply.result.provenance.seconds:.1f} s", file=sys.stderr)
                yield call, reply.result
            else:
                print(" FAILED", file=sys.stderr)
                where = next((r for r in references if r.call == call), None)
                yield call, failure(call, reply, where, settings)


def run_once_more_if_changed(server: DemoServer, call: DemoCall, settings: RunSettings) -> Reply:
    """The demo's reply; if a file it read was edited while it ran, that result is dropped and it runs again."""
    timeout = (settings.timeouts or {}).get(call.demo, settings.timeout_s)
    reply = server.run(call, timeout)
    if reply.problem is Problem.CHANGED_WHILE_RUNNING:
        print(f" {reply.message} changed while it ran; running it again ...", end="", file=sys.stderr, flush=True)
        reply = server.run(call, timeout)
    return reply


PROBLEMS = {
    Problem.TIMED_OUT: "timed out after {message} and was killed, with every process it started "
                       '(set [tool.deck.timeouts] "{demo}" = SECONDS in pyproject.toml, or --timeout)',
    Problem.CRASHED: "crashed: its process ended ({message}) before it returned",
    Problem.RAISED: "raised an exception:",
    Problem.UNSUPPORTED_RESULT: "returned a result that cannot be stored:",
    Problem.CHANGED_WHILE_RUNNING: "read {message}, which changed while it ran, twice: build again once the "
                                   "edits are done",
    Problem.WROTE_PROTECTED: "tried to change {message}, which belongs to the build (slides, templates and the "
                             "output folder are not a demo's to write)",
    Problem.DEVICE_UNAVAILABLE: "could not run: {message}",
    Problem.SERVER_GONE: "could not be run: the demo server stopped answering ({message})",
}


def failure(call: DemoCall, reply: Reply, where: Reference | None, settings: RunSettings) -> Result:
    """Raise the demo's failure at its slide, or (--keep-going) return it for an error card."""
    printed = reply.output.strip()
    explained = reply.problem in (Problem.RAISED, Problem.UNSUPPORTED_RESULT)
    detail = (reply.detail or reply.message if explained else reply.detail) + \
        (f"\nwhat it printed last:\n{printed}" if printed else "")
    problem = PROBLEMS[reply.problem].format(message=reply.message, demo=call.demo)
    error = BuildError(f"demo {call.demo} {problem}", file=where and where.file, line=where and where.line,
                       detail=detail.strip("\n"))
    if not settings.keep_going:
        raise error
    print(str(error), file=sys.stderr)
    return Result(error=str(error))


# multiprocessing puts its Unix sockets (DataLoader workers sharing tensors) at TMPDIR/pymp-*/listener-*:
# 32 characters below TMPDIR, and a socket's path has at most 103 characters on macOS, 107 on Linux.
SOCKET_ROOM = 103 - 32   # the longest TMPDIR a demo may be given
DEMO_FOLDER = f"/{DEMO_FOLDER_PREFIX}12345678"   # what a demo's own folder adds to the server's


def scratch_folder() -> str:
    """A new folder for the demo server, inside TMPDIR, or inside /tmp when TMPDIR's path is too long
    for the sockets libraries put in a demo's folder (a long TMPDIR makes a DataLoader with workers hang)."""
    scratch = tempfile.mkdtemp(prefix="demos-")
    if len(scratch + DEMO_FOLDER) <= SOCKET_ROOM or not os.path.isdir("/tmp"):
        return scratch
    os.rmdir(scratch)
    return tempfile.mkdtemp(prefix="demos-", dir="/tmp")


class DemoServer:
    """The process that imports torch once and forks one child per demo (deck/worker.py); started by the
    first demo it is asked to run, and kept until ``stop`` (the end of a build, or of ``serve``).  Its
    temporary folder is made here and removed here when it has ended, however it ended."""

    def __init__(self, settings: RunSettings):
        self.settings = settings
        self.process: subprocess.Popen | None = None
        self.scratch = ""
        self.ready = False
        self.device = ""   # what its demos run on, once it is ready
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        path = [str(self.settings.root), str(self.settings.builder), os.environ.get("PYTHONPATH", "")]
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(path).rstrip(os.pathsep),
                           MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        asked = self.settings.device
        device = asked if asked != "auto" else saved_auto_device(self.settings) or "auto"   # auto: it finds out
        self.scratch = scratch_folder()
        config = ServerConfig(device=device, root=str(self.settings.root), demos=str(self.settings.demos),
                              scratch=self.scratch,
                              protected=tuple(str(folder) for folder in self.settings.protected_folders),
                              preload=self.settings.preload)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deck.worker", encode(config)], cwd=self.settings.root,
            env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""
        ready = self.receive(timeout=300)
        if not isinstance(ready, Ready):
            code = self.process.wait()
            self.stop()
            if isinstance(ready, Stopped):
                raise BuildError(f"the demo server could not start: {ready.reason}")
            raise BuildError(f"the demo server could not start (exit status {code}); see the message above")
        self.ready, self.device = True, ready.device
        if device == "auto":
            path, key = auto_device_probe(self.settings)
            write_file(path, json.dumps({"probe": key, "device": ready.device}))

    def started(self) -> DemoServer:
        if self.process is None:
            self.start()
        return self

    def stop(self) -> None:
        """Closing its stdin tells a ready server to kill every demo process and exit; one still importing
        has started nothing and is ended at once.  Then make sure, and remove its folder."""
        if self.process is None:
            return
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        if not self.ready:
            self.process.terminate()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.process, self.ready = None, False

    def run(self, call: DemoCall, timeout: float) -> Reply:
        self.started()
        request = Request(demo=call.demo, args=call.args, size=self.settings.size, timeout_s=timeout)
        try:
            self.process.stdin.write((encode(request) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        try:
            reply = self.receive(timeout + SERVER_GRACE_S)
        except ProtocolError as error:
            reply = error
        if not isinstance(reply, Reply):
            code = self.process.poll()
            self.stop()
            why = reply if isinstance(reply, ProtocolError) else reply.reason if isinstance(reply, Stopped) else \
                f"exit status {code}" if code is not None else "no reply"
            return failed(Problem.SERVER_GONE, str(why))
        return reply

    def receive(self, timeout: float) -> Ready | Stopped | Reply | None:
        """The next message from the server; None on timeout or if the server died."""
        deadline = time.monotonic() + timeout
        stream = self.process.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining) or len(self.buffer) > MAX_LINE_BYTES:
                    return None
                chunk = os.read(stream.fileno(), 1 << 20)
                if not chunk:
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return decode(line)
