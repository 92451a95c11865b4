"""The demo server: the only process that imports torch, and the parent of every demo.

The builder starts ``python -m deck.worker DEVICE ROOT`` and talks to it in JSON
lines: one request per demo on stdin, one reply on stdout.  The server imports
torch and matplotlib once, never touches CUDA, and runs each demo in a child
forked from that clean state.  So no demo can change another's default dtype,
grad mode, threads, random state, working directory, environment, ``sys.path``
or matplotlib settings, and starting a demo costs a fork, not an ``import torch``.

The child points fds 1 and 2 at a file (everything printed, from Python or C++,
is captured, and endless printing fills a file, not memory), records every file
under the talk's folder that the demo reads (Python's audit hooks), and writes
its Result to a file before it exits.  The server waits for the child's exit, not
for a pipe, so a demo that leaves a process behind is still seen to end.  It is a
child subreaper: whatever a demo started, even in a new session, stays its
descendant and is killed when the demo ends or times out.  When the builder goes
away for any reason, stdin closes, and the server kills everything and exits.
"""
from __future__ import annotations

import ctypes
import datetime
import importlib
import importlib.util
import io
import json
import numbers
import os
import platform
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
from html import escape

from deck.result import (Figure, Output, Provenance, Result, Table, Timing, file_hash, folder_hash,
                         seed_random_state,
                         from_json, to_json)

OUTPUT_CAP_BYTES = 64 * 1024
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
NOT_DEPENDENCIES = (".cache", "dist", "node_modules", ".git")   # folders of the talk that demos never depend on


def main() -> None:
    device, root = sys.argv[1], os.path.realpath(sys.argv[2])
    prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints of the server go to the terminal, never into the replies
    scratch = tempfile.mkdtemp(prefix="deck-worker-")
    # Demos, and the libraries they import, get the scratch folder as their TMPDIR: what they leave there
    # (torch's compiler cache, onnxruntime's session file) goes with it, so a compile is measured cold
    os.environ["TMPDIR"] = tempfile.tempdir = scratch
    for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(number, lambda *_: shut_down(scratch))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot  # noqa: F401  (imported once here, so every demo's fork has it)
        import torch
        import torch._dynamo  # noqa: F401  (an optimizer's first step imports it: a second a demo, saved)
        if torch.cuda.is_initialized():
            raise SystemExit("the demo server initialised CUDA before forking; its demos could not use the GPU")
        reply(replies, {"ready": True})
        for line in sys.stdin:
            reply(replies, run_forked(json.loads(line), device, root, scratch, replies.fileno()))
    except (BuilderGone, BrokenPipeError):
        pass   # the builder has gone: nobody to answer
    except SystemExit as stop:
        print(f"error: {stop}", file=sys.stderr)
    shut_down(scratch)


def prctl(option: int, value: int) -> None:
    """Linux only; elsewhere the builder's own clean-up is what remains."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class BuilderGone(Exception):
    """stdin closed while a demo ran: the builder ended (exit, crash or SIGKILL)."""


def shut_down(scratch: str) -> None:
    kill_descendants()
    shutil.rmtree(scratch, ignore_errors=True)
    os._exit(0)


def reply(stream, message: dict) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


# --- the server side of one demo ---------------------------------------------------------------

def run_forked(request: dict, device: str, root: str, scratch: str, replies_fd: int) -> dict:
    """Fork, run the demo in the child, wait for it (or its timeout), clean up after it."""
    result_path, output_path = os.path.join(scratch, "result.json"), os.path.join(scratch, "output.txt")
    for path in (result_path, output_path):
        if os.path.exists(path):
            os.unlink(path)
    sys.stdout.flush(), sys.stderr.flush()
    server = os.getpid()
    pid = os.fork()
    if pid == 0:
        run_child(request, device, root, result_path, output_path, server, replies_fd)
    try:
        status = wait_for(pid, request["timeout"])
    finally:
        kill_descendants()
    text, total = read_capped(output_path, request.get("output_cap", OUTPUT_CAP_BYTES))
    if status is None:
        return {"ok": False, "problem": f"timed out after {request['timeout']:g} s and was killed, with "
                f"every process it started", "output": text[-4000:]}
    try:
        with open(result_path, encoding="utf-8") as stream:
            outcome = json.load(stream)
    except (OSError, ValueError):
        how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
        return {"ok": False, "problem": f"crashed: its process ended ({how}) before it returned",
                "output": text[-4000:]}
    if "error" in outcome:
        return {"ok": False, "problem": "raised an exception:", "error": outcome["error"], "output": text[-4000:]}
    result = from_json(outcome["result"])
    result.output = Output(text=text, total_bytes=total)
    return {"ok": True, "result": to_json(result)}


def wait_for(pid: int, timeout: float) -> int | None:
    """The child's exit status (negative: the signal); None if it timed out (then it is killed).
    A closed stdin means the builder is gone: kill everything and exit."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid)
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            ready, _, _ = select.select([pidfd, sys.stdin], [], [], remaining)
            if sys.stdin in ready:   # nothing is sent while a demo runs: readable means closed
                raise BuilderGone
            if pidfd in ready:
                _, status = os.waitpid(pid, 0)
                return os.waitstatus_to_exitcode(status)
    finally:
        os.close(pidfd)


