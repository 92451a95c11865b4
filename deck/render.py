"""Render slides to HTML: Jinja for demo references, Markdown for prose, Pygments for code.

Each slide's Markdown is first rendered as a Jinja template (in a sandbox, with
autoescaping, so slide text is never Python and demo text is never HTML), then
converted by Python-Markdown.  Demo blocks travel through Markdown as
placeholders and are put back afterwards, so Markdown never touches their HTML.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import html
import json
import os
import re
import traceback
from dataclasses import dataclass
from pathlib import Path

import jinja2
import markdown
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_for_filename
from pygments.util import ClassNotFound

from deck.catalog import Catalog
from deck.claims import GLOBALS as CLAIM_GLOBALS, ClaimExtension
from deck.errors import BuildError, closest
from deck.references import DemoCall, Reference
from deck.slides import Slide

PYGMENTS_STYLE = "default"
PROVENANCE_SLIDE_SECONDS = 10
RENDER_VERSION = "2"  # change when the renderer's output changes, to invalidate the render cache


@dataclass
class RenderedSlide:
    number: int
    title: str
    timing: int
    location: str
    html: str
    notes_html: str
    notes_text: str
    id: str = ""
    classes: str = ""
    background: str = ""
    transition: str = ""
    key_figure: str = ""
    start_seconds: int = 0
    error: str = ""
    claims: list = dataclasses.field(default_factory=list)  # {statement, holds, detail, line} per claim


@dataclass
class RenderedDeck:
    slides: list[RenderedSlide]
    footer: str

    @property
    def total_seconds(self) -> int:
        return sum(s.timing for s in self.slides)


def format_seconds(seconds: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(seconds) >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def format_minutes(seconds: float) -> str:
    seconds = int(round(seconds or 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


def make_environment(templates_dir: Path) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(loader=jinja2.FileSystemLoader(templates_dir), autoescape=True,
                                       undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                   extensions=[ClaimExtension])
    environment.globals.update(CLAIM_GLOBALS)
    environment.filters.update(
        sci=lambda x, digits=1: f"{float(x):.{digits}e}",
        seconds=format_seconds,
        minutes=format_minutes,
        pct=lambda x, digits=1: f"{100 * float(x):.{digits}f}%",
        filesize=lambda n: f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB",
    )
    return environment


class Values:
    """``result("m.f")`` in a slide: a demo's values by name, plus .timings and .provenance."""

    def __init__(self, demo: str, result: dict):
        self._demo, self._result = demo, result

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name in ("timings", "provenance"):
            entries = self._result[name]
            return Values(f"{self._demo}.{name}", entries) if name == "provenance" else Timings(self._demo, entries)
        values = self._result.get("values", self._result)
        if name not in values:
            raise BuildError(f"demo {self._demo} has no value {name!r}{closest(name, values)}; "
                             f"its values: {', '.join(values) or '(none)'}")
        return values[name]


class Timings(Values):
    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._result:
            raise BuildError(f"demo {self._demo} has no timing {name!r}{closest(name, self._result)}; "
                             f"its timings: {', '.join(self._result) or '(none)'}")
        return Timing(**self._result[name])


@dataclass
class Timing:
    median_s: float
    iqr_s: float
    repeats: int
    device: str

    def __str__(self) -> str:
        return (f"{format_seconds(self.median_s)} ± {format_seconds(self.iqr_s / 2)} "
                f"(median of {self.repeats}, {self.device})")


class FailedValues:
    """What ``result()`` gives for a demo that failed under --keep-going: a visible marker."""

    def __getattr__(self, name: str):
        return Markup('<span class="value-error">⚠ demo failed</span>')


