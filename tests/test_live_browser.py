"""`python build.py serve` live on stage, in headless Chromium: edits patch the open page in place; a rerun
changes every slide showing its result, unless a claim fails or the demo fails; only the presenter drives it."""
import json
import os
import re
import shutil
import signal
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, run_build
from deck.browser import chromium
from test_faults import workers_of
from test_serve import fetch, start_serving, wait_for

COUNTER_DEMO = '''"""A demo whose value a test sets from outside the talk, to watch a rerun change it."""
import json
import os

from deck.result import Result


def counter(device, size="full"):
    with open(os.environ["LIVE_CONTROL"]) as control:
        wanted = json.load(control)
    if wanted.get("fail"):
        raise RuntimeError("the counter broke")
    return Result(values={"value": wanted["value"]})
'''

COUNTER_SLIDES = '''<!-- .slide: timing=10 id="live-one" -->
## Live count

The counter reads {{ result("live.counter").value }}.

Then a step.
{: .fragment }

{% claim result("live.counter").value < 100, "the counter stays under 100" %}

---
<!-- .slide: timing=10 id="live-two" -->
## The same count

Again: {{ result("live.counter").value }}.
'''
LIVE_ONE = 6      # the slide index of #live-one


@pytest.fixture
def live(project, tmp_path):
    """The fixture talk with its own templates and a counter demo on two slides, built and being served;
    yields (project, base url, url with the token, process, the counter's control file)."""
    shutil.copytree(REPO / "templates", project / "templates")
    (project / "demos" / "live.py").write_text(COUNTER_DEMO)
    (project / "slides" / "30-live.md").write_text(COUNTER_SLIDES)
    control = tmp_path / "control.json"
    control.write_text(json.dumps({"value": 1}))
    assert run_build(project, env=dict(os.environ, LIVE_CONTROL=str(control))).returncode == 0
    url, with_token, process = start_serving(project, LIVE_CONTROL=str(control))
    yield project, url, with_token, process, control
    if process.poll() is None:
        process.kill()
        process.wait()
    process.stderr.close()


def open_page(context, url: str, errors: list):
    page = context.new_page()
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("() => window.Reveal && Reveal.isReady() && document.getElementById('deck-live-status')")
    page.evaluate("() => { window.__marker = 1; }")
    return page


def text_of(page, selector: str) -> str:
    return page.evaluate(f"() => document.querySelector({json.dumps(selector)}).textContent")


def stop(process) -> str:
    process.send_signal(signal.SIGINT)
    _, log = process.communicate(timeout=20)
    assert process.returncode == 0, log
    return log


@pytest.mark.browser
@pytest.mark.slow
def test_an_edit_patches_the_open_page_in_place(live):
    project, _, with_token, process, _ = live
    slide, css = project / "slides" / "10-intro.md", project / "templates" / "deck.css"
    errors = []
    with chromium() as context:
        page = open_page(context, with_token, errors)
        page.evaluate(f"() => Reveal.slide({LIVE_ONE}, 0, 0)")          # its first fragment shown
        live_slides = project / "slides" / "30-live.md"
        live_slides.write_text(live_slides.read_text().replace("Then a step.", "Then a live step."))
        page.wait_for_function("() => document.querySelector('#live-one').textContent.includes('a live step')")
        assert page.evaluate("() => [window.__marker, Reveal.getIndices().h, Reveal.getIndices().f]") == \
            [1, LIVE_ONE, 0]
        assert page.evaluate("() => document.querySelector('#live-one .fragment').classList.contains('visible')")
        assert page.evaluate("() => performance.getEntriesByType('navigation').length") == 1

        css.write_text(css.read_text() + "\n.reveal h2 { color: rgb(1, 2, 3); }\n")
        page.wait_for_function("() => getComputedStyle(document.querySelector('#live-one h2')).color "
                               "=== 'rgb(1, 2, 3)'")

        text = slide.read_text()
        line = text[:text.index('figure("arith.line_plot"')].count("\n") + 1
        page.evaluate("""() => { window.__said = []; const status = document.getElementById('deck-live-status');
            new MutationObserver(() => window.__said.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true}); }""")
        slide.write_text(text.replace('figure("arith.line_plot"', 'figure("arith.line_plott"'))
        page.wait_for_selector("#deck-build-error", state="visible")
        assert "rebuilding: 10-intro.md changed …" in page.evaluate("() => window.__said")
        assert f"slides/10-intro.md:{line}: no demo function 'arith.line_plott'" in page.inner_text("#deck-build-error")
        assert "a live step" in text_of(page, "#live-one")              # the last good deck stays
        slide.write_text(text)
        live_slides.write_text(live_slides.read_text().replace("a live step", "a step"))
        page.wait_for_selector("#deck-build-error", state="hidden")
        page.wait_for_function("() => !document.querySelector('#live-one').textContent.includes('live step')")
        assert page.evaluate("() => [window.__marker, Reveal.getIndices().h]") == [1, LIVE_ONE]
        assert errors == []      # the live script runs under the deck's own policy, patch after patch
    log = stop(process)
    assert not re.search(r"\[\d+/\d+\]", log)     # prose, CSS and a bad name: no demo ran


