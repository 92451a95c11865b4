"""Run the demos the slides need: from a results archive, the cache, or the demo server.

A cached result stays valid while everything its demo read when it ran is
unchanged: the talk's modules it imported and the files it opened or listed,
each recorded with its hash (see deck/worker.py).  Its key covers the rest of
what can change a result: the demo, its arguments, the size, the device, the
torch version and the environment variables declared in ``[tool.deck] env``.
Editing prose reruns nothing; editing a file reruns exactly the demos that read it.
"""
from __future__ import annotations

import hashlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from deck.archive import read_archive
from deck.errors import BuildError
from deck.files import write_file
from deck.references import Reference
from deck.result import FORMAT, DemoCall, Result, ResultFormatError, file_hash, folder_hash, from_json, to_json

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
    keep_going: bool = False
    rerun: tuple[str, ...] = ()
    fresh: bool = False
    results_archive: Path | None = None   # --results FILE: results made elsewhere, used instead of running
    output_cap: int = 64 * 1024

    def forced(self, call: DemoCall) -> bool:
        return self.fresh or call.demo in self.rerun


def torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        raise BuildError("torch is not installed; run the set-up command in README.md") from None


def resolve_device(settings: RunSettings) -> str:
    """'auto' becomes cuda, mps or cpu (deck.result.best_device); remembered, so a warm build needs no torch."""
    if settings.device != "auto":
        return settings.device
    probe_key = f"{torch_version()}|{os.environ.get('CUDA_VISIBLE_DEVICES', '')}|{sys.executable}"
    probe = settings.cache_dir / "device-auto.json"
    try:
        saved = json.loads(probe.read_text())
        if saved["probe"] == probe_key:
            return saved["device"]
    except (OSError, ValueError, KeyError, TypeError):
        pass
    code = "import torch; from deck.result import best_device; print(best_device(torch))"
    device = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=settings.builder).stdout.strip()
    write_file(probe, json.dumps({"probe": probe_key, "device": device}))
    return device


