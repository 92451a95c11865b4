"""What a slide may call: the one list, and what each call puts on the slide.

``demo()``, ``output()``, ``figure()``, ``table()``, ``timings()``, ``result()`` and
``measured_on()`` take a demo name (and optional ``args``); ``code()`` takes a function, class or
file of ``demos/``.  The scan (deck/references.py) finds these calls before
anything runs; the renderer (deck/render.py) binds them to a build's results.
"""
from __future__ import annotations

import base64
import json
import os
import textwrap

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name, get_lexer_for_filename
from pygments.util import ClassNotFound

from deck.catalog import Catalog
from deck.errors import BuildError, closest
from deck.result import DemoCall, Figure, Result

RUNS_DEMO = ("demo", "output", "figure", "table", "timings", "result", "measured_on")
SHOWS_CODE = ("code",)
PYGMENTS_STYLE = "default"
LONGEST_LISTING = 12     # lines of code on a slide; code(name, lines="A:B") cuts a longer one
# A talk's usual languages by name: finding a lexer by file name matches every lexer's patterns (half a
# second of a cold build); any other file is looked up that way.
LEXERS_BY_SUFFIX = {".py": "python", ".cpp": "cpp", ".txt": "text"}


class Block(Markup):
    """Finished HTML for a slide, kept away from Markdown (see deck/render.py)."""


class SlideFunctions:
    def __init__(self, catalog: Catalog, results: dict[DemoCall, Result], macros, block):
        self.catalog, self.results, self.macros = catalog, results, macros
        self.block = block                  # turns HTML into a Block for the slide being rendered
        self.figures_on_slide: list[str] = []
        self.formatter = HtmlFormatter(cssclass="highlight", style=PYGMENTS_STYLE)

    def globals(self) -> dict:
        return {name: getattr(self, name) for name in RUNS_DEMO + SHOWS_CODE}

    # --- the calls ------------------------------------------------------------------------------
    def demo(self, name: str, args: dict | None = None) -> Block:
        result = self.lookup(name, args)
        if result.failed:
            return self.block(self.macros.error_card(result.error))
        parts = [self.code_html(name), self.macros.output(result.output)]
        parts += [self.macros.table(t) for t in result.tables]
        parts += [self.figure_html(f) for f in result.figures]
        if result.timings:
            parts.append(self.macros.timings(result.timings))
        parts.append(self.macros.measured_on(result.provenance))
        return self.block(Markup('<div class="demo">') + Markup("\n").join(parts) + Markup("</div>"))

    def code(self, name: str, lines: str | None = None) -> Block:
        return self.block(self.code_html(name) if lines is None else self.cut_code_html(name, lines))

    def output(self, name: str, args: dict | None = None) -> Block:
        result = self.lookup(name, args)
        return self.block(self.macros.error_card(result.error) if result.failed else self.macros.output(result.output))

    def figure(self, name: str, index: int = 0, args: dict | None = None) -> Block:
        result = self.lookup(name, args)
        if result.failed:
            return self.block(self.macros.error_card(result.error))
        return self.block(self.figure_html(self.nth(result.figures, index, name, "figure")) + self.badge(result))

    def table(self, name: str, index: int = 0, args: dict | None = None) -> Block:
        result = self.lookup(name, args)
        if result.failed:
            return self.block(self.macros.error_card(result.error))
        where = result.provenance if result.timings or result.measured else None
        return self.block(self.macros.table(self.nth(result.tables, index, name, "table"), where))

    def timings(self, name: str, args: dict | None = None) -> Block:
        result = self.lookup(name, args)
        if result.failed:
            return self.block(self.macros.error_card(result.error))
        return self.block(self.macros.beside_badge(self.macros.timings(result.timings), result.provenance))

    def measured_on(self, name: str, args: dict | None = None) -> Block:
        """The badge alone, for a slide that puts measured numbers in a sentence."""
        result = self.lookup(name, args)
        return self.block(self.macros.error_card(result.error) if result.failed else self.macros.measured_on(result.provenance))

    def result(self, name: str, args: dict | None = None):
        result = self.lookup(name, args)
        return FailedValues() if result.failed else Values(name, result)

    # --- their parts ----------------------------------------------------------------------------
    def lookup(self, name: str, args: dict | None) -> Result:
        return self.results[DemoCall(name, json.dumps(args or {}, sort_keys=True))]

    @staticmethod
    def nth(items: list, index: int, name: str, what: str):
        if not isinstance(index, int) or not 0 <= index < len(items):
            raise BuildError(f"demo {name} has {len(items)} {what}(s); {what} index {index} does not exist")
        return items[index]

    def badge(self, result: Result) -> Markup:
        """Where it was measured, under a figure of a result that holds measurements (a table's is in
        its caption)."""
        return self.macros.measured_on(result.provenance) if result.timings or result.measured else Markup("")

    def highlighted(self, source: str, filename: str) -> Markup:
        suffix = os.path.splitext(filename)[1].lower()
        try:
            lexer = get_lexer_by_name(LEXERS_BY_SUFFIX[suffix]) if suffix in LEXERS_BY_SUFFIX else \
                get_lexer_for_filename(filename)
        except ClassNotFound:
            lexer = get_lexer_by_name("text")
        return Markup(highlight(source, lexer, self.formatter))

    def code_html(self, name: str) -> Markup:
        source, caption, filename = self.catalog.shown_code(name)
        return self.macros.code(self.highlighted(source, filename), caption)

    def cut_code_html(self, name: str, lines: str) -> Markup:
        """Some lines of a listing ("3:14", or "1,4:12" to skip a docstring), and the whole listing one
        click away.  A gap between the parts shows as a line "..."."""
        source, caption, filename = self.catalog.shown_code(name)
        every = source.splitlines(keepends=True)
        parts = listing_ranges(lines, len(every), name)
        shown = "".join(("" if at == 0 else indent_of(every[first - 1]) + "...\n") + "".join(every[first - 1:last])
                        for at, (first, last) in enumerate(parts))
        label = ", ".join(f"{a}–{b}" if a != b else f"{a}" for a, b in parts)
        return self.macros.cut_code(self.highlighted(textwrap.dedent(shown), filename),
                                    self.highlighted(source, filename), caption,
                                    f"line{'s' if label != str(parts[0][0]) else ''} {label}", len(every))

    def figure_html(self, figure: Figure) -> Markup:
        """An SVG inside <img>: it is drawn, and can never run script whatever it holds."""
        source = "data:image/svg+xml;base64," + base64.b64encode(figure.svg.encode()).decode()
        rendered = self.macros.figure(source, figure.alt)
        self.figures_on_slide.append(str(rendered))
        return rendered