class SlideRenderer:
    def __init__(self, environment: SandboxedEnvironment, catalog: Catalog, results: dict[DemoCall, dict],
                 talk: dict, keep_going: bool = False, slide_errors: dict | None = None):
        self.environment = environment
        self.slide_errors = slide_errors or {}  # reference errors found by the scan (--keep-going)
        loader = environment.loader
        self.templates_digest = hashlib.sha256(b"".join(
            Path(directory, name).read_bytes() for directory in loader.searchpath
            for name in sorted(loader.list_templates()))).hexdigest()
        self.catalog = catalog
        self.results = results
        self.keep_going = keep_going
        self.blocks_html: list[str] = []
        self.figures_on_slide: list[str] = []
        self.formatter = HtmlFormatter(cssclass="highlight", style=PYGMENTS_STYLE)
        environment.globals.update(talk=talk, demo=self.demo, code=self.code, output=self.output,
                                   figure=self.figure, table=self.table, timings=self.timings,
                                   result=self.result)

    @functools.cached_property
    def macros(self):
        return self.environment.get_template("blocks.html.j2").module

    @functools.cached_property
    def markdown(self) -> markdown.Markdown:
        return markdown.Markdown(
            extensions=["extra", "attr_list", "sane_lists", "codehilite"],
            extension_configs={"codehilite": {"guess_lang": False, "css_class": "highlight",
                                              "pygments_style": PYGMENTS_STYLE}})

    # --- what slides can call ---------------------------------------------------------------
    def demo(self, name: str, args: dict | None = None) -> Markup:
        result = self.lookup(name, args)
        if "error" in result:
            return self.block(self.macros.error_card(result["error"]))
        parts = [self.code_html(name), self.macros.output(result)]
        parts += [self.macros.table(t) for t in result["tables"]]
        parts += [self.figure_html(f) for f in result["figures"]]
        if result["timings"]:
            parts.append(self.macros.timings(result))
        parts.append(self.macros.provenance(result))
        return self.block(Markup('<div class="demo">') + Markup("\n").join(parts) + Markup("</div>"))

    def code(self, name: str) -> Markup:
        return self.block(self.code_html(name))

    def output(self, name: str, args: dict | None = None) -> Markup:
        result = self.lookup(name, args)
        if "error" in result:
            return self.block(self.macros.error_card(result["error"]))
        return self.block(self.macros.output(result))

    def figure(self, name: str, index: int = 0, args: dict | None = None) -> Markup:
        result = self.lookup(name, args)
        if "error" in result:
            return self.block(self.macros.error_card(result["error"]))
        figures = result["figures"]
        if not 0 <= index < len(figures):
            raise BuildError(f"demo {name} has {len(figures)} figure(s); figure index {index} does not exist")
        return self.block(self.figure_html(figures[index]))

    def table(self, name: str, index: int = 0, args: dict | None = None) -> Markup:
        result = self.lookup(name, args)
        if "error" in result:
            return self.block(self.macros.error_card(result["error"]))
        tables = result["tables"]
        if not 0 <= index < len(tables):
            raise BuildError(f"demo {name} has {len(tables)} table(s); table index {index} does not exist")
        return self.block(self.macros.table(tables[index]))

    def timings(self, name: str, args: dict | None = None) -> Markup:
        result = self.lookup(name, args)
        if "error" in result:
            return self.block(self.macros.error_card(result["error"]))
        return self.block(self.macros.timings(result))

    def result(self, name: str, args: dict | None = None):
        result = self.lookup(name, args)
        return FailedValues() if "error" in result else Values(name, result)

    # --- helpers ------------------------------------------------------------------------------
    def lookup(self, name: str, args: dict | None) -> dict:
        return self.results[DemoCall(name, json.dumps(args or {}, sort_keys=True))]

    def code_html(self, name: str) -> Markup:
        source, caption, filename = self.catalog.shown_code(name)
        try:
            lexer = get_lexer_for_filename(filename)
        except ClassNotFound:
            lexer = get_lexer_for_filename("x.txt")
        return self.macros.code(Markup(highlight(source, lexer, self.formatter)), caption)

    def figure_html(self, figure: dict) -> Markup:
        rendered = self.macros.figure(figure)
        self.figures_on_slide.append(str(rendered))
        return rendered

    def block(self, rendered: str) -> Markup:
        """Keep a finished HTML block out of Markdown's hands: a placeholder now, the HTML later."""
        self.blocks_html.append(str(rendered))
        return Markup(f"\n\n@@DECKBLOCK{len(self.blocks_html) - 1}@@\n\n")

    def unplace(self, text: str) -> str:
        def restore(match):
            return self.blocks_html[int(match.group(1))]
        text = re.sub(r"<p>@@DECKBLOCK(\d+)@@</p>", restore, text)
        return re.sub(r"@@DECKBLOCK(\d+)@@", restore, text)

    # --- one slide ------------------------------------------------------------------------------
    def render_text(self, source: str, slide: Slide) -> tuple[str, str]:
        """(HTML, the Markdown after Jinja) of a slide's body or notes; errors carry FILE:LINE."""
        try:
            template = self.environment.from_string(source)
            expanded = template.render()
        except BuildError as error:
            error.file, error.line = slide.file, error.line or template_line(error, slide)
            raise
        except jinja2.TemplateSyntaxError as error:
            raise BuildError(f"template error: {error.message}", file=slide.file, line=error.lineno) from None
        except Exception as error:  # a template that fails at render time: name the line
            raise BuildError(f"template error: {error.__class__.__name__}: {error}",
                             file=slide.file, line=template_line(error, slide)) from None
        self.markdown.reset()
        return self.unplace(self.markdown.convert(expanded)), expanded

    def render_slide(self, slide: Slide) -> RenderedSlide:
        self.figures_on_slide = []
        self.environment.claims_log = []
        try:
            if slide.number in self.slide_errors:
                raise BuildError("\n".join(str(e) for e in self.slide_errors[slide.number]))
            body_html, _ = self.render_text(slide.body, slide)
            notes_html, notes_text = self.render_text(slide.notes, slide) if slide.notes.strip() else ("", "")
            error = ""
        except BuildError as error_:
            if not self.keep_going:
                raise
            error = str(error_)
            body_html = f"<h2>{html.escape(slide.title)}</h2>" + str(self.macros.error_card(error))
            notes_html, notes_text = f"<p>Build error: {html.escape(error)}</p>", f"Build error: {error}"
        title = first_heading(body_html) or slide.title
        return RenderedSlide(
            number=slide.number, title=title, timing=slide.timing or 0, location=slide.location,
            html=body_html, notes_html=notes_html, notes_text=plain_notes(notes_text),
            id=slide.attributes.get("id", f"slide-{slide.number}"), classes=slide.attributes.get("class", ""),
            background=slide.attributes.get("background", ""), transition=slide.attributes.get("transition", ""),
            key_figure=self.figures_on_slide[0] if self.figures_on_slide else "", error=error,
            claims=[dataclasses.asdict(claim) for claim in self.environment.claims_log])


