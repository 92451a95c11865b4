"""What the builder and the demo server say to each other: the types, and their one (de)serialiser.

The builder starts ``python -m deck.worker CONFIG`` with a ``ServerConfig`` (as
JSON), waits for ``Ready``, then sends one ``Request`` line per demo on stdin
and reads one ``Reply`` line per demo from stdout.  A server that has to stop
(a preload it cannot import, say) first says why in a ``Stopped`` line.  A
demo's own process writes its ``Reply`` to a file the same way.  A failure
travels as a ``Problem`` kind, never as prose to be searched: the builder
decides by the kind, the text only says the details.

Standard library only (and ``deck.result``): the builder, which never imports
torch, and the server, which does, both import it.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from deck.result import Result, ResultFormatError, from_json, to_json

OUTPUT_CAP_BYTES = 64 * 1024   # what a demo printed is kept up to this; the rest is counted, not held
OUTPUT_TAIL_CHARS = 4000       # how much of a failed demo's output its error shows
MAX_LINE_BYTES = 256 * 1024 * 1024   # a reply bigger than this is a broken server, not a result
DEMO_FOLDER_PREFIX = "d"   # the server gives each demo TMPDIR=SCRATCH/dXXXXXXXX (tempfile.mkdtemp's 8 characters)


class Problem(enum.Enum):
    """Why a demo gave no result."""
    TIMED_OUT = "timed out"                   # killed at its time limit, with every process it started
    CRASHED = "crashed"                       # its process ended before it wrote a reply
    RAISED = "raised"                         # the demo raised an exception
    UNSUPPORTED_RESULT = "unsupported result"  # it returned something a result cannot hold
    CHANGED_WHILE_RUNNING = "changed while running"   # a file it read was edited while it ran
    WROTE_PROTECTED = "wrote protected"       # it wrote into slides/, templates/ or the output folder
    DEVICE_UNAVAILABLE = "device unavailable"  # --device names a device this machine lacks
    SERVER_GONE = "server gone"               # the demo server stopped answering


class ProtocolError(ValueError):
    """A message of the wrong shape; the text names the field."""


@dataclass(frozen=True)
class ServerConfig:
    device: str                    # cpu, cuda or mps; or auto, which the server resolves and says in Ready
    root: str                      # the talk's folder: the demo's working directory, what reads are relative to
    demos: str                     # the folder of the demos package (its name is the folder's name)
    scratch: str                   # the server's temporary folder, made (and at the end removed) by the builder
    protected: tuple[str, ...] = ()   # folders no demo may write into
    output_cap: int = OUTPUT_CAP_BYTES
    preload: tuple[str, ...] = ()     # modules the server imports once, before any demo (torch always)


@dataclass(frozen=True)
class Request:
    demo: str                      # module.function inside the demos package
    args: dict = field(default_factory=dict)
    size: str = "full"
    timeout_s: float = 600.0


@dataclass(frozen=True)
class Ready:
    """The server has imported torch and matplotlib and waits for requests."""
    device: str                    # what its demos run on (``auto`` resolved)


@dataclass(frozen=True)
class Stopped:
    """The server is stopping, before it was ready or between requests: why, for the build's error."""
    reason: str                    # one line, e.g. "[tool.deck] preload: cannot import pandas: No module named …"


@dataclass
class Reply:
    """A demo's result, or the problem that stopped it (``message``: one line; ``detail``: a traceback)."""
    result: Result | None = None
    problem: Problem | None = None
    message: str = ""
    detail: str = ""
    output: str = ""               # the end of what a failed demo printed

    @property
    def ok(self) -> bool:
        return self.problem is None


def failed(problem: Problem, message: str = "", detail: str = "", output: str = "") -> Reply:
    return Reply(problem=problem, message=message, detail=detail, output=output)


# --- (de)serialisation: the one place ----------------------------------------------------------