def kill_descendants() -> None:
    """SIGKILL every process below this one (as subreaper, orphans of a demo come back here), and reap."""
    me = os.getpid()
    while True:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        parents[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        below, frontier = set(), {me}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - below
            below |= frontier
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            pass
        if not below:
            return


def read_capped(path: str, cap: int) -> tuple[str, int]:
    try:
        total = os.path.getsize(path)
        with open(path, "rb") as stream:
            head = stream.read(cap)
    except OSError:
        return "", 0
    return head.decode("utf-8", errors="replace"), total


# --- the demo's own process --------------------------------------------------------------------

def run_child(request: dict, device: str, root: str, result_path: str, output_path: str,
              server: int, replies_fd: int) -> None:
    """Run one demo and write its outcome to result_path; never returns."""
    try:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        os.close(replies_fd)
        null = os.open(os.devnull, os.O_RDONLY)
        output = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0), os.dup2(output, 1), os.dup2(output, 2)
        os.close(null), os.close(output)
        os.chdir(root)
        outcome = run_demo(request, device, root)
    except BaseException:   # a failure of the harness itself is still reported, never lost
        outcome = {"error": traceback.format_exc()}
    try:
        sys.stdout.flush(), sys.stderr.flush()
    except (OSError, ValueError):
        pass   # the demo closed its own stdout: that is its business
    temporary = result_path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as stream:
        json.dump(outcome, stream)
    os.rename(temporary, result_path)
    os._exit(0)


def run_demo(request: dict, device: str, root: str) -> dict:
    reads = ReadLog(root)
    before = set(sys.modules)
    sys.addaudithook(reads.audit)
    module_name, function_name = request["demo"].rsplit(".", 1)
    started = time.perf_counter()
    try:
        check_device(device)
        seed_random_state()
        module = importlib.import_module(f"demos.{module_name}")
        returned = getattr(module, function_name)(device, request["size"], **request["args"])
        result = checked(returned, request["demo"])
    except (UnsupportedResult, SystemExit) as exception:
        return {"error": f"{type(exception).__name__}: {exception}"}
    except Exception as exception:  # a demo's failure is data for the report
        return {"error": demo_traceback(exception)}
    seconds = time.perf_counter() - started
    import torch
    result.provenance = Provenance(
        device=device, device_name=device_name(device, torch), torch=torch.__version__,
        python=platform.python_version(), seconds=seconds,
        ran_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    reads.modules(set(sys.modules) - before)
    result.reads = reads.hashes()
    return {"result": to_json(result)}


def check_device(device: str) -> None:
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        raise SystemExit(f"--device cuda: this torch build sees no CUDA device "
                         f"(torch {torch.__version__}, cuda {torch.version.cuda})")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise SystemExit("--device mps: MPS is not available on this machine")


def device_name(device: str, torch) -> str:
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name()})"
    if device == "mps":
        return "mps (Apple GPU)"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu ({model}, {os.cpu_count()} cores)"


def reading_source_for_a_traceback() -> bool:
    """linecache reads source files to print a traceback or a warning (torch.manual_seed keeps one):
    showing code is not depending on it."""
    frame = sys._getframe(2)
    for _ in range(4):
        if frame is None:
            return False
        if frame.f_code.co_filename.endswith("linecache.py"):
            return True
        frame = frame.f_back
    return False


