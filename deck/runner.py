"""Run the demos the slides need: from the cache when nothing changed, else in the worker.

The cache key covers what can change a result (the demo module's source, the
demo helpers and data files it uses, its arguments, the size, the device, the
torch version) and nothing else, so editing prose reruns nothing.  A cache
entry that cannot be read back whole is discarded and the demo reruns.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import selectors
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from deck.catalog import Catalog
from deck.errors import BuildError
from deck.references import DemoCall, Reference

CACHE_FORMAT = 1
RESULT_FIELDS = {"values", "tables", "figures", "timings", "output", "output_bytes", "truncated",
                 "seconds", "ran_at", "provenance"}


@dataclass
class RunSettings:
    root: Path                    # the talk: slides/ and demos/
    builder: Path                 # where build.py and the deck package live
    cache_dir: Path
    device: str = "auto"          # auto | cpu | cuda | mps
    size: str = "full"
    timeout_s: float = 600.0
    timeouts: dict | None = None  # per demo, from [tool.deck.timeouts]
    keep_going: bool = False
    rerun: tuple[str, ...] = ()
    fresh: bool = False
    results_archive: Path | None = None   # --results FILE: results made elsewhere, used instead of running
    output_cap: int = 64 * 1024


def torch_version() -> str:
    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        raise BuildError("torch is not installed; run the set-up command in README.md") from None


class ResultCache:
    def __init__(self, directory: Path):
        self.directory = directory / "results"

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> dict | None:
        """The cached result, or None if missing; a damaged entry is removed and reported."""
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
                raise ValueError("written by another version")
            result = entry["result"]
            if not isinstance(result, dict) or set(result) != RESULT_FIELDS:
                raise ValueError("fields missing")
            return result
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            print(f"  discarding cache entry {path.name}: {error.__class__.__name__}: {error}", file=sys.stderr)
            path.unlink(missing_ok=True)
            return None

    def store(self, key: str, demo: str, result: dict) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump({"format": CACHE_FORMAT, "key": key, "demo": demo, "result": result}, stream)
        os.replace(temporary, self.path(key))


def resolve_device(settings: RunSettings) -> str:
    """'auto' becomes cuda, mps or cpu; the answer is remembered so a warm build needs no torch."""
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
    code = ("import torch; print('cuda' if torch.cuda.is_available() else 'mps' if "
            "getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available() else 'cpu')")
    device = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    probe.write_text(json.dumps({"probe": probe_key, "device": device}))
    return device


def cache_key(call: DemoCall, catalog: Catalog, device: str, size: str, torch: str) -> str:
    module = call.demo.rsplit(".", 1)[0]
    parts = [str(CACHE_FORMAT), catalog.source_digest(module), call.demo, call.args_json, size, device, torch]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def run_demos(calls: list[DemoCall], references: list[Reference], catalog: Catalog,
              settings: RunSettings) -> dict[DemoCall, dict]:
    """Every call's result: from a results archive, the cache, or run here; in the slides' order.
    A failure stops the build, or with --keep-going becomes {'error': ...} for its slide."""
    def forced(call: DemoCall) -> bool:
        return settings.fresh or call.demo in settings.rerun

    results: dict[DemoCall, dict] = {}
    if settings.results_archive:
        imported = read_archive(settings.results_archive, settings.size)
        for call in calls:
            if (call.demo, call.args_json) in imported and not forced(call):
                results[call] = use_imported(imported[call.demo, call.args_json], catalog)
        print(f"demos: {len(results)} from {settings.results_archive.name}", file=sys.stderr)
    local = [call for call in calls if call not in results]
    if local:
        results.update(run_here(local, forced, references, catalog, settings))
    return {call: results[call] for call in calls}


def run_here(calls: list[DemoCall], forced, references: list[Reference], catalog: Catalog,
             settings: RunSettings) -> dict[DemoCall, dict]:
    """Results from the cache, and the rest run in the worker (then cached)."""
    device = resolve_device(settings)
    torch = torch_version()
    cache = ResultCache(settings.cache_dir)
    results: dict[DemoCall, dict] = {}
    todo: list[tuple[DemoCall, str]] = []
    for call in calls:
        key = cache_key(call, catalog, device, settings.size, torch)
        cached = None if forced(call) else cache.load(key)
        if cached is not None:
            results[call] = dict(cached, cache_key=key)
        else:
            todo.append((call, key))
    print(f"demos: {len(calls)} needed, {len(calls) - len(todo)} cached, {len(todo)} to run on {device}",
          file=sys.stderr)
    if not todo:
        return results
    with Worker(settings, device) as worker:
        for index, (call, key) in enumerate(todo, start=1):
            print(f"[{index}/{len(todo)}] {call.demo} ...", end="", file=sys.stderr, flush=True)
            reply = worker.run(call, (settings.timeouts or {}).get(call.demo, settings.timeout_s))
            if reply.get("ok"):
                result = reply["result"]
                result["provenance"] = dict(worker.provenance, seconds=result["seconds"], ran_at=result["ran_at"])
                print(f" {result['seconds']:.1f} s", file=sys.stderr)
                cache.store(key, call.demo, result)
                results[call] = dict(result, cache_key=key)
            else:
                print(" FAILED", file=sys.stderr)
                results[call] = failure(call, reply, next(r for r in references if r.call == call), settings)
    return results


def failure(call: DemoCall, reply: dict, where: Reference, settings: RunSettings) -> dict:
    """Raise the demo's failure at its slide, or (--keep-going) return it for an error card."""
    printed = reply.get("output", "").strip()
    detail = reply.get("error", "") + (f"\nwhat it printed last:\n{printed}" if printed else "")
    error = BuildError(f"demo {call.demo} {reply['problem']}", file=where.file, line=where.line, detail=detail)
    if not settings.keep_going:
        raise error
    print(str(error), file=sys.stderr)
    return {"error": str(error), "cache_key": "failed:" + hashlib.sha256(str(error).encode()).hexdigest()}