class FileHashes:
    """The current hash of each file or folder a result says its demo read, computed once per build."""

    def __init__(self, root: Path):
        self.root = root
        self.known: dict[str, str] = {}

    def __getitem__(self, relative: str) -> str:
        if relative not in self.known:
            path = os.path.join(self.root, relative)
            self.known[relative] = folder_hash(path) if relative.endswith("/") else file_hash(path)
        return self.known[relative]

    def changed(self, result: Result) -> list[str]:
        """What the demo read that is different now; a result that recorded nothing is never current."""
        if not result.reads:
            return ["(unknown)"]
        return [path for path, digest in result.reads.items() if self[path] != digest]


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
            return from_json(entry.get("result"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            print(f"  discarding cache entry {path.name}: {error}", file=sys.stderr)
            path.unlink(missing_ok=True)
            return None

    def store(self, key: str, demo: str, result: Result) -> None:
        write_file(self.path(key), json.dumps({"format": FORMAT, "key": key, "demo": demo, "result": to_json(result)}))


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
        imported = read_archive(settings.results_archive, settings.size)
        for call in calls:
            if (call.demo, call.args_json) in imported and not settings.forced(call):
                results[call] = mark_if_stale(call, imported[call.demo, call.args_json], hashes)
        print(f"demos: {len(results)} from {settings.results_archive.name}", file=sys.stderr)
    local = [call for call in calls if call not in results]
    if local:
        results.update(run_here(local, references, settings, hashes))
    return {call: results[call] for call in calls}


def mark_if_stale(call: DemoCall, result: Result, hashes: FileHashes) -> Result:
    """An imported result as it is, marked stale when what its demo read has changed here."""
    changed = hashes.changed(result)
    if changed:
        where = result.provenance
        why = ("its archive does not say what it read (an older format)" if not result.reads else
               f"since then {', '.join(changed[:3])}{' …' if len(changed) > 3 else ''} changed")
        print(f"  stale: {call.demo} ran on {where.device_name} at {where.ran_at}, and {why}; using that result "
              f"anyway (--rerun {call.demo} runs it here)", file=sys.stderr)
        where.stale = True
    return result


def run_here(calls: list[DemoCall], references: list[Reference], settings: RunSettings,
             hashes: FileHashes) -> dict[DemoCall, Result]:
    """Results from the cache where still valid; the rest run in the demo server (then cached)."""
    device, torch = resolve_device(settings), torch_version()
    cache = ResultCache(settings.cache_dir)
    results: dict[DemoCall, Result] = {}
    todo: list[tuple[DemoCall, str]] = []
    for call in calls:
        key = cache_key(call, settings, device, torch)
        cached = None if settings.forced(call) else cache.load(key)
        if cached is not None and not hashes.changed(cached):
            results[call] = cached
        else:
            todo.append((call, key))
    print(f"demos: {len(calls)} needed, {len(calls) - len(todo)} cached, {len(todo)} to run on {device}",
          file=sys.stderr)
    if not todo:
        return results
    with DemoServer(settings, device) as server:
        for index, (call, key) in enumerate(todo, start=1):
            print(f"[{index}/{len(todo)}] {call.demo} ...", end="", file=sys.stderr, flush=True)
            reply = server.run(call, (settings.timeouts or {}).get(call.demo, settings.timeout_s))
            if reply.get("ok"):
                result = from_json(reply["result"])
                print(f" {result.provenance.seconds:.1f} s", file=sys.stderr)
                cache.store(key, call.demo, result)
                results[call] = result
            else:
                print(" FAILED", file=sys.stderr)
                results[call] = failure(call, reply, next(r for r in references if r.call == call), settings)
    return results


def failure(call: DemoCall, reply: dict, where: Reference, settings: RunSettings) -> Result:
    """Raise the demo's failure at its slide, or (--keep-going) return it for an error card."""
    printed = reply.get("output", "").strip()
    detail = reply.get("error", "") + (f"\nwhat it printed last:\n{printed}" if printed else "")
    problem = reply["problem"]
    if "timed out" in problem:
        problem += f' (set [tool.deck.timeouts] "{call.demo}" = SECONDS in pyproject.toml, or --timeout)'
    error = BuildError(f"demo {call.demo} {problem}", file=where.file, line=where.line, detail=detail)
    if not settings.keep_going:
        raise error
    print(str(error), file=sys.stderr)
    return Result(error=str(error))


class DemoServer:
    """The process that imports torch once and forks one child per demo (deck/worker.py)."""

    def __init__(self, settings: RunSettings, device: str):
        self.settings = settings
        self.device = device
        self.process: subprocess.Popen | None = None
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        path = [str(self.settings.root), str(self.settings.builder), os.environ.get("PYTHONPATH", "")]
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(path).rstrip(os.pathsep),
                           MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deck.worker", self.device, str(self.settings.root)], cwd=self.settings.root,
            env=environment, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.buffer = b""
        if self.receive(timeout=300) is None:
            code = self.process.wait()
            raise BuildError(f"the demo server could not start (exit status {code}); see the message above")

    def stop(self) -> None:
        """Closing its stdin tells the server to kill every demo process and exit; then make sure."""
        if self.process is None:
            return
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def run(self, call: DemoCall, timeout: float) -> dict:
        if self.process is None:
            self.start()
        request = {"demo": call.demo, "args": call.args, "size": self.settings.size, "timeout": timeout,
                   "output_cap": self.settings.output_cap}
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        reply = self.receive(timeout + SERVER_GRACE_S)
        if reply is None:
            code = self.process.poll()
            self.stop()
            return {"ok": False, "problem": f"could not be run: the demo server stopped answering "
                    f"({'exit status ' + str(code) if code is not None else 'no reply'})"}
        return reply

    def receive(self, timeout: float) -> dict | None:
        """The next JSON line from the server; None on timeout or if the server died."""
        deadline = time.monotonic() + timeout
        stream = self.process.stdout
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while b"\n" not in self.buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    return None
                chunk = os.read(stream.fileno(), 1 << 20)
                if not chunk:
                    return None
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return json.loads(line)


def run_now(calls: list[DemoCall], references: list[Reference], settings: RunSettings) -> dict[DemoCall, Result]:
    """Run these calls now in the demo server, whatever the cache or an archive holds; store nothing."""
    device = resolve_device(settings)
    results: dict[DemoCall, Result] = {}
    with DemoServer(settings, device) as server:
        for call in calls:
            reply = server.run(call, (settings.timeouts or {}).get(call.demo, settings.timeout_s))
            if reply.get("ok"):
                results[call] = from_json(reply["result"])
            else:
                results[call] = failure(call, reply, next(r for r in references if r.call == call), settings)
    return results


def remember(results: dict[DemoCall, Result], settings: RunSettings) -> None:
    """Store results in the cache under the keys a later build looks up."""
    device, torch = resolve_device(settings), torch_version()
    cache = ResultCache(settings.cache_dir)
    for call, result in results.items():
        cache.store(cache_key(call, settings, device, torch), call.demo, result)
