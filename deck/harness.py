"""One demo's own process: forked from the demo server, it runs the demo and writes its Reply.

Fds 1 and 2 point at a file, so everything printed (from Python or C++) is captured and endless
printing fills a file, not memory.  The read log (an audit hook) records what the demo read and
refuses writes into the build's own folders.  The reply goes to a file, written whole, before
the process exits; the server reads it once the process has ended.
"""
from __future__ import annotations

import datetime
import importlib
import os
import platform
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass

from deck import supervise
from deck.normalise import UnsupportedResult, checked
from deck.protocol import Problem, ProtocolError, Reply, Request, ServerConfig, decode, encode, failed
from deck.readlog import ReadLog
from deck.result import Provenance, seed_random_state


@dataclass(frozen=True)
class Paths:
    """Where one demo's child writes: its reply, what it prints, and its own TMPDIR (the server removes it)."""
    reply: str
    output: str
    tmpdir: str


def run_child(request: Request, config: ServerConfig, paths: Paths, server: int, close_fds: tuple[int, ...]) -> None:
    """Run one demo and write its reply to paths.reply; never returns."""
    try:
        os.setpgid(0, 0)   # a group of its own: what it starts is killed with it, even without a subreaper
        supervise.die_with_parent(signal.SIGKILL)
        if os.getppid() != server:
            os._exit(1)
        for number in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(number, signal.SIG_DFL)
        for fd in close_fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        output = os.open(paths.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(null, 0), os.dup2(output, 1), os.dup2(output, 2)
        os.close(null), os.close(output)
        os.chdir(config.root)
        os.environ["TMPDIR"] = tempfile.tempdir = paths.tmpdir
        reply = run_demo(request, config)
    except BaseException:   # a failure of the harness itself is still reported, never lost
        reply = failed(Problem.RAISED, "the demo harness failed", traceback.format_exc())
    try:
        sys.stdout.flush(), sys.stderr.flush()
    except (OSError, ValueError):
        pass   # the demo closed its own stdout: that is its business
    write_reply(reply, paths.reply)
    os._exit(0)


def write_reply(reply: Reply, path: str) -> None:
    """The reply, read back before it is written: what the server cannot read is reported, not sent."""
    temporary = path + ".tmp"
    try:
        text = encode(reply)
        decode(text)
    except (ValueError, ProtocolError) as error:   # a name in reads no result may hold, say
        text = encode(failed(Problem.UNSUPPORTED_RESULT, f"its result cannot be stored: {error}"))
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.rename(temporary, path)


def run_demo(request: Request, config: ServerConfig) -> Reply:
    reads = ReadLog(config.root, config.protected, config.scratch)
    before = set(sys.modules)
    sys.addaudithook(reads.audit)
    started = time.perf_counter()
    problem = device_problem(config.device)
    if problem:
        return failed(Problem.DEVICE_UNAVAILABLE, problem)
    raised = None
    try:
        returned = call_demo(request, config)
    except (Exception, SystemExit) as exception:  # a demo's failure is data for the report
        returned, raised = None, exception
    if reads.refused:
        return failed(Problem.WROTE_PROTECTED, ", ".join(sorted(set(reads.refused))))
    if raised is not None:
        return failed(Problem.RAISED, f"{type(raised).__name__}: {raised}", demo_traceback(raised, config.demos))
    try:
        result = checked(returned, request.demo)
    except UnsupportedResult as exception:
        return failed(Problem.UNSUPPORTED_RESULT, str(exception))
    seconds = time.perf_counter() - started
    reads.modules(set(sys.modules) - before)
    changed = reads.changed()
    if changed:
        return failed(Problem.CHANGED_WHILE_RUNNING, ", ".join(changed))
    result.provenance = provenance(config.device, seconds)
    result.reads = reads.dependencies()
    return Reply(result=result)


def call_demo(request: Request, config: ServerConfig):
    """The demo's return value, called as a slide asked, from the same random state every time."""
    seed_random_state()
    package = os.path.basename(os.path.normpath(config.demos))
    module_name, function_name = request.demo.rsplit(".", 1)
    module = importlib.import_module(f"{package}.{module_name}")
    return getattr(module, function_name)(config.device, request.size, **request.args)


def provenance(device: str, seconds: float) -> Provenance:
    import torch
    return Provenance(device=device, device_name=device_name(device, torch), torch=torch.__version__,
                      python=platform.python_version(), seconds=seconds,
                      ran_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))


def device_problem(device: str) -> str:
    import torch
    if device == "cuda" and not torch.cuda.is_available():
        return (f"--device cuda: this torch build sees no CUDA device "
                f"(torch {torch.__version__}, cuda {torch.version.cuda})")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return "--device mps: MPS is not available on this machine"
    return ""


def device_name(device: str, torch) -> str:
    if device.startswith("cuda"):
        return f"cuda ({torch.cuda.get_device_name()})"
    if device == "mps":
        return "mps (Apple GPU)"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:   # Linux names the model here; elsewhere platform's word stays
            model = next((l.split(":", 1)[1].strip() for l in cpuinfo if l.startswith("model name")), model)
    except OSError:
        pass
    return f"cpu ({model}, {os.cpu_count()} cores)"


def demo_traceback(exception: BaseException, demos: str) -> str:
    """The traceback from the demo's own frames on (the harness's frames say nothing)."""
    folder = os.path.realpath(demos) + os.sep
    frames = traceback.extract_tb(exception.__traceback__)
    demo_frames = [f for f in frames if os.path.realpath(f.filename).startswith(folder)]
    skip = frames.index(demo_frames[0]) if demo_frames else 0
    tb = exception.__traceback__
    for _ in range(skip):
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exception), exception, tb))
