"""The talk's settings: ``[tool.deck]`` in pyproject.toml, read once into a checked ``Config``.

An unknown key, a value of the wrong type and a per-demo time limit for a demo
that does not exist are errors naming ``pyproject.toml``, the line and the key.
"""
from __future__ import annotations

import dataclasses
import datetime
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from deck.errors import BuildError, closest

TABLE = "tool.deck"


@dataclass(frozen=True)
class Config:
    title: str = "Untitled talk"     # the talk's facts, shown by the slides as {{ talk.title }} etc.
    subtitle: str = ""
    presenter: str = ""              # empty: the build warns, the title slide shows no name
    date: str = ""
    repository: str = ""             # where the audience finds the deck and its demos
    target_minutes: float = 45       # what `notes --times` compares the slides' budgets with
    demo_timeout_s: float = 600      # seconds a demo may run (--timeout overrides it and every per-demo limit)
    timeouts: dict[str, float] = field(default_factory=dict)   # [tool.deck.timeouts] "m.f" = seconds
    env: tuple[str, ...] = ()        # environment variables the demos depend on (part of the cache key)
    preload: tuple[str, ...] = ("matplotlib.pyplot", "torch._dynamo")   # imported once by the demo server

    @property
    def talk(self) -> dict:
        """The talk's facts, as the slides and pages see them."""
        return {name: getattr(self, name) for name in
                ("title", "subtitle", "presenter", "date", "repository", "target_minutes")}


KEYS = [f.name for f in dataclasses.fields(Config)]


def is_text(value) -> bool:
    return isinstance(value, str)


def is_positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def is_names(value) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


# What each key holds: a description for the error, and the check.
EXPECTED = {"title": ("a string", is_text), "subtitle": ("a string", is_text),
            "presenter": ("a string", is_text), "repository": ("a string", is_text),
            "date": ("a string or a date", lambda v: isinstance(v, (str, datetime.date))),
            "target_minutes": ("a number of minutes > 0", is_positive),
            "demo_timeout_s": ("a number of seconds > 0", is_positive),
            "timeouts": ('a table of "module.function" = seconds', lambda v: isinstance(v, dict)),
            "env": ('a list of environment variable names, e.g. ["OMP_NUM_THREADS"]', is_names),
            "preload": ('a list of module names, e.g. ["matplotlib.pyplot", "transformers"]', is_names)}


class Source:
    """pyproject.toml's text, to name the line of a key in an error."""

    def __init__(self, name: str, text: str):
        self.name, self.lines = name, text.splitlines()

    def error(self, table: str, key: str, message: str) -> BuildError:
        return BuildError(f"[{table}] {key}: {message}", file=self.name, line=self.line_of(table, key))

    def line_of(self, table: str, key: str) -> int | None:
        current, wanted = "", re.compile(rf'^\s*("{re.escape(key)}"|\'{re.escape(key)}\'|{re.escape(key)})\s*[=.]')
        for number, line in enumerate(self.lines, start=1):
            header = re.match(r"^\s*\[+([^\[\]]+)\]", line)
            if header:
                current = header.group(1).replace(" ", "").replace('"', "")
            elif current == table and wanted.match(line):
                return number
        return None


def read_config(pyproject: Path, name: str = "pyproject.toml") -> Config:
    """``[tool.deck]`` of the talk's pyproject.toml (all defaults where there is none)."""
    try:
        text = pyproject.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Config()
    except (OSError, UnicodeDecodeError) as error:
        raise BuildError(f"cannot read it: {error}", file=name) from None
    try:
        tool = tomllib.loads(text).get("tool", {})
    except tomllib.TOMLDecodeError as error:
        raise BuildError(f"not valid TOML: {error}", file=name) from None
    table = tool.get("deck", {}) if isinstance(tool, dict) else {}
    if not isinstance(table, dict):
        raise BuildError(f"[{TABLE}] must be a table, not {kind(table)}", file=name)
    return config_from(table, Source(name, text))


def config_from(table: dict, source: Source) -> Config:
    values = {}
    for key, value in table.items():
        if key not in EXPECTED:
            raise source.error(TABLE, key, f"unknown key{closest(key, KEYS)}; the keys are {', '.join(KEYS)}")
        expected, check = EXPECTED[key]
        if not check(value):
            raise source.error(TABLE, key, f"must be {expected}, not {kind(value)}")
        values[key] = value
    if isinstance(values.get("date"), datetime.date):
        values["date"] = values["date"].isoformat()
    for key in ("env", "preload"):
        if key in values:
            values[key] = tuple(values[key])
    for demo, seconds in values.get("timeouts", {}).items():
        if not is_positive(seconds):
            hint = (f'; a demo name holds a dot, so quote it: "{demo}.NAME" = SECONDS'
                    if isinstance(seconds, dict) else "")
            raise source.error(f"{TABLE}.timeouts", demo, f"must be a number of seconds > 0, not {kind(seconds)}{hint}")
    return Config(**values)


def check_timeouts(config: Config, demo_names: list[str], pyproject: Path, name: str = "pyproject.toml") -> None:
    """Every demo named in ``[tool.deck.timeouts]`` is one the talk defines."""
    for demo in config.timeouts:
        if demo not in demo_names:
            source = Source(name, pyproject.read_text(encoding="utf-8"))
            raise source.error(f"{TABLE}.timeouts", demo, f"no such demo{closest(demo, demo_names)}")


def kind(value) -> str:
    """A value as an error names it: its TOML type and the value."""
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "a table", datetime.date: "a date", datetime.datetime: "a date and time"}
    shown = repr(value) if not isinstance(value, dict) else ""
    return f"{names.get(type(value), type(value).__name__)} {shown}".strip()