@pytest.mark.browser
@pytest.mark.slow
def test_a_rerun_changes_both_slides_unless_a_claim_or_the_demo_fails(live, tmp_path):
    project, url, with_token, process, control = live
    errors = []
    with chromium() as context:
        page = open_page(context, with_token + f"#/{LIVE_ONE}", errors)
        assert "The counter reads 1." in text_of(page, "#live-one")
        with context.expect_page() as opened:
            page.keyboard.press("s")                                    # the speaker view
        speaker = opened.value
        speaker.wait_for_selector("#deck-live-speaker button")
        speaker.wait_for_function("() => document.body.textContent.includes('holds: the counter stays under 100')")
        assert re.search(r"live\.counter: cpu .* · torch \S+ · ran \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC",
                         speaker.inner_text("body"))

        control.write_text(json.dumps({"value": 2}))
        page.keyboard.press("r")                                        # rerun from the main view
        page.wait_for_function("() => /rerunning live.counter: [0-9.]+ s \\(last run took [0-9.]+ s\\)/"
                               ".test(document.getElementById('deck-live-status').textContent)")
        page.wait_for_function("() => document.querySelector('#live-two').textContent.includes('Again: 2.')",
                               timeout=120000)
        assert "The counter reads 2." in text_of(page, "#live-one")
        assert page.evaluate("() => [window.__marker, Reveal.getIndices().h]") == [1, LIVE_ONE]
        speaker.wait_for_function("() => document.getElementById('deck-live-speaker-status')"
                                  ".textContent.includes('slides updated')")

        control.write_text(json.dumps({"value": 150}))
        speaker.click("#deck-live-speaker button")                      # rerun from the speaker view
        speaker.wait_for_function("() => document.getElementById('deck-live-speaker-status').textContent"
                                  ".includes('keep the previous result')", timeout=120000)
        said = speaker.inner_text("#deck-live-speaker-status")
        assert 'slides/30-live.md:9: claim "the counter stays under 100" is false' in said and "value=150" in said
        assert "The counter reads 2." in text_of(page, "#live-one") and "Again: 2." in text_of(page, "#live-two")
        assert "keep the previous" not in page.inner_text("body")       # the audience is not told

        control.write_text(json.dumps({"value": 3, "fail": True}))
        reply = rerun(url, with_token)
        assert reply["state"] == "kept" and "the counter broke" in reply["reason"]
        assert "Again: 2." in text_of(page, "#live-two")

        control.write_text(json.dumps({"value": 4}))                   # a demo edit reruns it, shown in the page
        page.evaluate("""() => { window.__said = []; const status = document.getElementById('deck-live-status');
            new MutationObserver(() => window.__said.push(status.textContent))
                .observe(status, {childList: true, characterData: true, subtree: true}); }""")
        demo = project / "demos" / "live.py"
        demo.write_text(demo.read_text() + "# edited\n")
        page.wait_for_function("() => document.querySelector('#live-two').textContent.includes('Again: 4.')",
                               timeout=120000)
        said = page.evaluate("() => window.__said")
        assert any(re.fullmatch(r"rebuilding: live\.py changed; running demo 1/1 live\.counter: \d+\.\d s "
                                r"\(last run took \d+\.\d s\)", text) for text in said), said
        page.wait_for_selector("#deck-live-status", state="hidden")
        assert errors == []
    stop(process)
    # the cache holds the result the slides show: a later build shows it and runs nothing
    built = run_build(project, "--out", str(tmp_path / "later"))
    assert built.returncode == 0 and "0 to run" in built.stderr
    assert "The counter reads 4." in (tmp_path / "later" / "index.html").read_text()


