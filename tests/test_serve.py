"""Live preview: served on 127.0.0.1 to its own name only, rebuilt on change, no demo rerun for prose."""
import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, build_here, environment_of_a_build, scratch_dir
from deck.errors import BuildError
from test_faults import workers_of


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def wait_for(condition, timeout: float = 30, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def start_serving(project, **environment) -> tuple[str, str, subprocess.Popen]:
    """`python build.py serve` on a free port: (base url, the URL it printed with its token, process).
    In a process group of its own, as a terminal starts it: os.killpg(process.pid, SIGINT) is Ctrl-C there."""
    process = subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(project), "serve",
                                "--port", "0"], stderr=subprocess.PIPE, text=True, process_group=0,
                               env=dict(os.environ, TMPDIR=str(scratch_dir(project)), **environment),
                               # Ctrl-C's default action even where the tests run as a background job
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = ""
    while "serving http://" not in log:
        line = process.stderr.readline()
        assert line, log
        log += line
    printed = re.search(r"serving (http://[\d.]+:\d+/\?token=\S+)", log).group(1)
    return printed.split("?")[0], printed, process


@pytest.fixture
def server(built_project):
    """A built fixture talk being served; yields (project, base url, process)."""
    project = built_project
    url, _, process = start_serving(project)
    yield project, url, process
    if process.poll() is None:
        process.kill()
        process.wait()


def listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on a port (from /proc/net/tcp and tcp6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:              # 0A: LISTEN
                    found.append(address)
    return found


@pytest.mark.slow
def test_serves_on_loopback_and_rebuilds_on_a_prose_edit(server):
    project, url, process = server
    assert url.startswith("http://127.0.0.1:")
    assert listening_addresses(int(url.rsplit(":", 1)[1].strip("/"))) == ["0100007F"]  # 127.0.0.1 only
    page = fetch(url)
    assert "A talk about" in page and "/__deck__/events" in page
    version = int(re.search(r'deck-live-version" content="(\d+)"', page).group(1))
    slide = project / "slides" / "10-intro.md"
    slide.write_text(slide.read_text().replace("A talk about", "A live talk about"))
    wait_for(lambda: "A live talk about" in fetch(url), timeout=60)
    assert int(re.search(r'deck-live-version" content="(\d+)"', fetch(url)).group(1)) > version
    process.send_signal(signal.SIGINT)            # Ctrl-C
    _, log = process.communicate(timeout=20)
    assert process.returncode == 0
    assert "changed: 10-intro.md" in log and not re.search(r"\[\d+/\d+\]", log)   # prose: no demo reruns
    assert workers_of(project) == []


def test_a_port_in_use_is_an_error_before_anything_is_built(project):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = build_here(project, "serve", "--port", str(port))
    assert started.returncode == 1
    assert f"error: port {port} on 127.0.0.1 is already in use" in started.stderr
    assert f"--port {port + 1}" in started.stderr and "Traceback" not in started.stderr
    assert not (project / "dist").exists() and not (project / ".cache").exists()   # nothing was built


@pytest.mark.slow
def test_a_demo_edit_reruns_only_that_demo_in_a_demo_server_kept_warm(server):
    project, url, process = server
    module = project / "demos" / "words.py"
    module.write_text(module.read_text().replace('"hello"', '"howdy"'))
    try:
        wait_for(lambda: "HOWDY" in fetch(url), timeout=120)
        kept = workers_of(project)                  # the demo server, and no demo process
        module.write_text(module.read_text().replace('"howdy"', '"hiya"'))
        wait_for(lambda: "HIYA" in fetch(url), timeout=120)   # the edited module, imported afresh
        assert len(kept) == 1 and workers_of(project) == kept
    finally:
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=20)
        print(log)
    assert re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", log) == ["words.shout"] * 2
    assert workers_of(project) == []


LIVE_DEMOS = """from pathlib import Path

from deck.result import Result


def broken(device, size="full"):
    raise ValueError("broken on purpose")


def counted(device, size="full"):   # reads a file outside the talk: no edit of the talk changes its key
    return Result(values={"n": int(Path(COUNTER).read_text())})
"""
FAILED_MARK = '<span class="value-error">⚠ demo failed</span>'   # what --keep-going shows for live.broken
LIVE_SLIDES = """<!-- .slide: timing=10 -->
## Broken

{{ result("live.broken").n }}

Note:
x

---
<!-- .slide: timing=10 -->
## Counted

n is {{ result("live.counted").n }}.
{% claim result("live.counted").n < 3, "n stays small" %}

Note:
x
"""


def live_talk(project, counter) -> None:
    """The fixture talk with two more slides: one showing a demo that fails, one a demo whose value is in a
    file outside the talk (so no edit of the talk changes its key), under a claim."""
    counter.write_text("1")
    (project / "demos" / "live.py").write_text(LIVE_DEMOS.replace("COUNTER", repr(str(counter))))
    (project / "slides" / "30-live.md").write_text(LIVE_SLIDES)


@contextlib.contextmanager
def live_deck(project, *args: str):
    """serve's deck (build.LiveDeck) in this process, with its demo server, as `serve ARGS` makes it."""
    import build
    from deck.memo import Memo
    from deck.runner import DemoServer
    options, memo = build.parse_arguments(["serve", "--root", str(project), *args]), Memo()
    with environment_of_a_build(project, {}), contextlib.redirect_stderr(io.StringIO()), \
            DemoServer(build.run_settings(options, memo)) as server:
        yield build.LiveDeck(options, server, memo)


@pytest.mark.slow
def test_with_keep_going_another_slides_error_does_not_stop_a_rerun(built_project, tmp_path):
    """serve --keep-going: a rerun is kept when the slides that show its demo build, whatever another
    demo's failure shows elsewhere; a claim its new result makes false still keeps the previous result."""
    project, counter, index = built_project, tmp_path / "counter.txt", built_project / "dist" / "index.html"
    live_talk(project, counter)
    with live_deck(project, "--keep-going") as live:
        live.build()                                                           # serve's first build
        assert FAILED_MARK in index.read_text() and "n is 1." in index.read_text()
        counter.write_text("2")
        live.rerun("live.counted")
        assert "n is 2." in index.read_text() and FAILED_MARK in index.read_text()   # the mark stays
        counter.write_text("5")
        before = index.read_text()
        with pytest.raises(BuildError, match='slides/30-live.md:14: claim "n stays small" is false'):
            live.rerun("live.counted")
        assert index.read_text() == before


@pytest.mark.slow
def test_with_results_a_rerun_keeps_its_own_result_on_later_rebuilds(built_project, tmp_path):
    """serve --results FILE: the archive's result until the deck reruns that demo here; from then on the
    rerun's, on every rebuild (an edit's), not the archive's again."""
    project, counter, index = built_project, tmp_path / "counter.txt", built_project / "dist" / "index.html"
    live_talk(project, counter)
    (project / "slides" / "30-live.md").write_text(LIVE_SLIDES.split("---")[1])   # the counted slide alone
    archive = tmp_path / "results.tar"
    assert build_here(project, "--export-results", str(archive)).returncode == 0   # n is 1 in the archive
    counter.write_text("2")
    with live_deck(project, "--results", str(archive)) as live:
        live.build()
        assert "n is 1." in index.read_text()                                  # the archive's
        live.rerun("live.counted")
        assert "n is 2." in index.read_text()
        live.build()                                                           # as after an edit
        assert "n is 2." in index.read_text()
