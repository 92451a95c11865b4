"""Render slides to HTML: Jinja for demo references, Markdown for prose, Pygments for code.

A slide's text is a Jinja template in a sandbox (slide text is never Python).
Every ``{{ … }}`` it outputs is kept out of Markdown's hands: Jinja's ``finalize``
swaps it for a marker only this build knows, and a Markdown preprocessor moves
what the marker stands for into Python-Markdown's own stash, which puts it back
after Markdown is done.  So a value shows as its literal text whatever it holds
(no Markdown link, image or attribute can come from it), and a demo block
arrives as exactly the HTML the templates made.
"""
from __future__ import annotations

import dataclasses
import html
import re
import secrets
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import markdown
from jinja2.sandbox import SandboxedEnvironment
from markdown.preprocessors import Preprocessor
from markdown.util import ETX, STX
from markupsafe import Markup, escape

from deck.catalog import Catalog
from deck.claims import CLAIMS, GLOBALS as CLAIM_GLOBALS, Claim, ClaimExtension
from deck.errors import BuildError
from deck.result import DemoCall, Result, format_seconds
from deck.slide_functions import PYGMENTS_STYLE, Block, SlideFunctions
from deck.slides import Slide


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
    claims: list[dict] = field(default_factory=list)


@dataclass
class RenderedDeck:
    slides: list[RenderedSlide]

    @property
    def total_seconds(self) -> int:
        return sum(s.timing for s in self.slides)


def format_minutes(seconds: float) -> str:
    seconds = int(round(seconds or 0))
    return f"{seconds // 60}:{seconds % 60:02d}"


FILTERS = {
    "sci": lambda x, digits=1: "exactly 0" if x == 0 else f"{float(x):.{digits}e}",
    "seconds": format_seconds,
    "minutes": format_minutes,
    "pct": lambda x, digits=1: f"{100 * float(x):.{digits}f}%",
    "filesize": lambda n: f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB",
}


def make_environment(templates_dir: Path) -> SandboxedEnvironment:
    """The environment slide text is rendered in (sandboxed, autoescaped, strict about names)."""
    environment = SandboxedEnvironment(loader=jinja2.FileSystemLoader(templates_dir), autoescape=True,
                                       undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                       extensions=[ClaimExtension])
    environment.globals.update(CLAIM_GLOBALS)
    environment.filters.update(FILTERS)
    return environment


def page_environment(templates_dir: Path, cache_dir: Path) -> jinja2.Environment:
    """The environment of the deck's own templates (pages and blocks), which the project writes;
    compiled templates are kept in the cache, so a warm rebuild does not compile them again."""
    (cache_dir / "templates").mkdir(parents=True, exist_ok=True)
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(templates_dir), autoescape=True,
                                     undefined=jinja2.StrictUndefined,
                                     bytecode_cache=jinja2.FileSystemBytecodeCache(str(cache_dir / "templates")))
    environment.filters.update(FILTERS)
    return environment


PAGE = "deck page"   # the render variable holding the slide's SlidePage (a name slide text cannot write)


class StashValues(Preprocessor):
    """Put each marked value or block into Markdown's stash; runs after Markdown's own clean-up."""

    def __init__(self, md: markdown.Markdown, page: "SlidePage"):
        super().__init__(md)
        self.page = page

    def run(self, lines: list[str]) -> list[str]:
        text = self.page.markers.sub(lambda m: self.md.htmlStash.store(self.page.pending[m.group(0)]),
                                     "\n".join(lines))
        return text.split("\n")


class SlidePage:
    """What rendering one slide collects: the values and blocks on their way past Markdown, the
    slide's claims and its figures. Each slide gets a new one, so nothing carries over."""

    def __init__(self, nonce: str):
        self.marker = f"deck{nonce}v{{}}e"
        self.markers = re.compile(f"deck{nonce}v[0-9]+e")
        self.pending: dict[str, str] = {}
        self.claims: list[Claim] = []
        self.markdown = markdown.Markdown(
            extensions=["extra", "attr_list", "sane_lists", "codehilite"],
            extension_configs={"codehilite": {"guess_lang": False, "css_class": "highlight",
                                              "pygments_style": PYGMENTS_STYLE}})
        self.markdown.preprocessors.register(StashValues(self.markdown, self), "deck_values", 29)

    def keep_out_of_markdown(self, value) -> Markup:
        """Every output becomes a marker; HTML the deck made stays HTML, the rest is escaped."""
        if isinstance(value, Block):
            return value
        marker = self.marker.format(len(self.pending))
        text = str(escape(value))   # HTML the deck made (it has __html__) stays, anything else is escaped
        # Output of a macro or {% set %} block already went through here: put its values back in.
        text = self.markers.sub(lambda found: self.pending.get(found.group(0), ""), text)
        self.pending[marker] = text.replace(STX, "").replace(ETX, "")   # what Markdown's stash markers are made of
        return Markup(marker)

    def block(self, rendered: str) -> Block:
        """A demo block: its own paragraph, so Markdown's stash puts it back without a <p> around it."""
        marker = self.marker.format(len(self.pending))
        self.pending[marker] = str(rendered)
        return Block(f"\n\n{marker}\n\n")

    def convert(self, expanded: str) -> str:
        self.markdown.reset()
        return self.markdown.convert(expanded)


