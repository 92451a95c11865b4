"""What a demo returns and what running it recorded: one set of types for every stage.

A demo builds a ``Result`` (values, tables, figures, timings).  The worker adds
what it saw while the demo ran: the printed output, the provenance, and the
files the demo read.  The cache, results archives and the renderer read results
back through ``from_json``, which checks every field, so a damaged cache entry or
a tampered archive is refused with the field named instead of crashing later.

This module imports only the standard library: demos, the worker (which has
torch) and the builder (which must not) all import it.  It is the one module of
``deck`` that a demo may import.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import stat
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Union

FORMAT = 2  # bump when the serialised shape changes: older cache entries are then rerun

# Bounds on what a serialised result may hold, checked on the way in (a cache entry, an archive, a reply)
# and so also when a demo's result is stored: what is stored can always be read back.
MAX_ITEMS = {"values": 1000, "measured": 1000, "timings": 1000, "tables": 100, "figures": 100,
             "reads": 10_000, "rows": 10_000, "columns": 100}
MAX_LIST = 100_000             # items in any other list, a value's included
MAX_TEXT = 1 << 20             # characters in a string (a figure's SVG: MAX_SVG)
MAX_SVG = 16 << 20
MAX_DEPTH = 16                 # lists nested in a value

Value = Union[bool, int, float, str, None, list]   # what a slide can put in a sentence


@dataclass(frozen=True)
class DemoCall:
    """One demo to run: its name and the literal arguments slides gave it (as sorted JSON)."""
    demo: str
    args_json: str = "{}"

    @property
    def args(self) -> dict:
        return json.loads(self.args_json)


class ResultFormatError(ValueError):
    """A serialised result of the wrong shape; the message names the field."""


@dataclass
class Timing:
    """A measured duration: median and spread (interquartile range) of repeated runs.

    A single run (``repeats == 1``, a cold or once-only cost) has no spread to report:
    it says nothing about how much the next run would differ, so its range is unknown
    (``low_s`` 0, ``high_s`` infinite) and no comparison can call it faster or slower.
    """
    median_s: float
    iqr_s: float
    repeats: int
    device: str

    @property
    def single_run(self) -> bool:
        return self.repeats == 1

    @property
    def low_s(self) -> float:
        return 0.0 if self.single_run else self.median_s - self.iqr_s / 2

    @property
    def high_s(self) -> float:
        return math.inf if self.single_run else self.median_s + self.iqr_s / 2

    def __str__(self) -> str:
        if self.single_run:
            return f"{format_seconds(self.median_s)} (a single run, {self.device})"
        return (f"{format_seconds(self.median_s)} ± {format_seconds(self.iqr_s / 2)} "
                f"(median of {self.repeats}, {self.device})")


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    """A matplotlib figure (inside the demo's process) and the alt text a screen reader says.
    The worker turns the figure into SVG; only ``alt`` and ``svg`` travel."""
    figure: Any = field(default=None, compare=False, repr=False)
    alt: str = ""
    svg: str = ""


@dataclass
class Output:
    """What the demo printed (from Python or C++), capped; ``total_bytes`` is what it printed in all."""
    text: str = ""
    total_bytes: int = 0

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self.text.encode())


@dataclass
class Provenance:
    device: str          # cpu, cuda, mps
    device_name: str     # e.g. "cuda (NVIDIA H200)"
    torch: str
    python: str
    ran_at: str          # ISO 8601, UTC
    seconds: float       # how long the demo took
    stale: bool = False  # imported from an archive although what it read has changed since


@dataclass
class Result:
    # filled by the demo
    values: dict[str, Value] = field(default_factory=dict)
    measured: dict[str, Value] = field(default_factory=dict)   # what depends on timings: varies run to run
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)
    # filled by the run stage
    output: Output = field(default_factory=Output)
    provenance: Provenance | None = None
    reads: dict[str, str] = field(default_factory=dict)   # talk-relative path -> sha256 of what the demo read
    error: str = ""                                        # why the demo failed (--keep-going)

    @property
    def failed(self) -> bool:
        return bool(self.error)


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def best_device(torch) -> str:
    """What --device auto means: CUDA, then Apple's MPS, then the CPU."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def seed_random_state(seed: int = 0) -> None:
    """Every demo starts from the same random state (Python, NumPy, torch), in the build and alone."""
    import random

    import numpy
    import torch
    random.seed(seed)
    numpy.random.seed(seed)
    torch.manual_seed(seed)


# --- what a demo read: Result.reads maps talk-relative paths to these hashes -------------------

NOT_A_FILE = "not a regular file"   # the hash of a FIFO, a device, ...: never equal to a file's


def file_hash(path: str) -> str:
    """sha256 of a file's content; '' for a file that does not exist (creating it changes the hash).
    Only a regular file is opened: a FIFO or a device (/dev/zero) never is (and should one replace the file
    between the look and the open, the open does not block and it is not read)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return NOT_A_FILE
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except (FileNotFoundError, NotADirectoryError):
        return ""
    except OSError:
        return NOT_A_FILE
    with open(handle, "rb") as stream:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            return NOT_A_FILE
        return hashlib.file_digest(stream, "sha256").hexdigest()


def check_read_path(relative: str, where: str = "reads") -> None:
    """A path a result says its demo read: relative to the talk, inside it, plainly spelt ('./' is the
    talk's folder itself).  Whether it leads out through a link is a question about this machine:
    see deck.runner.FileHashes."""
    parts = relative.removesuffix("/").split("/")
    if relative != "./" and (relative.startswith("/") or "\\" in relative or "\0" in relative
                             or any(part in ("", ".", "..") for part in parts)):
        raise ResultFormatError(f"{where}: not a path inside the talk: {relative!r:.80}")


def folder_hash(path: str) -> str:
    """sha256 of a folder's listing; adding or removing a file changes it."""
    try:
        names = sorted(os.listdir(path))
    except OSError:
        return ""
    return hashlib.sha256("\0".join(names).encode()).hexdigest()


# --- (de)serialisation: the one place ----------------------------------------------------------

def to_json(result: Result) -> dict:
    """A JSON-ready dict of everything but live matplotlib figures."""
    data = dataclasses.asdict(result)
    for figure in data["figures"]:
        del figure["figure"]
    return data


def digest(result: Result) -> str:
    """A hash of everything a slide can show of this result."""
    return hashlib.sha256(json.dumps(to_json(result), sort_keys=True).encode()).hexdigest()


def from_json(data: Any, where: str = "result") -> Result:
    """A Result from ``to_json``'s output, every field checked; ResultFormatError names the bad one."""
    return _read(data, Result, where)


def _read(data: Any, kind: Any, path: str) -> Any:
    origin, arguments = typing.get_origin(kind), typing.get_args(kind)
    if kind == Value:
        return _read_value(data, path)
    if dataclasses.is_dataclass(kind):
        if not isinstance(data, dict):
            raise _wrong(path, f"an object ({kind.__name__})", data)
        hints = typing.get_type_hints(kind, globalns=globals())
        wanted = {f.name for f in dataclasses.fields(kind) if f.name != "figure"}
        missing, extra = wanted - set(data), set(data) - wanted
        if missing or extra:
            problem = f"missing {', '.join(sorted(missing))}" if missing else f"unknown {', '.join(sorted(extra))}"
            raise ResultFormatError(f"{path}: {problem}")
        for name in wanted & set(MAX_ITEMS):
            if isinstance(data[name], (list, dict)) and len(data[name]) > MAX_ITEMS[name]:
                raise ResultFormatError(f"{path}.{name}: more than {MAX_ITEMS[name]} items")
        return kind(**{name: _read(data[name], hints[name], f"{path}.{name}") for name in sorted(wanted)})
    if origin in (Union, types.UnionType):   # X | None
        if data is None and type(None) in arguments:
            return None
        return _read(data, next(a for a in arguments if a is not type(None)), path)
    if origin is list:
        if not isinstance(data, list):
            raise _wrong(path, "a list", data)
        if len(data) > MAX_LIST:
            raise ResultFormatError(f"{path}: more than {MAX_LIST} items")
        return [_read(item, arguments[0], f"{path}[{i}]") for i, item in enumerate(data)]
    if origin is dict:
        if not isinstance(data, dict):
            raise _wrong(path, "an object", data)
        for key in data:
            _check_text(key, f"{path} key {key!r:.40}", MAX_TEXT)
            if path.endswith(".reads"):
                check_read_path(key, path)
        return {key: _read(item, arguments[1], f"{path}.{key}") for key, item in data.items()}
    if kind is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise _wrong(path, "a number", data)
        return _finite(float(data), path)
    if kind in (int, str, bool):
        if type(data) is not kind:
            raise _wrong(path, f"a {kind.__name__}", data)
        if kind is str:
            _check_text(data, path, MAX_SVG if path.endswith(".svg") else MAX_TEXT)
        return data
    raise TypeError(f"no reader for {kind!r}")


def _read_value(data: Any, path: str, depth: int = 0) -> Value:
    if data is None or isinstance(data, (bool, int)):
        return data
    if isinstance(data, str):
        return _check_text(data, path, MAX_TEXT)
    if isinstance(data, float):
        return _finite(data, path)
    if isinstance(data, list):
        if depth >= MAX_DEPTH or len(data) > MAX_LIST:
            raise ResultFormatError(f"{path}: lists nested deeper than {MAX_DEPTH} or longer than {MAX_LIST}")
        return [_read_value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(data)]
    raise _wrong(path, "a number, string, boolean or list", data)


def _finite(number: float, path: str) -> float:
    if not math.isfinite(number):
        raise ResultFormatError(f"{path}: {number} is not a finite number (JSON has no NaN or infinity)")
    return number


def _check_text(text: str, path: str, limit: int) -> str:
    if len(text) > limit:
        raise ResultFormatError(f"{path}: a string of {len(text)} characters, over the limit of {limit}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ResultFormatError(f"{path}: not text (a lone surrogate at character {error.start})") from None
    return text


def _wrong(path: str, expected: str, data: Any) -> ResultFormatError:
    shown = repr(data)
    return ResultFormatError(f"{path}: expected {expected}, got {shown[:60] + '…' if len(shown) > 60 else shown}")

