"""Honest timings: warm up, repeat, report the median and the spread.

On a GPU, work is queued and returns at once, so every measurement waits for the
device to finish (``synchronize``) before reading the clock.  ``measure`` leaves
that, and the rest, to ``torch.utils.benchmark``.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable, TypeVar

from deck.result import Timing, format_seconds

T = TypeVar("T")


def synchronize(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()


def measure(fn: Callable[[], object], device: str = "cpu", *, repeats: int = 5,
            min_run_time: float = 0.2) -> Timing:
    """Time ``fn()`` on ``device`` with ``torch.utils.benchmark``.

    The Timer warms up, sizes blocks of calls so each block is long enough for the
    clock, and synchronises the GPU (CUDA or MPS) around every block.  Slow calls
    get extra blocks until there are ``repeats`` of them.
    """
    import torch
    from torch.utils.benchmark import Measurement, Timer
    # num_threads: keep the caller's setting (the Timer would otherwise time torch on one thread).
    timer = Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    measured = timer.blocked_autorange(min_run_time=min_run_time)
    while len(measured.times) < repeats:
        measured = Measurement.merge([measured, timer.timeit(measured.number_per_run)])[0]
    return Timing(median_s=measured.median, iqr_s=measured.iqr, repeats=len(measured.times), device=device)


def once(fn: Callable[[], T], device: str = "cpu") -> tuple[T, Timing]:
    """Call ``fn()`` once and time it: for a cold or one-off cost (a first compile, an export).

    The device is synchronised before the clock starts and before it stops.  The
    Timing says it is a single run (``repeats=1``): it has no spread, and claims
    never call it faster or slower than anything on its own.
    """
    synchronize(device)
    start = time.perf_counter()
    value = fn()
    synchronize(device)
    return value, Timing(median_s=time.perf_counter() - start, iqr_s=0.0, repeats=1, device=device)


def from_samples(samples: list[float], device: str = "cpu") -> Timing:
    """Durations timed one by one (each call its own run): their median and interquartile range."""
    low, _, high = statistics.quantiles(samples, n=4) if len(samples) > 1 else samples * 3
    return Timing(median_s=statistics.median(samples), iqr_s=high - low, repeats=len(samples),
                  device=device)


def cell(timing: Timing) -> str:
    """A Timing short enough for a table cell: one run as one number, repeated runs as the
    median ± half the interquartile range (the device is in the table's caption)."""
    if timing.repeats == 1:
        return f"{format_seconds(timing.median_s)}, one run"
    return f"{format_seconds(timing.median_s)} ± {format_seconds(timing.iqr_s / 2)}"


@contextlib.contextmanager
def one_thread():
    """Run torch on one CPU thread inside the block (restored afterwards).

    Networks as small as the talk's gain nothing from threads, and on a busy
    CPU torch's thread pool waits for the cores: one thread is faster and steadier.
    """
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
