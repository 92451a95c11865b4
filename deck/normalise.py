"""A demo's returned Result made storable: plain values, tables of text, figures as SVG.

Anything a result cannot hold is an ``UnsupportedResult`` naming the demo and the field, and what
comes out is read back through ``deck.result.from_json`` before it is sent: what is stored can
always be read again.
"""
from __future__ import annotations

import numbers

from deck.figures import svg
from deck.result import MAX_DEPTH, Figure, Result, ResultFormatError, Table, Timing, from_json, to_json


class UnsupportedResult(TypeError):
    pass


def checked(returned, demo: str) -> Result:
    """The demo's Result with plain values and figures as SVG; anything else is reported."""
    if returned is None:
        returned = Result()
    if not isinstance(returned, Result):
        raise UnsupportedResult(f"demo {demo} returned a {type(returned).__module__}.{type(returned).__qualname__}; "
                                "a demo returns deck.result.Result (or None)")
    tables = items(returned.tables, "tables", Table, demo)
    figures = items(returned.figures, "figures", Figure, demo)
    result = Result(
        values=named(returned.values, "values", demo), measured=named(returned.measured, "measured", demo),
        tables=[table(t, f"tables[{i}]", demo) for i, t in enumerate(tables)],
        figures=[figure(f, i, demo) for i, f in enumerate(figures)],
        timings={name: timing(t, f"timings[{name!r}]", demo)
                 for name, t in keyed(returned.timings, "timings", demo).items()})
    try:
        return from_json(to_json(result))
    except ResultFormatError as error:
        raise UnsupportedResult(f"demo {demo}: its result cannot be stored: {error}") from None


def keyed(mapping, what: str, demo: str) -> dict:
    if not isinstance(mapping, dict):
        raise UnsupportedResult(f"demo {demo}: {what} is a {type(mapping).__qualname__}, not a dict")
    for key in mapping:
        if not isinstance(key, str):
            raise UnsupportedResult(f"demo {demo}: {what} has the key {key!r:.60}, not a string")
    return mapping


def named(mapping, what: str, demo: str) -> dict:
    return {name: plain(value, f"{what}[{name!r}]", demo) for name, value in keyed(mapping, what, demo).items()}


def items(sequence, what: str, kind: type, demo: str) -> list:
    if not isinstance(sequence, (list, tuple)):
        raise UnsupportedResult(f"demo {demo}: {what} is a {type(sequence).__qualname__}, not a list")
    for item in sequence:
        if not isinstance(item, kind):
            raise UnsupportedResult(f"demo {demo}: {what} holds a {type(item).__qualname__}, not a {kind.__name__}")
    return list(sequence)


def plain(value, where: str, demo: str, depth: int = 0):
    if isinstance(value, (bool, str)) or value is None:
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise UnsupportedResult(f"demo {demo}: {where} nests lists deeper than {MAX_DEPTH}")
        return [plain(v, f"{where}[{i}]", demo, depth + 1) for i, v in enumerate(value)]
    raise UnsupportedResult(f"demo {demo}: {where} is a {type(value).__module__}.{type(value).__qualname__}; "
                            "values must be numbers, strings, booleans or lists of them (use .item() on a tensor)")


def table(t: Table, where: str, demo: str) -> Table:
    try:
        return Table([str(c) for c in t.columns], [[cell(v) for v in row] for row in t.rows], str(t.caption))
    except TypeError as error:
        raise UnsupportedResult(f"demo {demo}: {where} is not columns and rows of cells: {error}") from None


def cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def figure(f: Figure, index: int, demo: str) -> Figure:
    try:
        return Figure(alt=str(f.alt), svg=svg(f.figure, f"{demo}-{index}", str(f.alt)))
    except Exception as error:   # whatever savefig raised, the demo and the figure are named
        raise UnsupportedResult(f"demo {demo}: figures[{index}] could not be saved as SVG: "
                                f"{type(error).__name__}: {error}") from None


def timing(t, where: str, demo: str) -> Timing:
    if not isinstance(t, Timing):
        raise UnsupportedResult(f"demo {demo}: {where} is a {type(t).__qualname__}, not a Timing "
                                "(use demos._timing.measure)")
    try:
        return Timing(float(t.median_s), float(t.iqr_s), int(t.repeats), str(t.device))
    except (TypeError, ValueError) as error:
        raise UnsupportedResult(f"demo {demo}: {where} holds {error}") from None