def indent_of(line: str) -> str:
    return line[:len(line) - len(line.lstrip())]


def listing_ranges(lines: str, total: int, name: str) -> list[tuple[int, int]]:
    """code(name, lines="A:B,C:D"): lines A to B and C to D (both included, 1 = the first, "A" for one
    line), in order, of a listing of ``total`` lines."""
    where = f'code("{name}", lines="{lines}")'
    try:
        parts = [(int(a), int(b or a)) for a, _, b in (part.partition(":") for part in str(lines).split(","))]
    except ValueError:
        raise BuildError(f'{where}: lines must be "FIRST:LAST" or several, e.g. "3:14" or "1,4:12"') from None
    in_order = all(a <= b for a, b in parts) and all(b + 1 < a for (_, b), (a, _) in zip(parts, parts[1:]))
    if not in_order or not 1 <= parts[0][0] <= parts[-1][1] <= total:
        raise BuildError(f"{where}: the listing has lines 1 to {total}; give parts in order, with a gap between")
    shown = sum(b - a + 1 for a, b in parts) + len(parts) - 1          # each gap is a line "..."
    if shown > LONGEST_LISTING:
        raise BuildError(f"{where} shows {shown} lines; a slide shows at most {LONGEST_LISTING}")
    return parts


class Values:
    """``result("m.f")`` in a slide: a demo's values (and measured numbers) by name,
    plus ``.timings.NAME`` and ``.provenance.device_name`` etc."""

    def __init__(self, demo: str, result: Result):
        self._demo, self._result = demo, result

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name == "timings":
            return Named(f"demo {self._demo} has no timing", self._result.timings)
        if name == "provenance":
            return self._result.provenance
        values = {**self._result.values, **self._result.measured}
        if name not in values:
            raise BuildError(f"demo {self._demo} has no value {name!r}{closest(name, values)}; "
                             f"its values: {', '.join(values) or '(none)'}")
        return values[name]

    def __contains__(self, name: str) -> bool:  # {% if "NAME" in result("m.f") %}: results from older demo code
        return name in self._result.values or name in self._result.measured


class Named:
    def __init__(self, missing: str, entries: dict):
        self._missing, self._entries = missing, entries

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._entries:
            raise BuildError(f"{self._missing} {name!r}{closest(name, self._entries)}; "
                             f"it has: {', '.join(self._entries) or '(none)'}")
        return self._entries[name]

    def __contains__(self, name: str) -> bool:
        return name in self._entries


class FailedValues:
    """What ``result()`` gives for a demo that failed under --keep-going: a visible marker,
    however deep the slide reaches into it (``.timings.step``, ``.provenance.torch``)."""

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self

    def __html__(self) -> str:
        return '<span class="value-error">⚠ demo failed</span>'

    __str__ = __html__


def pygments_css() -> str:
    return HtmlFormatter(cssclass="highlight", style=PYGMENTS_STYLE).get_style_defs(".highlight")
