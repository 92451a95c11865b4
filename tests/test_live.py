"""The live preview's protocol, in process: who may drive the server, what a rebuild sends the open pages."""
import http.client
import json
import socket
import threading
from concurrent.futures import Future

import pytest

from deck.errors import BuildError
from deck.live import BACKLOG, EventStream, Guard, Snapshot, slide_facts
from deck.references import Reference
from deck.result import DemoCall, Provenance, Result
from deck.serve import Preview, listen, work

PAGE = """<!doctype html><html><head><meta http-equiv="Content-Security-Policy" content="script-src 'self'">
</head><body><div class="reveal"><div class="slides">
<section id="slide-1" data-timing="10">
<h1>Title</h1>
</section>

<section id="slide-2" data-timing="10" data-demos="arith.tensor_sum">
<p>The sum is 45.</p>
</section>

</div>
</div></body></html>
"""


@pytest.fixture
def preview(tmp_path):
    """A preview server in this process on a free port, serving PAGE; yields (port, preview, reruns asked)."""
    (tmp_path / "index.html").write_text(PAGE)
    server = listen(0, tmp_path)
    port = server.server_address[1]
    server.preview = Preview(tmp_path, "/* live */", Guard(port=port, token="s3cret"))
    asked = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield port, server.preview, asked
    server.preview.events.close()
    server.shutdown()
    server.server_close()


def request(port: int, method: str, path: str, headers: dict | None = None) -> tuple[int, dict, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers={"Host": f"127.0.0.1:{port}", **(headers or {})})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


RERUN = "/__deck__/rerun?demo=arith.tensor_sum"


@pytest.mark.parametrize("path, headers, why", [
    (RERUN, {}, "needs the token"),
    (RERUN + "&token=wrong", {}, "needs the token"),
    (RERUN, {"X-Deck-Token": "s3cre"}, "needs the token"),
    (RERUN, {"Cookie": "deck_token_1=s3cret"}, "needs the token"),            # another server's cookie
    (RERUN + "&token=s3cret", {"Host": "attacker.example:{port}"}, "Host must be"),   # DNS rebinding
    (RERUN + "&token=s3cret", {"Host": "127.0.0.1:1"}, "Host must be"),
    (RERUN + "&token=s3cret", {"Origin": "http://attacker.example"}, "another origin"),
    (RERUN + "&token=s3cret", {"Origin": "http://127.0.0.1:1"}, "another origin"),
    (RERUN + "&token=s3cret", {"Origin": "null"}, "another origin"),
])
def test_a_rerun_without_the_token_or_from_elsewhere_is_refused_and_nothing_runs(preview, path, headers, why):
    port, served, _ = preview
    headers = {name: value.format(port=port) for name, value in headers.items()}
    status, _, body = request(port, "POST", path, headers)
    assert status == 403 and why in json.loads(body)["refused"]
    assert served.jobs.empty()


@pytest.mark.parametrize("credential", [{"X-Deck-Token": "s3cret"}, {"Cookie": "deck_token_{port}=s3cret"},
                                        {"Origin": "http://localhost:{port}", "X-Deck-Token": "s3cret"}])
def test_a_rerun_with_the_token_from_the_deck_itself_runs_in_turn(preview, credential):
    port, served, _ = preview
    asked = []
    worker = threading.Thread(target=work, args=(served, lambda: None, asked.append), daemon=True)
    worker.start()
    headers = {name: value.format(port=port) for name, value in credential.items()}
    status, _, body = request(port, "POST", RERUN, headers)
    assert status == 200 and json.loads(body) == {"demo": "arith.tensor_sum", "state": "updated"}
    assert asked == ["arith.tensor_sum"]


def test_only_a_demo_the_deck_shows_can_be_rerun(preview):
    port, served, _ = preview
    status, _, body = request(port, "POST", "/__deck__/rerun?demo=os.system&token=s3cret")
    assert status == 404 and "not a demo this deck shows" in body
    assert served.jobs.empty()


def test_a_foreign_host_is_refused_even_for_reading(preview):
    port, _, _ = preview
    for path in ("/", "/index.html", "/__deck__/events"):
        for method in ("GET", "HEAD"):
            assert request(port, method, path, {"Host": f"rebound.example:{port}"})[0] == 403
    status, _, page = request(port, "GET", "/", {"Host": f"localhost:{port}"})
    assert status == 200 and "The sum is 45." in page


def test_the_page_opened_with_the_token_keeps_it_in_a_strict_http_only_cookie(preview):
    port, _, _ = preview
    _, headers, page = request(port, "GET", "/?token=s3cret")
    assert headers["Set-Cookie"] == f"deck_token_{port}=s3cret; Path=/; HttpOnly; SameSite=Strict"
    assert "/* live */" in page and '<meta name="deck-live-version" content="0">' in page
    assert "script-src 'sha256-" in page                      # the live script is allowed by its hash only
    assert "Set-Cookie" not in request(port, "GET", "/?token=wrong")[1]
    assert "Set-Cookie" not in request(port, "GET", "/")[1]


def test_a_burst_of_connections_waits_in_the_listen_queue_not_for_a_retry(tmp_path):
    """A browser opens many connections at once: they all fit in the listen queue while the server is busy
    (a full queue drops the connection, and the browser retries only a second later)."""
    (tmp_path / "index.html").write_text(PAGE)
    server = listen(0, tmp_path)
    port = server.server_address[1]
    server.preview = Preview(tmp_path, "", Guard(port=port, token="t"))
    sockets, serving = [], threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    try:
        for _ in range(64):   # nothing accepts yet: each connection must be queued at once
            sockets.append(socket.create_connection(("127.0.0.1", port), timeout=0.5))
            sockets[-1].sendall(f"HEAD /index.html HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        serving.start()
        # A full queue drops a connection attempt (retried 1 s later), so the connects above, with their 0.5 s
        # limit, are what shows that all 64 were queued; then each is answered, however busy the machine is.
        for connection in sockets:
            connection.settimeout(30)
            assert connection.recv(12) == b"HTTP/1.0 200"
    finally:
        for connection in sockets:
            connection.close()
        if serving.is_alive():
            server.shutdown()
        server.server_close()


def test_a_rebuild_sends_only_the_slides_that_changed(tmp_path):
    old = Snapshot.of(PAGE, "h1 {}")
    edited = Snapshot.of(PAGE.replace("The sum is 45.", "The sum is 46."), "h1 {}")
    assert old.changes(edited) == {"changed": [{"id": "slide-2", "html": edited.sections["slide-2"]}],
                                   "css": None}
    assert "The sum is 46." in edited.sections["slide-2"] and edited.sections["slide-2"].endswith("</section>")
    assert old.changes(Snapshot.of(PAGE, "h1 {color: red}"))["css"] == "h1 {color: red}"
    added = PAGE.replace("</section>\n\n</div>",
                         '</section>\n\n<section id="slide-3" data-timing="5">\n<p>new</p>\n</section>\n\n</div>')
    assert "slide-3" in old.changes(Snapshot.of(added, "h1 {}"))["slides"]
    assert old.changes(Snapshot.of(PAGE.replace("<head>", "<head><title>New</title>"), "h1 {}")) == {"reload": True}


def test_a_failed_rebuild_keeps_the_last_good_deck_and_tells_the_pages(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    served = Preview(tmp_path, "", Guard(port=1, token="t"))
    page = served.events.subscribe()

    def fails(on_start):
        on_start(1, 2, DemoCall("arith.tensor_sum"))
        raise BuildError("no such demo", file="slides/a.md", line=3)
    served.rebuild(fails, ["a.md"])
    events = [page.get_nowait().decode() for _ in range(3)]
    assert '"building": ["a.md"]' in events[0] and "slides/a.md:3: no such demo" in events[2]
    assert events[1] == 'event: demo\ndata: {"demo": "arith.tensor_sum", "index": 1, "count": 2}\n\n'
    assert page.empty() and served.version == 0 and "The sum is 45." in served.page()
    (tmp_path / "index.html").write_text(PAGE.replace("45", "46"))
    served.rebuild(lambda on_start: None, ["a.md"])
    assert "building" in page.get_nowait().decode()
    update = json.loads(page.get_nowait().decode().split("data: ", 1)[1])
    assert update["version"] == 1 and [c["id"] for c in update["changed"]] == ["slide-2"]
    assert served.state() == {"version": 1, "error": ""}


def test_a_page_fetched_during_a_rebuild_is_the_published_deck_under_its_own_version(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    served = Preview(tmp_path, "", Guard(port=1, token="t"))
    seen = []

    def writes_then_is_fetched(on_start):   # the build has written index.html; its update is not out yet
        (tmp_path / "index.html").write_text(PAGE.replace("45", "46"))
        seen.append(served.page())
    served.rebuild(writes_then_is_fetched, ["a.md"])
    version = 'name="deck-live-version" content="{}"'
    assert "The sum is 45." in seen[0] and version.format(0) in seen[0]
    assert "The sum is 46." in served.page() and version.format(1) in served.page()


def test_a_rerun_that_breaks_the_deck_keeps_the_previous_result_and_says_why(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    served = Preview(tmp_path, "", Guard(port=1, token="t"))

    def falsified(demo):
        raise BuildError('claim "the sum is 45" is false on cpu: total=46', file="slides/a.md", line=7)
    outcome = served.rerun(falsified, "arith.tensor_sum")
    assert outcome == {"demo": "arith.tensor_sum", "state": "kept",
                       "reason": 'slides/a.md:7: claim "the sum is 45" is false on cpu: total=46'}
    assert served.version == 0


def test_closing_ends_a_page_that_stopped_reading_at_once():
    """Ctrl-C must not wait on an open page that stopped reading (a sleeping laptop's tab) whose queue is full."""
    stream = EventStream()
    stalled, reading = stream.subscribe(), stream.subscribe()
    for number in range(BACKLOG):
        stream.publish("update", str(number))
    reading.get_nowait()                                                  # one sent: room for the end
    closing = threading.Thread(target=stream.close, daemon=True)
    closing.start()
    closing.join(timeout=5)
    assert not closing.is_alive()
    assert list(EventStream.messages(stalled)) == []                     # ended, its backlog dropped
    assert len(list(EventStream.messages(reading))) == BACKLOG - 1        # a page that keeps up gets the rest


def test_every_page_gets_each_event_and_a_keep_alive_when_idle(monkeypatch):
    monkeypatch.setattr("deck.live.KEEP_ALIVE_S", 0.01)
    stream = EventStream()
    pages = [stream.subscribe(), stream.subscribe()]
    stream.publish("update", "{}")
    stream.close()
    for page in pages:
        assert list(EventStream.messages(page)) == [b"event: update\ndata: {}\n\n"]
    idle = EventStream().subscribe()
    assert next(EventStream.messages(idle)) == b": keep-alive\n\n"
    assert stream.subscribe().get_nowait() is None          # a page that comes after the end is ended at once


def test_the_speaker_view_facts_list_each_result_a_slide_shows_once():
    where = Provenance("cpu", "cpu (2 cores)", "2.13.0", "3.11", "2026-12-01T10:00:00+00:00", 1.5)
    total, scaled = DemoCall("arith.tensor_sum"), DemoCall("arith.scaled", '{"factor": 3}')
    results = {total: Result(provenance=where), scaled: Result(error="boom")}
    references = [Reference(total, "arith.tensor_sum", "slides/a.md", 3, 2),
                  Reference(total, "arith.tensor_sum", "slides/a.md", 4, 2),
                  Reference(None, "arith.tensor_sum", "slides/a.md", 5, 2),
                  Reference(scaled, "arith.scaled", "slides/a.md", 9, 3)]
    facts = slide_facts(references, results)
    assert sorted(facts) == [2, 3] and facts[2].demos == "arith.tensor_sum"
    assert [(row["device_name"], row["torch"], row["ran_at"]) for row in facts[2].rows] == \
        [("cpu (2 cores)", "2.13.0", "2026-12-01T10:00:00+00:00")]
    assert facts[3].rows[0]["device_name"] == "failed"


def test_reruns_and_rebuilds_take_turns_in_the_order_asked(tmp_path):
    (tmp_path / "index.html").write_text(PAGE)
    served = Preview(tmp_path, "", Guard(port=1, token="t"))
    done = []
    for job in [("files", ["a.md"], None), ("files", ["b.md"], None), ("rerun", "m.first", Future()),
                ("files", ["c.md"], None), ("rerun", "m.second", Future())]:
        served.jobs.put(job)
    while not served.jobs.empty():
        work(served, lambda on_start: done.append("build"), lambda demo: done.append(demo))
    assert done == ["build", "m.first", "build", "m.second"]       # a.md and b.md in one build