def template_line(error: BaseException, slide: Slide) -> int:
    """The slide-file line a Jinja render error happened on (templates are padded to file lines)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if frame.filename == "<template>"]
    return lines[-1] if lines else slide.line


def first_heading(body_html: str) -> str:
    match = re.search(r"<h[12][^>]*>(.*?)</h[12]>", body_html, re.S)
    return html.unescape(re.sub(r"<[^>]+>", "", match.group(1))).strip() if match else ""


def plain_notes(text: str) -> str:
    text = re.sub(r"@@DECKBLOCK\d+@@", "", text)
    return "\n".join(line.rstrip() for line in text.strip("\n").splitlines()).strip()


def render_slides(slides: list[Slide], renderer: SlideRenderer, references: list[Reference],
                  cache_dir: Path) -> RenderedDeck:
    """Every slide rendered (or taken from the render cache), then the provenance slide."""
    cache = cache_dir / "slides"
    rendered = []
    for slide in slides:
        key = slide_key(slide, [r for r in references if r.slide == slide.number], renderer)
        cached = None if slide.number in renderer.slide_errors else load_rendered(cache / f"{key}.json")
        if cached is None:
            cached = renderer.render_slide(slide)
            if not cached.error:
                store_rendered(cache / f"{key}.json", cached)
        # Where the slide sits is not part of the key: an edit above it does not make it render again.
        cached.number, cached.location = slide.number, slide.location
        cached.id = slide.attributes.get("id", f"slide-{slide.number}")
        rendered.append(cached)
    provenance = provenance_rows(renderer.results)
    rendered.append(provenance_slide(renderer, provenance, number=len(rendered) + 1))
    elapsed = 0
    for slide in rendered:
        slide.start_seconds = elapsed
        elapsed += slide.timing
    return RenderedDeck(slides=rendered, footer=footer_text(provenance))


def slide_key(slide: Slide, references: list[Reference], renderer: SlideRenderer) -> str:
    """What a rendered slide depends on: its text, the results and code it shows, the templates."""
    digest = hashlib.sha256(RENDER_VERSION.encode())
    digest.update(json.dumps([slide.attributes, slide.body.lstrip("\n"), slide.notes.lstrip("\n"),
                              renderer.environment.globals["talk"]], sort_keys=True, default=str).encode())
    digest.update(renderer.templates_digest.encode())
    for reference in references:
        if reference.call:
            digest.update(renderer.results[reference.call].get("cache_key", "failed").encode())
        else:
            digest.update(renderer.catalog.shown_code(reference.target)[0].encode())
    return digest.hexdigest()[:32]


def load_rendered(path: Path) -> RenderedSlide | None:
    try:
        return RenderedSlide(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        path.unlink(missing_ok=True)
        return None


def store_rendered(path: Path, slide: RenderedSlide) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".tmp-{os.getpid()}")
    temporary.write_text(json.dumps(dataclasses.asdict(slide)), encoding="utf-8")
    os.replace(temporary, path)


def provenance_rows(results: dict[DemoCall, dict]) -> list[dict]:
    rows = []
    for call, result in results.items():
        if "error" in result:
            rows.append({"demo": call.demo, "device_name": "failed", "torch": "", "ran_at": "", "seconds": 0,
                         "stale": False})
        else:
            rows.append(dict(demo=call.demo, stale=result["provenance"].get("stale", False),
                             **{k: result["provenance"][k] for k in ("device_name", "torch", "ran_at", "seconds")}))
    return rows


def footer_text(provenance: list[dict]) -> str:
    devices = sorted({row["device_name"] for row in provenance if row["torch"]})
    versions = sorted({row["torch"] for row in provenance if row["torch"]})
    days = sorted({row["ran_at"][:10] for row in provenance if row["ran_at"]})
    if not devices:
        return ""
    when = days[0] if len(days) == 1 else f"{days[0]} – {days[-1]}"
    return f"Numbers measured on {' and '.join(devices)} · torch {', '.join(versions)} · {when}"


def provenance_slide(renderer: SlideRenderer, rows: list[dict], number: int) -> RenderedSlide:
    template = renderer.environment.get_template("provenance.html.j2")
    body = template.render(rows=rows)
    measured = footer_text(rows)
    notes = ("Every number, table and figure in this deck was produced by the demo code shown, "
             "run when the deck was built. This slide lists where and when each demo ran."
             + (f" {measured}." if measured else ""))
    return RenderedSlide(number=number, title="Where these numbers come from", timing=PROVENANCE_SLIDE_SECONDS,
                         location="(generated)", html=body, notes_html=f"<p>{notes}</p>", notes_text=notes,
                         id="provenance", classes="provenance")


def pygments_css() -> str:
    return HtmlFormatter(cssclass="highlight", style=PYGMENTS_STYLE).get_style_defs(".highlight")
