"""Claims a slide makes about its results, checked when the deck is built.

``{% claim EXPRESSION, "statement" %}`` renders nothing when EXPRESSION is true
and stops the build when it is false::

    slides/70-crazy.md:42: claim "the loss falls" is false on cpu (…): loss_end=1.04, loss_start=0.702

The name=value pairs are the ``result("m.f").NAME`` and ``result("m.f").timings.NAME``
leaves of the expression, found in the template's syntax tree when it is parsed.
Every claim evaluated is appended to the list the render variable ``CLAIMS`` holds:
each slide has its own (deck/render.py).  An expression that is not a boolean is an
error naming the slide's line, never a claim that silently holds.

Timings are compared by their spread, not their medians: ``faster(a, b)`` holds
only when all of a's spread (median ± half the interquartile range) lies below
b's; ``speedup(a, b)`` and ``break_even(cost, a, b)`` print only the precision
the spreads support.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from jinja2 import Undefined, nodes
from jinja2.ext import Extension
from markupsafe import Markup

from deck.errors import BuildError
from deck.result import Timing, format_seconds
from deck.slide_functions import FailedValues, Values


@dataclass
class Claim:
    statement: str
    holds: bool | None  # None: a demo it rests on failed, so it was not evaluated
    detail: str
    line: int


CLAIMS = "deck claims"   # the render variable holding the list a slide's claims go to (slide text cannot name it)


class ClaimExtension(Extension):
    tags = {"claim"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        expression = parser.parse_expression()
        parser.stream.expect("comma")
        statement = parser.parse_expression()
        leaves = result_leaves(expression)
        names = nodes.List([nodes.Const(name) for name, _, _ in leaves])
        values = nodes.List([node for _, node, _ in leaves])
        owners = nodes.List([owner for _, _, owner in leaves])
        line, context = nodes.Const(lineno), nodes.ContextReference()
        check = self.call_method("_check", [context, expression, statement, names, values, owners, line])
        skip = self.call_method("_skip", [context, statement, line])
        usable = self.call_method("_usable", [owners])
        return nodes.If(usable, [nodes.Output([check])], [], [nodes.Output([skip])], lineno=lineno)

    def _usable(self, owners) -> bool:
        return not any(isinstance(owner, FailedValues) for owner in owners)

    def _skip(self, context, statement: str, line: int) -> str:
        context[CLAIMS].append(Claim(str(statement), None, "a demo it rests on failed", line))
        return ""

    def _check(self, context, holds, statement: str, names, values, owners, line: int) -> str:
        if not isinstance(statement, str):
            raise BuildError(f"a claim's statement must be a quoted string, not {what_it_is(statement)}", line=line)
        if not isinstance(holds, bool):
            raise BuildError(f'claim "{statement}": its expression gives {what_it_is(holds)}, not true or false; '
                             'write a comparison, e.g. result("m.f").max_diff < 1e-6', line=line)
        results = [(name, value, owner) for name, value, owner in zip(names, values, owners)
                   if isinstance(owner, Values)]
        detail = ", ".join(f"{name}={describe(value)}" for name, value, _ in results)
        context[CLAIMS].append(Claim(statement, holds, detail, line))
        if not holds:
            devices = dict.fromkeys(owner.provenance.device_name for _, _, owner in results if owner.provenance)
            raise BuildError(f'claim "{statement}" is false on {" and ".join(devices) or "this build"}'
                             + (f": {detail}" if detail else ""), line=line)
        return ""


def what_it_is(value) -> str:
    """A value a claim cannot use, as its error names it."""
    if isinstance(value, Undefined):
        return "an undefined name"
    if value is None:
        return "none (no value)"
    kinds = {str: "a string", int: "a number", float: "a number", list: "a list", tuple: "a list", dict: "a dict"}
    shown = repr(value) if isinstance(value, str) else describe(value)
    return f"{kinds.get(type(value), type(value).__name__)} ({shown[:60]})"


def result_leaves(expression: nodes.Node) -> list[tuple[str, nodes.Node, nodes.Node]]:
    """(NAME, node, owner) for each OWNER.NAME and OWNER.timings.NAME in the expression.

    OWNER is a ``result("m.f")`` call or a name (``{% set r = result("m.f") %}``); which of
    them really are demo results is known only when the slide renders.
    """
    found: dict[str, tuple[nodes.Node, nodes.Node]] = {}

    def visit(node):
        if isinstance(node, nodes.Getattr):
            base = node.node
            if is_owner(base) and node.attr not in ("timings", "provenance"):
                found.setdefault(node.attr, (node, base))
                return
            if isinstance(base, nodes.Getattr) and base.attr == "timings" and is_owner(base.node):
                found.setdefault(node.attr, (node, base.node))
                return
        for child in node.iter_child_nodes():
            visit(child)

    visit(expression)
    return [(name, node, owner) for name, (node, owner) in found.items()]


def is_owner(node: nodes.Node) -> bool:
    return isinstance(node, nodes.Name) or (
        isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "result")


def describe(value) -> str:
    if hasattr(value, "median_s") and hasattr(value, "iqr_s"):
        return f"{format_seconds(value.median_s)} ± {format_seconds(value.iqr_s / 2)}"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# --- comparing timings by their spread --------------------------------------------------------

def spread(timing: Timing) -> tuple[float, float]:
    """(low, high): median ± half the interquartile range."""
    return timing.low_s, timing.high_s


def is_timing(value) -> bool:
    return isinstance(value, Timing)


def faster(a, b) -> bool:
    """True only when a's whole spread lies below b's: a is measurably faster than b."""
    return is_timing(a) and is_timing(b) and spread(a)[1] < spread(b)[0]


def significant(x: float, digits: int = 2) -> float:
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def number(x: float) -> str:
    """A rounded number as people write it: 1.6, 12, 4,300."""
    if not math.isfinite(x):
        return "∞"
    return f"{x:,.0f}" if abs(x) >= 10 else f"{x:g}"


@dataclass
class Speedup:
    """How many times faster a is than b, as a range the spreads support."""
    low: float
    high: float

    @property
    def measurable(self) -> bool:
        return self.low > 1 or self.high < 1

    def __str__(self) -> str:
        if not self.measurable:
            return "no measurable difference"
        low, high = significant(self.low), significant(self.high)
        if low == high or (math.isfinite(self.high) and self.high / self.low < 1.1):
            return f"about {number(significant(math.sqrt(self.low * self.high)))}×"
        return f"{number(low)}–{number(high)}×"

    def __html__(self) -> str:
        return str(Markup.escape(str(self)))


def speedup(a, b) -> Speedup:
    """b's time over a's: how many times faster a is than b, from their spreads."""
    if not (is_timing(a) and is_timing(b)):
        return Speedup(math.nan, math.nan)
    a_low, a_high = spread(a)
    b_low, b_high = spread(b)
    return Speedup(b_low / a_high, b_high / a_low if a_low > 0 else math.inf)


@dataclass
class BreakEven:
    """After how many calls a one-off cost is paid back by a per-call saving."""
    low: float
    high: float

    @property
    def pays(self) -> bool:
        return math.isfinite(self.low) and self.low > 0

    def __str__(self) -> str:
        if not self.pays:
            return "never, as far as this measurement can tell"
        low = significant(self.low)
        if not math.isfinite(self.high):
            return f"at least {number(low)} calls"
        high = significant(self.high)
        if low == high or self.high / self.low < 1.1:
            return f"about {number(significant(math.sqrt(self.low * self.high)))} calls"
        return f"{number(low)} to {number(high)} calls"

    def __html__(self) -> str:
        return str(Markup.escape(str(self)))


def break_even(cost, fast, slow) -> BreakEven:
    """Calls until ``cost`` (a Timing, or seconds) is paid back by running ``fast`` instead of ``slow``."""
    cost_s = cost.median_s if is_timing(cost) else cost
    if not (is_timing(fast) and is_timing(slow) and isinstance(cost_s, (int, float))):
        return BreakEven(math.nan, math.nan)
    fast_low, fast_high = spread(fast)
    slow_low, slow_high = spread(slow)
    saved_low, saved_high = slow_low - fast_high, slow_high - fast_low
    if saved_low <= 0:  # the spreads overlap: no saving the measurement can vouch for
        return BreakEven(math.nan, math.nan)
    return BreakEven(cost_s / saved_high, cost_s / saved_low)


GLOBALS = {"faster": faster, "speedup": speedup, "break_even": break_even}