class ReadLog:
    """Every file under the talk's folder that the demo opened, imported, listed or handed to a
    program, with the hash of its content when the demo ended: what its result depends on."""

    def __init__(self, root: str):
        self.root = root + os.sep
        self.files: set[str] = set()
        self.folders: set[str] = set()

    def audit(self, event: str, args: tuple) -> None:
        if event == "open":
            path, mode, flags = args
            if reading_source_for_a_traceback():
                return
            writing = (mode and not ("r" in mode or "+" in mode)) or (mode is None and flags & os.O_ACCMODE == os.O_WRONLY)
            if isinstance(path, (str, bytes)) and not writing:
                self.note(self.files, path)
        elif event in ("os.listdir", "os.scandir") and isinstance(args[0], (str, bytes)):
            if not sys._getframe(1).f_code.co_filename.startswith("<frozen importlib"):  # not import's own search
                self.note(self.folders, args[0])
        elif event == "subprocess.Popen" and isinstance(args[1], (list, tuple)):
            for argument in args[1]:   # a file of the talk handed to a program (g++ demos/x.cpp)
                if isinstance(argument, (str, bytes)) and os.path.isfile(argument):
                    self.note(self.files, argument)

    def note(self, into: set[str], path) -> None:
        path = os.fsdecode(path)
        path = os.path.normpath(os.path.join(os.getcwd(), path))
        if path.startswith(self.root):
            into.add(path)

    def modules(self, names: set[str]) -> None:
        for name in names:
            filename = getattr(sys.modules.get(name), "__file__", None)
            if filename:
                self.note(self.files, filename)

    def hashes(self) -> dict[str, str]:
        found = {}
        for path in self.files:
            if "__pycache__" in path and path.endswith(".pyc"):
                path = importlib.util.source_from_cache(path)
            relative = os.path.relpath(path, self.root)
            if relative.split(os.sep)[0] in NOT_DEPENDENCIES or os.path.isdir(path):
                continue
            found[relative] = file_hash(path)
        for path in self.folders:
            relative = os.path.relpath(path, self.root)
            if relative.split(os.sep)[0] not in NOT_DEPENDENCIES:
                found[relative.rstrip(os.sep) + "/"] = folder_hash(path)
        return dict(sorted(found.items()))


def demo_traceback(exception: BaseException) -> str:
    """The traceback from the demo's own frames on (the worker's frames say nothing)."""
    frames = traceback.extract_tb(exception.__traceback__)
    demo_frames = [f for f in frames if "/demos/" in f.filename.replace("\\", "/")]
    skip = frames.index(demo_frames[0]) if demo_frames else 0
    tb = exception.__traceback__
    for _ in range(skip):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exception), exception, tb))


class UnsupportedResult(TypeError):
    pass


def checked(returned, demo: str) -> Result:
    """The demo's Result with plain values and figures as SVG; anything else is reported."""
    if returned is None:
        returned = Result()
    if not isinstance(returned, Result):
        raise UnsupportedResult(f"demo {demo} returned a {type(returned).__module__}.{type(returned).__qualname__}; "
                                "a demo returns deck.result.Result (or None)")
    for what, items, kind in (("tables", returned.tables, Table), ("figures", returned.figures, Figure)):
        for item in items:
            if not isinstance(item, kind):
                raise UnsupportedResult(f"demo {demo}: {what} holds a {type(item).__qualname__}, not a {kind.__name__}")
    for name, timing in returned.timings.items():
        if not isinstance(timing, Timing):
            raise UnsupportedResult(f"demo {demo}: timings[{name!r}] is a {type(timing).__qualname__}, not a Timing "
                                    "(use demos._timing.measure)")
    return Result(
        values={name: plain(value, f"values[{name!r}]", demo) for name, value in returned.values.items()},
        measured={name: plain(value, f"measured[{name!r}]", demo) for name, value in returned.measured.items()},
        tables=[Table([str(c) for c in t.columns], [[cell(v) for v in row] for row in t.rows], str(t.caption))
                for t in returned.tables],
        figures=[Figure(alt=str(f.alt), svg=svg(f.figure, f"{demo}-{i}", str(f.alt)))
                 for i, f in enumerate(returned.figures)],
        timings={name: Timing(float(t.median_s), float(t.iqr_s), int(t.repeats), str(t.device))
                 for name, t in returned.timings.items()})


def plain(value, where: str, demo: str):
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [plain(v, f"{where}[{i}]", demo) for i, v in enumerate(value)]
    raise UnsupportedResult(f"demo {demo}: {where} is a {type(value).__module__}.{type(value).__qualname__}; "
                            "values must be numbers, strings, booleans or lists of them (use .item() on a tensor)")


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def svg(figure, prefix: str, alt: str) -> str:
    """The figure as a standalone SVG document (shown through <img>, so it can never run script)."""
    import matplotlib
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": prefix, "svg.fonttype": "none"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):].replace("<svg ", f'<svg role="img" aria-label="{escape(alt)}" ', 1)


if __name__ == "__main__":
    main()