def rerun(url: str, with_token: str, demo: str = "live.counter", **headers) -> dict:
    token = with_token.split("token=")[1]
    request = urllib.request.Request(f"{url}__deck__/rerun?demo={demo}", method="POST",
                                     headers={"X-Deck-Token": token, **headers})
    with urllib.request.urlopen(request, timeout=180) as response:
        return json.loads(response.read())


def refused(url: str, query: str = "", **headers) -> int:
    request = urllib.request.Request(f"{url}__deck__/rerun?demo=live.counter{query}", method="POST", headers=headers)
    try:
        urllib.request.urlopen(request, timeout=10)
    except urllib.error.HTTPError as error:
        return error.code
    return 200


@pytest.mark.browser
@pytest.mark.slow
def test_requests_without_the_token_or_from_elsewhere_run_nothing(live):
    project, url, with_token, process, control = live
    token = with_token.split("token=")[1]
    port = url.rsplit(":", 1)[1].strip("/")
    control.write_text(json.dumps({"value": 7}))
    assert refused(url) == 403
    assert refused(url, "&token=wrong") == 403
    assert refused(url, f"&token={token}", Host=f"rebound.example:{port}") == 403
    assert refused(url, f"&token={token}", Origin="http://attacker.example") == 403
    with chromium() as context:                        # a page of another site posting to the deck
        attacker = context.new_page()
        attacker.route("http://attacker.example/", lambda route: route.fulfill(
            content_type="text/html", body="<!doctype html><title>x</title>"))
        attacker.goto("http://attacker.example/")
        attacker.evaluate(f"""() => fetch("{url}__deck__/rerun?demo=live.counter", {{method: "POST",
            mode: "no-cors", credentials: "include"}}).catch(() => null)""")
    time.sleep(1)
    assert "The counter reads 1." in fetch(url)
    log = stop(process)
    assert "rerun" not in log and not re.search(r"\[\d+/\d+\]", log)


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def children(pid: int) -> list[str]:
    return [child for task in os.listdir(f"/proc/{pid}/task")
            for child in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]


def resident_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


@pytest.mark.slow
def test_a_hundred_edits_and_twenty_reruns_leave_nothing_behind(live):
    project, url, with_token, process, control = live
    slide = project / "slides" / "10-intro.md"
    listening = urllib.request.urlopen(url + "__deck__/events", timeout=60)   # an open page's event stream
    rerun(url, with_token)
    slide.write_text(slide.read_text().replace("A talk about", "Edit 0: a talk about"))
    wait_for(lambda: "Edit 0:" in fetch(url))
    files, memory = open_files(process.pid), resident_kib(process.pid)
    for edit in range(1, 101):
        slide.write_text(re.sub(r"Edit \d+:", f"Edit {edit}:", slide.read_text()))
        wait_for(lambda: f"Edit {edit}:" in fetch(url), every=0.02)
    for value in range(20):
        control.write_text(json.dumps({"value": value}))
        assert rerun(url, with_token)["state"] == "updated"
    assert f"Again: {value}." in fetch(url)
    kept = [int(pid) for pid in children(process.pid)]   # the demo server, warm for the next rerun
    assert len(kept) == 1 and workers_of(project) == kept and children(kept[0]) == []
    assert open_files(process.pid) <= files + 2       # the event stream above is still open
    assert resident_kib(process.pid) - memory < 40 * 1024
    listening.close()
    stop(process)


@pytest.mark.slow
def test_ctrl_c_during_a_rerun_ends_everything_within_two_seconds(live):
    project, url, with_token, process, control = live
    listening = urllib.request.urlopen(url + "__deck__/events", timeout=60)
    threading.Thread(target=lambda: rerun(url, with_token), daemon=True).start()
    wait_for(lambda: workers_of(project), timeout=60, every=0.02)          # the demo server is starting
    started = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)                                 # Ctrl-C in its terminal
    process.wait(timeout=10)
    wait_for(lambda: not workers_of(project), timeout=10, every=0.02)
    assert time.monotonic() - started < 2
    assert process.returncode == 0 and listening.read() is not None       # the stream was closed, not cut
    listening.close()