@jinja2.pass_context
def keep_out_of_markdown(context, value) -> Markup:
    """Jinja's finalize: the slide being rendered keeps the value away from Markdown."""
    page = context.get(PAGE)
    if page is None:   # a template the slide imported without its context
        raise BuildError('a template a slide imports must share its context: {% import "NAME" as x with context %}')
    return page.keep_out_of_markdown(value)


class SlideRenderer:
    """Renders slides with one build's results. It holds only what every slide shares, unchanged once
    made; what one slide collects lives in that slide's SlidePage."""

    def __init__(self, environment: SandboxedEnvironment, pages: jinja2.Environment, catalog: Catalog,
                 results: dict[DemoCall, Result], talk: dict, keep_going: bool = False,
                 slide_errors: dict | None = None):
        # An overlay: slide text's environment with this renderer's finalize; the scan's is left as it is.
        self.environment = environment.overlay(finalize=keep_out_of_markdown)
        self.catalog, self.results, self.talk = catalog, results, talk
        self.macros = pages.get_template("blocks.html.j2").module
        self.keep_going = keep_going
        self.slide_errors = slide_errors or {}  # reference errors found by the scan (--keep-going)
        self.nonce = secrets.token_hex(8)

    # --- one slide ------------------------------------------------------------------------------
    def render_text(self, source: str, slide: Slide, variables: dict) -> str:
        """The HTML of a slide's body or notes; errors carry FILE:LINE."""
        try:
            template = self.environment.from_string(source)
            expanded = template.render(variables)
        except BuildError as error:
            error.file, error.line = slide.file, error.line or template_line(error, slide)
            raise
        except jinja2.TemplateSyntaxError as error:
            raise BuildError(f"template error: {error.message}", file=slide.file, line=error.lineno) from None
        except Exception as error:  # a template that fails at render time: name the line
            raise BuildError(f"template error: {error.__class__.__name__}: {error}",
                             file=slide.file, line=template_line(error, slide)) from None
        return variables[PAGE].convert(expanded)

    def render_slide(self, slide: Slide) -> RenderedSlide:
        page = SlidePage(self.nonce)
        functions = SlideFunctions(self.catalog, self.results, self.macros, page.block)
        variables = {"talk": self.talk, **functions.globals(), PAGE: page, CLAIMS: page.claims}
        try:
            if slide.number in self.slide_errors:
                raise BuildError("\n".join(str(e) for e in self.slide_errors[slide.number]))
            body_html = self.render_text(slide.body, slide, variables)
            notes_html = self.render_text(slide.notes, slide, variables) if slide.notes.strip() else ""
            error = ""
        except BuildError as error_:
            if not self.keep_going:
                raise
            error = str(error_)
            body_html = f"<h2>{html.escape(slide.title)}</h2>" + str(self.macros.error_card(error))
            notes_html = f"<p>Build error: {html.escape(error)}</p>"
        figures = functions.figures_on_slide
        return RenderedSlide(
            number=slide.number, title=first_heading(body_html) or slide.title, timing=slide.timing or 0,
            location=slide.location, html=body_html, notes_html=notes_html, notes_text=html_to_text(notes_html),
            id=slide.attributes.get("id", f"slide-{slide.number}"), classes=slide.attributes.get("class", ""),
            background=slide.attributes.get("background", ""), transition=slide.attributes.get("transition", ""),
            key_figure=figures[0] if figures else "", error=error,
            claims=[dataclasses.asdict(claim) for claim in page.claims])


def template_line(error: BaseException, slide: Slide) -> int:
    """The slide-file line a Jinja render error happened on (templates are padded to file lines)."""
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if frame.filename == "<template>"]
    return lines[-1] if lines else slide.line


def first_heading(body_html: str) -> str:
    match = re.search(r"<h[12][^>]*>(.*?)</h[12]>", body_html, re.S)
    return html_to_text(match.group(1)) if match else ""


def html_to_text(fragment: str) -> str:
    """Rendered notes as plain text for the terminal: tags dropped, entities decoded, paragraphs kept."""
    text = re.sub(r"</(p|li|h\d|pre|tr)>", "\n", fragment)
    text = html.unescape(re.sub(r"<[^>]+>", "", text))
    return "\n".join(line.strip() for line in text.strip().splitlines() if line.strip())


def render_slides(slides: list[Slide], renderer: SlideRenderer, references, cache) -> list[RenderedSlide]:
    """Every slide rendered, or taken from the render cache when nothing it shows has changed."""
    rendered = []
    for slide in slides:
        key = cache.key(slide, [r for r in references if r.slide == slide.number], renderer)
        cached = None if slide.number in renderer.slide_errors else cache.load(key, slide.number)
        if cached is None:
            cached = renderer.render_slide(slide)
            if not cached.error:
                cache.store(key, cached)
        # Where the slide sits is not part of the key: an edit above it does not make it render again.
        # (A copy: what the cache keeps is never changed.)
        rendered.append(dataclasses.replace(cached, number=slide.number, location=slide.location,
                                            id=slide.attributes.get("id", f"slide-{slide.number}")))
    return rendered

