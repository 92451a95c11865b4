"""Load ``slides/*.md`` into Slide records: attributes, title, body and notes, with line numbers.

A file holds several slides separated by a line ``---``.  A slide may start with
``<!-- .slide: timing=60 class="title" background="#123" -->``; speaker notes
follow a line ``Note:``.  Nothing here evaluates slide text.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from deck.boundary import check_inside, display
from deck.errors import BuildError, closest
from deck.memo import Memo

SLIDE_ATTRIBUTES = {"timing", "class", "background", "id", "transition"}
ATTRIBUTE_LINE = re.compile(r"^\s*<!--\s*\.slide:(.*?)-->\s*$")
SEPARATOR = re.compile(r"^---\s*$")
NOTES = re.compile(r"^(Note|Notes):\s*$")
HEADING = re.compile(r"^(#{1,3})\s+(.*?)\s*#*\s*$")


@dataclass
class Slide:
    file: str                 # path as the presenter knows it, e.g. "slides/50-basics.md"
    line: int                 # first line of the slide in that file
    number: int               # 1-based position in the deck
    attributes: dict[str, str] = field(default_factory=dict)
    title: str = ""
    body: str = ""            # Markdown + Jinja, padded with newlines so template lines are file lines
    notes: str = ""           # likewise

    @property
    def timing(self) -> int | None:
        return int(self.attributes["timing"]) if "timing" in self.attributes else None

    @property
    def location(self) -> str:
        return f"{self.file}:{self.line}"


def load_slides(slides_dir: Path, root: Path, memo: Memo | None = None) -> list[Slide]:
    """Every slide, in order; with serve's ``memo``, a file that has not changed is not parsed again."""
    memo = memo or Memo()
    check_inside(slides_dir, root)
    files = sorted(slides_dir.glob("*.md"))
    if not files:
        raise BuildError(f"no slides: {display(slides_dir, root)}/ has no *.md files",
                         file=display(slides_dir, root))
    check_distinct_names(files, root)
    slides: list[Slide] = []
    for path in files:
        first = len(slides) + 1
        slides.extend(memo.of_files(("slides", path, first), [path],
                                    lambda: parse_file(path, display(path, root), first_number=first)))
    return slides


def check_distinct_names(files: list[Path], root: Path) -> None:
    """Two slide files whose names differ only in case are one file on macOS and Windows file systems."""
    seen: dict[str, Path] = {}
    for path in files:
        other = seen.setdefault(path.name.casefold(), path)
        if other != path:
            raise BuildError(f"{display(other, root)} and {display(path, root)} differ only in case: on macOS "
                             "and Windows they are the same file; rename one", file=display(path, root))


def parse_file(path: Path, name: str, first_number: int = 1) -> list[Slide]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[:error.start].count(b"\n") + 1
        raise BuildError(f"not valid UTF-8 (byte 0x{raw[error.start]:02x} at offset {error.start}); "
                         "save the file as UTF-8", file=name, line=line) from None
    lines = text.splitlines()
    chunks: list[tuple[int, list[str]]] = [(1, [])]
    in_fence = False
    for number, line in enumerate(lines, start=1):
        if line.lstrip().startswith(("```", "~~~")):
            in_fence = not in_fence
        if SEPARATOR.match(line) and not in_fence:
            chunks.append((number + 1, []))
        else:
            chunks[-1][1].append(line)
    slides = []
    for start, chunk in chunks:
        if not any(line.strip() for line in chunk):
            continue  # blank space between separators is not a slide
        slides.append(parse_slide(name, start, chunk, first_number + len(slides)))
    return slides


def parse_slide(name: str, start: int, lines: list[str], number: int) -> Slide:
    slide = Slide(file=name, line=start, number=number)
    body_lines = list(lines)
    # Attribute comments may open the slide (after blank lines).
    for offset, line in enumerate(lines):
        if not line.strip():
            continue
        match = ATTRIBUTE_LINE.match(line)
        if match:
            slide.attributes.update(parse_attributes(match.group(1), name, start + offset))
            body_lines[offset] = ""
            continue
        if line.lstrip().startswith("<!--") and ".slide" in line:
            raise BuildError("malformed slide attribute comment; expected "
                             "<!-- .slide: timing=60 class=\"name\" -->", file=name, line=start + offset)
        break
    notes_at = next((i for i, line in enumerate(body_lines) if NOTES.match(line)), None)
    if notes_at is not None:
        notes_lines = body_lines[notes_at + 1:]
        body_lines = body_lines[:notes_at]
        slide.notes = "\n" * (start + notes_at) + "\n".join(notes_lines)
    slide.body = "\n" * (start - 1) + "\n".join(body_lines)
    for line in body_lines:
        heading = HEADING.match(line)
        if heading:
            slide.title = heading.group(2)
            break
    return slide


def parse_attributes(text: str, name: str, line: int) -> dict[str, str]:
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise BuildError(f"malformed slide attribute: {error}", file=name, line=line) from None
    attributes = {}
    for word in words:
        key, equals, value = word.partition("=")
        if key.startswith("data-"):
            key = key[5:]
        if not equals or not key:
            raise BuildError(f"malformed slide attribute {word!r}: expected key=value", file=name, line=line)
        if key not in SLIDE_ATTRIBUTES:
            raise BuildError(f"unknown slide attribute {key!r}{closest(key, SLIDE_ATTRIBUTES)}; "
                             f"known: {', '.join(sorted(SLIDE_ATTRIBUTES))}", file=name, line=line)
        if key == "timing" and not (value.isdigit() and int(value) > 0):
            raise BuildError(f"timing must be a whole number of seconds > 0, not {value!r}",
                             file=name, line=line)
        attributes[key] = value
    return attributes
