"""Find every demo reference in the slides before anything runs.

Slides call ``demo()``, ``output()``, ``figure()``, ``table()``, ``timings()``
and ``result()`` with a demo name, and ``code()`` with a function or file name.
Jinja's syntax tree lists those calls, so the builder knows all the work ahead,
can report a bad name with its ``FILE:LINE``, and can show progress.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import jinja2
from jinja2 import nodes

from deck.catalog import Catalog
from deck.errors import BuildError
from deck.result import DemoCall
from deck.slide_functions import RUNS_DEMO, SHOWS_CODE
from deck.slides import Slide



@dataclass
class Reference:
    call: DemoCall | None     # None for code(), which runs nothing
    target: str
    file: str
    line: int
    slide: int


@dataclass
class ScanResult:
    references: list[Reference] = field(default_factory=list)
    slide_errors: dict[int, list[BuildError]] = field(default_factory=dict)   # by slide number

    @property
    def errors(self) -> list[BuildError]:
        return [error for errors in self.slide_errors.values() for error in errors]

    @property
    def calls(self) -> list[DemoCall]:
        """Distinct demo runs, in the order the slides first need them."""
        return list(dict.fromkeys(r.call for r in self.references if r.call))


def scan(slides: list[Slide], catalog: Catalog, environment: jinja2.Environment) -> ScanResult:
    found = ScanResult()
    for slide in slides:
        for text in (slide.body, slide.notes):
            try:
                tree = environment.parse(text, filename=slide.file)
            except jinja2.TemplateSyntaxError as error:
                found.slide_errors.setdefault(slide.number, []).append(
                    BuildError(f"template error: {error.message}", file=slide.file, line=error.lineno))
                continue
            for node in tree.find_all(nodes.Call):
                if isinstance(node.node, nodes.Name) and node.node.name in RUNS_DEMO + SHOWS_CODE:
                    try:
                        found.references.append(reference(node, slide, catalog))
                    except BuildError as error:
                        found.slide_errors.setdefault(slide.number, []).append(error)
    return found


def reference(node: nodes.Call, slide: Slide, catalog: Catalog) -> Reference:
    kind = node.node.name
    where = dict(file=slide.file, line=node.lineno)
    if not node.args or not isinstance(node.args[0], nodes.Const) or not isinstance(node.args[0].value, str):
        raise BuildError(f'{kind}() needs a demo name as a literal string, e.g. {kind}("basics.numpy_vs_torch")',
                         **where)
    target = node.args[0].value
    try:
        if kind in SHOWS_CODE:
            catalog.shown_code(target)
            return Reference(call=None, target=target, slide=slide.number, **where)
        catalog.demo(target)
    except KeyError as error:
        raise BuildError(error.args[0], **where) from None
    args = {}
    for keyword in node.kwargs:
        if keyword.key == "args":
            try:
                args = keyword.value.as_const()
            except nodes.Impossible:
                raise BuildError(f"{kind}(..., args=...) must be a literal dict", **where) from None
            if not isinstance(args, dict):
                raise BuildError(f"{kind}(..., args=...) must be a dict, not {type(args).__name__}", **where)
    return Reference(call=DemoCall(target, json.dumps(args, sort_keys=True)), target=target,
                     slide=slide.number, **where)
