"""Find every demo reference in the slides before anything runs.

Slides call ``demo()``, ``output()``, ``figure()``, ``table()``, ``timings()``
and ``result()`` with a demo name, and ``code()`` with a function or file name.
Jinja's syntax tree lists those calls, so the builder knows all the work ahead,
can report a bad name with its ``FILE:LINE``, and can show progress.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from jinja2 import nodes

from deck.catalog import Catalog
from deck.errors import BuildError
from deck.files import write_file
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


def scan(slides: list[Slide], catalog: Catalog, environment: jinja2.Environment,
         cache: Path | None = None) -> ScanResult:
    """Every reference in the slides, checked against the catalog.  Parsing is the slow part of a warm
    rebuild, so what each text calls is kept in ``cache`` by the text's hash."""
    known = read_json(cache)
    seen = {}
    found = ScanResult()
    for slide in slides:
        for text in (slide.body, slide.notes):
            digest = hashlib.sha256(text.encode()).hexdigest()
            seen[digest] = known.get(digest) or calls_in(text, environment)
            if "syntax_error" in seen[digest]:
                message, line = seen[digest]["syntax_error"]
                found.slide_errors.setdefault(slide.number, []).append(
                    BuildError(f"template error: {message}", file=slide.file, line=line))
                continue
            for call in seen[digest]["calls"]:
                try:
                    found.references.append(reference(call, slide, catalog))
                except BuildError as error:
                    found.slide_errors.setdefault(slide.number, []).append(error)
    if cache and seen != known:
        write_file(cache, json.dumps(seen))
    return found


def read_json(path: Path | None) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (AttributeError, OSError, ValueError):
        return {}


def calls_in(text: str, environment: jinja2.Environment) -> dict:
    """The slide functions a text calls: their name, literal arguments and line, read from Jinja's tree."""
    try:
        tree = environment.parse(text)
    except jinja2.TemplateSyntaxError as error:
        return {"syntax_error": [error.message, error.lineno]}
    calls = []
    for node in tree.find_all(nodes.Call):
        if not (isinstance(node.node, nodes.Name) and node.node.name in RUNS_DEMO + SHOWS_CODE):
            continue
        first = node.args[0] if node.args else None
        call = {"kind": node.node.name, "line": node.lineno, "args": {}, "args_problem": "",
                "target": first.value if isinstance(first, nodes.Const) and isinstance(first.value, str) else None}
        for keyword in node.kwargs:
            if keyword.key == "args":
                try:
                    call["args"] = keyword.value.as_const()
                except nodes.Impossible:
                    call["args_problem"] = "must be a literal dict"
                else:
                    if not isinstance(call["args"], dict):
                        call["args_problem"] = f"must be a dict, not {type(call['args']).__name__}"
        calls.append(call)
    return {"calls": calls}


def reference(call: dict, slide: Slide, catalog: Catalog) -> Reference:
    kind, target = call["kind"], call["target"]
    where = dict(file=slide.file, line=call["line"])
    if target is None:
        raise BuildError(f'{kind}() needs a demo name as a literal string, e.g. {kind}("basics.numpy_vs_torch")',
                         **where)
    try:
        if kind in SHOWS_CODE:
            catalog.shown_code(target)
            return Reference(call=None, target=target, slide=slide.number, **where)
        catalog.demo(target)
    except KeyError as error:
        raise BuildError(error.args[0], **where) from None
    if call["args_problem"]:
        raise BuildError(f"{kind}(..., args=...) {call['args_problem']}", **where)
    return Reference(call=DemoCall(target, json.dumps(call["args"], sort_keys=True)), target=target,
                     slide=slide.number, **where)
