"""``python -m demos.NAME``: run a module's demos alone and print what they found.

Each demo module ends with ``main(__name__)``.  The builder does not use this:
it runs each demo in a process of its own (deck/worker.py).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
import tempfile

from deck.result import Result, best_device, seed_random_state


def demos_in(module) -> dict:
    """A demo is a public function whose first parameters are (device, size)."""
    return {name: f for name, f in vars(module).items()
            if inspect.isfunction(f) and f.__module__ == module.__name__ and not name.startswith("_")
            and list(inspect.signature(f).parameters)[:2] == ["device", "size"]}


def print_result(result: Result | None, name: str) -> None:
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
    figure_dir = tempfile.mkdtemp(prefix=f"{name}-") if result.figures else ""  # kept: the SVGs are for you
    for i, figure in enumerate(result.figures):
        path = os.path.join(figure_dir, f"figure-{i}.svg")
        figure.figure.savefig(path)
        print(f"  figure {path}: {figure.alt}")


def main(module_name: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import torch
    module = importlib.import_module(module_name)
    if module_name == "__main__" and module.__spec__:  # python -m demos.NAME
        module_name = module.__spec__.name
    demos = demos_in(module)
    parser = argparse.ArgumentParser(prog=f"python -m {module_name}")
    parser.add_argument("names", nargs="*", help=f"demos to run (default: all of {', '.join(demos)})")
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    parser.add_argument("--size", default="full", choices=["small", "full"])
    args = parser.parse_args()
    device = args.device or best_device(torch)
    unknown = [name for name in args.names if name not in demos]
    if unknown:
        parser.error(f"no demo {', '.join(unknown)} in {module_name}; its demos: {', '.join(demos)}")
    for name in args.names or demos:
        print(f"== {module_name}.{name} (device={device}, size={args.size})")
        sys.stdout.flush()
        seed_random_state()   # as in the build, so the numbers match the slides'
        result = demos[name](device, args.size)
        print_result(result, name)