def encode(message: ServerConfig | Request | Ready | Stopped | Reply) -> str:
    """One JSON line (without the newline)."""
    if isinstance(message, Ready):
        data: dict[str, Any] = {"type": "ready", "device": message.device}
    elif isinstance(message, Stopped):
        data = {"type": "stopped", "reason": message.reason}
    elif isinstance(message, Reply):
        data = {"type": "reply", "result": None if message.result is None else to_json(message.result),
                "problem": None if message.problem is None else message.problem.value,
                "message": message.message, "detail": message.detail, "output": message.output}
    elif isinstance(message, ServerConfig):
        data = {"type": "config", "device": message.device, "root": message.root, "demos": message.demos,
                "scratch": message.scratch, "protected": list(message.protected), "output_cap": message.output_cap,
                "preload": list(message.preload)}
    else:
        data = {"type": "request", "demo": message.demo, "args": message.args, "size": message.size,
                "timeout_s": message.timeout_s}
    return json.dumps(data, allow_nan=False)


def decode(line: str | bytes) -> ServerConfig | Request | Ready | Stopped | Reply:
    """The message ``encode`` wrote, every field checked; ProtocolError names a bad one."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ProtocolError("not a message: expected an object with a type")
    kind = data.pop("type")
    readers = {"ready": _ready, "stopped": _stopped, "reply": _reply, "config": _config, "request": _request}
    if kind not in readers:
        raise ProtocolError(f"type: unknown message type {kind!r:.40}")
    return readers[kind](data)


def _fields(data: dict, kind: str, types: dict[str, type | tuple]) -> dict:
    missing, extra = set(types) - set(data), set(data) - set(types)
    if missing or extra:
        raise ProtocolError(f"{kind}: {'missing ' + ', '.join(sorted(missing)) if missing else ''}"
                            f"{'; ' if missing and extra else ''}{'unknown ' + ', '.join(sorted(extra)) if extra else ''}")
    for name, wanted in types.items():
        value = data[name]
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in _tuple(wanted)):
            raise ProtocolError(f"{kind}.{name}: expected {_names(wanted)}, got {type(value).__name__}")
    return data


def _tuple(wanted) -> tuple:
    return wanted if isinstance(wanted, tuple) else (wanted,)


def _names(wanted) -> str:
    return " or ".join("null" if t is type(None) else t.__name__ for t in _tuple(wanted))


def _ready(data: dict) -> Ready:
    _fields(data, "ready", {"device": str})
    return Ready(data["device"])


def _stopped(data: dict) -> Stopped:
    _fields(data, "stopped", {"reason": str})
    return Stopped(data["reason"])


def _reply(data: dict) -> Reply:
    _fields(data, "reply", {"result": (dict, type(None)), "problem": (str, type(None)), "message": str,
                            "detail": str, "output": str})
    try:
        problem = None if data["problem"] is None else Problem(data["problem"])
    except ValueError:
        raise ProtocolError(f"reply.problem: unknown problem {data['problem']!r:.40}") from None
    if (problem is None) == (data["result"] is None):
        raise ProtocolError("reply: expected either a result or a problem")
    try:
        result = None if data["result"] is None else from_json(data["result"])
    except ResultFormatError as error:
        raise ProtocolError(f"reply.{error}") from None
    return Reply(result=result, problem=problem, message=data["message"], detail=data["detail"],
                 output=data["output"])


def _config(data: dict) -> ServerConfig:
    _fields(data, "config", {"device": str, "root": str, "demos": str, "scratch": str, "protected": list,
                             "output_cap": int, "preload": list})
    if not all(isinstance(path, str) for path in data["protected"]):
        raise ProtocolError("config.protected: expected a list of folders")
    if not all(isinstance(name, str) for name in data["preload"]):
        raise ProtocolError("config.preload: expected a list of module names")
    return ServerConfig(data["device"], data["root"], data["demos"], data["scratch"], tuple(data["protected"]),
                        data["output_cap"], tuple(data["preload"]))


def _request(data: dict) -> Request:
    _fields(data, "request", {"demo": str, "args": dict, "size": str, "timeout_s": (int, float)})
    if "." not in data["demo"]:
        raise ProtocolError(f"request.demo: expected module.function, got {data['demo']!r:.60}")
    return Request(data["demo"], data["args"], data["size"], float(data["timeout_s"]))
