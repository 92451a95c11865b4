"""What a demo returns, and the ``python -m demos.NAME`` entry point.

Nothing here knows about slides: a demo fills a ``Result`` and the deck builder
turns it into HTML.  Values must be plain numbers, strings or booleans (call
``.item()`` on a tensor), so they can be cached as JSON and used in prose.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Timing:
    """A measured duration: median and spread (interquartile range) of repeats."""
    median_s: float
    iqr_s: float
    repeats: int
    device: str

    def __str__(self) -> str:
        return f"{format_seconds(self.median_s)} ± {format_seconds(self.iqr_s / 2)} (median of {self.repeats}, {self.device})"


@dataclass
class Table:
    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""


@dataclass
class Figure:
    """A matplotlib figure and the alt text a screen reader says for it."""
    figure: Any
    alt: str


@dataclass
class Result:
    values: dict[str, Any] = field(default_factory=dict)
    # numbers derived from timings (speed-ups, calls per second): they vary run to run
    measured: dict[str, Any] = field(default_factory=dict)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    timings: dict[str, Timing] = field(default_factory=dict)


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def is_demo(function: Callable) -> bool:
    """A demo is a public function whose first parameters are (device, size)."""
    if not inspect.isfunction(function) or function.__name__.startswith("_"):
        return False
    names = list(inspect.signature(function).parameters)[:2]
    return names == ["device", "size"]


def demos_in(module) -> dict[str, Callable]:
    return {name: f for name, f in vars(module).items()
            if is_demo(f) and f.__module__ == module.__name__}


def default_device() -> str:
    import torch
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def print_result(result: Result | None, figure_dir: str) -> None:
    if result is None:
        return
    for name, value in {**result.values, **result.measured}.items():
        print(f"  {name} = {value}")
    for name, timing in result.timings.items():
        print(f"  time {name}: {timing}")
    for table in result.tables:
        print(f"  table {table.caption}")
        print("    " + " | ".join(map(str, table.columns)))
        for row in table.rows:
            print("    " + " | ".join(map(str, row)))
    for i, figure in enumerate(result.figures):
        path = os.path.join(figure_dir, f"figure-{i}.svg")
        figure.figure.savefig(path)
        print(f"  figure {path}: {figure.alt}")


def main(module_name: str) -> None:
    """Run every demo of a module (or the ones named) and print what they found.

    Called as ``main(__name__)`` at the end of each demo module.
    """
    import matplotlib
    matplotlib.use("Agg")
    module = importlib.import_module(module_name)
    if module_name == "__main__" and module.__spec__:  # python -m demos.NAME
        module_name = module.__spec__.name
    demos = demos_in(module)
    parser = argparse.ArgumentParser(prog=f"python -m {module_name}")
    parser.add_argument("names", nargs="*", help=f"demos to run (default: all of {', '.join(demos)})")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--size", default="full", choices=["small", "full"])
    args = parser.parse_args()
    device = args.device or default_device()
    unknown = [name for name in args.names if name not in demos]
    if unknown:
        parser.error(f"no demo {', '.join(unknown)} in {module_name}; its demos: {', '.join(demos)}")
    for name in args.names or demos:
        print(f"== {module_name}.{name} (device={device}, size={args.size})")
        sys.stdout.flush()
        result = demos[name](device, args.size)
        print_result(result, tempfile.mkdtemp(prefix=f"{name}-"))
