"""Rendered slides, cached by what they show: their text, and the content of every result on them.

The key holds a digest of each result the slide shows, never the inputs that
produced it, so a rerun that changes a number re-renders every slide showing it,
and no two slides can show different values of one result.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

from deck.references import Reference
from deck.render import RenderedSlide, SlideRenderer
from deck.result import digest
from deck.files import write_file
from deck.memo import Memo, files_under
from deck.slides import Slide

RENDER_VERSION = "2"  # change when the renderer's output changes


class RenderCache:
    def __init__(self, cache_dir: Path, templates_dir: Path, memo: Memo):
        self.directory = cache_dir / "slides"
        self.memo = memo
        self.templates = memo.of_files(("templates", templates_dir), files_under(templates_dir),
                                       lambda: templates_digest(templates_dir))

    def key(self, slide: Slide, references: list[Reference], renderer: SlideRenderer) -> str:
        """What a rendered slide depends on: its text, the results and code it shows, the templates."""
        key = hashlib.sha256(RENDER_VERSION.encode() + self.templates.encode())
        key.update(json.dumps([slide.attributes, slide.body.lstrip("\n"), slide.notes.lstrip("\n"), renderer.talk],
                              sort_keys=True, default=str).encode())
        for reference in references:
            if reference.call:
                result = renderer.results[reference.call]
                key.update(self.memo.of_object(("digest", reference.call), result, lambda: digest(result)).encode())
            else:
                key.update(renderer.catalog.shown_code(reference.target)[0].encode())
        return key.hexdigest()[:32]

    def load(self, key: str, number: int) -> RenderedSlide | None:
        """The rendered slide stored under ``key``; the memo keeps one per place in the deck (``number``)."""
        path = self.directory / f"{key}.json"
        return self.memo.of_files(("slide", number), [path], lambda: self.read(path))

    @staticmethod
    def read(path: Path) -> RenderedSlide | None:
        try:
            return RenderedSlide(**json.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError):
            path.unlink(missing_ok=True)
            return None

    def store(self, key: str, slide: RenderedSlide) -> None:
        write_file(self.directory / f"{key}.json", json.dumps(dataclasses.asdict(slide)))


def templates_digest(templates_dir: Path) -> str:
    return hashlib.sha256(b"".join(
        path.name.encode() + b"\0" + path.read_bytes() for path in sorted(templates_dir.iterdir())
        if path.is_file())).hexdigest()
