"""The demo server: the only process that imports torch, and the parent of every demo.

The builder starts ``python -m deck.worker CONFIG`` (a ``deck.protocol.ServerConfig``) and talks
to it in the protocol's JSON lines: one ``Request`` per demo on stdin, one ``Reply`` on stdout.
The server imports torch and matplotlib once, never touches CUDA, and runs each demo in a child
forked from that clean state (``deck.harness``), with an empty TMPDIR of its own.  So no demo can
change another's default dtype, grad mode, threads, random state, working directory, environment,
``sys.path``, matplotlib settings or temporary files, and starting a demo costs a fork, not an
``import torch`` (``serve`` keeps one server for all its rebuilds and reruns).

The server waits for the child's exit, not for a pipe, so a demo that leaves a process behind is
still seen to end; then it kills everything the demo started (``deck.supervise``).  When the
builder goes away for any reason, stdin closes, and the server kills everything and exits.
"""
from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import signal
import sys
import tempfile

from deck import supervise
from deck.harness import Paths, run_child
from deck.protocol import (DEMO_FOLDER_PREFIX, OUTPUT_TAIL_CHARS, Problem, ProtocolError, Ready, Reply, Request,
                           ServerConfig, Stopped, decode, encode, failed)
from deck.result import best_device


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)


class Server:
    def __init__(self, config: ServerConfig, replies):
        self.config = config
        self.replies = replies
        self.scratch = config.scratch
        self.running: tuple[int, ...] = ()   # the process group of the demo running now

    def shut_down(self, *_, status: int = 0) -> None:
        supervise.kill_tree(self.running)
        shutil.rmtree(self.scratch, ignore_errors=True)
        os._exit(status)

    def send(self, message: Ready | Stopped | Reply) -> None:
        self.replies.write(encode(message) + "\n")
        self.replies.flush()

    def serve(self) -> None:
        for line in sys.stdin:
            request = decode(line)
            if not isinstance(request, Request):
                raise ProtocolError(f"expected a request, got a {type(request).__name__}")
            self.send(self.run_forked(request))

    def run_forked(self, request: Request) -> Reply:
        """Fork, run the demo in the child, wait for it (or its timeout), clean up after it."""
        reply_path, output_path = os.path.join(self.scratch, "reply.json"), os.path.join(self.scratch, "output.txt")
        for path in (reply_path, output_path):
            if os.path.exists(path):
                os.unlink(path)
        sys.stdout.flush(), sys.stderr.flush()
        # Each demo gets an empty TMPDIR of its own, removed when it ends: what it and the libraries it
        # imports leave there (torch's compiler cache, onnxruntime's session file) is gone before the next
        # demo, so a compile is measured cold however long the server has been running
        folder = tempfile.mkdtemp(prefix=DEMO_FOLDER_PREFIX, dir=self.scratch)
        server = os.getpid()
        pid = os.fork()
        if pid == 0:
            run_child(request, self.config, Paths(reply_path, output_path, folder), server, (self.replies.fileno(),))
        try:
            os.setpgid(pid, pid)   # as the child does itself: whichever runs first, the group exists
        except OSError:
            pass
        self.running = (pid,)
        try:
            status = supervise.wait_for(pid, request.timeout_s)
        finally:
            supervise.kill_tree(self.running)
            self.running = ()
            shutil.rmtree(folder, ignore_errors=True)
        text, total = read_capped(output_path, self.config.output_cap)
        if status is None:
            return failed(Problem.TIMED_OUT, f"{request.timeout_s:g} s", output=text[-OUTPUT_TAIL_CHARS:])
        try:
            with open(reply_path, encoding="utf-8") as stream:
                reply = decode(stream.read())
        except (OSError, ProtocolError):
            how = f"killed by {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
            return failed(Problem.CRASHED, how, output=text[-OUTPUT_TAIL_CHARS:])
        if reply.ok:
            reply.result.output.text, reply.result.output.total_bytes = text, total
        else:
            reply.output = text[-OUTPUT_TAIL_CHARS:]
        return reply


def read_capped(path: str, cap: int) -> tuple[str, int]:
    """The first ``cap`` bytes of what the demo printed, as text, and how many bytes it printed in all."""
    try:
        total = os.path.getsize(path)
        with open(path, "rb") as stream:
            head = stream.read(cap)
    except OSError:
        return "", 0
    return head.decode("utf-8", errors="replace"), total


def preload(modules: tuple[str, ...]) -> None:
    """Import once what every demo's fork then has: torch, and the modules [tool.deck] preload names
    (by default matplotlib.pyplot, on the Agg backend the builder sets, and torch._dynamo, which an
    optimizer's first step imports: a second a demo, saved)."""
    import torch
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise SystemExit(f"[tool.deck] preload: cannot import {name}: {error}") from None
    if torch.cuda.is_initialized():
        raise SystemExit("the demo server initialised CUDA before forking; its demos could not use the GPU")


def device_for(requested: str) -> str:
    """``auto`` resolved (deck.result.best_device) in a forked child: asking whether CUDA is available
    initialises it, and a process that has initialised CUDA cannot fork demos that use it."""
    if requested != "auto":
        return requested
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(writer, best_device(sys.modules["torch"]).encode())
        finally:
            os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        device = answer.read().decode()
    os.waitpid(pid, 0)
    if not device:
        raise SystemExit("could not tell which device --device auto means: the probe ended without an answer")
    return device


def main() -> None:
    config = decode(sys.argv[1])
    if not isinstance(config, ServerConfig):
        raise SystemExit("usage: python -m deck.worker CONFIG (a ServerConfig as JSON, from deck.runner)")
    # Until it is ready the server has started nothing: Ctrl-C, SIGTERM and SIGHUP keep their default
    # action and end it at once, even inside a long import (a Python handler waits for the import's C code)
    for number in STOP_SIGNALS:
        signal.signal(number, signal.SIG_DFL)
    supervise.die_with_parent(signal.SIGTERM)
    supervise.become_subreaper()
    sys.path.insert(0, os.path.dirname(os.path.realpath(config.demos)))
    os.environ["TMPDIR"] = tempfile.tempdir = config.scratch   # what the imports leave goes with the folder
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints of the server go to the terminal, never into the replies
    server = Server(config, replies)
    try:
        preload(config.preload)
        server.config = dataclasses.replace(config, device=device_for(config.device))
        for number in STOP_SIGNALS:   # from now on a stop kills the running demo's processes first
            signal.signal(number, server.shut_down)
        server.send(Ready(server.config.device))
        server.serve()
    except (supervise.BuilderGone, BrokenPipeError):
        pass   # the builder has gone: nobody to answer
    except (SystemExit, ProtocolError) as stop:
        try:
            server.send(Stopped(str(stop)))   # the builder puts it in the build's error
        except OSError:
            print(f"error: the demo server stopped: {stop}", file=sys.stderr)
        server.shut_down(status=1)
    server.shut_down()


if __name__ == "__main__":
    main()
