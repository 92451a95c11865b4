"""Honest timings: warm up, repeat, report the median and the spread.

On a GPU, work is queued and returns at once, so every measurement waits for the
device to finish (``synchronize``) before reading the clock.
"""
from __future__ import annotations

import contextlib
import statistics
import time
from typing import Callable

from demos._results import Timing


def synchronize(device: str) -> None:
    import torch
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    elif device.startswith("mps"):
        torch.mps.synchronize()


def measure(fn: Callable[[], object], device: str = "cpu", *, warmup: int = 2,
            repeats: int = 7, min_repeat_s: float = 0.005) -> Timing:
    """Time ``fn()`` on ``device``; each repeat runs it often enough to last ``min_repeat_s``."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    # Find how many calls make one repeat long enough for the clock to be trusted.
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        elapsed = time.perf_counter() - start
        if elapsed >= min_repeat_s or calls >= 1 << 16:
            break
        calls *= 2
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        synchronize(device)
        samples.append((time.perf_counter() - start) / calls)
    quartiles = statistics.quantiles(samples, n=4)
    return Timing(median_s=statistics.median(samples), iqr_s=quartiles[2] - quartiles[0],
                  repeats=repeats, device=device)


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
