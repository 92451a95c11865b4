"""Live preview: served on 127.0.0.1, rebuilt on change, reloaded on the same slide, errors overlaid."""
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import REPO, build_here
from deck.browser import chromium
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


@pytest.fixture
def server(built_project):
    """`python build.py serve` on a free port, on a built talk; yields (project, base url, process)."""
    project = built_project
    # Ctrl-C's default action even where the tests run as a background job, which inherits SIGINT ignored
    process = subprocess.Popen([sys.executable, str(REPO / "build.py"), "--root", str(project), "serve",
                                "--port", "0"], stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    log = ""
    while "serving http://" not in log:
        line = process.stderr.readline()
        assert line, log
        log += line
    url = re.search(r"serving (http://[\d.]+:\d+/)", log).group(1)
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
    assert "A talk about" in page and "/__deck__/state" in page
    version = json.loads(fetch(url + "__deck__/state"))["version"]
    slide = project / "slides" / "10-intro.md"
    slide.write_text(slide.read_text().replace("A talk about", "A live talk about"))
    wait_for(lambda: "A live talk about" in fetch(url), timeout=60)
    assert json.loads(fetch(url + "__deck__/state"))["version"] > version
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
def test_a_demo_edit_reruns_only_that_demo(server):
    project, url, process = server
    module = project / "demos" / "words.py"
    module.write_text(module.read_text().replace('"hello"', '"howdy"'))
    try:
        wait_for(lambda: "HOWDY" in fetch(url), timeout=120)
    finally:
        process.send_signal(signal.SIGINT)
        _, log = process.communicate(timeout=20)
        print(log)
    assert re.findall(r"\[\d+/\d+\] (\S+) \.\.\.", log) == ["words.shout"]


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_reloads_on_its_slide_and_shows_build_errors(server):
    project, url, process = server
    slide = project / "slides" / "20-more.md"
    with chromium() as browser:
        page = browser.new_page()
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "#/3")
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
        # the page polls the state again only once it has read it: from then on a new build reloads it
        page.wait_for_function("() => performance.getEntriesByType('resource')"
                               ".filter(entry => entry.name.endsWith('/__deck__/state')).length >= 2")
        assert page.evaluate("Reveal.getIndices().h") == 3
        slide.write_text(slide.read_text().replace("## The full block", "## The whole block"))
        page.wait_for_function("() => document.body.innerText.includes('The whole block')", timeout=20000)
        page.wait_for_function("() => window.Reveal && Reveal.isReady()")
        assert page.evaluate("Reveal.getIndices().h") == 3           # same slide after the reload
        slide.write_text(slide.read_text().replace('demo("arith.tensor_sum")', 'demo("arith.tensor_summ")'))
        page.wait_for_selector("#deck-build-error", state="visible", timeout=20000)
        overlay = page.inner_text("#deck-build-error")
        assert "slides/20-more.md:4: no demo function 'arith.tensor_summ'" in overlay
        assert "The whole block" in page.inner_text(".slides")       # the last good deck stays
        slide.write_text(slide.read_text().replace("tensor_summ", "tensor_sum"))
        page.wait_for_function("() => document.body.innerText.includes('The whole block')", timeout=20000)
        page.wait_for_selector("#deck-build-error", state="hidden", timeout=20000)
        assert errors == []                  # the live-reload script runs under the deck's policy, reload after reload
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
