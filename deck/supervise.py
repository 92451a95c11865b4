"""Process supervision for the demo server: wait for a demo, kill everything it started, notice the
builder going away.  Portable POSIX calls and psutil; Linux's extras where the platform has them.

On Linux the server is a child subreaper (``prctl``): every process a demo starts, even one that
double-forks into a new session, stays its descendant, so killing the server's process tree kills
it.  The server and each demo also get a parent-death signal there, and the server waits on a
pidfd.  Elsewhere (or with ``DECK_SUPERVISION=portable``, which takes the same path on Linux) each
demo leads a process group of its own, the tree is walked by psutil, the wait polls, and the
closed-stdin watch is what tells the server that the builder has gone.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys
import time

import psutil

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
POLL_S = 0.02            # how often the portable wait looks at the demo
KILL_ROUNDS_S = 5.0      # how long kill_tree keeps finding and killing processes before giving up


class BuilderGone(Exception):
    """stdin closed while a demo ran: the builder ended (exit, crash or SIGKILL)."""


def linux_extras() -> bool:
    """Whether to use prctl and pidfd (Linux), or only the portable calls."""
    return sys.platform.startswith("linux") and os.environ.get("DECK_SUPERVISION") != "portable"


def why_demos_cannot_run(platform: str = sys.platform) -> str | None:
    """Why the demo server cannot run on this platform, or None.  It forks one process per demo from
    a process that has imported torch: Windows has no fork; on macOS, fork without exec in a process
    whose system frameworks have started threads (torch's import does) is unsafe, which is why
    CPython's multiprocessing stopped forking there by default in 3.8."""
    if platform == "win32":
        return "Windows has no fork()"
    if platform == "darwin":
        return "on macOS a process that has imported torch cannot be forked safely"
    return None


def prctl(option: int, value: int) -> bool:
    if not linux_extras():
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(number: signal.Signals) -> None:
    """Get ``number`` when the parent process ends (Linux); elsewhere the stdin watch does the work."""
    prctl(PR_SET_PDEATHSIG, number)


def become_subreaper() -> bool:
    """Orphans of descendants come back to this process (Linux) instead of leaving its tree."""
    return prctl(PR_SET_CHILD_SUBREAPER, 1)


def wait_for(pid: int, timeout: float, watched=sys.stdin) -> int | None:
    """The child's exit status (negative: the signal), or None if it timed out: then it is still running,
    for kill_tree to kill it with its descendants at once (killed first, its children would leave its tree).
    ``watched`` becoming readable (the builder closed our stdin) raises BuilderGone."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid) if linux_extras() and hasattr(os, "pidfd_open") else None
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            waits = [watched] if pidfd is None else [watched, pidfd]
            ready, _, _ = select.select(waits, [], [], remaining if pidfd is not None else min(remaining, POLL_S))
            if watched in ready:   # nothing is sent while a demo runs: readable means closed
                raise BuilderGone
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill_tree(groups: tuple[int, ...] = ()) -> None:
    """SIGKILL every descendant of this process and every process of ``groups``, and reap them.
    A descendant can fork while its parent is being killed, so repeat until none is found."""
    me, deadline = psutil.Process(), time.monotonic() + KILL_ROUNDS_S
    while time.monotonic() < deadline:
        below = me.children(recursive=True)   # first: a killed parent's children would leave the tree
        for group in groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for process in below:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        reap()
        if not below:
            return


def reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass
