"""The live preview's protocol: who may drive it, what changed between two builds, the pages' event stream.

The server pushes each rebuild to every open page as a Server-Sent Event
``update`` holding only the slides (``<section>``s) whose HTML changed; the page
patches them in place (templates/live.js).  Anyone on the machine can reach a
port on 127.0.0.1, and so can a web page through DNS rebinding or a cross-site
request, so every request must name the server itself in ``Host`` (and in
``Origin`` when it has one), and a request that changes state must carry the
token made for this run.
"""
from __future__ import annotations

import hmac
import queue
import threading
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from deck.provenance import provenance_rows
from deck.references import Reference
from deck.result import DemoCall, Result

KEEP_ALIVE_S = 15     # a comment on an idle event stream, so nothing between closes it
BACKLOG = 256         # events waiting for one page; a page further behind is sent no more


@dataclass(frozen=True)
class Guard:
    """The checks every request to the preview server passes: its own name, its own origin, the run's token."""
    port: int
    token: str

    @property
    def cookie_name(self) -> str:
        return f"deck_token_{self.port}"   # cookies are per host, not per port: one name per server

    def refusal(self, headers) -> str:
        """Why a request is refused (empty if it is not): a foreign Host or Origin."""
        hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if headers.get("Host", "") not in hosts:
            return f"Host must be 127.0.0.1:{self.port} or localhost:{self.port}"
        origin = headers.get("Origin")
        if origin is not None and origin not in {f"http://{host}" for host in hosts}:
            return "a request from another origin"
        return ""

    def change_refusal(self, headers, query: str) -> str:
        """Why a state-changing request is refused: the refusal above, or no token, or the wrong one."""
        return self.refusal(headers) or ("" if self.has_token(headers, query) else
                                                "this needs the token printed in the URL on the terminal")

    def has_token(self, headers, query: str) -> bool:
        """The run's token, sent as ?token=, the X-Deck-Token header, or the cookie the page got."""
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("Cookie", ""))
        except Exception:   # a malformed cookie header carries no token
            cookie = SimpleCookie()
        given = [*parse_qs(query).get("token", []), headers.get("X-Deck-Token", "")]
        if self.cookie_name in cookie:
            given.append(cookie[self.cookie_name].value)
        return any(hmac.compare_digest(value.encode(), self.token.encode()) for value in given if value)

    def cookie(self) -> str:
        """Set-Cookie for a page opened with the right token: later requests from it carry the token."""
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"


OPENING, CLOSING = '\n<section id="', "\n</section>\n"   # how deck.html.j2 writes each slide: lines of its own


@dataclass
class Snapshot:
    """A built page cut into what the open page can patch: its slides by id, and its stylesheet."""
    ids: list[str]
    sections: dict[str, str]
    css: str
    frame: str            # everything else; when it changes, the page must reload

    @classmethod
    def of(cls, page: str, css: str) -> "Snapshot":
        ids, sections, frame, at = [], {}, [], 0
        while (start := page.find(OPENING, at)) >= 0 and (end := page.find(CLOSING, start)) >= 0:
            section = page[start + 1:end + len(CLOSING) - 1]
            ids.append(section[len(OPENING) - 1:section.index('"', len(OPENING) - 1)])
            sections[ids[-1]] = section
            frame.append(page[at:start].strip())   # a slide added or removed leaves the rest as it was
            at = end + len(CLOSING) - 1
        frame.append(page[at:])
        return cls(ids=ids, sections=sections, css=css, frame="".join(frame))

    def changes(self, new: "Snapshot") -> dict:
        """What the open page needs to become the new build: changed slides, or all of them, or a reload."""
        if new.frame != self.frame:
            return {"reload": True}
        update: dict = {"changed": [], "css": new.css if new.css != self.css else None}
        if new.ids == self.ids and len(set(new.ids)) == len(new.ids):
            update["changed"] = [{"id": i, "html": new.sections[i]} for i in new.ids
                                 if new.sections[i] != self.sections[i]]
        else:   # slides added, removed, moved or sharing an id: replace them all
            update["slides"] = "\n".join(new.sections[i] for i in new.ids)
        return update


class EventStream:
    """Server-Sent Events to every open page: each subscriber has its own queue; None ends its stream."""

    def __init__(self):
        self.lock = threading.Lock()
        self.subscribers: list[queue.Queue] = []
        self.closed = False

    def subscribe(self) -> queue.Queue:
        subscriber: queue.Queue = queue.Queue(maxsize=BACKLOG)
        with self.lock:
            if self.closed:
                subscriber.put(None)
            self.subscribers.append(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: queue.Queue) -> None:
        with self.lock:
            if subscriber in self.subscribers:
                self.subscribers.remove(subscriber)

    def publish(self, event: str, data: str) -> None:
        message = f"event: {event}\ndata: {data}\n\n".encode()
        with self.lock:
            for subscriber in self.subscribers:
                try:
                    subscriber.put_nowait(message)
                except queue.Full:   # a page that stopped reading: end its stream (it reconnects, and reloads)
                    self.end(subscriber)

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for subscriber in self.subscribers:
                try:
                    subscriber.put_nowait(None)   # after what it still has to send
                except queue.Full:                # never wait on a page that stopped reading
                    self.end(subscriber)

    @staticmethod
    def end(subscriber: queue.Queue) -> None:
        """End one page's stream now, dropping what it has not sent yet."""
        with subscriber.mutex:
            subscriber.queue.clear()
        subscriber.put_nowait(None)

    @staticmethod
    def messages(subscriber: queue.Queue):
        """What to write to one page: each event, a keep-alive comment when idle, until closed."""
        while True:
            try:
                message = subscriber.get(timeout=KEEP_ALIVE_S)
            except queue.Empty:
                message = b": keep-alive\n\n"
            if message is None:
                return
            yield message


@dataclass
class SlideFacts:
    """What the speaker view lists for a slide: each result it shows, with where and when it ran."""
    rows: list[dict] = field(default_factory=list)

    @property
    def demos(self) -> str:
        return " ".join(dict.fromkeys(row["demo"] for row in self.rows))


def slide_facts(references: list[Reference], results: dict[DemoCall, Result]) -> dict[int, SlideFacts]:
    """For each slide number, the results it shows (once each), from the scan's references."""
    shown: dict[int, dict[DemoCall, Result]] = {}
    for reference in references:
        if reference.call is not None and reference.call in results:
            shown.setdefault(reference.slide, {})[reference.call] = results[reference.call]
    return {number: SlideFacts(provenance_rows(calls)) for number, calls in shown.items()}