def export_archive(results: dict[DemoCall, dict], catalog: Catalog, size: str, path: Path) -> int:
    """Write the build's results, with provenance and source digests, to a tar file; returns the count."""
    entries = [{"demo": call.demo, "args_json": call.args_json, "size": size,
                "source_digest": catalog.source_digest(call.demo.rsplit(".", 1)[0]),
                "result": {k: v for k, v in result.items() if k in RESULT_FIELDS}}
               for call, result in results.items() if "error" not in result]
    path = path.resolve()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(temporary, "w") as archive:
            for number, entry in enumerate(entries):
                data = json.dumps(entry).encode()
                member = tarfile.TarInfo(f"results/{number:04d}.json")
                member.size, member.mtime = len(data), int(time.time())
                archive.addfile(member, io.BytesIO(data))
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise BuildError(f"cannot write results to {path}: {error.strerror or error}") from None
    return len(entries)


def read_archive(path: Path, size: str) -> dict[tuple[str, str], dict]:
    """Results from --export-results, by (demo, arguments); only JSON is read, nothing is extracted."""
    found = {}
    try:
        with tarfile.open(path) as archive:
            for member in archive.getmembers():
                if not (member.isfile() and member.name.startswith("results/") and member.name.endswith(".json")):
                    continue
                entry = json.loads(archive.extractfile(member).read())
                if entry["size"] == size and set(entry["result"]) == RESULT_FIELDS:
                    found[entry["demo"], entry["args_json"]] = entry
    except (OSError, tarfile.TarError, ValueError, KeyError, TypeError) as error:
        raise BuildError(f"cannot read results from {path}: {error}") from None
    return found


def use_imported(entry: dict, catalog: Catalog) -> dict:
    """An imported result as it is (provenance and all); a changed demo is reported as stale."""
    result = dict(entry["result"], cache_key="imported:" + hashlib.sha256(
        json.dumps(entry, sort_keys=True).encode()).hexdigest())
    module = entry["demo"].rsplit(".", 1)[0]
    if module in catalog.modules and catalog.source_digest(module) != entry["source_digest"]:
        where = result["provenance"]
        print(f"  stale: {entry['demo']} has changed since it ran on {where['device_name']} at {where['ran_at']}; "
              f"using that result anyway (--rerun {entry['demo']} runs it here)", file=sys.stderr)
        result["provenance"] = dict(where, stale=True)
    return result


class Worker:
    """One worker process for the build, restarted after a demo crashes or hangs."""

    def __init__(self, settings: RunSettings, device: str):
        self.settings = settings
        self.device = device
        self.process: subprocess.Popen | None = None
        self.scratch = tempfile.TemporaryDirectory(prefix="deck-worker-")
        self.provenance: dict = {}
        self.buffer = b""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        self.scratch.cleanup()

    def start(self) -> None:
        environment = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [str(self.settings.root), str(self.settings.builder), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
            MPLBACKEND="Agg", PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deck.worker", self.device], cwd=self.settings.root, env=environment,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        self.buffer = b""
        ready = self.receive(timeout=300)
        if ready is None:
            code = self.process.wait()
            raise BuildError(f"the demo worker could not start on device {self.device!r} (exit status {code}); "
                             "see the message above")
        self.provenance = {k: ready[k] for k in ("device", "device_name", "torch", "python")}

    def stop(self) -> None:
        """End the worker and everything it started (its whole process group)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass
        self.process = None

    def run(self, call: DemoCall, timeout: float) -> dict:
        if self.process is None:
            self.start()
        request = {"demo": call.demo, "args": call.args, "size": self.settings.size,
                   "output_path": os.path.join(self.scratch.name, "output.txt"),
                   "output_cap": self.settings.output_cap}
        try:
            self.process.stdin.write((json.dumps(request) + "\n").encode())
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        started = time.monotonic()
        reply = self.receive(timeout)
        if reply is not None:
            if not reply.get("ok"):
                reply["problem"] = "raised an exception:"
            return reply
        if time.monotonic() - started >= timeout:
            self.stop()
            return {"ok": False, "problem": f"timed out after {timeout:g} s and was killed "
                    f"(set [tool.deck.timeouts] \"{call.demo}\" = SECONDS in pyproject.toml, or --timeout)"}
        code = self.process.wait()
        self.stop()
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        return {"ok": False, "problem": f"crashed: its process ended ({how}) before it returned"}

    def receive(self, timeout: float) -> dict | None:
        """The next JSON line from the worker; None on timeout or if the worker died."""
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
