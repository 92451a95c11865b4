"""Supervision holds on the portable path too: with Linux's extras (prctl, pidfd) hidden by
DECK_SUPERVISION=portable, a timeout still kills a demo's process tree and a killed builder still
takes the server and its demos with it."""
import os
import signal
import time

import psutil
import pytest

from conftest import run_build, scratch_dir, start_build
from deck import supervise

MODES = ["linux", "portable"]


def test_the_portable_path_is_taken_when_asked(monkeypatch):
    assert supervise.linux_extras() == os.uname().sysname.startswith("Linux")
    monkeypatch.setenv("DECK_SUPERVISION", "portable")
    assert not supervise.linux_extras()
    assert not supervise.become_subreaper()   # no prctl at all on this path


@pytest.mark.parametrize("mode", MODES)
def test_wait_for_gives_the_exit_status_or_kills_at_the_timeout(monkeypatch, mode):
    if mode == "portable":
        monkeypatch.setenv("DECK_SUPERVISION", "portable")
    reader, writer = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:
            time.sleep(0.1)
            os._exit(3)
        assert supervise.wait_for(pid, 10, watched=reader) == 3
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        started = time.monotonic()
        assert supervise.wait_for(pid, 0.3, watched=reader) is None
        assert time.monotonic() - started < 5 and os.waitpid(pid, os.WNOHANG) == (0, 0)   # left for kill_tree
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pid = os.fork()
        if pid == 0:
            os.close(writer)
            time.sleep(60)
            os._exit(0)
        os.close(writer)
        writer = None
        with pytest.raises(supervise.BuilderGone):   # the watched pipe closed: the builder went away
            supervise.wait_for(pid, 10, watched=reader)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    finally:
        os.close(reader)
        if writer is not None:
            os.close(writer)


@pytest.mark.parametrize("platform, said", [("win32", "Windows has no fork()"), ("darwin", "macOS"),
                                            ("linux", None), ("freebsd14", None)])
def test_platforms_that_cannot_fork_safely_are_named(platform, said):
    reason = supervise.why_demos_cannot_run(platform)
    assert reason == said if said is None else said in reason


# --- the same isolation tests, on both paths (builds in a process: slow) ---------------------------

TREE = '''
import os, subprocess, time
from pathlib import Path
from deck.result import Result


def spreads(device, size="full"):
    """A child in a new session and an orphaned grandchild (a shell's background job), then hang."""
    in_new_session = subprocess.Popen(["sleep", "600"], start_new_session=True)
    shell = subprocess.run(["sh", "-c", "sleep 600 >/dev/null 2>&1 & echo $!"], capture_output=True, text=True)
    pids = [in_new_session.pid, int(shell.stdout), os.getpid()]
    Path(os.environ["DECK_TEST_PIDS"]).write_text(" ".join(map(str, pids)))
    time.sleep(600)
'''


def living(pids: list[int]) -> list[int]:
    """The processes still running (a zombie has ended); one may end while it is looked at."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def tree_talk(project, mode: str) -> dict:
    (project / "demos" / "tree.py").write_text(TREE)
    (project / "slides" / "30-tree.md").write_text("<!-- .slide: timing=10 -->\n## Tree\n\n"
                                                   '{{ demo("tree.spreads") }}\n\nNote:\nx\n')
    return {"DECK_TEST_PIDS": str(project.parent / "pids"), **({"DECK_SUPERVISION": "portable"} if mode == "portable" else {})}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_at_its_timeout_a_demo_is_killed_with_its_process_tree(project, mode):
    environment = tree_talk(project, mode)
    build = run_build(project, "--timeout", "8", env=dict(os.environ, TMPDIR=str(scratch_dir(project)), **environment))
    assert build.returncode == 1 and "demo tree.spreads timed out after 8 s" in build.stderr, build.stderr
    pids = [int(p) for p in (project.parent / "pids").read_text().split()]
    assert len(pids) == 3 and living(pids) == []


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_a_killed_builder_takes_the_server_and_its_demos_with_it(project, mode):
    environment = tree_talk(project, mode)
    build = start_build(project, **environment)
    pid_file = project.parent / "pids"
    deadline = time.monotonic() + 120
    while not pid_file.exists() or len(pid_file.read_text().split()) < 3:
        assert time.monotonic() < deadline and build.poll() is None, build.stderr.read()
        time.sleep(0.1)
    pids = [int(p) for p in pid_file.read_text().split()]
    server = [p.pid for p in psutil.Process(build.pid).children()]
    assert len(living(pids)) == 3 and server
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=10)
    ended = time.monotonic()
    while living(pids + server) and time.monotonic() - ended < 3:
        time.sleep(0.05)
    assert living(pids + server) == []
    assert list(scratch_dir(project).glob("demos-*")) == []
